"""Badly scaled regressors (mean 1e6, sd 1): fmduck matches an exact rational-arithmetic oracle to 1e-8,
while the naive raw-moment formula Σx² − (Σx)²/n in float64 visibly fails on the same data."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import oracles

RTOL = 1e-8


def _big_char_panel(seed: int, n_assets: int = 30, n_periods: int = 12):
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(1, n_periods + 1):
        big = 1e6 + rng.standard_normal(n_assets)
        small = rng.standard_normal(n_assets)
        ret = 0.5 + 0.3 * (big - 1e6) - 0.2 * small + rng.standard_normal(n_assets)
        rows += [{"asset": f"A{i:02d}", "period": t, "ret": float(ret[i]), "big": float(big[i]),
                  "small": float(small[i])} for i in range(n_assets)]
    return pl.DataFrame(rows)


@pytest.mark.parametrize("chars", [["big"], ["big", "small"]])
def test_characteristic_mean_1e6(fit, chars):
    panel = _big_char_panel(51)
    res = fit(returns=panel, chars=chars)
    terms = ["const", *chars]
    want = oracles.lambdas_frame(oracles.pass2(panel, panel, chars=chars, ols=oracles.ols_exact), terms)
    oracles.compare_frames(res.lambdas, want, ["period_index"], [*terms, "r2", "adj_r2", "n"],
                           label="scaled char (mean 1e6) vs exact fractions", rtol=RTOL)
    # The naive float64 raw-moment slope misses the exact one by far more than 1e-8 on these data.
    if chars == ["big"]:
        naive_err = []
        for per, f in oracles.pass2(panel, panel, chars=chars, ols=oracles.ols_exact).values():
            cs = panel.filter(pl.col("period") == per)
            naive = oracles.naive_slope(cs["ret"].to_numpy(), cs["big"].to_numpy())
            naive_err.append(abs(naive - f["params"][1]) / abs(f["params"][1]))
        assert max(naive_err) > 1e-6, max(naive_err)


def test_factor_mean_1e6(fit):
    """Pass 1 on a factor with mean 1e6 (sd 1) next to an ordinary factor, then pass 2 on its betas."""
    rng = np.random.default_rng(52)
    t_count, n_assets = 40, 15
    factors = pl.DataFrame({"period": np.arange(1, t_count + 1), "big": 1e6 + rng.standard_normal(t_count),
                            "mkt": 0.5 + 4 * rng.standard_normal(t_count)})
    b_big, b_mkt = rng.uniform(0.5, 1.5, n_assets), rng.uniform(0.5, 1.5, n_assets)
    rows = []
    for i in range(n_assets):
        ret = 0.1 + b_big[i] * (factors["big"].to_numpy() - 1e6) + b_mkt[i] * factors["mkt"].to_numpy() \
            + rng.standard_normal(t_count)
        rows += [{"asset": f"A{i:02d}", "period": t + 1, "ret": float(ret[t])} for t in range(t_count)]
    panel = pl.DataFrame(rows)
    res = fit(returns=panel, factors=factors, factor_cols=["big", "mkt"])
    fits = oracles.pass1_full(panel, factors, ["big", "mkt"], ols=oracles.ols_exact)
    want1 = oracles.first_pass_frame(fits, ["big", "mkt"], rolling=False).drop("period_index")
    oracles.compare_frames(res.first_pass, want1, ["asset", "term"], ["estimate", "std_error", "r2", "rmse", "nobs"],
                           label="scaled factor (mean 1e6) vs exact fractions: pass 1", rtol=RTOL)
    lam = oracles.lambdas_frame(oracles.pass2(panel, factors, betas=oracles.betas_from(fits),
                                              factor_cols=["big", "mkt"], ols=oracles.ols_exact),
                                ["const", "big", "mkt"])
    oracles.compare_frames(res.lambdas, lam, ["period_index"], ["const", "big", "mkt", "r2"],
                           label="scaled factor (mean 1e6) vs exact fractions: pass 2", rtol=RTOL)
    # naive float64 pass-1 slope (single-factor version of the same regression) is visibly off
    obs = oracles.time_series_obs(panel, factors, ["big"])
    errs = []
    for a, rows_a in obs.items():
        y = np.array([o[1] for o in rows_a]) - b_mkt[int(a[1:])] * factors["mkt"].to_numpy()
        x = np.array([o[2][0] for o in rows_a])
        exact = oracles.ols_exact(y, x)["params"][1]
        errs.append(abs(oracles.naive_slope(y, x) - exact) / abs(exact))
    assert max(errs) > 1e-6, max(errs)


def test_characteristic_level_drifting_across_periods(fit):
    """A level that drifts between periods (1e6 + 1e4·t, sd 1 within each period): one global shift is not
    enough, grouped moments re-centre on each group's mean (moments.sql.j2, group_shift)."""
    rng = np.random.default_rng(53)
    rows = []
    for t in range(1, 13):
        big = 1e6 + 1e4 * t + rng.standard_normal(30)
        ret = 0.3 * (big - big.mean()) + rng.standard_normal(30)
        rows += [{"asset": f"A{i:02d}", "period": t, "ret": float(ret[i]), "big": float(big[i])} for i in range(30)]
    panel = pl.DataFrame(rows)
    res = fit(returns=panel, chars=["big"])
    want = oracles.lambdas_frame(oracles.pass2(panel, panel, chars=["big"], ols=oracles.ols_exact), ["const", "big"])
    oracles.compare_frames(res.lambdas, want, ["period_index"], ["big"], label="drifting char vs exact",
                           rtol=RTOL)
