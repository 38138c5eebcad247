"""Design fm1973 on the v2 protocol: the SQL schedule against the Python one, the printed script
(``fmduck sql --inline``) run as printed by DuckDB and by psql reproduces γ_t, ``--results`` writes
the run to another database, and options the design has no use for are refused."""

from __future__ import annotations

import shutil
import subprocess
import sys

import duckdb
import numpy as np
import polars as pl
import pytest

from fmduck import templates
from fmduck.designs.crsp_like import simulate_crsp_like
from fmduck.designs.fm1973 import FM1973, schedule
from fmduck.errors import SpecError
from fmduck.spec import Spec

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
SMALL = {"formation": 12, "estimation": 18, "testing": 12, "n_portfolios": 6, "min_obs": 10}


def small_panel() -> tuple[pl.DataFrame, pl.DataFrame]:
    """A small CRSP-like panel: 70 stocks, 110 months, 3 % of the returns missing."""
    sim = simulate_crsp_like(70, 110, missing=0.03, seed=11)
    return sim.stocks, sim.market


def small_database(path):
    """A DuckDB file with the small panel as tables ``stocks`` and ``market``."""
    stocks, market = small_panel()
    con = duckdb.connect(str(path))
    for name, frame in (("stocks", stocks), ("market", market)):
        con.register("frame", frame.to_arrow())
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
        con.unregister("frame")
    con.close()
    return path


@pytest.mark.parametrize("n, formation, estimation, testing, update", [
    (110, 12, 18, 12, 12), (110, 12, 18, 12, 5), (110, 12, 18, 12, 1), (31, 12, 18, 12, 12), (30, 12, 18, 12, 12),
    (100, 7, 9, 13, 20), (348, 84, 60, 48, 12), (61, 3, 3, 5, 2),
])
def test_sql_schedule_is_the_python_schedule(n, formation, estimation, testing, update):
    con = duckdb.connect()
    con.execute(f"CREATE TABLE cal AS SELECT i AS period, i AS pidx FROM range(1, {n + 1}) AS t(i)")
    params = {"formation": formation, "estimation": estimation, "testing": testing, "beta_update": update}
    con.execute("CREATE TABLE cohorts AS " + templates.render("fm1973_cohorts", calendar="cal"),
                {k: v for k, v in params.items() if k != "beta_update"})
    con.execute("CREATE TABLE ranges AS " + templates.render("fm1973_ranges", cohorts="cohorts", calendar="cal"),
                {"beta_update": update})
    want_cohorts, want_ranges = schedule(n, formation, estimation, testing, update)
    got_cohorts = con.sql("SELECT * FROM cohorts ORDER BY cohort").pl()
    got_ranges = con.sql("SELECT * FROM ranges ORDER BY range_id").pl()
    assert got_cohorts.rows() == want_cohorts.select(got_cohorts.columns).rows()
    assert got_ranges.rows() == want_ranges.rows()
    assert (want_cohorts.height > 0) == (n >= formation + estimation + 1)


def _spec(**options) -> Spec:
    return Spec(name=options.pop("name", "s"), design="fm1973", returns="stocks", asset="permno", period="date",
                ret="ret", factors="market", market="vwretd", rf="rf", **{**SMALL, **options})


def _gammas(frame: pl.DataFrame, n_terms: int) -> np.ndarray:
    return frame.sort("pidx").select([f"e{j}" for j in range(n_terms)]).to_numpy().astype(np.float64)


def _same_run(res, months: np.ndarray, gammas: np.ndarray) -> None:
    """The script's portfolio rows and gamma_t against the run's. The rows agree to the last bits (an
    engine may sum in another order under another plan, DuckDB in parallel), which a cross-section of
    6 portfolios on beta, beta^2 and s(e) (nearly collinear) amplifies about 1e4-fold in gamma_t."""
    want = res.extra["fm1973_portfolio_months"].select("ret", "beta", "se").to_numpy()
    np.testing.assert_allclose(months, want, rtol=1e-13, atol=1e-16)
    want = res.lambdas.select("const", "beta", "beta2", "se").to_numpy()
    np.testing.assert_allclose(gammas, want, rtol=1e-9, atol=1e-12)


def test_inline_script_runs_in_duckdb_as_printed(tmp_path):
    db = small_database(tmp_path / "s.duckdb")
    res = FM1973(_spec(beta_update=5), str(db)).fit(write=False)
    script = FM1973(_spec(beta_update=5), str(db)).sql(inline=True)
    assert "$" not in script and '"fmduck_cross_sections"' in script
    con = duckdb.connect(str(db))
    con.execute(script).fetchall()  # the last statement is a query: read it so the connection is free
    months = con.sql("SELECT ret, beta, se FROM fmduck_months ORDER BY pidx, portfolio").pl().to_numpy()
    gammas = _gammas(con.sql("SELECT * FROM fmduck_cross_sections WHERE ok").pl(), 4)
    _same_run(res, months, gammas)
    # nothing of the run is stored by the script: it only creates temporary tables
    kept = "SELECT COUNT(*) FROM duckdb_tables() WHERE NOT temporary AND table_name LIKE 'fmduck%'"
    assert con.execute(kept).fetchall()[0][0] == 0


@pytest.mark.postgres
def test_inline_script_runs_in_psql_as_printed(pg_url):
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed")
    from fmduck.engines.postgres import PostgresEngine

    stocks, market = small_panel()
    pg = PostgresEngine(pg_url)
    try:
        for name, frame in (("stocks", stocks), ("market", market)):
            pg.create_table(templates.table(name), frame, replace=True)
        res = FM1973(_spec(beta_update=5), pg).fit(write=False)
        script = FM1973(_spec(beta_update=5), pg).sql(inline=True)
    finally:
        pg.close()
    tail = ("\nSELECT 'fmduck-months';\nSELECT ret, beta, se FROM fmduck_months ORDER BY pidx, portfolio;\n"
            "SELECT 'fmduck-gammas';\nSELECT e0, e1, e2, e3 FROM fmduck_cross_sections WHERE ok ORDER BY pidx;\n")
    out = subprocess.run([psql, pg_url, "-X", "-q", "-A", "-t", "-F", ",", "-v", "ON_ERROR_STOP=1"],
                         input=script + tail, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    months, gammas = (np.array([[float(v) for v in row.split(",")] for row in part.split()])
                      for part in out.stdout.split("fmduck-months\n", 1)[1].split("fmduck-gammas\n"))
    _same_run(res, months, gammas)


def test_estimation_fits_match_numpy():
    """Every estimation-window market model (the first pass, and the portfolios' estimation beta and
    s(e)) against numpy least squares on the window's rows."""
    stocks, market = small_panel()
    spec = Spec(name="fits", design="fm1973", returns=stocks, asset="permno", period="date", ret="ret",
                factors=market, market="vwretd", beta_update=5, **SMALL)
    res = FM1973(spec, duckdb.connect()).fit(write=False)
    cal = market["date"].sort().to_list()
    wide = stocks.pivot(on="permno", index="date", values="ret").sort("date")
    mkt = market.sort("date")["vwretd"].to_numpy()
    _, ranges = schedule(len(cal), 12, 18, 12, 5)
    start = dict(ranges.filter(pl.col("kind") == "estimation").select("range_end", "range_start").iter_rows())
    fp = res.first_pass.pivot(on="term", index=["asset", "period_index", "rmse", "nobs"],
                              values=["estimate", "std_error"])
    assert fp.height > 1000
    for row in fp.iter_rows(named=True):
        lo, hi = start[row["period_index"]] - 1, row["period_index"]
        y, x = wide[row["asset"]].to_numpy()[lo:hi].astype(float), mkt[lo:hi]
        ok = ~np.isnan(y)
        design = np.column_stack([np.ones(ok.sum()), x[ok]])
        coef, ssr, *_ = np.linalg.lstsq(design, y[ok], rcond=None)
        s2 = ssr[0] / (ok.sum() - 2)
        se = np.sqrt(s2 * np.diag(np.linalg.inv(design.T @ design)))
        assert row["nobs"] == ok.sum()
        np.testing.assert_allclose([row["estimate_const"], row["estimate_vwretd"], row["std_error_const"],
                                    row["std_error_vwretd"], row["rmse"]], [*coef, *se, np.sqrt(s2)], rtol=1e-9)
    # the portfolios' estimation beta and s(e): the fits of the estimation period itself (k = 0)
    first = ranges.filter((pl.col("kind") == "estimation") & (pl.col("k") == 0)).select("cohort", "range_end")
    want = res.portfolios.join(first, on="cohort").join(
        fp.select(pl.col("asset"), pl.col("period_index").alias("range_end"), "estimate_vwretd", "rmse"),
        on=["asset", "range_end"], how="left")
    np.testing.assert_array_equal(want["estimation_beta"].to_numpy(), want["estimate_vwretd"].to_numpy())
    np.testing.assert_array_equal(want["estimation_se"].to_numpy(), want["rmse"].to_numpy())


def test_key_types_do_not_change_the_run():
    """Integer YYYYMM periods and text asset ids: the same portfolios and gamma_t as dates and integer
    ids, with the typed key columns that match (period_int, no asset_int)."""
    stocks, market = small_panel()
    base = FM1973(Spec(name="a", design="fm1973", returns=stocks, asset="permno", period="date", ret="ret",
                       factors=market, market="vwretd", **SMALL), duckdb.connect()).fit(write=False)
    yyyymm = pl.col("date").dt.year() * 100 + pl.col("date").dt.month()
    stocks2 = stocks.with_columns(yyyymm.alias("date"), ("id" + pl.col("permno").cast(pl.Utf8)).alias("permno"))
    other = FM1973(Spec(name="b", design="fm1973", returns=stocks2, asset="permno", period="date", ret="ret",
                        factors=market.with_columns(yyyymm.alias("date")), market="vwretd", **SMALL),
                   duckdb.connect()).fit(write=False)
    assert other.portfolios["asset"].to_list() == ("id" + base.portfolios["asset"]).to_list()
    assert other.portfolios["asset_int"].null_count() == other.portfolios.height
    assert base.portfolios["asset_int"].cast(pl.Utf8).to_list() == base.portfolios["asset"].to_list()
    assert other.portfolios["formation_start"][0] == "192601" and base.portfolios["formation_start"][0][:7] == "1926-01"
    assert other.lambdas["period_int"].to_list() == [int(p[:4] + p[5:7]) for p in base.lambdas["period"].to_list()]
    months = other.extra["fm1973_portfolio_months"]
    assert months["period_int"].null_count() == 0 and months["period_ts"].null_count() == months.height
    terms = ["const", "beta", "beta2", "se"]
    np.testing.assert_allclose(other.lambdas.select(terms).to_numpy(), base.lambdas.select(terms).to_numpy(),
                               rtol=1e-10, atol=1e-13)


def test_results_go_to_another_database(tmp_path):
    db = small_database(tmp_path / "source.duckdb")
    out = tmp_path / "results.duckdb"
    env = {"PYTHONPATH": str(ROOT)}
    cli = subprocess.run(
        [sys.executable, "-m", "fmduck", "run", str(db), "-q", "--design", "fm1973", "--name", "elsewhere",
         "--returns", "stocks", "--asset", "permno", "--period", "date", "--factors", "market", "--market", "vwretd",
         "--formation", "12", "--estimation", "18", "--testing", "12", "--n-portfolios", "6", "--min-obs", "10",
         "--results", str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert cli.returncode == 0, cli.stderr
    want = FM1973(_spec(name="here"), str(db)).fit(write=False)
    con = duckdb.connect(str(out), read_only=True)
    stored = con.sql("SELECT cohort, asset, asset_int, portfolio FROM fmduck.portfolios WHERE run_name = 'elsewhere' "
                     "ORDER BY cohort, formation_rank").pl()
    assert stored.rows() == want.portfolios.select("cohort", "asset", "asset_int", "portfolio").rows()
    assert stored["asset_int"].cast(pl.Utf8).to_list() == stored["asset"].to_list()  # the typed key
    windows = con.execute("SELECT COUNT(*) FROM fmduck.first_pass_windows WHERE run_name = 'elsewhere'").fetchall()
    windows = windows[0][0]
    assert windows == want.first_pass.height // 2 > 0  # one row per (stock, estimation window), 2 terms each
    months = con.sql("SELECT period_date, period_index FROM fmduck.fm1973_portfolio_months ORDER BY period_index "
                     "LIMIT 1").fetchall()[0]
    assert months[0] is not None and months[1] == want.lambdas["period_index"].min()
    con.close()
    source = duckdb.connect(str(db), read_only=True)
    schemas = "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'fmduck'"
    assert source.execute(schemas).fetchall()[0][0] == 0


@pytest.mark.parametrize("options, message", [
    ({"weights": "w"}, "--weights"),
    ({"beta_lag": 2}, "--beta-lag"),
    ({"beta_lag": 0}, "--beta-lag"),
    ({"standardize": True}, "--standardize"),
    ({"winsorize": 0.01}, "--winsorize"),
    ({"csr": "gls"}, "--csr"),
    ({"conventions": "stata"}, "--conventions"),
    ({"first_pass": "summary"}, "first-pass summary"),
    ({"intercept": False}, "intercept"),
])
def test_options_the_design_does_not_use_are_refused(options, message):
    with pytest.raises(SpecError, match=message):
        _spec(**options)
