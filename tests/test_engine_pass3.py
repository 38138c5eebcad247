"""Pass 3: Fama-MacBeth, Newey-West and Shanken standard errors, t, p and 95% CI with T − 1 df.

The λ_t series fed to the hand computations come from the oracle pass 2 (tests/oracles.py), not
from fmduck, so the chain pass 2 → pass 3 is checked end to end.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import oracles

FACTORS = ["mkt", "smb"]
INF_COLS = ["estimate", "std_error", "t_stat", "p_value", "ci_lower", "ci_upper"]


def _oracle_lambdas(panel, factors, *, window=None, min_obs=None, chars=(), beta_lag=1):
    if window:
        fits = oracles.pass1_rolling(panel, factors, FACTORS, window, min_obs=min_obs)
    else:
        fits = oracles.pass1_full(panel, factors, FACTORS)
    terms = ["const", *FACTORS, *chars]
    lam = oracles.lambdas_frame(oracles.pass2(panel, factors, betas=oracles.betas_from(fits), factor_cols=FACTORS,
                                              rolling=bool(window), beta_lag=beta_lag, chars=chars), terms)
    return lam, terms


def _compare(res, se_type: str, terms, estimate, se, t_count, label):
    got = res.estimates.filter(pl.col("se_type") == se_type)
    assert got["term"].to_list() == list(terms)
    want = {"estimate": estimate, "std_error": se, **oracles.t_inference(estimate, se, t_count - 1)}
    for col in INF_COLS:
        oracles.assert_close(got[col].to_numpy(), want[col], label=label, what=f"{se_type} {col}")
    assert got["n_periods"].to_list() == [t_count] * len(terms)
    assert got["df"].to_list() == [t_count - 1] * len(terms)


@pytest.mark.parametrize("n_periods", [40, 130])
def test_fama_macbeth_se(fit, n_periods):
    panel, factors = oracles.synthetic_panel(seed=21, n_assets=12, n_periods=n_periods, missing=0.05)
    res = fit(returns=panel, factors=factors, factor_cols=FACTORS)
    lam, terms = _oracle_lambdas(panel, factors)
    x = lam.select(terms).to_numpy()
    _compare(res, "fm", terms, x.mean(axis=0), oracles.fm_se(x), x.shape[0], "pass3 FM vs sd/sqrt(T)")
    fm = res.estimates.filter(pl.col("se_type") == "fm")
    oracles.assert_close(fm["avg_n"].to_numpy(), np.full(len(terms), lam["n"].mean()), label="pass3 FM vs sd/sqrt(T)",
                         what="avg_n")
    oracles.assert_close(fm["avg_r2"].to_numpy(), np.full(len(terms), lam["r2"].mean()),
                         label="pass3 FM vs sd/sqrt(T)", what="avg_r2")


@pytest.mark.parametrize("divisor", ["T", "T-1"])
@pytest.mark.parametrize(("nw_lags", "n_periods"), [("auto", 40), ("auto", 130), ("auto", 260), (0, 40), (3, 40),
                                                     (11, 60)])
def test_newey_west_by_hand(fit, divisor, nw_lags, n_periods):
    panel, factors = oracles.synthetic_panel(seed=22, n_assets=10, n_periods=n_periods, chars=["size"])
    res = fit(returns=panel, factors=factors, factor_cols=FACTORS, chars=["size"], nw_lags=nw_lags,
              nw_divisor=divisor)
    lam, terms = _oracle_lambdas(panel, factors, chars=["size"])
    x = lam.select(terms).to_numpy()
    t_count = x.shape[0]
    lags = oracles.nw_auto_lag(t_count) if nw_lags == "auto" else nw_lags
    if nw_lags == "auto":  # ⌊4(T/100)^(2/9)⌋: T = 40 → 3, 130 → 4, 260 → 4
        assert lags == {40: 3, 130: 4, 260: 4}[t_count]
    _compare(res, "nw", terms, x.mean(axis=0), oracles.nw_se(x, lags, divisor), t_count,
             f"pass3 NW (divisor {divisor}) by hand")
    got_lags = res.estimates.filter(pl.col("se_type") == "nw")["nw_lags"].unique().to_list()
    assert got_lags == [lags]
    if lags == 0 and divisor == "T-1":  # with no lags the T−1 convention is the FM variance
        fm = res.estimates.filter(pl.col("se_type") == "fm")["std_error"].to_numpy()
        oracles.assert_close(res.estimates.filter(pl.col("se_type") == "nw")["std_error"].to_numpy(), fm,
                             label="pass3 NW (divisor T-1) by hand", what="L=0 equals FM")


@pytest.mark.parametrize("rolling", [False, True])
@pytest.mark.parametrize("chars", [(), ("size",)])
def test_shanken_by_hand(fit, rolling, chars):
    """Σ_f over exactly the pass-2 periods; intercept and characteristics bordered with zeros."""
    panel, factors = oracles.synthetic_panel(seed=23, n_assets=15, n_periods=60, chars=list(chars), missing=0.05)
    window = 12 if rolling else None
    res = fit(returns=panel, factors=factors, factor_cols=FACTORS, chars=list(chars), window=window)
    lam, terms = _oracle_lambdas(panel, factors, window=window, chars=chars)
    if rolling:
        assert lam.height < factors.height  # the factor series must be cut to the pass-2 periods
    x = lam.select(terms).to_numpy()
    f = lam.select("period_index").join(factors.with_row_index("period_index", offset=1)
                                        .with_columns(pl.col("period_index").cast(pl.Int64)),
                                        on="period_index").select(FACTORS).to_numpy()
    se = oracles.shanken_se(x, f, [terms.index(c) for c in FACTORS])
    _compare(res, "shanken", terms, x.mean(axis=0), se, x.shape[0], "pass3 Shanken by hand")
    # the correction really changes the factor SEs (a test of it must be able to fail)
    fm = res.estimates.filter(pl.col("se_type") == "fm")["std_error"].to_numpy()
    assert not np.allclose(se[1:3], fm[1:3], rtol=1e-6)


def test_characteristics_only_has_no_shanken(fit):
    panel, _ = oracles.synthetic_panel(seed=24, n_assets=12, n_periods=20, chars=["size"])
    res = fit(returns=panel, chars=["size"])
    assert set(res.estimates["se_type"]) == {"fm", "nw"}
