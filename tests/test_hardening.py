"""Issue 14 through the real CLI entry point: identifiers with ``$`` and ``%``, TOML types, the results
schema, DuckDB files held by other processes, and no tracebacks.

Numbers: a run under hostile names must store the estimates of the run under clean names (rtol 1e-10),
and that one the numpy oracle's (``hardening_cases.oracle``). "Before any computation" is read from the
progress lines: a refusal before pass 1 prints no ``[ 0.00s] ...`` line at all (the first one, "checking
inputs", comes after the write checks). Passwords: tests/test_secrets.py; privileges:
tests/test_privileges_pg.py; two writers of one name on PostgreSQL: tests/test_concurrency_pg.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from fmduck import store
from hardening_cases import (
    CLEAN,
    Case,
    assert_refused,
    assert_same_numbers,
    cli,
    env,
    oracle,
    quote,
    stored_estimates,
    write_duckdb,
    write_postgres,
)

DIRTY = {"schema": "s$ %", "panel": "pan$el %", "factors": "fac$ %", "asset": "id$ %", "period": "per$iod %",
         "ret": "price$usd", "size": "size %", "mkt": "m$kt", "smb": "s%mb"}


@pytest.fixture(scope="module")
def clean_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hardening") / "clean.duckdb"
    write_duckdb(path, Case())
    res = cli("run", path, *Case().run_args("clean"), "-q")
    assert res.code == 0, res.text
    return path


def clean_numbers(path: Path) -> dict:
    with duckdb.connect(str(path), read_only=True) as con:
        return stored_estimates(con, "fmduck", "clean", Case())


def test_clean_run_matches_the_numpy_oracle(clean_db):
    got = clean_numbers(clean_db)
    for term, (estimate, se) in oracle().items():
        assert got[(term, "fm")] == pytest.approx((estimate, se), rel=1e-9, abs=1e-14)


# ---------------------------------------------------------------- identifiers with $ and %
RENAMINGS = {
    "all": DIRTY,
    "ret %": {**CLEAN, "ret": "ret %"},
    "chars ret %": {**CLEAN, "size": "ret %"},
    "asset ret %": {**CLEAN, "asset": "ret %", "ret": "price$usd"},
}


@pytest.mark.parametrize("renaming", list(RENAMINGS))
def test_dollar_and_percent_names_on_duckdb(clean_db, tmp_path, renaming):
    case = Case(names=RENAMINGS[renaming])
    db = tmp_path / "dirty.duckdb"
    write_duckdb(db, case)
    schema = "r$ %" if renaming == "all" else "fmduck"
    res = cli("run", db, *case.run_args("dirty", f"--schema={schema}"), "-q")
    assert res.code == 0, res.text
    with duckdb.connect(str(db), read_only=True) as con:
        assert_same_numbers(stored_estimates(con, schema, "dirty", case), clean_numbers(clean_db))
    shown = cli("show", db, "dirty", f"--schema={schema}")
    assert shown.code == 0 and case.term("mkt") in shown.out, shown.text
    assert cli("show", db, f"--schema={schema}").code == 0
    assert cli("sql", db, *case.run_args("dirty"), "--dialect", "postgres").code == 0
    for suffix in ("html", "tex"):
        res = cli("report", db, "dirty", f"--schema={schema}", "-o", tmp_path / f"r.{suffix}", "--no-plots", "-q")
        assert res.code == 0, res.text


@pytest.mark.parametrize("renaming", ["all", "asset ret %"])
def test_dollar_and_percent_names_on_postgres(clean_db, pg_url, tmp_path, renaming):
    import psycopg

    case = Case(names=RENAMINGS[renaming])
    write_postgres(pg_url, case)
    res = cli("run", pg_url, *case.run_args("dirty", "--schema=r$ %"), "-q")
    assert res.code == 0, res.text
    with psycopg.connect(pg_url) as con:
        assert_same_numbers(stored_estimates(con, "r$ %", "dirty", case), clean_numbers(clean_db), rtol=1e-9)
    assert cli("show", pg_url, "dirty", "--schema=r$ %").code == 0
    assert cli("sql", pg_url, *case.run_args("dirty"), "--inline").code == 0
    res = cli("report", pg_url, "dirty", "--schema=r$ %", "-o", tmp_path / "r.tex", "--no-plots", "-q")
    assert res.code == 0, res.text


# ---------------------------------------------------------------- TOML types
TOML_CASES = [  # (line, key, value as Python shows it, expected type)
    ('replace = "false"', "replace", "'false'", "true or false"),
    ('intercept = "no"', "intercept", "'no'", "true or false"),
    ("nw_lags = true", "nw_lags", "True", "'auto' or"),
    ("nw_lags = -1", "nw_lags", "-1", "'auto' or"),
    ('asset = ["a", "b"]', "asset", "['a', 'b']", "a string"),
    ("window = 12.0", "window", "12.0", "an integer"),
    ('window = "12"', "window", "'12'", "an integer"),
    ("window = 99999999999999999999", "window", "99999999999999999999", "2^62"),
    ("beta_max_age = 99999999999999999999", "beta_max_age", "99999999999999999999", "2^62"),
    ("min_obs = true", "min_obs", "True", "an integer"),
    ('threads = "2"', "threads", "'2'", "an integer"),
    ("schema = 3", "schema", "3", "a string"),
    ("nw_divisor = 1", "nw_divisor", "1", "one of T, T-1"),
    ("returns = 3", "returns", "3", "a table name"),
    ('returns = ["panel"]', "returns", "['panel']", "a table name"),
    ("chars = [1.5]", "chars", "[1.5]", "a list of names"),
    ('winsorize = "0.01"', "winsorize", "'0.01'", "a number"),
    ("standardize = 1", "standardize", "1", "true/false or a list"),
    ("strict = 1", "strict", "1", "true or false"),
    ("memory_limit = 4", "memory_limit", "4", "a string"),
]


@pytest.mark.parametrize("line, key, shown, expected", TOML_CASES, ids=[c[1] + ":" + c[0] for c in TOML_CASES])
def test_toml_values_of_the_wrong_type_are_errors(clean_db, tmp_path, line, key, shown, expected):
    base = {"name": '"clean"', "returns": '"panel"', "factors": '"factors"', "factor_cols": '["mkt", "smb"]',
            "chars": '["size"]', "window": "24"}
    base.pop(key, None)
    toml = tmp_path / "spec.toml"
    toml.write_text("".join(f"{k} = {v}\n" for k, v in base.items()) + line + "\n")
    with duckdb.connect(str(clean_db), read_only=True) as con:
        before = con.execute("SELECT run_id FROM fmduck.runs WHERE run_name = 'clean'").fetchall()
    res = cli("run", clean_db, "--config", toml)
    assert_refused(res, key, shown, expected)
    assert "[" not in res.err.split("fmduck: error:")[0]  # no progress line: refused before any computation
    with duckdb.connect(str(clean_db), read_only=True) as con:  # `replace = "false"` replaced nothing
        assert con.execute("SELECT run_id FROM fmduck.runs WHERE run_name = 'clean'").fetchall() == before


# ---------------------------------------------------------------- the results schema
def tables_of(path: Path) -> set[tuple[str, str]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return set(con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall())


def test_a_failed_first_run_leaves_no_tables(tmp_path, monkeypatch):
    from fmduck.engine import DuckDBEngine

    db = tmp_path / "fresh.duckdb"
    write_duckdb(db, Case())
    inputs = tables_of(db)
    assert_refused(cli("run", db, *Case().run_args("x"), "--nw-lags=40", "-q"), "Newey-West lag 40")
    assert tables_of(db) == inputs
    insert = DuckDBEngine.insert

    def failing(self, table_sql, frame):
        if "estimates" in table_sql:
            raise RuntimeError("disk pulled out")
        return insert(self, table_sql, frame)

    monkeypatch.setattr(DuckDBEngine, "insert", failing)
    res = cli("run", db, *Case().run_args("x"), "-q")
    assert res.code == 1 and "--debug" in res.err and "disk pulled out" in res.err
    assert tables_of(db) == inputs


@pytest.mark.parametrize("table", sorted(store.contract()))
def test_a_foreign_table_of_any_results_name_is_refused_before_computing(tmp_path, table):
    db = tmp_path / "user.duckdb"
    write_duckdb(db, Case())
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE TABLE main.{quote(table)} (x INTEGER, note VARCHAR)")
        con.execute(f"INSERT INTO main.{quote(table)} VALUES (1, 'mine')")
    inputs = tables_of(db)
    res = cli("run", db, *Case().run_args("x"), "--schema=main")  # progress on
    assert_refused(res, f"table {table!r}", "not fmduck's", "--schema")
    assert "[" not in res.err.split("fmduck: error:")[0], res.err  # refused before "checking inputs"
    assert tables_of(db) == inputs
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute(f"SELECT * FROM main.{quote(table)}").fetchall() == [(1, "mine")]


def test_a_foreign_table_is_refused_on_postgres(pg_url):
    import psycopg

    write_postgres(pg_url, Case(names={**CLEAN, "schema": "public"}))
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute("CREATE TABLE public.estimates (id INTEGER, what TEXT)")
    res = cli("run", pg_url, *Case(names={**CLEAN, "schema": "public"}).run_args("x"), "--schema=public")
    assert_refused(res, "table 'estimates'", "not fmduck's")
    assert "[" not in res.err.split("fmduck: error:")[0]
    with psycopg.connect(pg_url) as con:
        names = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                           "WHERE table_schema = 'public'").fetchall()}
    assert names == {"panel", "factors", "estimates"}


# ---------------------------------------------------------------- DuckDB files held by other processes
class Holder:
    """Another process holding a DuckDB file open (read-only or read-write) until closed."""

    def __init__(self, path: Path, read_only: bool):
        code = (f"import duckdb, sys; c = duckdb.connect({str(path)!r}, read_only={read_only}); "
                "print('ready', flush=True); sys.stdin.read()")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def test_results_elsewhere_read_a_source_another_process_reads(clean_db, tmp_path):
    holder = Holder(clean_db, read_only=True)
    try:
        res = cli("run", clean_db, *Case().run_args("ro"), "--results", tmp_path / "res.duckdb", "-q")
        assert res.code == 0, res.text
        refused = cli("run", clean_db, *Case().run_args("ro2"), "-q")
        assert_refused(refused, "another process holds it open", "--results")
        assert len(refused.err.strip().splitlines()) == 1
        assert cli("show", clean_db, "clean").code == 0  # reading needs no write access
    finally:
        holder.close()
    with duckdb.connect(str(tmp_path / "res.duckdb"), read_only=True) as con:
        assert_same_numbers(stored_estimates(con, "fmduck", "ro", Case()), clean_numbers(clean_db))


PAUSED_RUN = """
import pathlib, sys, time
from fmduck import store
from fmduck.cli import main
ready, go = map(pathlib.Path, sys.argv[1:3])
write = store.write
def paused(*args, **kwargs):  # a test-only pause: the run waits inside its write until told to go on
    ready.touch()
    while not go.exists():
        time.sleep(0.02)
    return write(*args, **kwargs)
store.write = paused
sys.exit(main(sys.argv[3:]))
"""


def test_a_second_writer_of_a_duckdb_file_is_refused(tmp_path):
    db = tmp_path / "race.duckdb"
    write_duckdb(db, Case())
    ready, go = tmp_path / "ready", tmp_path / "go"
    first = subprocess.Popen([sys.executable, "-c", PAUSED_RUN, ready, go, "run", db, *Case().run_args("same"), "-q"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        for _ in range(3000):
            if ready.exists() or first.poll() is not None:
                break
            subprocess.run(["sleep", "0.02"])
        assert ready.exists(), first.communicate()
        second = cli("run", db, *Case().run_args("same"), "-q")
        assert_refused(second, "another process holds it open")
        assert len(second.err.strip().splitlines()) == 1
    finally:
        go.touch()
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM fmduck.runs").fetchall() == [(1, 1)]
    again = cli("run", db, *Case().run_args("same"))  # the name is taken: refused before any computation
    assert_refused(again, "run 'same' already exists")
    assert "[" not in again.err.split("fmduck: error:")[0]
