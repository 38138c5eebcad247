"""fmduck.krs (Kan-Robotti-Shanken 2013, one model) against tests/oracle_krs.py and simulations.

Real data: the bundled Ken French 30 portfolios, 1949-01..2017-03 (T = 819), in excess of RF, with
CAPM (MktRF), FF3 (+ SMB, HML) and FF3 + momentum (+ Mom, the bundled momentum column).
Tolerance: 1e-10 relative (arrays: relative to their largest entry, since γ_t and off-diagonal
covariances have entries near zero); p-values 1e-6 absolute (measured: ~3e-11).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import oracle_krs
from fmduck import krs
from fmduck.errors import EstimationError, InputError, SpecError
from fmduck.inference import fm_covariance, shanken_covariance
from oracles import MAX_REL_ERR

MODELS = {"capm": ["MktRF"], "ff3": ["MktRF", "SMB", "HML"], "ff3_mom": ["MktRF", "SMB", "HML", "Mom"]}
TEST_NAMES = ["csr_r2", "r2_eq_1", "r2_eq_1_unrestricted", "r2_eq_0", "r2_eq_0_unrestricted",
              "csrt", "csrt_f", "csrt_unrestricted", "csrt_f_unrestricted"]
RTOL = 1e-10
DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def ff():
    ports = pd.read_csv(DATA / "ff_portfolios_monthly.csv", index_col=0)
    facs = pd.read_csv(DATA / "ff_factors_monthly.csv", index_col=0)
    assert (ports.index == facs.index).all()
    return ports.to_numpy() - facs[["RF"]].to_numpy(), facs


def close(actual, expected, what, label="krs vs oracle_krs (rel. to largest entry)"):
    """|actual − expected| ≤ 1e-10 · max|expected|, the worst ratio recorded for the end-of-run summary."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    scale = float(np.max(np.abs(expected)))
    err = float(np.max(np.abs(actual - expected))) / scale
    MAX_REL_ERR[label] = max(MAX_REL_ERR[label], err)
    assert err <= RTOL, f"{what}: {err:.2e} relative to the largest entry {scale:.3g}"


def close_p(actual, expected, what):
    err = abs(actual - expected)
    MAX_REL_ERR["krs p-values vs oracle (absolute)"] = max(MAX_REL_ERR["krs p-values vs oracle (absolute)"], err)
    assert err <= 1e-6, f"{what}: p-value {actual} vs oracle {expected}"


CASES = [(m, w, lags, True) for m in MODELS for w in ("ols", "gls") for lags in (0, 6)]
CASES += [("ff3", "wls", 6, True), ("ff3_mom", "wls", 0, True), ("capm", "ols", 6, False),
          ("ff3_mom", "gls", 6, False), ("ff3", "wls", 0, False)]


@pytest.mark.parametrize("model,weighting,lags,intercept", CASES)
def test_ken_french_against_oracle(ff, model, weighting, lags, intercept):
    R, facs = ff
    F = facs[MODELS[model]].to_numpy()
    res = krs.fit(R, F, weighting=weighting, intercept=intercept, lags=lags)
    ora = oracle_krs.fit(R, F, weighting, intercept, lags)
    for name in ("gamma", "lam", "gamma_t", "lam_t"):
        close(getattr(res, name), ora[name], f"{model} {weighting} L={lags} {name}")
    for se in krs.SE_TYPES:
        close(res.gamma_cov[se], ora["gamma_cov"][se], f"{model} {weighting} L={lags} gamma {se}")
        close(res.lam_cov[se], ora["lam_cov"][se], f"{model} {weighting} L={lags} lam {se}")
    close(res.r2, ora["r2"], "r2")
    close(res.r2_se, ora["r2_se"], "r2 se")
    assert [r["test"] for r in res.tests] == TEST_NAMES
    for row in res.tests:
        stat, p = ora["tests"][row["test"]]
        close(row["statistic"], stat, row["test"])
        if p is not None:
            close_p(row["p_value"], p, row["test"])
    assert res.tests[0]["std_error"] == res.r2_se
    k = len(MODELS[model])
    assert res.gamma.shape == (k + intercept,) and res.gamma_t.shape == (R.shape[0], k + intercept)


@pytest.mark.parametrize("weighting", ["ols", "gls", "wls"])
@pytest.mark.parametrize("intercept", [True, False])
def test_influence_functions_are_the_exact_derivative(ff, weighting, intercept):
    """Complex-step delta method: the misspecification-robust variances are the sandwich of the estimator.

    GLS: fmduck scales u_t, v_t by (T − N − 2)/T (the authors' convention); the oracle's unscaled
    formulas must equal the derivative, and fmduck must equal the scaled formulas (other test).
    """
    R, facs = ff
    F = facs[MODELS["ff3_mom"]].to_numpy()
    delta = oracle_krs.delta_influence(R, F, weighting, intercept)
    T = R.shape[0]
    if weighting == "gls":
        ref = oracle_krs.fit(R, F, weighting, intercept, 0, gls_scale=False)["influence"]
        for key in ("gamma", "lam", "r2"):
            close(ref[key], delta[key], f"gls unscaled influence {key}")
        return
    res = krs.fit(R, F, weighting=weighting, intercept=intercept, lags=3)
    close(res.gamma_cov["misspec_robust"], oracle_krs.newey_west(delta["gamma"], 3) / T, "gamma misspec = delta method")
    close(res.lam_cov["misspec_robust"], oracle_krs.newey_west(delta["lam"], 3) / T, "lam misspec = delta method")
    close(res.r2_se, np.sqrt(oracle_krs.newey_west(delta["r2"], 3)[0, 0] / T), "r2 se = delta method")


@pytest.mark.parametrize("model", list(MODELS))
def test_ols_gamma_is_mean_of_period_regressions_and_fm_divisor(ff, model):
    R, facs = ff
    F = facs[MODELS[model]].to_numpy()
    T = R.shape[0]
    res = krs.fit(R, F)
    betas = np.array([sm.OLS(R[:, i], sm.add_constant(F)).fit().params[1:] for i in range(R.shape[1])])
    X = sm.add_constant(betas)
    lam_t = np.array([np.linalg.lstsq(X, R[t], rcond=None)[0] for t in range(T)])
    np.testing.assert_allclose(res.gamma, lam_t.mean(axis=0), rtol=1e-12, atol=0)
    np.testing.assert_allclose(res.gamma_t, lam_t, rtol=0, atol=1e-12 * np.abs(lam_t).max())
    # fm: covariance of γ_t with divisor T, over T; fmduck's pass-3 fm uses T − 1
    np.testing.assert_allclose(res.gamma_cov["fm"], np.cov(lam_t, rowvar=False, ddof=0) / T, rtol=1e-10)
    np.testing.assert_allclose(res.gamma_cov["fm"], fm_covariance(lam_t) * (T - 1) / T, rtol=1e-10)
    # the sample R² is the centred R² of the OLS CSR of mean returns on [1, β]
    assert res.r2 == pytest.approx(sm.OLS(R.mean(axis=0), X).fit().rsquared, rel=1e-12)


def test_shanken_is_fmducks_shanken_with_divisor_t(ff):
    """KRS shanken = fmduck.inference.shanken_covariance fed divisor-T moments (V_FM and the factor covariance)."""
    R, facs = ff
    F = facs[MODELS["ff3"]].to_numpy()
    T = R.shape[0]
    res = krs.fit(R, F)
    # np.cov(ddof=1) of this = divisor-T cov of F
    f_scaled = F.mean(axis=0) + (F - F.mean(axis=0)) * np.sqrt((T - 1) / T)
    ours, _ = shanken_covariance(res.gamma_cov["fm"], res.gamma, f_scaled, [1, 2, 3])
    np.testing.assert_allclose(res.gamma_cov["shanken"], ours, rtol=1e-10)


def _simulate(rng, T, N, alpha_scale):
    beta = np.linspace(0.5, 1.5, N)
    f = 0.5 + 4.0 * rng.standard_normal((T, 1))
    alpha = alpha_scale * rng.standard_normal(N)
    mu2 = 0.3 + 0.5 * beta + alpha
    return mu2 + (f - 0.5) * beta + 2.0 * rng.standard_normal((T, N)), f


def test_r2_eq_1_size_on_a_correctly_specified_model():
    """300 seeded draws, T = 360, N = 10, CAPM holds exactly: rejections at 5% near 5% (binomial sd 1.3%)."""
    rng = np.random.default_rng(20130601)
    p = []
    for _ in range(300):
        R, f = _simulate(rng, 360, 10, 0.0)
        tests = {r["test"]: r for r in krs.fit(R, f).tests}
        p.append([tests["r2_eq_1"]["p_value"], tests["r2_eq_1_unrestricted"]["p_value"]])
    rate5, rate10 = (np.array(p) < 0.05).mean(axis=0), (np.array(p) < 0.10).mean(axis=0)
    assert np.all((rate5 > 0.02) & (rate5 < 0.10)), rate5
    assert np.all((rate10 > 0.05) & (rate10 < 0.17)), rate10


def test_misspec_se_exceeds_eiv_se_when_misspecified():
    """Pricing errors α_i ~ N(0, 1) on top of the CAPM: misspec_robust > eiv_robust for the premium in most draws."""
    rng = np.random.default_rng(7)
    wider = []
    for alpha in (1.0, 0.0):
        ratios = []
        for _ in range(100):
            R, f = _simulate(rng, 360, 10, alpha)
            res = krs.fit(R, f)
            ratios.append(res.std_errors("misspec_robust")[1] / res.std_errors("eiv_robust")[1])
        wider.append(np.mean(np.array(ratios) > 1.0))
    assert wider[0] > 0.9, wider  # misspecified: measured 0.98
    assert wider[1] < wider[0] - 0.2, wider  # correctly specified: the extra term is noise around zero


def test_result_is_frozen_and_states_conventions(ff):
    R, facs = ff
    res = krs.fit(R, facs[["MktRF"]].to_numpy(), weighting="gls", lags=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.r2 = 0.0
    for phrase in ("divisor T", "not demeaned", "(T−N−2)/T", "fm(here) = fm(fmduck) × (T − 1)/T", "misspec_robust"):
        assert phrase in res.conventions
    assert set(res.tests[3]) == {"test", "statistic", "std_error", "df1", "df2", "p_value", "note"}
    assert res.tests[6]["df1"] == 30 - 2 and res.tests[6]["df2"] == 819 - 30 + 1


def test_refusals(ff):
    R, facs = ff
    F3 = facs[MODELS["ff3"]].to_numpy()
    with pytest.raises(EstimationError, match=r"N > K \+ 1; N = 4, K = 3"):
        krs.fit(R[:, :4], F3)
    with pytest.raises(EstimationError, match=r"N > K; N = 3, K = 3"):
        krs.fit(R[:, :3], F3, intercept=False)
    with pytest.raises(EstimationError, match=r"T > N \+ 2.*T = 31, N = 30"):
        krs.fit(R[:31], F3[:31], weighting="gls")
    with pytest.raises(EstimationError, match=r"N < T; T = 30, N = 30"):
        krs.fit(R[:30], F3[:30], weighting="wls")
    with pytest.raises(EstimationError, match="V11"):
        krs.fit(R, np.column_stack([F3, F3[:, 0]]))
    with pytest.raises(EstimationError, match="Q0"):
        noise = np.random.default_rng(0).standard_normal((819, 6))
        krs.fit(0.8 + noise - noise.mean(axis=0), F3)  # every asset has mean return 0.8
    bad = R.copy()
    bad[5, 2] = np.nan
    with pytest.raises(InputError, match="balanced block"):
        krs.fit(bad, F3)
    with pytest.raises(SpecError, match="weighting"):
        krs.fit(R, F3, weighting="ml")
    with pytest.raises(SpecError, match="lags"):
        krs.fit(R, F3, lags=819)


def test_more_assets_than_periods_ols_reports_csrt_unavailable(ff):
    """OLS with N = 30 > T = 25: γ and its SEs still come out; the CSRT rows say why they are missing."""
    R, facs = ff
    res = krs.fit(R[:25], facs[["MktRF"]].to_numpy()[:25], lags=1)
    assert np.all(np.isfinite(res.std_errors("misspec_robust")))
    rows = {r["test"]: r for r in res.tests}
    for name in ("csrt", "csrt_f", "csrt_unrestricted", "csrt_f_unrestricted"):
        assert rows[name]["statistic"] is None and rows[name]["p_value"] is None
        assert "not available" in rows[name]["note"] and "singular" in rows[name]["note"]
    assert rows["csrt_f"]["df2"] == 25 - 30 + 1
    assert 0.0 <= rows["r2_eq_1"]["p_value"] <= 1.0
