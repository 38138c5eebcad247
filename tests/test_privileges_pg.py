"""PostgreSQL roles without the rights to read or write the results (issue 14), through the CLI.

- No privilege on fmduck.runs: ``fmduck show`` says "permission denied", never "stored runs: none".
- A read-only role is refused before pass 1 with the hint to use ``--results``. Measured on the server:
  the role's sessions log every statement (``ALTER ROLE ... SET log_statement = 'all'``) and the log of
  the refused run holds the write probe but no statement that reads the panel and no temporary table.
- A role that may read, insert and delete rows of an existing results schema (but not create in it)
  stores runs: no DDL runs when every results table exists.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb
import pytest

from hardening_cases import CLEAN, Case, assert_refused, cli, oracle, stored_estimates, write_postgres

CASE = Case(names={**CLEAN, "schema": "public"})


@pytest.fixture
def server(pg_server, pg_url):
    """The test database with the panel and one stored run; ``role(grants)`` makes a login role."""
    import psycopg

    write_postgres(pg_url, CASE)
    assert cli("run", pg_url, *CASE.run_args("stored"), "-q").code == 0
    db = pg_url.rsplit("/", 1)[1]
    admin = psycopg.connect(pg_url, autocommit=True)

    def role(*grants: str, log: bool = False) -> str:
        name = f"r_{uuid.uuid4().hex[:8]}"
        admin.execute(f'CREATE ROLE "{name}" LOGIN')
        admin.execute(f'GRANT CONNECT ON DATABASE "{db}" TO "{name}"')
        for grant in grants:
            admin.execute(grant.format(role=f'"{name}"'))
        if log:
            admin.execute(f"ALTER ROLE \"{name}\" SET log_statement = 'all'")
        return pg_server.url(db, user=name)

    yield role, admin
    admin.close()


def test_show_without_privileges_says_permission_denied(server):
    role, _ = server
    url = role()  # nothing on schema fmduck
    for argv in (["show", url], ["show", url, "stored"],
                 ["report", url, "stored", "-o", "/dev/null", "--format", "txt"]):
        res = cli(*argv)
        assert_refused(res, "permission denied")
        assert "stored runs: none" not in res.text and "no run named" not in res.text
    url = role("GRANT USAGE ON SCHEMA fmduck TO {role}")  # the schema but not its tables
    res = cli("show", url)
    assert_refused(res, "permission denied for table runs", "SELECT")
    assert "stored runs: none" not in res.text
    url = role("GRANT USAGE ON SCHEMA fmduck TO {role}", "GRANT SELECT ON ALL TABLES IN SCHEMA fmduck TO {role}")
    res = cli("show", url)
    assert res.code == 0 and "stored" in res.out


def test_a_read_only_role_is_refused_before_pass_one(server, pg_url, tmp_path):
    role, admin = server
    url = role("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}", log=True)
    log = Path(admin.execute("SHOW data_directory").fetchone()[0]).parent / "server.log"
    start = log.stat().st_size
    res = cli("run", url, *CASE.run_args("ro"))  # progress on
    assert_refused(res, "permission denied", "--results")
    assert "[" not in res.err.split("fmduck: error:")[0], res.err  # no progress line: nothing ran
    with log.open("rb") as f:
        f.seek(start)
        tail = f.read().decode(errors="replace")
    statements = [line for line in tail.splitlines() if "statement:" in line]
    assert any("fmduck" in line for line in statements), tail  # the write probe was logged ...
    assert not any('"panel"' in line or "TEMPORARY" in line.upper() for line in statements), tail  # ... no read
    # the same role with the results written elsewhere
    local = tmp_path / "local.duckdb"
    res = cli("run", url, *CASE.run_args("ro"), "--results", local, "-q")
    assert res.code == 0, res.text
    with duckdb.connect(str(local), read_only=True) as con:
        got = stored_estimates(con, "fmduck", "ro", CASE)
    for term, (estimate, se) in oracle().items():
        assert got[(term, "fm")] == pytest.approx((estimate, se), rel=1e-9)


def test_a_role_with_row_privileges_writes_into_an_existing_schema(server, pg_url):
    import psycopg

    role, _ = server
    base = ["GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}", "GRANT USAGE ON SCHEMA fmduck TO {role}"]
    url = role(*base, "GRANT SELECT, INSERT, DELETE ON ALL TABLES IN SCHEMA fmduck TO {role}")
    res = cli("run", url, *CASE.run_args("mine"), "-q")
    assert res.code == 0, res.text
    res = cli("run", url, *CASE.run_args("mine"), "--replace", "-q")
    assert res.code == 0, res.text
    with psycopg.connect(pg_url) as con:
        assert con.execute("SELECT COUNT(*) FROM fmduck.runs WHERE run_name = 'mine'").fetchone()[0] == 1
        got = stored_estimates(con, "fmduck", "mine", CASE)
    assert got == stored_estimates(psycopg.connect(pg_url), "fmduck", "stored", CASE)
    # no DELETE: a replace is refused before pass 1
    url = role(*base, "GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA fmduck TO {role}")
    res = cli("run", url, *CASE.run_args("mine"), "--replace")
    assert_refused(res, "permission denied")
    assert "[" not in res.err.split("fmduck: error:")[0], res.err
