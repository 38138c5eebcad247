"""Unbalanced panels with gaps and NULL returns / factors / characteristics: fmduck equals the oracle
that drops those rows, and equals fmduck on the same data with the rows physically removed."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import oracles

FACTORS = ["mkt", "smb"]


def _holed(seed: int):
    panel, factors = oracles.synthetic_panel(seed=seed, n_assets=14, n_periods=48, chars=["size"], missing=0.15,
                                             null_ret=0.08)
    rng = np.random.default_rng(seed)
    null_f = rng.choice(np.arange(1, 49), 4, replace=False)
    factors = factors.with_columns(pl.when(pl.col("period").is_in(null_f[:2])).then(None).otherwise(pl.col("mkt"))
                                   .alias("mkt"),
                                   pl.when(pl.col("period").is_in(null_f[2:])).then(None).otherwise(pl.col("smb"))
                                   .alias("smb"))
    panel = panel.with_columns(pl.when(pl.col("period") % 11 == 5).then(None).otherwise(pl.col("size")).alias("size"))
    return panel, factors, sorted(int(p) for p in null_f)


@pytest.mark.parametrize("window", [None, 12])
@pytest.mark.parametrize("chars", [(), ("size",)])
def test_nulls_and_gaps_match_oracle(fit, window, chars):
    panel, factors, _ = _holed(41)
    res = fit(returns=panel, factors=factors, factor_cols=FACTORS, chars=list(chars), window=window, min_obs=8)
    if window:
        fits = oracles.pass1_rolling(panel, factors, FACTORS, window, min_obs=8)
    else:
        fits = oracles.pass1_full(panel, factors, FACTORS, min_obs=8)
    want1 = oracles.first_pass_frame(fits, FACTORS, rolling=bool(window))
    keys = ["asset", "period_index", "term"] if window else ["asset", "term"]
    oracles.compare_frames(res.first_pass, want1 if window else want1.drop("period_index"), keys,
                           ["estimate", "std_error", "r2", "adj_r2", "rmse", "nobs"], label="unbalanced+NULL: pass 1")
    terms = ["const", *FACTORS, *chars]
    lam = oracles.lambdas_frame(oracles.pass2(panel, factors, betas=oracles.betas_from(fits), factor_cols=FACTORS,
                                              rolling=bool(window), chars=chars), terms)
    oracles.compare_frames(res.lambdas, lam, ["period_index"], [*terms, "r2", "adj_r2", "n"],
                           label="unbalanced+NULL: pass 2")
    x = lam.select(terms).to_numpy()
    fm = res.estimates.filter(pl.col("se_type") == "fm")
    oracles.assert_close(fm["estimate"].to_numpy(), x.mean(axis=0), label="unbalanced+NULL: pass 3", what="mean")
    oracles.assert_close(fm["std_error"].to_numpy(), oracles.fm_se(x), label="unbalanced+NULL: pass 3", what="fm se")
    # pass 1 really saw unequal sample sizes
    assert res.first_pass["nobs"].n_unique() > 1


def test_null_rows_equal_removed_rows(fit):
    """Full-sample betas: a panel with NULL returns gives the same estimates as the panel without those rows."""
    panel, factors, _ = _holed(42)
    res_null = fit(returns=panel, factors=factors, factor_cols=FACTORS, chars=["size"])
    dropped = panel.filter(pl.col("ret").is_not_null())  # NULL size rows still count in pass 1
    assert dropped.height < panel.height
    res_drop = fit(returns=dropped, factors=factors, factor_cols=FACTORS, chars=["size"])
    for col in ["estimate", "std_error", "t_stat", "p_value"]:
        oracles.assert_close(res_null.estimates[col].to_numpy(), res_drop.estimates[col].to_numpy(),
                             label="NULL rows vs removed rows (fmduck)", what=col)
    oracles.assert_close(res_null.first_pass["estimate"].to_numpy(), res_drop.first_pass["estimate"].to_numpy(),
                         label="NULL rows vs removed rows (fmduck)", what="betas")


def test_null_factor_periods_shanken(fit):
    """Periods whose factor is NULL are out of pass 1; Σ_f for Shanken uses the pass-2 periods with factors."""
    panel, factors, null_periods = _holed(43)
    res = fit(returns=panel, factors=factors, factor_cols=FACTORS)
    fits = oracles.pass1_full(panel, factors, FACTORS)
    lam = oracles.lambdas_frame(oracles.pass2(panel, factors, betas=oracles.betas_from(fits), factor_cols=FACTORS),
                                ["const", *FACTORS])
    x = lam.select(["const", *FACTORS]).to_numpy()
    joined = lam.select("period_index").join(factors.with_row_index("period_index", offset=1)
                                             .with_columns(pl.col("period_index").cast(pl.Int64)), on="period_index")
    f = joined.select(FACTORS).drop_nulls().to_numpy()
    assert f.shape[0] == x.shape[0] - len(null_periods)
    t = x.shape[0]
    dev = x - x.mean(axis=0)
    v_fm = dev.T @ dev / (t - 1) / t
    sigma_f = np.cov(f, rowvar=False, ddof=1)
    lam_f = x.mean(axis=0)[1:]
    c = lam_f @ np.linalg.solve(sigma_f, lam_f)
    border = np.zeros((3, 3))
    border[1:, 1:] = sigma_f / t  # T = number of λ_t periods, as in V_FM
    want = np.sqrt(np.diag((1 + c) * (v_fm - border) + border))
    got = res.estimates.filter(pl.col("se_type") == "shanken")["std_error"].to_numpy()
    oracles.assert_close(got, want, label="pass3 Shanken by hand", what="NULL factor periods")
