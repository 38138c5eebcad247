"""Tests of the model (fmduck/modeltests.py) against independent computations.

- wald_slopes: linearmodels 7.1 ``FamaMacBethResults.f_statistic_robust`` (Hotelling F, standard and
  kernel covariance) and the published ``asreg, fmb`` header F(2, 19) = 195.04 on Grunfeld (Stata form);
  χ² and arbitrary restrictions by numpy.
- grs: numpy by hand from the raw panel (per-asset lstsq, residual covariance, GRS 1989 formula);
  the alphas also against linearmodels ``TradedFactorModel``.
- pricing_chi2: numpy by hand, by a different route (an orthonormal basis Q of the null space of X':
  T (Q'α)'(Q'ΣQ)⁻¹(Q'α), Cochrane ch. 12), and the FM covariance from the per-period residuals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.api as sm
from linearmodels import FamaMacBeth as LMFamaMacBeth
from linearmodels.asset_pricing import TradedFactorModel
from scipy import stats

import oracles
from test_conventions import ar1_panel, grunfeld  # noqa: F401 - fixture

FACTORS = ["mkt", "smb"]


def _tests(res, test: str) -> pl.DataFrame:
    return res.extra["tests"].filter(pl.col("test") == test)


def _get(frame: pl.DataFrame, se_type: str | None, dist: str) -> dict:
    cond = (pl.col("distribution") == dist) & (pl.col("se_type").is_null() if se_type is None
                                               else pl.col("se_type") == se_type)
    rows = frame.filter(cond)
    assert rows.height == 1, frame
    return rows.row(0, named=True)


# ====================================================================== Wald
@pytest.mark.parametrize(("conventions", "lm_options", "se_type"), [
    ("fmduck", {"cov_type": "unadjusted"}, "fm"),
    ("linearmodels", {"cov_type": "kernel"}, "nw"),
    ("linearmodels", {"cov_type": "kernel", "bandwidth": 2}, "nw"),
])
def test_wald_slopes_vs_linearmodels(fit, conventions, lm_options, se_type):
    panel = ar1_panel(seed=21, n_periods=40)
    nw_lags = lm_options.get("bandwidth", "auto")
    res = fit(returns=panel, chars=["x1", "x2"], conventions=conventions, nw_lags=nw_lags)
    data = panel.to_pandas().set_index(["asset", "period"]).sort_index()
    lm = LMFamaMacBeth(data["ret"], sm.add_constant(data[["x1", "x2"]])).fit(**lm_options)
    want = lm.f_statistic_robust
    got = _get(_tests(res, "wald_slopes"), se_type, "F")
    oracles.assert_close(got["statistic"], want.stat, label="wald_slopes vs linearmodels f_statistic_robust",
                         rtol=1e-10)
    oracles.assert_close(got["p_value"], want.pval, label="wald_slopes vs linearmodels f_statistic_robust",
                         rtol=1e-8)
    assert (got["df1"], got["df2"]) == (want.df, want.df_denom) == (2, 38)


def test_wald_chi2_and_restriction_by_numpy(fit):
    from fmduck.modeltests import wald_test

    panel = ar1_panel(seed=22, n_periods=50)
    res = fit(returns=panel, chars=["x1", "x2"])
    lam = res.lambdas.select(["const", "x1", "x2"]).to_numpy()
    t = lam.shape[0]
    v = np.cov(lam, rowvar=False, ddof=1) / t
    b = lam.mean(0)[1:]
    w = b @ np.linalg.inv(v[1:, 1:]) @ b
    got = _get(_tests(res, "wald_slopes"), "fm", "chi2")
    oracles.assert_close(got["statistic"], w, label="wald chi2 by numpy")
    oracles.assert_close(got["p_value"], stats.chi2.sf(w, 2), label="wald chi2 by numpy")
    # any linear restriction: x1 - x2 = 0.3 and const = 0, from the API
    r_mat = np.array([[0.0, 1.0, -1.0], [1.0, 0.0, 0.0]])
    r_val = np.array([0.3, 0.0])
    d = r_mat @ lam.mean(0) - r_val
    w2 = d @ np.linalg.inv(r_mat @ v @ r_mat.T) @ d
    out = wald_test(res, r_mat, r_val, se_type="fm")
    oracles.assert_close(out["chi2"][0], w2, label="wald restriction by numpy")
    oracles.assert_close(out["F"][0], w2 * (t - 2) / (2 * (t - 1)), label="wald restriction by numpy")
    one = wald_test(res, {"x1": 1.0, "x2": -1.0}, [0.3])
    d1 = lam.mean(0)[1] - lam.mean(0)[2] - 0.3
    oracles.assert_close(one["chi2"][0], d1 * d1 / (v[1, 1] + v[2, 2] - 2 * v[1, 2]), label="wald restriction by numpy")


def test_wald_stata_form_published(fit, grunfeld):  # noqa: F811
    """``asreg invest mvalue kstock, fmb`` header: F(2, 19) = 195.04 (source: see test_conventions)."""
    res = fit(returns=grunfeld, asset="company", period="year", ret="invest", chars=["mvalue", "kstock"],
              conventions="stata")
    got = _get(_tests(res, "wald_slopes"), "fm", "F")
    assert (got["df1"], got["df2"]) == (2, 19)
    assert round(got["statistic"], 2) == 195.04
    assert "wald_slopes" in res.summary


# ====================================================================== GRS and pricing χ²
def _balanced(seed=31, n_assets=8, n_periods=60):
    return oracles.synthetic_panel(seed=seed, n_assets=n_assets, n_periods=n_periods, noise=1.0)


def _by_hand(panel: pl.DataFrame, factors: pl.DataFrame):
    wide = panel.pivot(on="asset", index="period", values="ret").sort("period")
    assets = sorted(c for c in wide.columns if c != "period")
    r = wide.select(assets).to_numpy()
    f = factors.sort("period").select(FACTORS).to_numpy()
    t, n = r.shape
    x = np.column_stack([np.ones(t), f])
    coef = np.linalg.lstsq(x, r, rcond=None)[0]
    eps = r - x @ coef
    return assets, r, f, coef, eps


def test_grs_by_hand_and_linearmodels_alphas(fit):
    panel, factors = _balanced()
    res = fit(returns=panel, factors=factors, factor_cols=FACTORS)
    assets, r, f, coef, eps = _by_hand(panel, factors)
    t, n = r.shape
    k = f.shape[1]
    sigma = eps.T @ eps / (t - k - 1)
    mu = f.mean(0)
    omega = np.cov(f, rowvar=False)
    a = coef[0]
    grs = (t / n) * ((t - n - k) / (t - k - 1)) * (a @ np.linalg.inv(sigma) @ a) / (1 + mu @ np.linalg.inv(omega) @ mu)
    got = _get(_tests(res, "grs"), None, "F")
    oracles.assert_close(got["statistic"], grs, label="GRS by hand")
    oracles.assert_close(got["p_value"], stats.f.sf(grs, n, t - n - k), label="GRS by hand")
    assert (got["df1"], got["df2"]) == (n, t - n - k)
    lm = TradedFactorModel(pd.DataFrame(r, columns=assets), pd.DataFrame(f, columns=FACTORS)).fit()
    fp = res.first_pass.filter(pl.col("term") == "const").sort("asset")
    oracles.assert_close(fp["estimate"].to_numpy(), lm.alphas.to_numpy(),
                         label="alphas vs linearmodels TradedFactorModel")


@pytest.mark.slow
def test_grs_skipped_with_reasons(fit):
    panel, factors = _balanced(n_assets=8, n_periods=60)
    gappy = panel.filter(~((pl.col("asset") == "A003") & (pl.col("period") == 17)))
    got = _tests(fit(returns=gappy, factors=factors, factor_cols=FACTORS), "grs").row(0, named=True)
    assert got["statistic"] is None or np.isnan(got["statistic"])
    assert "unbalanced" in got["note"]
    wide_panel, wide_factors = _balanced(n_assets=12, n_periods=14)
    got = _tests(fit(returns=wide_panel, factors=wide_factors, factor_cols=FACTORS), "grs").row(0, named=True)
    assert "N = 12 test assets is not below T - K = 12" in got["note"]
    chars_only = fit(returns=ar1_panel(seed=2, n_periods=20), chars=["x1", "x2"])
    assert _tests(chars_only, "grs").height == 0


@pytest.mark.parametrize("intercept", [True, False])
def test_pricing_chi2_by_hand(fit, intercept):
    panel, factors = _balanced(seed=33, n_assets=10, n_periods=80)
    res = fit(returns=panel, factors=factors, factor_cols=FACTORS, intercept=intercept)
    assets, r, f, coef, eps = _by_hand(panel, factors)
    t, n = r.shape
    beta = coef[1:].T
    x = np.column_stack([np.ones(n), beta]) if intercept else beta
    lam_t = np.linalg.lstsq(x, r.T, rcond=None)[0].T  # per-period CSR
    lam = lam_t.mean(0)
    alpha = r.mean(0) - x @ lam
    # route 1: null space of X' (independent of the pseudo-inverse used by fmduck)
    q = np.linalg.svd(x, full_matrices=True)[0][:, x.shape[1]:]
    sigma = eps.T @ eps / t
    z = q.T @ alpha
    ols = t * z @ np.linalg.solve(q.T @ sigma @ q, z)
    sf = np.cov(f, rowvar=False)
    lam_f = lam[-2:]
    shanken = ols / (1 + lam_f @ np.linalg.solve(sf, lam_f))
    # FM: covariance of the per-period pricing errors
    a_t = r - lam_t @ x.T
    cov_fm = (a_t - alpha).T @ (a_t - alpha) / t / t
    fm = t * t * z @ np.linalg.solve(q.T @ ((a_t - alpha).T @ (a_t - alpha)) @ q, z)
    dof = n - x.shape[1]
    tests = _tests(res, "pricing_chi2")
    for se_type, want in (("ols", ols), ("shanken", shanken), ("fm", fm)):
        got = _get(tests, se_type, "chi2")
        oracles.assert_close(got["statistic"], want, label="pricing chi2 by hand (Cochrane ch. 12)", rtol=1e-8,
                             what=se_type)
        oracles.assert_close(got["p_value"], stats.chi2.sf(want, dof), label="pricing chi2 by hand (Cochrane ch. 12)",
                             rtol=1e-7, what=se_type)
        assert got["df1"] == dof
    assert np.isfinite(cov_fm).all()
    oracles.assert_close(res.pricing_errors.sort("asset")["alpha"].to_numpy(), alpha, label="pricing errors by hand")


@pytest.mark.slow
def test_tests_table_stored_and_replaced(con, fit):
    panel, factors = _balanced()
    fit(name="grs_run", returns=panel, factors=factors, factor_cols=FACTORS)
    stored = con.sql("SELECT test, se_type, distribution, statistic FROM fmduck.tests "
                     "WHERE run_name = 'grs_run' ORDER BY test, se_type, distribution").pl()
    # the tests of fmduck/modeltests.py (the CSR tests of Kan-Robotti-Shanken are stored beside them: test_krs.py)
    assert {"wald_slopes", "grs", "pricing_chi2"} <= set(stored["test"])
    extra = set(stored["test"]) - {"wald_slopes", "grs", "pricing_chi2"}
    assert all("csr" in t or t.startswith("r2_") for t in extra), extra
    from fmduck import FamaMacBeth, Spec

    FamaMacBeth(Spec(name="grs_run", returns=panel, factors=factors, factor_cols=FACTORS, replace=True), con).fit()
    again = con.execute("SELECT count(*) FROM fmduck.tests WHERE run_name = 'grs_run'").fetchone()[0]
    assert again == stored.height
