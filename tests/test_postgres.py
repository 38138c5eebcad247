"""The PostgreSQL engine on a real PostgreSQL 15 server (tests/conftest_pg.py starts it).

Same estimates as DuckDB to 1e-10 (full-sample and rolling betas, characteristics), a rolling
first pass against the numpy oracle, results stored in and read back from the server, a real
read-only role writing its results to a local DuckDB file, quoted identifiers (schema-qualified,
mixed case, hostile names), PostgreSQL column types, and ``fmduck sql`` printing the executed SQL.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

import oracles
from engine_cases import (
    CASES,
    ENGINE_ATOL,
    ENGINE_RTOL,
    assert_same_results,
    case,
    duckdb_fit,
)

psycopg = pytest.importorskip("psycopg")

from fmduck import FamaMacBeth, Spec, connect, load_run, templates  # noqa: E402 - after the psycopg skip
from fmduck.engines.postgres import PostgresEngine  # noqa: E402
from fmduck.errors import InputError, SpecError  # noqa: E402

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parent.parent


def fmduck(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fmduck", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT)


def _load(engine: PostgresEngine, table: str, frame: pl.DataFrame) -> None:
    engine.create_table(templates.table(table), frame)


def _spec(name: str, returns, factors, options: dict, **extra) -> Spec:
    return Spec(name=name, returns=returns, factors=factors if options.get("factor_cols") else None,
                **options, **extra)


# ---------------------------------------------------------------- identical estimates
@pytest.mark.parametrize("name", CASES)
def test_same_estimates_as_duckdb(pg, name):
    """Tables in PostgreSQL, passes run there, results stored in schema fmduck and read back."""
    panel, factors, options = case(name)
    _load(pg, "panel", panel)
    _load(pg, "factors", factors)
    got = FamaMacBeth(_spec("pg_run", "panel", "factors", options), pg).fit()
    want = duckdb_fit(panel, factors, options)
    assert_same_results(got, want, label="postgres vs duckdb")
    stored = load_run(pg, "pg_run")
    assert stored.run["engine"] == "postgres"
    assert_same_results(stored, want, label="postgres vs duckdb")
    n_rows = pg.query('SELECT COUNT(*) AS n FROM "fmduck"."lambdas" WHERE run_name = %(r)s', {"r": "pg_run"})
    assert n_rows["n"][0] == want.lambdas.height * len(want.terms)


def test_rolling_first_pass_matches_numpy_oracle(pg):
    """The RANGE frame with a bound (bigint) offset, run by PostgreSQL, against a numpy lstsq loop."""
    _, _, options = case("rolling")
    ints_panel, ints_factors = oracles.synthetic_panel(seed=12, n_assets=7, n_periods=40, missing=0.15,
                                                       null_ret=0.05)
    _load(pg, "panel", ints_panel)
    _load(pg, "factors", ints_factors)
    res = FamaMacBeth(_spec("roll", "panel", "factors", options), pg).fit(write=False)
    fits = oracles.pass1_rolling(ints_panel, ints_factors, ["mkt", "smb"], 12, min_obs=8)
    want = oracles.first_pass_frame(fits, ["mkt", "smb"], rolling=True)
    oracles.compare_frames(res.first_pass, want, ["asset", "period_index", "term"],
                           ["estimate", "std_error", "t_stat", "r2", "nobs"], label="postgres pass1 rolling vs numpy")


@pytest.mark.slow
def test_replace_run_in_one_transaction(pg):
    panel, factors, options = case("full")
    _load(pg, "panel", panel)
    _load(pg, "factors", factors)
    FamaMacBeth(_spec("again", "panel", "factors", options), pg).fit()
    with pytest.raises(Exception, match="already exists"):
        FamaMacBeth(_spec("again", "panel", "factors", options), pg).fit()
    FamaMacBeth(_spec("again", "panel", "factors", options, replace=True), pg).fit()
    counts = pg.query('SELECT COUNT(*) AS n, COUNT(DISTINCT run_id) AS ids FROM "fmduck"."estimates" '
                      "WHERE run_name = %(r)s", {"r": "again"})
    assert counts["ids"][0] == 1 and counts["n"][0] == 3 * 3  # 3 terms x fm/nw/shanken


# ---------------------------------------------------------------- read-only source
@pytest.mark.slow
def test_read_only_role_writes_results_to_local_duckdb(pg_server, pg_url, pg, tmp_path):
    """A role with SELECT only: the run succeeds with --results, PostgreSQL gets no schema, no table."""
    panel, factors, options = case("rolling")
    pg.execute('CREATE SCHEMA "market"')
    _load(pg, "market.panel", panel)
    _load(pg, "market.factors", factors)
    db = pg_url.rsplit("/", 1)[1]
    pg.execute(f'CREATE ROLE "reader" LOGIN; GRANT CONNECT ON DATABASE "{db}" TO "reader"; '
               'GRANT USAGE ON SCHEMA "market" TO "reader"; GRANT SELECT ON ALL TABLES IN SCHEMA "market" TO "reader"')
    reader_url = pg_server.url(db, user="reader")
    local = tmp_path / "local.duckdb"
    common = ["--returns", "market.panel", "--factors", "market.factors", "--factor-cols", "mkt,smb",
              "--window", "12", "--min-obs", "8", "--name", "ro", "-q"]
    out = fmduck("run", reader_url, *common, "--results", local)
    assert out.returncode == 0, out.stderr
    assert "Run: ro" in out.stdout
    # without --results the write is refused by PostgreSQL, and the message says what to do
    refused = fmduck("run", reader_url, *common)
    assert refused.returncode == 2
    assert "permission denied" in refused.stderr and "--results" in refused.stderr
    # nothing written in PostgreSQL: no fmduck schema, no relation owned by the reader, data untouched
    assert pg.query("SELECT COUNT(*) AS n FROM pg_namespace WHERE nspname = 'fmduck'")["n"][0] == 0
    owned = pg.query("SELECT COUNT(*) AS n FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                     "WHERE r.rolname = 'reader' AND c.relpersistence <> 't'")
    assert owned["n"][0] == 0
    assert pg.query('SELECT COUNT(*) AS n FROM "market"."panel"')["n"][0] == panel.height
    stored = load_run(connect(str(local)), "ro")
    assert stored.run["engine"] == "postgres"
    assert_same_results(stored, duckdb_fit(panel, factors, options), label="postgres (read-only) vs duckdb")


# ---------------------------------------------------------------- identifiers and types
@pytest.mark.slow
def test_schema_qualified_mixed_case_names(pg):
    panel, factors, options = case("full")
    renamed = panel.rename({"asset": "PERMNO", "period": "Month End", "ret": "RetX", "rf": "Rf"})
    f_renamed = factors.rename({"period": "Month End", "mkt": "Mkt-RF", "smb": "SMB"})
    pg.execute('CREATE SCHEMA "Market Data"')
    _load(pg, '"Market Data"."CRSP Monthly"', renamed)
    _load(pg, '"Market Data"."FF Factors"', f_renamed)
    spec = Spec(name="mixed", returns='"Market Data"."CRSP Monthly"', factors='"Market Data"."FF Factors"',
                asset="PERMNO", period="Month End", ret="RetX", rf="Rf", factor_cols=["Mkt-RF", "SMB"],
                schema="FM Results")
    got = FamaMacBeth(spec, pg).fit()
    want = duckdb_fit(panel, factors, options)
    oracles.compare_frames(got.estimates.with_columns(pl.col("term").replace({"Mkt-RF": "mkt", "SMB": "smb"})),
                           want.estimates, ["term", "se_type"], ["estimate", "std_error"],
                           label="postgres vs duckdb", rtol=ENGINE_RTOL, atol=ENGINE_ATOL)
    assert load_run(pg, "mixed", schema="FM Results").terms == ["const", "Mkt-RF", "SMB"]


def test_unqualified_name_is_not_split_on_dots_inside_quotes(pg):
    panel, _, _ = case("full")
    _load(pg, '"odd.name"', panel)
    rel = pg.relation('"odd.name"', "returns")
    assert set(rel.columns) == {"asset", "period", "ret", "rf"}


def test_hostile_column_names_cannot_inject_sql(pg):
    panel, factors, options = case("full")
    evil = 'ret"; DROP TABLE panel; --'
    _load(pg, "panel", panel)
    _load(pg, "factors", factors)
    with pytest.raises(InputError, match=re.escape("missing column(s) --ret 'ret\"; DROP TABLE panel; --'")):
        FamaMacBeth(_spec("evil", "panel", "factors", options).replace_with(ret=evil), pg).fit()
    # a table that really has that column: used as a plain identifier, nothing else runs
    _load(pg, "weird", panel.rename({"ret": evil}))
    got = FamaMacBeth(_spec("weird", "weird", "factors", options).replace_with(ret=evil), pg).fit()
    assert_same_results(got, duckdb_fit(panel, factors, options), label="postgres vs duckdb")
    assert pg.query("SELECT COUNT(*) AS n FROM panel")["n"][0] == panel.height  # the table survives
    with pytest.raises(SpecError, match="is not a table name"):
        pg.relation('panel"; DROP TABLE factors; --', "returns")
    with pytest.raises(InputError, match="does not exist"):
        pg.relation('"panel; DROP TABLE factors; --"', "returns")
    assert pg.query("SELECT COUNT(*) AS n FROM factors")["n"][0] == factors.height


def test_postgres_column_types(pg):
    """numeric/real/integer/smallint are numeric; text is refused naming the column and its type."""
    panel, factors, options = case("full")
    _load(pg, "panel", panel)
    _load(pg, "factors", factors)
    pg.execute("CREATE TABLE typed AS SELECT asset::varchar(8) AS asset, period::integer AS period, "
               "round(ret::numeric, 8)::numeric(20, 8) AS ret, rf, rf::real AS rf4, period::smallint AS small, "
               "ret::text AS ret_text FROM panel")
    rel = pg.relation("typed", "returns")
    assert rel.columns == {"asset": "VARCHAR", "period": "INTEGER", "ret": "DECIMAL(20,8)", "rf": "DOUBLE",
                           "rf4": "FLOAT", "small": "SMALLINT", "ret_text": "VARCHAR"}
    assert all(rel.is_numeric(c) for c in ("ret", "rf", "rf4", "small")) and not rel.is_numeric("ret_text")
    with pytest.raises(InputError, match="'ret_text' is VARCHAR"):
        FamaMacBeth(_spec("t", "typed", "factors", options).replace_with(ret="ret_text"), pg).fit(write=False)
    # numeric(20,8) returns, integer periods: same estimates as DuckDB on the same (rounded) values
    got = FamaMacBeth(_spec("t", "typed", "factors", options), pg).fit(write=False)
    same = pg.query("SELECT asset, period::bigint AS period, ret::float8 AS ret, rf FROM typed")
    assert_same_results(got, duckdb_fit(same, factors, options), label="postgres vs duckdb")


def test_connect_url_and_missing_table(pg, pg_url):
    engine = connect(pg_url)  # a postgresql:// URL gives the PostgreSQL engine
    assert isinstance(engine, PostgresEngine) and engine.dialect == "postgres"
    with pytest.raises(InputError, match="table nowhere.panel does not exist"):
        engine.relation("nowhere.panel", "returns")
    engine.close()


# ---------------------------------------------------------------- the SQL that runs
def _statements(text: str) -> list[tuple[str, str]]:
    out = []
    for block in text.split("\n-- ")[0:]:
        block = block.removeprefix("-- ")
        label, _, sql = block.partition("\n")
        out.append((label, sql.strip().removesuffix(";")))
    return out


def _no_run_id(sql: str) -> str:
    return re.sub(r"(fmduck_[a-z_0-9]+?)_[0-9a-f]{8}\b", r"\1_RUN", sql)


@pytest.mark.slow
def test_sql_command_prints_exactly_what_postgres_runs(pg, pg_url, tmp_path):
    panel, factors, options = case("rolling")
    _load(pg, "panel", panel)
    _load(pg, "factors", factors)
    args = ["--returns", "panel", "--factors", "factors", "--factor-cols", "mkt,smb", "--window", "12",
            "--min-obs", "8", "--name", "s", "-q"]
    out = fmduck("sql", pg_url, *args)
    assert out.returncode == 0, out.stderr
    printed = _statements(out.stdout)
    labels = [label for label, _ in printed]
    assert any(lab.startswith("pass 1: rolling") for lab in labels)
    assert any(lab.startswith("pass 2: cross-sectional") for lab in labels) and "%(window_preceding)s" in out.stdout
    # what the engine sends to the server, statement by statement
    engine = PostgresEngine(pg_url)
    FamaMacBeth(_spec("s", "panel", "factors", options), engine).fit(write=False)
    executed = {_no_run_id(s) for s in engine.log}
    for label, sql in printed:
        if label.startswith("check in Python: "):  # a decision on what earlier steps found: no SQL of its own
            assert sql == ""
            continue
        assert _no_run_id(sql) in executed, f"printed {label!r} SQL was not executed verbatim"
    engine.close()
    # from a DuckDB file, --dialect postgres renders as the PostgreSQL engine does: the same text
    duck = tmp_path / "same.duckdb"
    con = duckdb.connect(str(duck))
    con.register("panel_df", panel.to_arrow())
    con.register("factors_df", factors.to_arrow())
    con.execute("CREATE TABLE panel AS SELECT * FROM panel_df; CREATE TABLE factors AS SELECT * FROM factors_df")
    con.close()
    translated = fmduck("sql", duck, *args, "--dialect", "postgres")
    assert translated.returncode == 0, translated.stderr
    assert [(lab, _no_run_id(s)) for lab, s in _statements(translated.stdout)] == \
        [(lab, _no_run_id(s)) for lab, s in printed]


@pytest.mark.slow
def test_cli_load_run_show_on_postgres_url(pg, pg_url, tmp_path):
    panel, factors, options = case("full")
    panel.write_parquet(tmp_path / "panel.parquet")
    factors.write_parquet(tmp_path / "factors.parquet")
    for table in ("panel", "factors"):
        loaded = fmduck("load", pg_url, tmp_path / f"{table}.parquet", "--table", table)
        assert loaded.returncode == 0, loaded.stderr
    args = ["--returns", "panel", "--factors", "factors", "--factor-cols", "mkt,smb", "--rf", "rf", "--name",
            "cli", "-q"]
    out = fmduck("run", pg_url, *args)
    assert out.returncode == 0, out.stderr
    again = fmduck("run", pg_url, *args, "--replace")
    assert again.returncode == 0, again.stderr
    stored = load_run(pg, "cli")
    assert_same_results(stored, duckdb_fit(panel, factors, options), label="postgres vs duckdb")
    assert pg.query('SELECT COUNT(*) AS n FROM "fmduck"."runs"')["n"][0] == 1
    np.testing.assert_equal(stored.run["input_fingerprint"]["returns_rows"], panel.height)
    shown = fmduck("show", pg_url, "cli")
    assert shown.returncode == 0 and "Run: cli" in shown.stdout


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(pg, bad):
    """The profile's x * 0 <> 0 test holds for NaN and ±Infinity in PostgreSQL too."""
    panel, factors, options = case("full")
    _load(pg, "panel", panel)
    _load(pg, "factors", factors)
    pg.execute(f"UPDATE panel SET ret = '{bad}'::float8 WHERE asset = 'A003' AND period IN (4, 5)")
    with pytest.raises(InputError, match=r"NaN or infinite values in 'ret' \(2 rows\)"):
        FamaMacBeth(_spec("nan", "panel", "factors", options), pg).fit(write=False)
