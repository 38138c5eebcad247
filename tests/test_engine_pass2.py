"""Pass 2: per-period λ_t, R²_t, adj R²_t and N_t vs numpy lstsq / statsmodels per period.

The oracle rebuilds the betas itself (tests/oracles.py), so a wrong join, lag or beta would show.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import oracles

FACTORS = ["mkt", "smb"]
LAMBDA_STATS = ["r2", "adj_r2", "n"]


def _check(res, want: pl.DataFrame, terms: list[str], label: str) -> None:
    assert list(res.lambdas.columns[res.lambdas.columns.index("period") + 1:][: len(terms)]) == terms or \
        all(t in res.lambdas.columns for t in terms)
    oracles.compare_frames(res.lambdas, want, ["period_index"], [*terms, *LAMBDA_STATS], label=label)
    assert res.lambdas["period"].to_list() == want["period"].to_list()


@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("ols", [oracles.ols_numpy, oracles.ols_statsmodels], ids=["numpy", "statsmodels"])
def test_full_sample_betas(fit, intercept, ols):
    panel, factors = oracles.synthetic_panel(seed=11, n_assets=15, n_periods=36, missing=0.1, null_ret=0.05)
    res = fit(returns=panel, factors=factors, factor_cols=FACTORS, intercept=intercept)
    betas = oracles.betas_from(oracles.pass1_full(panel, factors, FACTORS))
    terms = (["const"] if intercept else []) + FACTORS
    want = oracles.lambdas_frame(
        oracles.pass2(panel, factors, betas=betas, factor_cols=FACTORS, intercept=intercept, ols=ols), terms)
    _check(res, want, terms, f"pass2 full betas vs {ols.__name__}")


@pytest.mark.parametrize("beta_lag", [1, 2, 5])
@pytest.mark.parametrize("intercept", [True, False])
def test_rolling_betas_lagged(fit, beta_lag, intercept):
    """λ_t uses the beta of the same asset from the window ending at pidx − beta_lag (calendar periods)."""
    panel, factors = oracles.synthetic_panel(seed=12, n_assets=12, n_periods=45, missing=0.1, null_ret=0.03)
    window, min_obs = 12, 8
    res = fit(returns=panel, factors=factors, factor_cols=FACTORS, window=window, min_obs=min_obs,
              beta_lag=beta_lag, intercept=intercept)
    betas = oracles.betas_from(oracles.pass1_rolling(panel, factors, FACTORS, window, min_obs=min_obs))
    terms = (["const"] if intercept else []) + FACTORS
    want = oracles.lambdas_frame(oracles.pass2(panel, factors, betas=betas, factor_cols=FACTORS, rolling=True,
                                               beta_lag=beta_lag, intercept=intercept), terms)
    assert want["period_index"].min() >= min_obs + beta_lag  # no look-ahead: first λ after the first window
    _check(res, want, terms, "pass2 rolling betas vs numpy lstsq")


def test_rolling_beta_lag_matters(fit):
    """Guard against a test that cannot fail: lag 1 and lag 2 give different λ_t."""
    panel, factors = oracles.synthetic_panel(seed=13, n_assets=10, n_periods=40)
    a = fit(returns=panel, factors=factors, factor_cols=FACTORS, window=10, beta_lag=1).lambdas
    b = fit(returns=panel, factors=factors, factor_cols=FACTORS, window=10, beta_lag=2).lambdas
    both = a.join(b, on="period_index", suffix="_2")
    assert not np.allclose(both["mkt"].to_numpy(), both["mkt_2"].to_numpy())


@pytest.mark.parametrize("char_lag", [0, 1, 3])
@pytest.mark.parametrize("intercept", [True, False])
def test_characteristics(fit, char_lag, intercept):
    panel, factors = oracles.synthetic_panel(seed=14, n_assets=20, n_periods=30, chars=["size", "bm"],
                                             missing=0.1, null_ret=0.05)
    # some NULL characteristics as well
    panel = panel.with_columns(pl.when(pl.col("period") % 7 == 3).then(None).otherwise(pl.col("bm")).alias("bm"))
    res = fit(returns=panel, chars=["size", "bm"], char_lag=char_lag, intercept=intercept)
    terms = (["const"] if intercept else []) + ["size", "bm"]
    want = oracles.lambdas_frame(oracles.pass2(panel, factors, chars=["size", "bm"], char_lag=char_lag,
                                               intercept=intercept, calendar_source=panel), terms)
    _check(res, want, terms, "pass2 characteristics vs numpy lstsq")


@pytest.mark.parametrize("char_lag", [0, 1])
def test_betas_and_characteristics(fit, char_lag):
    panel, factors = oracles.synthetic_panel(seed=15, n_assets=25, n_periods=40, chars=["size"], missing=0.05)
    res = fit(returns=panel, factors=factors, factor_cols=FACTORS, chars=["size"], char_lag=char_lag)
    betas = oracles.betas_from(oracles.pass1_full(panel, factors, FACTORS))
    terms = ["const", *FACTORS, "size"]
    want = oracles.lambdas_frame(oracles.pass2(panel, factors, betas=betas, factor_cols=FACTORS, chars=["size"],
                                               char_lag=char_lag), terms)
    _check(res, want, terms, "pass2 betas+chars vs numpy lstsq")


def test_no_intercept_r2_is_uncentred(fit):
    """Without an intercept R²_t = 1 − SSR/Σy² (uncentred, as statsmodels); the centred value differs."""
    panel, _ = oracles.synthetic_panel(seed=16, n_assets=15, n_periods=24, chars=["size"])
    panel = panel.with_columns(pl.col("ret") + 50.0)  # a large mean makes centred and uncentred R² far apart
    res = fit(returns=panel, chars=["size"], intercept=False)
    rows = panel.sort("period")
    for period_index, r2 in zip(res.lambdas["period_index"], res.lambdas["r2"]):
        cs = rows.filter(pl.col("period") == period_index)
        y, x = cs["ret"].to_numpy(), cs["size"].to_numpy()
        b = np.linalg.lstsq(x[:, None], y, rcond=None)[0]
        ssr = float(((y - x * b) ** 2).sum())
        oracles.assert_close(r2, 1 - ssr / float(y @ y), label="pass2 uncentred R2 by hand", what="r2")
        assert abs(r2 - (1 - ssr / float(((y - y.mean()) ** 2).sum()))) > 1e-3


def test_lambdas_sql_table_matches(fit, con):
    """The long fmduck.lambdas table holds the same λ_t, R²_t and N_t."""
    panel, factors = oracles.synthetic_panel(seed=17, n_assets=10, n_periods=20)
    res = fit(name="lam", returns=panel, factors=factors, factor_cols=FACTORS)
    long = con.sql("SELECT * FROM fmduck.lambdas WHERE run_name = 'lam'").pl()
    wide = long.pivot(on="term", index=["period_index", "r2", "adj_r2", "n"], values="estimate")
    betas = oracles.betas_from(oracles.pass1_full(panel, factors, FACTORS))
    want = oracles.lambdas_frame(oracles.pass2(panel, factors, betas=betas, factor_cols=FACTORS),
                                 ["const", *FACTORS]).drop("period")
    oracles.compare_frames(wide, want, ["period_index"], ["const", *FACTORS, *LAMBDA_STATS],
                           label="pass2 full betas vs numpy_lstsq (SQL table)")
    assert res.lambdas.height == wide.height


@pytest.mark.parametrize(("window", "chars", "intercept"), [(None, (), True), (None, ("size",), False),
                                                            (12, ("size",), True)])
def test_pricing_errors(fit, window, chars, intercept):
    """α_i = mean_t(r_it − x_it'λ_t) over the asset's pass-2 periods, SE = sd/√n, vs numpy."""
    panel, factors = oracles.synthetic_panel(seed=18, n_assets=12, n_periods=40, chars=list(chars), missing=0.1,
                                             null_ret=0.05)
    res = fit(returns=panel, factors=factors, factor_cols=FACTORS, chars=list(chars), window=window,
              intercept=intercept)
    fits = (oracles.pass1_rolling(panel, factors, FACTORS, window) if window
            else oracles.pass1_full(panel, factors, FACTORS))
    options = {"betas": oracles.betas_from(fits), "factor_cols": FACTORS, "rolling": bool(window), "chars": chars,
               "intercept": intercept}
    lam = {t: f["params"] for t, (_, f) in oracles.pass2(panel, factors, **options).items()}
    want = oracles.pricing_errors(panel, factors, lam, **options)
    oracles.compare_frames(res.pricing_errors, want, ["asset"], ["alpha", "std_error", "t_stat", "n_periods"],
                           label="pricing errors vs numpy")
