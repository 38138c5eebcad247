"""No tracebacks (issue 14): every failure of the environment or the input is one ``fmduck: error:`` line
with exit code 2; anything else is exit 1 with the hint to rerun with ``--debug``, which prints the
traceback. Through the real entry point: ``fmduck.cli.main`` in this process, and ``python -m fmduck``
where another process must hold a file.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from hardening_cases import CLEAN, Case, assert_refused, cli, process, write_duckdb, write_postgres
from test_hardening import Holder

SPEC = Case().run_args("x")


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tracebacks") / "panel.duckdb"
    write_duckdb(path, Case())
    assert cli("run", path, *Case().run_args("stored"), "-q").code == 0
    return path


def cases(db: Path, tmp: Path) -> list[tuple[list, tuple[str, ...]]]:
    (tmp / "in.csv").write_text("period,x\n1,2\n2,3\n")
    (tmp / "afile").write_text("")
    toml = tmp / "big.toml"
    toml.write_text('name = "x"\nreturns = "panel"\nfactors = "factors"\nfactor_cols = ["mkt"]\nwindow = 12\n'
                    "beta_max_age = 99999999999999999999\n")
    return [
        (["run", "/no/such/dir/x.duckdb", *SPEC], ("does not exist",)),
        (["show", "/no/such/dir/x.duckdb"], ("does not exist",)),
        (["sql", "/no/such/dir/x.duckdb", *SPEC], ("does not exist",)),
        (["load", "/no/such/dir/x.duckdb", tmp / "in.csv", "--table", "t"], ("does not exist",)),
        (["run", db, *SPEC, "--results", "/no/such/dir/r.duckdb"], ("does not exist",)),
        (["show", tmp], ("cannot open DuckDB database",)),
        (["report", db, "stored", "-o", str(tmp) + "/"], ("is a folder",)),
        (["report", db, "stored", "-o", tmp / "afile" / "r.html"], ("cannot write",)),
        (["export", db, "stored", "-o", tmp], ("is a folder",)),
        (["export", db, "stored", "-o", tmp / "afile" / "e.csv"], ("cannot write",)),
        (["load", db, tmp / "in.csv", "--table", "query('x')"], ("is not a table name",)),
        (["run", db, *SPEC, "--returns=query('select 1')"], ("is not a table name",)),
        (["run", db, *SPEC, "--window", "99999999999999999999"], ("out of range",)),
        (["run", db, "--config", toml], ("beta_max_age", "2^62")),
        (["run", db, *SPEC, "--threads", "100000"], ("threads must be at most",)),
        (["run", db, *SPEC, "--memory-limit", "1XB"], ("memory_limit",)),
        (["show", db, "stored", "--nw-lags", "99999999999999999999"], ("out of range",)),
        (["show", db, "nosuch"], ("no run named 'nosuch'",)),
    ]


def test_environment_and_input_failures_are_one_line_errors(db, tmp_path):
    for argv, fragments in cases(db, tmp_path):
        res = cli(*argv)
        assert_refused(res, *fragments)


def test_locked_file_for_every_command(db, tmp_path):
    holder = Holder(db, read_only=False)
    try:
        for argv in (["run", db, *SPEC], ["show", db], ["show", db, "stored"], ["sql", db, *SPEC],
                     ["load", db, tmp_path / "in.csv", "--table", "t"],
                     ["report", db, "stored", "-o", tmp_path / "r.html"],
                     ["export", db, "stored"], ["delete", db, "stored", "--yes"], ["update", db, "stored"]):
            (tmp_path / "in.csv").write_text("period,x\n1,2\n")
            res = cli(*argv)
            assert_refused(res, "another process holds it open")
            assert len(res.err.strip().splitlines()) == 1, res.err
        res = process("show", db, "stored")  # and as a process of its own
        assert_refused(res, "another process holds it open")
    finally:
        holder.close()


def test_out_of_memory_names_the_option(tmp_path):
    big = tmp_path / "big.duckdb"
    with duckdb.connect(str(big)) as con:
        con.execute("CREATE TABLE panel AS SELECT 'A' || (i % 2000) AS asset, i // 2000 AS period, random() AS ret, "
                    "random() AS size, random() AS bm FROM range(400000) AS t(i)")
    res = cli("run", big, "--returns", "panel", "--chars", "size,bm", "--name", "oom", "--memory-limit", "1MB", "-q")
    assert_refused(res, "out of memory", "--memory-limit")


def test_a_statement_in_a_table_name_is_a_missing_table_on_postgres(pg_url):
    import psycopg

    write_postgres(pg_url, Case(names={**CLEAN, "schema": "public"}))
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute("CREATE SCHEMA a; CREATE TABLE c (x INTEGER); INSERT INTO c VALUES (1)")
    for returns in ("a.b; drop table c", "b; drop table c", 'a."b; drop table c"', "a.b; drop table c; --"):
        res = cli("run", pg_url, "--returns", returns, "--chars", "size", "--name", "x")
        assert_refused(res, "does not exist")
    with psycopg.connect(pg_url) as con:
        assert con.execute("SELECT * FROM c").fetchall() == [(1,)]


def test_a_bug_is_exit_1_with_the_debug_hint_and_debug_prints_the_traceback(db, monkeypatch):
    from fmduck import store

    def broken(*args, **kwargs):
        raise ZeroDivisionError("an unforeseen case")

    monkeypatch.setattr(store, "list_runs", broken)
    res = cli("show", db)
    assert res.code == 1 and "Traceback" not in res.err
    assert "ZeroDivisionError: an unforeseen case" in res.err and "--debug" in res.err
    res = cli("--debug", "show", db)
    assert res.code == 1
    assert "Traceback (most recent call last)" in res.err and "in broken" in res.err


def test_an_error_naming_a_hostile_name_is_one_line_without_terminal_escapes(db):
    hostile = "y\x1b[31mRED\nnext line\x07"
    for argv in (["run", db, *SPEC, f"--chars={hostile}", "-q"], ["show", db, f"r{hostile}"],
                 ["run", db, *SPEC, f"--schema={hostile}", f"--name={hostile}", "-q"]):
        res = cli(*argv)
        assert_refused(res)
        assert len(res.err.strip().splitlines()) == 1, res.err
        assert "\x1b" not in res.err and "\x07" not in res.err, res.err
    assert "y\\x1b[31mRED\\nnext line\\x07" in cli("run", db, *SPEC, f"--chars={hostile}", "-q").err


def test_a_mistyped_database_path_is_refused_and_creates_no_file(tmp_path):
    """A DuckDB path that does not exist is an error before any connection (DuckDB would create an empty
    file), for every command that reads an existing database; inputs that are files make a new one."""
    typo = tmp_path / "nonexist.duckdb"
    plain = f"fmduck: error: database file {typo} does not exist; check the path\n"
    for argv, message in [
        (["run", typo, "--returns", "crsp", "--chars", "size", "--name", "x"],
         f"fmduck: error: database file {typo} does not exist (the input --returns crsp is a table in it); "
         "check the path\n"),
        (["run", typo, *SPEC], f"fmduck: error: database file {typo} does not exist (the inputs --returns "
                               '"main"."panel", --factors "main"."factors" are tables in it); check the path\n'),
        (["sql", typo, *SPEC], None), (["show", typo], plain), (["show", typo, "stored"], plain),
        (["report", typo, "stored", "-o", tmp_path / "r.html"], plain), (["export", typo, "stored"], plain),
        (["update", typo, "stored"], plain), (["delete", typo, "stored", "--yes"], plain),
        (["compare", typo, "a", "b"], plain),
    ]:
        res = cli(*argv)
        assert res.code == 2 and res.out == "", argv
        assert res.err == (message or res.err) and res.err.startswith(f"fmduck: error: database file {typo} does "
                                                                      "not exist"), res.err
        assert list(tmp_path.iterdir()) == [], argv  # nothing created, not even a .wal
    panel = tmp_path / "p.csv"
    panel.write_text("asset,period,ret,size\nA,1,0.1,1\nA,2,0.2,2\nB,1,0.3,3\nB,2,0.1,1\nC,1,0.2,5\nC,2,0.3,1\n")
    res = cli("run", tmp_path / "new.duckdb", "--returns", panel, "--chars", "size", "--name", "x", "-q")
    assert res.code == 0 and (tmp_path / "new.duckdb").exists(), res.err  # file inputs: a new database
