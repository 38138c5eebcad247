"""Pass 1: full-sample and rolling time-series regressions per asset vs statsmodels / numpy lstsq."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import oracles
from fmduck import connect, load_run

FIRST_PASS_COLS = ["estimate", "std_error", "t_stat", "r2", "adj_r2", "rmse", "nobs"]


def _with_rf(panel: pl.DataFrame, factors: pl.DataFrame, where: str, seed: int = 7):
    """Add a risk-free column to the panel or to the factors table (NULL-free, varies over time)."""
    rng = np.random.default_rng(seed)
    rf = pl.DataFrame({"period": factors["period"], "rf": 0.1 + 0.05 * rng.random(factors.height)})
    if where == "factors":
        return panel, factors.join(rf, on="period")
    return panel.join(rf, on="period", how="left"), factors


@pytest.mark.parametrize("source", ["results", "sql_table", "load_run"])
@pytest.mark.parametrize("rf", [None, "panel", "factors"])
def test_full_sample_matches_statsmodels(fit, con, source, rf):
    panel, factors = oracles.synthetic_panel(seed=1, n_assets=9, n_periods=40, missing=0.15, null_ret=0.05)
    if rf:
        panel, factors = _with_rf(panel, factors, rf)
    res = fit(name="p1", returns=panel, factors=factors, factor_cols=["mkt", "smb"], rf="rf" if rf else None)
    if source == "results":
        got = res.first_pass
    elif source == "sql_table":
        got = con.sql("SELECT * FROM fmduck.first_pass WHERE run_name = 'p1'").pl()
    else:
        got = load_run(connect(con), "p1").first_pass
    assert got["period_index"].null_count() == got.height  # full sample: no period
    want = oracles.first_pass_frame(
        oracles.pass1_full(panel, factors, ["mkt", "smb"], rf="rf" if rf else None), ["mkt", "smb"], rolling=False
    )
    oracles.compare_frames(got, want.drop("period_index"), ["asset", "term"], FIRST_PASS_COLS,
                           label="pass1 full vs statsmodels")


def test_full_sample_min_obs_skips_short_assets(fit):
    """An asset with fewer usable periods than min_obs gets no pass-1 row and is listed in skipped."""
    panel, factors = oracles.synthetic_panel(seed=2, n_assets=6, n_periods=30)
    short = panel.filter((pl.col("asset") != "A000") | (pl.col("period") <= 8))
    res = fit(returns=short, factors=factors, factor_cols=["mkt", "smb"], min_obs=10)
    want = oracles.first_pass_frame(oracles.pass1_full(short, factors, ["mkt", "smb"], min_obs=10), ["mkt", "smb"],
                                    rolling=False)
    assert "A000" not in set(want["asset"])
    oracles.compare_frames(res.first_pass, want.drop("period_index"), ["asset", "term"], FIRST_PASS_COLS,
                           label="pass1 full vs statsmodels")
    skipped = res.skipped.filter(pl.col("pass") == "first_pass")
    assert skipped["asset"].to_list() == ["A000"]
    assert skipped["nobs"].to_list() == [8]
    assert "too few" in skipped["reason"][0]


@pytest.mark.parametrize(("window", "min_obs"), [(12, None), (10, 7), (8, 6), (24, 12)])
@pytest.mark.parametrize("source", ["results", "sql_table"])
def test_rolling_matches_numpy_loop(fit, con, window, min_obs, source):
    """RANGE frame over the dense calendar index: gaps shrink a window's n; n < min_obs windows are absent."""
    panel, factors = oracles.synthetic_panel(seed=3, n_assets=7, n_periods=50, missing=0.2, null_ret=0.05)
    res = fit(name="roll", returns=panel, factors=factors, factor_cols=["mkt", "smb"], window=window,
              min_obs=min_obs)
    got = res.first_pass if source == "results" else con.sql(
        "SELECT * FROM fmduck.first_pass WHERE run_name = 'roll'").pl()
    fits = oracles.pass1_rolling(panel, factors, ["mkt", "smb"], window, min_obs=min_obs)
    want = oracles.first_pass_frame(fits, ["mkt", "smb"], rolling=True)
    # the window really is unbalanced: some windows have fewer than `window` observations
    assert want["nobs"].min() < window
    oracles.compare_frames(got, want, ["asset", "period_index", "term"], FIRST_PASS_COLS,
                           label="pass1 rolling vs numpy lstsq")


def test_rolling_calendar_is_factor_periods(fit):
    """A period missing from the whole panel still counts in the window (calendar = factors' periods)."""
    panel, factors = oracles.synthetic_panel(seed=4, n_assets=5, n_periods=30)
    holed = panel.filter(~pl.col("period").is_in([10, 11, 12, 13]))
    res = fit(returns=holed, factors=factors, factor_cols=["mkt"], window=8, min_obs=5)
    want = oracles.first_pass_frame(oracles.pass1_rolling(holed, factors, ["mkt"], 8, min_obs=5), ["mkt"], True)
    # windows ending at 14..17 span the hole: 4 dropped periods leave fewer than 5 obs at t=14,15,16
    assert not want.filter(pl.col("period_index").is_in([14, 15, 16])).height
    oracles.compare_frames(res.first_pass, want, ["asset", "period_index", "term"], FIRST_PASS_COLS,
                           label="pass1 rolling vs numpy lstsq")
