"""linearmodels ``FamaMacBeth`` as an oracle for passes 2–3 given the same regressors.

linearmodels 7.1 (panel/covariance.py, FamaMacBethCovariance.cov): cov = cov_kernel(e, w) /
(T − debiased) with cov_kernel = Γ/T, i.e. Γ/(T(T−1)) when ``debiased=True`` (fmduck
``nw_divisor="T-1"``) and Γ/T² when ``debiased=False`` (fmduck ``nw_divisor="T"``). Bartlett
weights 1 − l/(L+1) for l ≤ L = int(bandwidth). ``cov_type="unadjusted"`` is bandwidth 0, i.e. the
FM variance s²(λ_t)/T (debiased) — fmduck's "fm". With ``debiased=True`` inference is t(T − 1).
"""

from __future__ import annotations

import linearmodels
import pandas as pd
import polars as pl
import pytest
import statsmodels.api as sm
from linearmodels import FamaMacBeth as LMFamaMacBeth

import oracles

# linearmodels >= 7.1 uses t(T − 1) for FM p-values and intervals (the fmduck convention); earlier
# versions used the pooled nobs − nvar df, so only estimates and SEs are comparable there.
LM_T_DF = tuple(int(v) for v in linearmodels.__version__.split(".")[:2]) >= (7, 1)

PETERSEN_COLS = {"asset": "firm", "period": "year", "ret": "y"}


def _lm(frame: pd.DataFrame, entity: str, time: str, y: str, xs: list[str], intercept: bool = True):
    data = frame.set_index([entity, time]).sort_index()
    exog = sm.add_constant(data[xs]) if intercept else data[xs]
    return LMFamaMacBeth(data[y], exog)


def _compare_lm(res, lm_res, se_type: str, terms: list[str], label: str, full_inference: bool) -> None:
    got = res.estimates.filter(pl.col("se_type") == se_type)
    assert got["term"].to_list() == terms
    names = ["const" if t == "const" else t for t in terms]
    oracles.assert_close(got["estimate"].to_numpy(), lm_res.params[names].to_numpy(), label=label, what="estimate")
    oracles.assert_close(got["std_error"].to_numpy(), lm_res.std_errors[names].to_numpy(), label=label, what="se")
    if full_inference and LM_T_DF:  # debiased=True: t(T−1), the fmduck convention
        oracles.assert_close(got["t_stat"].to_numpy(), lm_res.tstats[names].to_numpy(), label=label, what="t")
        oracles.assert_close(got["p_value"].to_numpy(), lm_res.pvalues[names].to_numpy(), label=label,
                             what="p", atol=1e-14)
        ci = lm_res.conf_int().loc[names]
        oracles.assert_close(got["ci_lower"].to_numpy(), ci["lower"].to_numpy(), label=label, what="ci_lower")
        oracles.assert_close(got["ci_upper"].to_numpy(), ci["upper"].to_numpy(), label=label, what="ci_upper")


def _compare_lambdas(res, lm_res, terms: list[str], label: str) -> None:
    lm_t = lm_res.all_params.reset_index()
    time_col = lm_t.columns[0]
    lm_t = pl.from_pandas(lm_t).with_columns(pl.col(time_col).cast(pl.Float64))
    got = res.lambdas.with_columns(pl.col("period").cast(pl.Float64).alias(time_col))
    oracles.compare_frames(got, lm_t, [time_col], terms, label=label)


@pytest.fixture(scope="module")
def petersen(request) -> pd.DataFrame:
    from conftest import DATA

    return pd.read_csv(DATA / "petersen_test_data.csv")


def test_petersen_published_values(fit, data_dir):
    """Petersen's test data: FM coefficient on x 1.035586, SE 0.0333.

    Source: M. Petersen, "Programming Advice – Finance Panel Data Sets", Kellogg School of
    Management, https://www.kellogg.northwestern.edu/faculty/petersen/htm/papers/se/test_data.htm
    (Fama-MacBeth results table for test_data: x 1.035586, standard error 0.0333).
    """
    res = fit(returns=str(data_dir / "petersen_test_data.csv"), chars=["x"], **PETERSEN_COLS)
    x = res.estimates.filter((pl.col("se_type") == "fm") & (pl.col("term") == "x")).row(0, named=True)
    assert round(x["estimate"], 6) == 1.035586
    assert round(x["std_error"], 4) == 0.0333
    assert x["n_periods"] == 10 and x["avg_n"] == 500


@pytest.mark.parametrize(("nw_lags", "debiased"), [(0, True), (1, True), (3, True), (1, False), (4, False)])
def test_petersen_vs_linearmodels(fit, petersen, nw_lags, debiased):
    divisor = "T-1" if debiased else "T"
    res = fit(returns=pl.from_pandas(petersen), chars=["x"], nw_lags=nw_lags, nw_divisor=divisor, **PETERSEN_COLS)
    model = _lm(petersen, "firm", "year", "y", ["x"])
    _compare_lm(res, model.fit(cov_type="unadjusted"), "fm", ["const", "x"], "linearmodels FM (Petersen)", True)
    kernel = model.fit(cov_type="kernel", kernel="bartlett", bandwidth=nw_lags, debiased=debiased)
    _compare_lm(res, kernel, "nw", ["const", "x"], f"linearmodels kernel debiased={debiased} (Petersen)", debiased)
    _compare_lambdas(res, kernel, ["const", "x"], "linearmodels lambda_t (Petersen)")


@pytest.mark.parametrize("debiased", [True, False])
def test_grunfeld_vs_linearmodels(fit, debiased):
    data = sm.datasets.grunfeld.load_pandas().data
    data["year"] = data["year"].astype(int)
    res = fit(returns=data, asset="firm", period="year", ret="invest", chars=["value", "capital"], nw_lags=2,
              nw_divisor="T-1" if debiased else "T")
    model = _lm(data, "firm", "year", "invest", ["value", "capital"])
    terms = ["const", "value", "capital"]
    _compare_lm(res, model.fit(cov_type="unadjusted"), "fm", terms, "linearmodels FM (Grunfeld)", True)
    kernel = model.fit(cov_type="kernel", kernel="bartlett", bandwidth=2, debiased=debiased)
    _compare_lm(res, kernel, "nw", terms, f"linearmodels kernel debiased={debiased} (Grunfeld)", debiased)
    _compare_lambdas(res, kernel, terms, "linearmodels lambda_t (Grunfeld)")


@pytest.mark.parametrize("intercept", [True, False])
def test_beta_regressors_vs_linearmodels(fit, intercept):
    """Beta-based FM: linearmodels fed the (oracle) full-sample betas gives the same λ and SEs."""
    panel, factors = oracles.synthetic_panel(seed=31, n_assets=20, n_periods=48, missing=0.1, null_ret=0.05)
    res = fit(returns=panel, factors=factors, factor_cols=["mkt", "smb"], intercept=intercept, nw_lags=3,
              nw_divisor="T-1")
    betas = oracles.betas_from(oracles.pass1_full(panel, factors, ["mkt", "smb"]))
    beta_frame = pd.DataFrame([(a, *b) for a, b in betas.items()], columns=["asset", "mkt", "smb"])
    frame = panel.to_pandas().dropna(subset=["ret"]).merge(beta_frame, on="asset")
    model = _lm(frame, "asset", "period", "ret", ["mkt", "smb"], intercept=intercept)
    terms = (["const"] if intercept else []) + ["mkt", "smb"]
    _compare_lm(res, model.fit(), "fm", terms, "linearmodels FM (betas)", True)
    kernel = model.fit(cov_type="kernel", kernel="bartlett", bandwidth=3)
    _compare_lm(res, kernel, "nw", terms, "linearmodels kernel debiased=True (betas)", True)
    _compare_lambdas(res, kernel, terms, "linearmodels lambda_t (betas)")
    # average per-period R² (centred with an intercept, uncentred without) and adjusted R²
    oracles.assert_close(res.estimates["avg_r2"][0], kernel.avg_rsquared, label="linearmodels FM (betas)",
                         what="avg_r2")
    oracles.assert_close(res.lambdas["adj_r2"].mean(), kernel.avg_adj_rsquared, label="linearmodels FM (betas)",
                         what="avg_adj_r2")
