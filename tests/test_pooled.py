"""Design ``pooled`` (the firm effect): pooled OLS with five sandwich SEs, Driscoll-Kraay, the firm-effect
diagnostic and Petersen's comparison table, against statsmodels, linearmodels, numpy and Petersen's web page."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.api as sm
from linearmodels import PanelOLS

from fmduck import EstimationError, FamaMacBeth, Spec, SpecError, load_run
from fmduck.designs.pooled import (
    POOLED_SE_TYPES,
    PooledOLS,
    comparison_table,
    format_comparison,
)
from fmduck.engine import DuckDBEngine
from oracles import assert_close

TOL = 1e-10  # well inside the 1e-8 the issue asks for

# Petersen's published results for test_data.txt (= data/petersen_test_data.csv), from
# Mitchell A. Petersen, "Programming Advice - Finance Panel Data Sets: Standard errors in
# finance panel data sets: comparing approaches" (Kellogg School of Management web page,
# https://www.kellogg.northwestern.edu/faculty/petersen/htm/papers/se/test_data.htm),
# coefficient on x and its standard error under each method.
PETERSEN_COEF = 1.034833
PETERSEN_SE = {"ols": 0.0286, "white": 0.0284, "cluster_asset": 0.0506, "cluster_period": 0.0334,
               "cluster_both": 0.0536}


@pytest.fixture
def petersen(con, data_dir):
    con.execute(f"CREATE TABLE petersen AS SELECT * FROM read_csv('{data_dir / 'petersen_test_data.csv'}')")
    return pd.read_csv(data_dir / "petersen_test_data.csv")


def _pooled(con, name="pet", table="petersen", **options):
    options = {"returns": table, "asset": "firm", "period": "year", "ret": "y", "chars": ["x"], **options}
    return PooledOLS(Spec(name=name, design="pooled", **options), con).fit()


def _table(res, se_type):
    t = res.estimates.filter(pl.col("se_type") == se_type)
    return t["estimate"].to_numpy(), t["std_error"].to_numpy(), t["t_stat"].to_numpy()


def _statsmodels(df: pd.DataFrame, xcols: list[str], intercept: bool = True) -> dict[str, object]:
    x = sm.add_constant(df[xcols]) if intercept else df[xcols]
    model = sm.OLS(df["y"], x)
    return {
        "ols": model.fit(),
        "white": model.fit(cov_type="HC1"),
        "cluster_asset": model.fit(cov_type="cluster", cov_kwds={"groups": df["firm"].to_numpy()}),
        "cluster_period": model.fit(cov_type="cluster", cov_kwds={"groups": df["year"].to_numpy()}),
        "cluster_both": model.fit(cov_type="cluster",
                                  cov_kwds={"groups": np.column_stack([df["firm"], df["year"]])}),
    }


# ====================================================================== Petersen's test data
def test_petersen_equals_statsmodels(con, petersen):
    res = _pooled(con)
    oracle = _statsmodels(petersen, ["x"])
    for se_type, fitted in oracle.items():
        coef, se, t = _table(res, se_type)
        assert_close(coef, fitted.params.to_numpy(), label="pooled vs statsmodels", rtol=TOL, what=f"{se_type} coef")
        assert_close(se, fitted.bse.to_numpy(), label="pooled vs statsmodels", rtol=TOL, what=f"{se_type} SE")
        assert_close(t, fitted.tvalues.to_numpy(), label="pooled vs statsmodels", rtol=TOL, what=f"{se_type} t")


def test_petersen_published_table(con, petersen):
    """The statsmodels figures above round to Petersen's web page; so must fmduck's."""
    res = _pooled(con)
    oracle = _statsmodels(petersen, ["x"])
    assert round(float(oracle["ols"].params["x"]), 6) == PETERSEN_COEF
    for se_type, published in PETERSEN_SE.items():
        assert round(float(oracle[se_type].bse["x"]), 4) == published  # the oracle agrees with the page
        coef, se, _ = _table(res, se_type)
        assert round(float(coef[1]), 6) == PETERSEN_COEF
        assert round(float(se[1]), 4) == published, se_type


def test_driscoll_kraay_equals_linearmodels(con, petersen):
    res = _pooled(con, nw_lags=3)
    panel = petersen.set_index(["firm", "year"]).assign(const=1.0)
    lm = PanelOLS(panel["y"], panel[["const", "x"]]).fit(cov_type="kernel", kernel="bartlett", bandwidth=3,
                                                               debiased=False)
    coef, se, _ = _table(res, "driscoll_kraay")
    assert_close(coef, lm.params.to_numpy(), label="pooled DK vs linearmodels", rtol=TOL, what="coef")
    assert_close(se, lm.std_errors.to_numpy(), label="pooled DK vs linearmodels", rtol=TOL, what="SE")


def test_fm_column_equals_engine_fm_run(con, petersen):
    _pooled(con)
    FamaMacBeth(Spec(name="pet_fm", returns="petersen", asset="firm", period="year", ret="y", chars=["x"]), con).fit()
    table = comparison_table(con, ["pet", "pet_fm"])
    methods = table.filter(pl.col("run_name") == "pet")["se_type"].unique().to_list()
    assert set(methods) == {*POOLED_SE_TYPES, "fm", "nw"}
    fm_pooled = table.filter((pl.col("run_name") == "pet") & (pl.col("se_type") == "fm")).sort("term")
    fm_engine = table.filter((pl.col("run_name") == "pet_fm") & (pl.col("se_type") == "fm")).sort("term")
    for col in ("coef", "se", "t"):
        assert_close(fm_pooled[col].to_numpy(), fm_engine[col].to_numpy(), label="pooled FM vs engine FM",
                     rtol=1e-12, what=col)
    # the FM estimate of the slope is the mean of per-year OLS slopes (an independent check)
    slopes = [np.polyfit(g["x"], g["y"], 1)[0] for _, g in petersen.groupby("year")]
    assert_close(fm_pooled.filter(pl.col("term") == "x")["coef"][0], np.mean(slopes),
                 label="pooled FM vs numpy", rtol=TOL, what="FM slope")
    text = format_comparison(table)
    assert "Clustered by asset and period" in text and "Fama-MacBeth" in text


@pytest.mark.parametrize("intercept", [True, False])
def test_two_regressors_large_mean_and_no_intercept(con, petersen, intercept):
    """A regressor with mean 1e6 (the shift keeps every digit) and a no-intercept model."""
    rng = np.random.default_rng(7)
    df = petersen.assign(z=1e6 + rng.normal(size=len(petersen)) + 0.3 * petersen["x"])
    con.register("pet_z", pl.from_pandas(df).to_arrow())
    res = _pooled(con, table="pet_z", chars=["x", "z"], intercept=intercept)
    raw = _statsmodels(df, ["x", "z"], intercept=intercept)
    # with a constant, statsmodels on the raw z loses digits (cond(X) ~ 1e12); the slopes and their
    # SEs do not depend on where z is centred, so they are checked tightly against z - 1e6 (exact in
    # floating point), the coefficients loosely against the raw fit
    centred = _statsmodels(df.assign(z=df["z"] - 1e6), ["x", "z"]) if intercept else raw
    slopes = slice(1, None) if intercept else slice(None)
    for se_type in raw:
        coef, se, _ = _table(res, se_type)
        assert_close(coef, raw[se_type].params.to_numpy(), label="pooled vs statsmodels (z ~ 1e6, raw)", rtol=1e-8,
                     what=f"{se_type} coef")
        if not intercept:  # raw clustered SEs from statsmodels are off by 4e-4 here (Σe ≠ 0 times 1e6)
            assert_close(se, raw[se_type].bse.to_numpy(), label="pooled vs statsmodels (z ~ 1e6, raw)", rtol=1e-8,
                         what=f"{se_type} SE")
        assert_close(coef[slopes], centred[se_type].params.to_numpy()[slopes], label="pooled vs statsmodels (z ~ 1e6)",
                     rtol=TOL, what=f"{se_type} slopes")
        assert_close(se[slopes], centred[se_type].bse.to_numpy()[slopes], label="pooled vs statsmodels (z ~ 1e6)",
                     rtol=TOL, what=f"{se_type} slope SEs")


def test_unbalanced_panel_with_nulls(con, petersen):
    df = petersen.copy()
    rng = np.random.default_rng(3)
    df = df.drop(index=rng.choice(len(df), 700, replace=False))  # unbalanced
    df.loc[df.sample(50, random_state=1).index, "x"] = np.nan    # NULL regressor -> row dropped
    con.register("pet_u", pl.from_pandas(df, nan_to_null=True).to_arrow())
    res = _pooled(con, table="pet_u")
    oracle = _statsmodels(df.dropna(), ["x"])
    for se_type, fitted in oracle.items():
        _coef, se, _ = _table(res, se_type)
        assert_close(se, fitted.bse.to_numpy(), label="pooled vs statsmodels (unbalanced)", rtol=TOL, what=se_type)


# ====================================================================== firm-effect diagnostic
def _rho_oracle(values: np.ndarray) -> float:
    """Within-asset correlation across periods of a balanced N x T matrix, period-demeaned:
    the mean of d_it d_is over all pairs t != s of the same asset over the mean of d_it²."""
    d = values - values.mean(axis=0)
    n, t = d.shape
    gram = d.T @ d  # T x T: Σ_i d_it d_is
    off = (gram.sum() - np.trace(gram)) / (n * t * (t - 1))
    return float(off / (np.trace(gram) / (n * t)))


def test_firm_effect_equals_numpy(con, petersen):
    res = _pooled(con)
    fe = res.extra["firm_effect"].row(0, named=True)
    wide = petersen.sort_values(["firm", "year"])
    x = wide["x"].to_numpy().reshape(500, 10)
    fitted = sm.OLS(wide["y"], sm.add_constant(wide["x"])).fit()
    e = fitted.resid.to_numpy().reshape(500, 10)
    rho_x, rho_e = _rho_oracle(x), _rho_oracle(e)
    assert_close(fe["rho_x"], rho_x, label="firm effect vs numpy", rtol=1e-9, what="rho_x")
    assert_close(fe["rho_e"], rho_e, label="firm effect vs numpy", rtol=1e-9, what="rho_e")
    assert_close(fe["inflation"], 1 + 9 * rho_x * rho_e, label="firm effect vs numpy", rtol=1e-9, what="inflation")
    fm_se = res.estimates.filter((pl.col("se_type") == "fm") & (pl.col("term") == "x"))["std_error"][0]
    assert_close(fe["fm_std_error_adjusted"], fm_se * np.sqrt(fe["inflation"]), label="firm effect vs numpy",
                 rtol=1e-12, what="adjusted SE")
    # Petersen's data put half the variance of x and of the error in the firm effect
    assert 0.4 < fe["rho_x"] < 0.6 and 0.4 < fe["rho_e"] < 0.6
    assert "WARNING: the Fama-MacBeth SE of x is too small" in res.summary


def _simulate(seed: int, n: int, t: int, rho_x: float, rho_e: float, beta: float = 1.0) -> pl.DataFrame:
    """Petersen's (2009) design: x = μ_i + η_it, ε = γ_i + ν_it, unit variances split by ρ."""
    rng = np.random.default_rng(seed)
    x = np.sqrt(rho_x) * rng.normal(size=(n, 1)) + np.sqrt(1 - rho_x) * rng.normal(size=(n, t))
    e = np.sqrt(rho_e) * rng.normal(size=(n, 1)) + np.sqrt(1 - rho_e) * rng.normal(size=(n, t))
    firm, year = np.meshgrid(np.arange(n), np.arange(t), indexing="ij")
    return pl.DataFrame({"firm": firm.ravel(), "year": year.ravel(), "x": x.ravel(), "y": beta * x.ravel() + e.ravel()})


def test_simulated_firm_effect_recovered(con):
    """Known ρ_X = ρ_ε = 0.5: the diagnostic recovers them, the clustered-by-asset SE tracks the spread
    of the pooled estimate across draws while the OLS SE does not, and the FM SE is too small by at
    least √inflation, as the diagnostic warns."""
    n, t, draws, rho_x, rho_e = 200, 10, 40, 0.5, 0.5
    rows = []
    for seed in range(draws):
        con.register("sim", _simulate(seed, n, t, rho_x, rho_e).to_arrow())
        res = _pooled(con, name=f"sim{seed}", table="sim")
        fe = res.extra["firm_effect"].row(0, named=True)
        coef = {s: _table(res, s) for s in ("ols", "cluster_asset", "fm")}
        rows.append({"rho_x": fe["rho_x"], "rho_e": fe["rho_e"], "inflation": fe["inflation"],
                     "b": coef["ols"][0][1], "se_ols": coef["ols"][1][1], "se_ca": coef["cluster_asset"][1][1],
                     "b_fm": coef["fm"][0][1], "se_fm": coef["fm"][1][1]})
    sim = pl.DataFrame(rows)
    true_inflation = 1 + (t - 1) * rho_x * rho_e
    # per draw ρ̂ has sd ≈ 0.04 (200 firms); the mean over 40 draws is within ±0.03 of the truth
    assert abs(sim["rho_x"].mean() - rho_x) < 0.03
    assert abs(sim["rho_e"].mean() - rho_e) < 0.03
    assert abs(sim["inflation"].mean() - true_inflation) / true_inflation < 0.1
    # sd of 40 draws has a relative sampling error of about 1/sqrt(2*39) = 11%
    spread = sim["b"].std()
    assert 0.75 < sim["se_ca"].mean() / spread < 1.3
    assert sim["se_ols"].mean() / spread < 0.7          # truth: 1/sqrt(3.25) = 0.55
    fm_ratio = sim["b_fm"].std() / sim["se_fm"].mean()
    assert fm_ratio > 0.8 * np.sqrt(true_inflation)     # FM SE too small by at least about √inflation


def test_no_firm_effect_no_warning(con):
    con.register("sim0", _simulate(11, 300, 8, 0.0, 0.0).to_arrow())
    res = _pooled(con, name="sim0", table="sim0")
    fe = res.extra["firm_effect"].row(0, named=True)
    assert abs(fe["rho_x"]) < 0.05 and abs(fe["inflation"] - 1) < 0.05
    assert "WARNING" not in res.summary


# ====================================================================== storage, errors, CLI
def test_stored_and_replaced(con, petersen):
    _pooled(con)
    engine = DuckDBEngine(con)
    stored = load_run(engine, "pet")
    assert stored.run["design"] == "pooled"
    assert set(stored.se_types) >= set(POOLED_SE_TYPES)
    fe = con.sql("SELECT term, rho_x, inflation FROM fmduck.firm_effect WHERE run_name = 'pet'").fetchall()
    assert len(fe) == 1 and fe[0][0] == "x"
    _pooled(con, replace=True)
    assert con.sql("SELECT count(*) FROM fmduck.firm_effect WHERE run_name = 'pet'").fetchall()[0][0] == 1
    assert "Pooled OLS, clustered by asset" in stored.summary


def test_errors(con, petersen):
    with pytest.raises(SpecError, match="no factor"):
        PooledOLS(Spec(name="x", returns="petersen", factors="petersen", factor_cols=["x"], design="pooled"), con)
    con.execute("CREATE TABLE pet2 AS SELECT *, 2 * x AS x2 FROM petersen")
    with pytest.raises(EstimationError, match="singular|collinear"):
        _pooled(con, table="pet2", chars=["x", "x2"])
    with pytest.raises(Exception, match="comparison_table: no estimates for run"):
        _pooled(con)
        comparison_table(con, ["pet", "nope"])


def test_cli_pooled(tmp_path, data_dir):
    db = tmp_path / "p.duckdb"
    cmd = [sys.executable, "-m", "fmduck", "run", str(db), "--name", "pet", "--returns",
           str(data_dir / "petersen_test_data.csv"), "--asset", "firm", "--period", "year", "--ret", "y",
           "--chars", "x", "--design", "pooled", "-q"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=data_dir.parent, check=False)
    assert out.returncode == 0, out.stderr
    assert "clustered by asset and period" in out.stdout and "1.03483" in out.stdout


def test_unsupported_options_rejected(con, petersen):
    with pytest.raises(SpecError, match="does not support --weights"):
        _pooled(con, weights="x")
