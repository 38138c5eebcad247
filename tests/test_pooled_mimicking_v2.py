"""Designs pooled and mimicking on the design protocol (architecture v2): one avg R² for ``run`` and
``show`` (issue 19), the pooled plan as a script that runs as printed in DuckDB's and PostgreSQL's own
clients against numpy/statsmodels, both designs on PostgreSQL = DuckDB (estimates, λ_t, first pass,
pricing errors, firm effect, weights) and stored there, typed asset ids of the mimicking weights."""

from __future__ import annotations

import subprocess

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.api as sm

from engine_cases import ENGINE_ATOL, ENGINE_RTOL, assert_same_results
from fmduck import Spec, load_run, templates
from fmduck import load as loader
from fmduck.designs.mimicking import Mimicking
from fmduck.designs.pooled import PooledOLS, comparison_table
from fmduck.engine import DuckDBEngine
from oracles import assert_close, compare_frames

TOL = 1e-10
POOLED = {"asset": "firm", "period": "year", "ret": "y", "chars": ["x"], "design": "pooled"}
BASIS = ["S1V1", "S1V5", "S3V3", "S5V1", "S5V5", "NoDur", "Enrgy"]


@pytest.fixture
def petersen(data_dir) -> pd.DataFrame:
    return pd.read_csv(data_dir / "petersen_test_data.csv")


def _header(summary: str, label: str) -> str:
    return next(line for line in summary.splitlines() if label in line)


def test_pooled_avg_r2_is_one_number(con, petersen):
    """The run record, every estimates row, the header of the run's summary and of the stored run's
    summary give the same avg R²: the mean R² of the per-year cross sections (numpy); the pooled R²
    (statsmodels) is stated in the notes."""
    con.register("pet", petersen)
    res = PooledOLS(Spec(name="pet", returns="pet", **POOLED), con).fit()
    stored = load_run(con, "pet")
    per_year = [np.corrcoef(g["x"], g["y"])[0, 1] ** 2 for _, g in petersen.groupby("year")]
    want = float(np.mean(per_year))
    for results, where in ((res, "run"), (stored, "stored")):
        assert_close(results.run["avg_r2"], want, label="pooled avg R2 vs numpy", rtol=1e-12, what=where)
        assert_close(results.estimates["avg_r2"].to_numpy(), np.full(results.estimates.height, want),
                     label="pooled avg R2 vs numpy", rtol=1e-12, what=f"{where} estimates")
    assert _header(res.summary, "avg. R-squared") == _header(stored.summary, "avg. R-squared")
    pooled_r2 = sm.OLS(petersen["y"], sm.add_constant(petersen["x"])).fit().rsquared
    assert f"pooled OLS R-squared = {pooled_r2:.6g}" in res.run["conventions"]


def _pooled_oracle(petersen: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per-year OLS slopes and intercepts (numpy, in year order) and the pooled OLS coefficients (statsmodels)."""
    lam = np.array([np.polyfit(g["x"], g["y"], 1)[::-1] for _, g in petersen.sort_values("year").groupby("year")])
    pooled = sm.OLS(petersen["y"], sm.add_constant(petersen["x"])).fit().params.to_numpy()
    return lam, pooled


def test_pooled_script_runs_as_printed_in_duckdb(con, petersen, tmp_path):
    """``fmduck sql --inline``: the plan, rendered without data, runs in the duckdb client as printed and
    leaves λ_t and the pooled coefficients of numpy/statsmodels in its scratch tables."""
    con.register("pet", petersen)
    script = PooledOLS(Spec(name="pet", returns="pet", **POOLED), con).sql(inline=True)
    fresh = duckdb.connect(str(tmp_path / "s.duckdb"))
    fresh.register("pet", petersen)
    fresh.execute(script).fetchall()
    lam = fresh.sql('SELECT e0, e1 FROM "fmduck_lambdas" ORDER BY pidx').fetchnumpy()
    fit = fresh.sql('SELECT e0, e1 FROM "fmduck_pooled_fit"').fetchnumpy()
    want_lam, want_pooled = _pooled_oracle(petersen)
    assert_close(np.column_stack([lam["e0"], lam["e1"]]), want_lam, label="pooled script vs numpy", rtol=TOL,
                 what="lambda_t")
    assert_close(np.array([fit["e0"][0], fit["e1"][0]]), want_pooled, label="pooled script vs statsmodels", rtol=TOL,
                 what="pooled coefficients")


@pytest.mark.postgres
def test_pooled_postgres_equals_duckdb(pg, pg_server, pg_url, petersen):
    """Pooled on PostgreSQL = DuckDB to 1e-10; stored there and read back; comparison_table reads it;
    the PostgreSQL script runs as printed in psql."""
    pg.create_table(templates.table("petersen"), pl.from_pandas(petersen))
    spec = Spec(name="pet", returns="petersen", **POOLED)
    got = PooledOLS(spec, pg).fit()
    con = duckdb.connect()
    con.register("petersen", petersen)
    want = PooledOLS(spec, con).fit(write=False)
    assert_same_results(got, want, label="pooled postgres vs duckdb")
    tol = {"label": "pooled postgres vs duckdb", "rtol": ENGINE_RTOL, "atol": ENGINE_ATOL}
    compare_frames(got.extra["firm_effect"], want.extra["firm_effect"], ["term"],
                   ["rho_x", "rho_e", "avg_periods", "inflation", "n_assets", "n_obs", "fm_std_error",
                    "fm_std_error_adjusted"], **tol)
    stored = load_run(pg, "pet")
    assert stored.extra["firm_effect"]["term"].to_list() == ["x"]
    table = comparison_table(pg, "pet")
    compare_frames(table.rename({"coef": "estimate", "se": "std_error"}),
                   want.estimates.filter(pl.col("se_type").is_in(table["se_type"].unique().to_list())),
                   ["term", "se_type"], ["estimate", "std_error"], **tol)
    script = PooledOLS(spec, pg).sql(inline=True)
    out = subprocess.run(["psql", pg_url, "-v", "ON_ERROR_STOP=1", "-q", "-c", script + "\nSELECT e0, e1 FROM "
                          "fmduck_pooled_fit;"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    _lam, want_pooled = _pooled_oracle(petersen)
    printed = [float(v) for v in out.stdout.strip().splitlines()[-2].split("|")]
    assert_close(np.array(printed), want_pooled, label="pooled psql script vs statsmodels", rtol=TOL,
                 what="pooled coefficients")


@pytest.mark.postgres
def test_mimicking_postgres_equals_duckdb(pg, data_dir):
    """Mimicking on PostgreSQL (basis restricted in SQL, weights uploaded) = DuckDB to 1e-10, and stored."""
    con = duckdb.connect()
    for engine in (pg, DuckDBEngine(con)):
        loader.load(engine, data_dir / "ff_portfolios_monthly.csv", "ff_portfolios", wide=True, unit="percent")
        loader.load(engine, data_dir / "ff_factors_monthly.csv", "ff_factors", unit="percent",
                    percent_cols=["MktRF", "SMB", "HML", "Mom", "RF"])
    spec = Spec(name="mim", returns="ff_portfolios", rf="RF", factors="ff_factors", factor_cols=["HML", "Mom"],
                basis=BASIS, design="mimicking")
    got = Mimicking(spec, pg).fit()
    want = Mimicking(spec, con).fit(write=False)
    assert_same_results(got, want, label="mimicking postgres vs duckdb")
    compare_frames(got.extra["mimicking_weights"], want.extra["mimicking_weights"], ["factor", "asset"], ["weight"],
                   label="mimicking postgres vs duckdb", rtol=1e-9, atol=1e-9)
    stored = load_run(pg, "mim")
    assert sorted(stored.extra["mimicking_weights"]["asset"].unique().to_list()) == sorted(BASIS)


def test_mimicking_weights_typed_asset_ids(con):
    """Integer asset ids: the weights carry asset (text) and asset_int (BIGINT); --basis names them as text."""
    rng = np.random.default_rng(5)
    t, n = 120, 6
    g = rng.normal(size=t)
    beta = rng.uniform(0.5, 1.5, size=n)
    r = np.outer(g, beta) + 0.5 * rng.normal(size=(t, n))
    con.register("ip", pl.DataFrame({"asset": np.repeat(np.arange(100, 100 + n), t),
                                     "period": np.tile(np.arange(t), n), "ret": r.T.ravel()}).to_arrow())
    con.register("ig", pl.DataFrame({"period": np.arange(t), "g": g}).to_arrow())
    basis = [101, 103, 104, 105]
    res = Mimicking(Spec(name="ints", returns="ip", factors="ig", factor_cols=["g"], basis=basis,
                         design="mimicking"), con).fit()
    w = res.extra["mimicking_weights"].sort("asset")
    assert w["asset"].to_list() == [str(b) for b in basis]
    assert w["asset_int"].to_list() == basis
    # numpy: the projection of g on a constant and the basis returns
    x = np.column_stack([np.ones(t), r[:, [b - 100 for b in basis]]])
    coef, *_ = np.linalg.lstsq(x, g, rcond=None)
    assert_close(w["weight"].to_numpy(), coef[1:], label="mimicking integer ids vs numpy", rtol=TOL,
                 atol=TOL * np.abs(coef[1:]).max(), what="weights")
    typed = con.sql("SELECT asset_int FROM fmduck.mimicking_weights WHERE run_name = 'ints' ORDER BY asset_int")
    assert typed.types[0] == "BIGINT" and [v for (v,) in typed.fetchall()] == basis
