"""The Spark engine on a real local SparkSession (pyspark, Java 17) and through Spark Connect: same
results as DuckDB to 1e-12 in every results table, inputs as catalog tables / Parquet paths /
DataFrames, results written as tables in database ``fmduck`` (staged, then swapped in) and read back
from another session of the same catalog, quoted identifiers, the CLI.

One JVM for the module: local[2], 2 shuffle partitions, no UI, driver bound to 127.0.0.1, hosting a
Spark Connect server (the plugin that ``SparkSession.builder.remote("local[2]")`` starts, on a free
loopback port) that the Connect client sessions of these tests talk to over gRPC.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

import oracles
from engine_cases import CASES, assert_same_results, case, duckdb_fit

pytest.importorskip("pyspark")

from fmduck import FamaMacBeth, Spec, designs, load_run, templates
from fmduck.engines.spark import SparkEngine, session
from fmduck.errors import InputError

pytestmark = pytest.mark.spark
ROOT = Path(__file__).resolve().parent.parent
CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.sql.adaptive.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}
EXACT = {"rtol": 1e-12, "atol": 1e-12}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def connect_port() -> int:
    return _free_port()


@pytest.fixture(scope="module")
def spark(tmp_path_factory, connect_port):
    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    connect = {"spark.plugins": "org.apache.spark.sql.connect.SparkConnectPlugin",
               "spark.connect.grpc.binding.address": "127.0.0.1",
               "spark.connect.grpc.binding.port": str(connect_port)}
    s = session("local[2]", None, **CONF, **connect, **{"spark.sql.warehouse.dir": str(warehouse)})
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def engine(spark):
    return SparkEngine(spark)


@pytest.fixture(scope="module")
def connect_engine(spark, connect_port):
    """A Spark Connect client session (``sc://``), as ``fmduck run sc://host:15002 --engine spark`` opens it."""
    from fmduck.engines import open_engine

    eng = open_engine(f"sc://127.0.0.1:{connect_port}", "spark")
    assert eng.connect
    yield eng
    eng.spark.stop()


def _spec(name: str, returns, factors, options: dict, **extra) -> Spec:
    return Spec(name=name, returns=returns, factors=factors if options.get("factor_cols") else None,
                **options, **extra)


def test_full_sample_betas_from_catalog_tables(engine):
    panel, factors, options = case("full")
    engine.execute("CREATE DATABASE IF NOT EXISTS `data`")
    engine.create_table(templates.table("data.panel"), panel, replace=True)
    engine.create_table(templates.table("data.factors"), factors, replace=True)
    got = FamaMacBeth(_spec("s", "data.panel", "data.factors", options), engine).fit(write=False)
    assert_same_results(got, duckdb_fit(panel, factors, options), label="spark vs duckdb")


TABLES = {  # results table -> its keys (besides run_name, run_id) and the numbers compared
    "first_pass_terms": (["term_index", "term"], []),
    "lambdas": (["period_index", "term"], ["estimate", "r2", "adj_r2", "n"]),
    "estimates": (["term", "se_type"], ["estimate", "std_error", "t_stat", "p_value", "ci_lower", "ci_upper",
                                        "n_periods", "df", "avg_n", "avg_r2", "nw_lags"]),
    "pricing_errors": (["asset"], ["alpha", "std_error", "t_stat", "n_periods"]),
    "tests": (["test", "se_type", "distribution"], ["statistic", "std_error", "df1", "df2", "p_value"]),
}


@pytest.mark.parametrize("mode", ["local", "connect"])
@pytest.mark.parametrize("name", CASES)
def test_every_results_table_equals_duckdb(request, engine, mode, name):
    """Rolling and full-sample betas and characteristics, on local[2] and through Spark Connect: every
    results table, as stored by Spark (the first pass written by the executors, read back in pieces),
    equals DuckDB's stored run to 1e-12; the run is read back from the other session of the catalog."""
    panel, factors, options = case(name)
    eng = request.getfixturevalue("connect_engine") if mode == "connect" else engine
    reader = engine if mode == "connect" else request.getfixturevalue("connect_engine")
    schema = f"eq_{mode}"
    spec = _spec(name, panel, factors, options, schema=schema, replace=True)
    FamaMacBeth(spec, eng).fit()
    con = duckdb.connect()
    FamaMacBeth(_spec(name, panel, factors, options), con).fit()
    got, want = load_run(reader, name, schema=schema), load_run(con, name)
    label = f"spark {mode} vs duckdb, {name}"
    for table, (keys, numbers) in TABLES.items():
        a = reader.query(f"SELECT * FROM `{schema}`.`{table}` WHERE run_name = :n", {"n": name})
        b = con.sql(f"SELECT * FROM fmduck.{table} WHERE run_name = $n", params={"n": name}).pl()
        assert a.height == b.height, f"{label}: {table} has {a.height} rows, DuckDB {b.height}"
        if a.height:
            oracles.compare_frames(a, b, keys, numbers, label=label, **EXACT)
    if want.first_pass_terms:  # the first pass, read back in pieces of 7 windows (query_batches on Spark)
        pieces = [list(run.first_pass_pieces(rows=7)) for run in (got, want)]
        assert max(p.height for p in pieces[0]) <= 7
        terms = want.first_pass_terms
        keys = ["asset", "period_index"] if options.get("window") else ["asset"]
        oracles.compare_frames(pl.concat(pieces[0]), pl.concat(pieces[1]), keys,
                               [*terms, *[f"se_{t}" for t in terms], "r2", "adj_r2", "rmse", "nobs"],
                               label=label, **EXACT)
    assert got.lambdas["period"].to_list() == want.lambdas["period"].to_list() or name == "chars"
    assert got.run["engine"] == "spark" and got.run["n_periods"] == want.run["n_periods"]


def test_rolling_betas_from_parquet_paths_agree_with_duckdb_and_postgres(engine, pg_url, tmp_path):
    from fmduck.engines.postgres import PostgresEngine

    panel, factors, options = case("rolling")
    panel.write_parquet(tmp_path / "panel.parquet")
    factors.write_parquet(tmp_path / "factors.parquet")
    got = FamaMacBeth(_spec("s", str(tmp_path / "panel.parquet"), str(tmp_path / "factors.parquet"), options),
                      engine).fit(write=False)
    assert_same_results(got, duckdb_fit(panel, factors, options), label="spark vs duckdb")
    pg = PostgresEngine(pg_url)
    on_pg = FamaMacBeth(_spec("s", panel, factors, options), pg).fit(write=False)
    pg.close()
    assert_same_results(got, on_pg, label="spark vs postgres")
    # and the first pass against the numpy oracle, on integer periods 1..T
    fits = oracles.pass1_rolling(*oracles.synthetic_panel(seed=12, n_assets=7, n_periods=40, missing=0.15,
                                                          null_ret=0.05), ["mkt", "smb"], 12, min_obs=8)
    want = oracles.first_pass_frame(fits, ["mkt", "smb"], rolling=True)
    oracles.compare_frames(got.first_pass, want, ["asset", "period_index", "term"], ["estimate", "std_error", "nobs"],
                           label="spark pass1 rolling vs numpy")


def test_characteristics_from_dataframes(engine):
    panel, factors, options = case("chars")
    got = FamaMacBeth(_spec("s", panel, None, options), engine).fit(write=False)
    assert_same_results(got, duckdb_fit(panel, factors, options), label="spark vs duckdb")


@pytest.mark.skipif("pooled" not in designs.registry(), reason="design pooled is not ported to v2 yet")
def test_pooled_design_grouping_sets(engine, data_dir, tmp_path):
    """design pooled (its score sums grouped three ways in one GROUPING SETS scan) on Spark = DuckDB."""
    import duckdb
    import numpy as np

    from fmduck.designs.pooled import PooledOLS

    pl.read_csv(data_dir / "petersen_test_data.csv").write_parquet(tmp_path / "petersen.parquet")
    options = {"design": "pooled", "asset": "firm", "period": "year", "ret": "y", "chars": ["x"]}
    got = PooledOLS(Spec(name="sp", returns=str(tmp_path / "petersen.parquet"), **options), engine).fit(write=False)
    want = PooledOLS(Spec(name="dd", returns=str(tmp_path / "petersen.parquet"), **options),
                     duckdb.connect()).fit(write=False)
    a, b = got.estimates.sort("se_type", "term"), want.estimates.sort("se_type", "term")
    assert a["se_type"].to_list() == b["se_type"].to_list() and a.height >= 12
    np.testing.assert_allclose(a["std_error"].to_numpy(), b["std_error"].to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(a["estimate"].to_numpy(), b["estimate"].to_numpy(), rtol=1e-10)


def test_results_tables_written_replaced_and_read_back(engine, spark):
    """Quoted, mixed-case columns; run stored in database "FM Res", replaced (staged swap), read back."""
    panel, factors, options = case("full")
    odd = {"asset": "PermNo", "period": "Month End", "ret": "Ret `x`", "rf": "RF"}
    spark.createDataFrame(panel.rename(odd).to_pandas()).createOrReplaceTempView("odd_panel")
    spec = Spec(name="stored", returns=spark.table("odd_panel"), factors=factors, factor_cols=["mkt", "smb"],
                asset="PermNo", period="Month End", ret="Ret `x`", rf="RF", factor_period="period", schema="fm_res")
    want = duckdb_fit(panel, factors, options)
    FamaMacBeth(spec, engine).fit()
    FamaMacBeth(spec.replace_with(replace=True), engine).fit()
    stored = load_run(engine, "stored", schema="fm_res")
    assert stored.run["engine"] == "spark"
    assert_same_results(stored, want, label="spark vs duckdb")
    counts = engine.query("SELECT COUNT(*) AS n, COUNT(DISTINCT run_id) AS ids FROM `fm_res`.`lambdas`")
    assert counts["ids"][0] == 1 and counts["n"][0] == want.lambdas.height * len(want.terms)
    assert engine.query("SELECT COUNT(*) AS n FROM `fm_res`.`runs`")["n"][0] == 1
    left = [t.name for t in spark.catalog.listTables("fm_res") if "__fmduck" in t.name]
    assert left == []


def test_hostile_column_name_is_refused_and_table_survives(engine):
    panel, factors, options = case("full")
    engine.execute("CREATE DATABASE IF NOT EXISTS `data`")
    engine.create_table(templates.table("data.victim"), panel, replace=True)
    evil = "ret`; DROP TABLE data.victim; --"
    with pytest.raises(InputError, match=re.escape(f"missing column(s) --ret {evil!r}")):
        FamaMacBeth(_spec("e", "data.victim", factors, options).replace_with(ret=evil), engine).fit(write=False)
    assert engine.query("SELECT COUNT(*) AS n FROM `data`.`victim`")["n"][0] == panel.height


def test_cli_engine_spark_with_parquet_paths(engine, tmp_path, capsys):
    """`fmduck run WAREHOUSE --engine spark` through the CLI entry point, in this process (it reuses the
    module's active session: no second JVM)."""
    from fmduck.cli import main

    panel, factors, options = case("full")
    panel.write_parquet(tmp_path / "panel.parquet")
    factors.write_parquet(tmp_path / "factors.parquet")
    common = ["--engine", "spark", "--returns", str(tmp_path / "panel.parquet"), "--factors",
              str(tmp_path / "factors.parquet"), "--factor-cols", "mkt,smb", "--rf", "rf", "--name", "cli", "-q"]
    assert main(["run", str(tmp_path / "wh"), *common]) == 0
    assert "Run: cli" in capsys.readouterr().out
    stored = load_run(engine, "cli")
    assert_same_results(stored, duckdb_fit(panel, factors, options), label="spark vs duckdb")
    assert main(["sql", str(tmp_path / "wh"), *common]) == 0
    printed = capsys.readouterr().out
    assert "-- pass 1: full-sample" in printed and "`fmduck_input_returns`" in printed
    assert "CREATE OR REPLACE TEMPORARY VIEW `fmduck_first_pass_" in printed
    # exactly what the engine runs: every printed statement is one the Spark engine executed verbatim
    logged = len(engine.log)
    spec = Spec(name="cli", returns=str(tmp_path / "panel.parquet"), factors=str(tmp_path / "factors.parquet"),
                factor_cols=["mkt", "smb"], rf="rf")
    FamaMacBeth(spec, engine).fit(write=False)
    executed = {_no_run_id(sql) for sql in engine.log[logged:]}
    blocks = [b.partition("\n") for b in printed.strip().removeprefix("-- ").split(";\n\n-- ")]
    assert len(blocks) >= 4
    for label, _, sql in blocks:
        if "(only when " in label:  # a conditional step (its condition is printed): may not have run here
            continue
        assert _no_run_id(sql.strip().removesuffix(";")) in executed, f"printed {label!r} SQL was not executed"


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_nan_and_infinity_are_refused(engine, bad):
    panel, factors, options = case("full")
    panel = panel.with_columns(pl.when((pl.col("asset") == "A003") & pl.col("period").is_in([4, 5]))
                               .then(float(bad)).otherwise(pl.col("ret")).alias("ret"))
    with pytest.raises(InputError, match=r"NaN or infinite values in 'ret' \(2 rows\)"):
        FamaMacBeth(_spec("nan", panel, factors, options), engine).fit(write=False)


def _no_run_id(sql: str) -> str:
    return re.sub(r"(fmduck_[a-z_]+)_[0-9a-f]{8}", r"\1_RUN", sql)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("FMDUCK_SPARK_CLI"), reason="a second JVM (~30 s): set FMDUCK_SPARK_CLI=1")
def test_cli_new_session_persists_results_in_warehouse(tmp_path):
    """A fresh `fmduck run DIR --engine spark` process: Hive catalog (Derby) and Parquet tables in DIR."""
    panel, factors, options = case("full")
    panel.write_parquet(tmp_path / "panel.parquet")
    factors.write_parquet(tmp_path / "factors.parquet")
    warehouse = tmp_path / "wh"
    args = [sys.executable, "-m", "fmduck", "run", warehouse, "--engine", "spark", "--returns",
            tmp_path / "panel.parquet", "--factors", tmp_path / "factors.parquet", "--factor-cols", "mkt,smb",
            "--rf", "rf", "--name", "cli", "-q"]
    env = {"FMDUCK_SPARK_MASTER": "local[2]", **_env()}
    for extra in ([], ["--replace"]):  # the second process sees the first one's tables
        out = subprocess.run([*map(str, args), *extra], capture_output=True, text=True, cwd=tmp_path, env=env)
        assert out.returncode == 0, out.stderr[-3000:]
    estimates = pl.read_parquet(warehouse / "fmduck.db" / "estimates" / "*.parquet")
    oracles.compare_frames(estimates, duckdb_fit(panel, factors, options).estimates, ["term", "se_type"],
                           ["estimate", "std_error", "t_stat"], label="spark vs duckdb", rtol=1e-10, atol=1e-12)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_run_name_checked_at_commit_and_probe_writes_nothing(engine, connect_engine):
    """Spark has no lock: a name stored by another session while this one staged its run is refused at
    commit, and nothing of the refused run stays; transaction(rollback=True) is a probe."""
    from fmduck.errors import RunExistsError

    engine.execute("CREATE DATABASE IF NOT EXISTS `txn`")
    runs, rows = templates.table("txn.runs"), templates.table("txn.lambdas")
    for table in (runs, rows):
        engine.create_table(table, pl.DataFrame({"run_name": ["old"], "run_id": ["0"]}), replace=True)
    with engine.transaction(rollback=True):
        engine.insert(runs, pl.DataFrame({"run_name": ["probe"], "run_id": ["p"]}))
    assert engine.query("SELECT run_name FROM `txn`.`runs`")["run_name"].to_list() == ["old"]
    with pytest.raises(RunExistsError, match="'x' was stored by another writer"), engine.transaction():
        engine.insert(rows, pl.DataFrame({"run_name": ["x"], "run_id": ["a"]}))
        engine.insert(runs, pl.DataFrame({"run_name": ["x"], "run_id": ["a"]}))
        connect_engine.insert(runs, pl.DataFrame({"run_name": ["x"], "run_id": ["b"]}))  # the other writer
    engine.table_columns("txn", "runs")  # refreshes this session's view of the tables
    assert sorted(engine.query("SELECT run_id FROM `txn`.`runs`")["run_id"].to_list()) == ["0", "b"]
    assert engine.query("SELECT run_id FROM `txn`.`lambdas`")["run_id"].to_list() == ["0"]
