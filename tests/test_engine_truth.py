"""Known truth and real data: premia recovered within sampling error; the R tutorial's seed design;
Ken French portfolios and factors (wide CSV, YYYYMM, percent) turned long with polars in the test."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import oracles
from conftest import DATA

FACTORS = ["mkt", "smb"]


def _fm(res, se_type="fm") -> pl.DataFrame:
    return res.estimates.filter(pl.col("se_type") == se_type)


def _check_against_oracles(res, panel, factors, factor_cols, label, *, rf=None, window=None, chars=()):
    """Every λ_t, λ̄ and FM/NW/Shanken SE equal the oracles on this data."""
    if window:
        fits = oracles.pass1_rolling(panel, factors, factor_cols, window, rf=rf)
    else:
        fits = oracles.pass1_full(panel, factors, factor_cols, rf=rf)
        want1 = oracles.first_pass_frame(fits, factor_cols, rolling=False).drop("period_index")
        oracles.compare_frames(res.first_pass, want1, ["asset", "term"], ["estimate", "std_error", "r2", "rmse"],
                               label=f"{label}: pass 1")
    terms = ["const", *factor_cols, *chars]
    lam = oracles.lambdas_frame(oracles.pass2(panel, factors, betas=oracles.betas_from(fits), factor_cols=factor_cols,
                                              rolling=bool(window), chars=chars, rf=rf), terms)
    oracles.compare_frames(res.lambdas, lam, ["period_index"], [*terms, "r2", "n"], label=f"{label}: pass 2")
    x = lam.select(terms).to_numpy()
    oracles.assert_close(_fm(res)["std_error"].to_numpy(), oracles.fm_se(x), label=f"{label}: pass 3", what="fm")
    lags = _fm(res, "nw")["nw_lags"][0]
    assert lags == oracles.nw_auto_lag(x.shape[0])
    oracles.assert_close(_fm(res, "nw")["std_error"].to_numpy(), oracles.nw_se(x, lags, "T"),
                         label=f"{label}: pass 3", what="nw")
    f = lam.select("period_index").join(
        factors.sort("period").with_row_index("period_index", offset=1)
        .with_columns(pl.col("period_index").cast(pl.Int64)),
        on="period_index").select(factor_cols).to_numpy()
    oracles.assert_close(_fm(res, "shanken")["std_error"].to_numpy(),
                         oracles.shanken_se(x, f, [terms.index(c) for c in factor_cols]),
                         label=f"{label}: pass 3", what="shanken")


@pytest.mark.parametrize("seed", range(5))
def test_premia_recovered_within_sampling_error(fit, seed):
    """Traded factors: the premium is E[f]. Characteristic premium γ = 0.3 is fixed. |λ̂ − λ| < 3 SE."""
    premia = [0.8, -0.4]
    panel, factors = oracles.synthetic_panel(seed=100 + seed, n_assets=40, n_periods=120, premia=premia,
                                             chars=["size"], char_premia=[0.3], missing=0.05)
    res = fit(returns=panel, factors=factors, factor_cols=FACTORS, chars=["size"])
    for se_type in ("fm", "shanken"):
        est = _fm(res, se_type)
        truth = dict(zip(FACTORS + ["size"], premia + [0.3]))
        for row in est.filter(pl.col("term") != "const").iter_rows(named=True):
            assert abs(row["estimate"] - truth[row["term"]]) < 3 * row["std_error"], (seed, se_type, row)
            assert row["ci_lower"] < row["estimate"] < row["ci_upper"]
    # and the intercept (no mispricing in the model: E[α_i] = 0)
    const = _fm(res).filter(pl.col("term") == "const").row(0, named=True)
    assert abs(const["estimate"]) < 3 * const["std_error"]


def _r_seed_design(seed: int = 42) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The R tutorial's design (/work/shared/seeds/fm-tutorial-r.txt), drawn with numpy: 25 stocks, 60 months,
    mkt ~ N(0.005, 0.04), smb ~ N(0.002, 0.03), β_mkt ~ U(0.5, 1.8), β_smb ~ U(−0.5, 1.2),
    α_it ~ N(0.001, 0.002), ε ~ N(0, 0.03), r = α + β_mkt·mkt + β_smb·smb + ε.
    Its `true_lambda_mkt = 0.06` is never used to generate returns, so the premia that FM recovers are
    the factor means (traded factors), 0.005 and 0.002."""
    rng = np.random.default_rng(seed)
    n, t = 25, 60
    mkt, smb = rng.normal(0.005, 0.04, t), rng.normal(0.002, 0.03, t)
    b_mkt, b_smb = rng.uniform(0.5, 1.8, n), rng.uniform(-0.5, 1.2, n)
    rows = []
    for i in range(n):
        alpha, eps = rng.normal(0.001, 0.002, t), rng.normal(0, 0.03, t)
        ret = alpha + b_mkt[i] * mkt + b_smb[i] * smb + eps
        rows += [{"stock": f"Stock_{i + 1:02d}", "t": s + 1, "ret": float(ret[s])} for s in range(t)]
    return pl.DataFrame(rows), pl.DataFrame({"t": np.arange(1, t + 1), "mkt": mkt, "smb": smb})


@pytest.mark.parametrize("seed", [42, 7])
def test_r_seed_design(fit, seed):
    panel, factors = _r_seed_design(seed)
    res = fit(returns=panel, factors=factors, asset="stock", period="t", factor_cols=FACTORS)
    p_long = panel.rename({"stock": "asset", "t": "period"})
    f_long = factors.rename({"t": "period"})
    _check_against_oracles(res, p_long, f_long, FACTORS, "R seed design")
    # pass-1 betas estimate the drawn betas; premia are the factor means within sampling error
    est = _fm(res).filter(pl.col("term") != "const")
    for term, truth in zip(FACTORS, (0.005, 0.002)):
        row = est.filter(pl.col("term") == term).row(0, named=True)
        assert abs(row["estimate"] - truth) < 3 * row["std_error"]
    assert res.lambdas.height == 60 and res.lambdas["n"].to_list() == [25] * 60


def _french() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Ken French wide CSVs (first column YYYYMM, percent) → long panel (asset, period, ret) and factors."""
    ports = pl.read_csv(DATA / "ff_portfolios_monthly.csv")
    facs = pl.read_csv(DATA / "ff_factors_monthly.csv")
    ports = ports.rename({ports.columns[0]: "period"})
    facs = facs.rename({facs.columns[0]: "period"})
    panel = ports.unpivot(index="period", variable_name="asset", value_name="ret").select("asset", "period", "ret")
    return panel, facs


@pytest.fixture(scope="module")
def french():
    return _french()


@pytest.mark.slow
@pytest.mark.parametrize("factor_cols", [["MktRF"], ["MktRF", "SMB", "HML"]])
def test_french_full_sample(fit, french, factor_cols):
    panel, factors = french
    assert panel.height == 30 * factors.height
    res = fit(returns=panel, factors=factors, factor_cols=factor_cols, rf="RF")
    _check_against_oracles(res, panel, factors, factor_cols, "Ken French", rf="RF")
    assert res.lambdas.height == factors.height and res.lambdas["n"].unique().to_list() == [30]


@pytest.mark.slow
def test_french_rolling(fit, french):
    """60-month rolling betas on the last 20 years (keeps the numpy loop quick)."""
    panel, factors = french
    factors = factors.filter(pl.col("period") >= 200001)
    panel = panel.filter(pl.col("period") >= 200001)
    res = fit(returns=panel, factors=factors, factor_cols=["MktRF", "SMB", "HML"], rf="RF", window=60, min_obs=36)
    fits = oracles.pass1_rolling(panel, factors, ["MktRF", "SMB", "HML"], 60, min_obs=36, rf="RF")
    oracles.compare_frames(res.first_pass, oracles.first_pass_frame(fits, ["MktRF", "SMB", "HML"], True),
                           ["asset", "period_index", "term"], ["estimate", "std_error", "r2", "adj_r2", "rmse", "nobs"],
                           label="Ken French rolling: pass 1")
    terms = ["const", "MktRF", "SMB", "HML"]
    lam = oracles.lambdas_frame(oracles.pass2(panel, factors, betas=oracles.betas_from(fits), rolling=True,
                                              factor_cols=["MktRF", "SMB", "HML"], rf="RF"), terms)
    oracles.compare_frames(res.lambdas, lam, ["period_index"], [*terms, "r2", "n"], label="Ken French rolling: pass 2")
