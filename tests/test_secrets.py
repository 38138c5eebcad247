"""Passwords never leave fmduck (issue 14), through the real CLI entry point.

Every credential form — a URL's userinfo (also with an unencoded ``@``, a space, a bad percent code), a
``password=`` query parameter, libpq keyword strings (quoted or not) — given to every command that opens
a database: against a closed port (the connection error), against the test server with a wrong password
(the authentication error), and with the right password for whole runs (progress lines, summaries,
stored rows, report and export files). The oracle is a plain substring search for the secret, and for
each piece of it a driver could quote (the text on either side of an ``@``).
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from urllib.parse import quote as urlquote

import pytest

from hardening_cases import CLEAN, Case, assert_refused, cli, oracle, stored_estimates, write_postgres

SECRET = "SECRETzq"  # every password below contains it; no output may


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def forms(port: int) -> list[str]:
    return [
        f"postgresql://u@127.0.0.1:{port}/db?password={SECRET}",
        f"postgresql://u@127.0.0.1:{port}/db?sslmode=disable&password={SECRET}&connect_timeout=3",
        f"postgresql://u:{SECRET}@127.0.0.1:{port}/db",
        f"postgres://u:{SECRET}@127.0.0.1:{port}/db",
        f"postgresql://u:{SECRET}a@{SECRET}b@127.0.0.1:{port}/db",  # '@' not encoded: the driver splits it
        f"postgresql://u:{SECRET}%40x@127.0.0.1:{port}/db",
        f"postgresql://u:{SECRET}%zz@127.0.0.1:{port}/db",  # the driver quotes the bad token
        f"postgresql://u:{SECRET} x@127.0.0.1:{port}/db",  # the driver quotes the text with a space
        f"postgresql://u:ab/{SECRET}@127.0.0.1:{port}/db",
        f"host=127.0.0.1 port={port} user=u password={SECRET} dbname=db",
        f"host=127.0.0.1 port={port} user=u password='{SECRET} x' dbname=db",
        f"host=127.0.0.1 port={port} password = '{SECRET}",  # unterminated quote
        f"dbname=db password={SECRET} host=127.0.0.1 port={port}",
    ]


def commands(db: str, tmp: Path) -> list[list[str]]:
    spec = ["--returns", "panel", "--chars", "size", "--name", "r"]
    return [
        ["run", db, *spec], ["run", db, *spec, "--engine", "postgres"], ["show", db], ["show", db, "r"],
        ["sql", db, *spec], ["report", db, "r", "-o", tmp / "r.html"], ["export", db, "r"],
        ["load", db, tmp / "in.csv", "--table", "t"], ["update", db, "r"], ["delete", db, "r", "--yes"],
        ["compare", db, "r", "s"], ["run", tmp / "src.duckdb", *spec, "--results", db],
    ]


def assert_no_secret(text: str) -> None:
    for piece in (SECRET, SECRET[:6], SECRET[2:]):
        assert piece not in text, text


def test_connection_errors_never_show_a_password(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.csv").write_text("period,x\n1,2\n")
    before = set(tmp_path.iterdir())
    port = closed_port()
    for db in forms(port):
        for argv in commands(db, tmp_path):
            res = cli(*argv)
            assert res.code == 2, (argv, res.text)
            assert "Traceback" not in res.text
            assert_no_secret(res.text)
        assert_no_secret(cli("--debug", *commands(db, tmp_path)[0]).text)
    # a keyword string is a PostgreSQL connection, never a DuckDB file named after the password
    created = {p.name for p in set(tmp_path.iterdir()) - before}
    assert created <= {"src.duckdb"}, created
    assert not any(SECRET in p.name for p in tmp_path.rglob("*"))


def test_an_unencoded_at_gets_the_fix_and_no_piece_of_the_password(tmp_path):
    res = cli("show", f"postgresql://u:{SECRET}a@{SECRET}b@127.0.0.1:{closed_port()}/db")
    assert_refused(res, "percent-encode", "%40")
    assert_no_secret(res.text)


# ---------------------------------------------------------------- the test server
@pytest.fixture
def password_role(pg_server, pg_url):
    """A role that logs in with a password (scram-sha-256 for this role only: the server trusts the rest),
    owner of nothing, allowed to read the panel and create the results schema."""
    import psycopg
    from psycopg import sql

    role = f"pw_{uuid.uuid4().hex[:8]}"
    password = f"P@ss w/rd?#{SECRET}'\\x"
    db = pg_url.rsplit("/", 1)[1]
    write_postgres(pg_url, Case(names={**CLEAN, "schema": "public"}))
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        grant = sql.SQL("GRANT CONNECT, CREATE ON DATABASE {} TO {}")
        con.execute(grant.format(sql.Identifier(db), sql.Identifier(role)))
        con.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role)))
        hba = Path(con.execute("SHOW hba_file").fetchone()[0])
    original = hba.read_text()
    hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + original)
    with pg_server.admin() as con:
        con.execute("SELECT pg_reload_conf()")
    try:
        yield role, password, db
    finally:
        hba.write_text(original)
        with pg_server.admin() as con:
            con.execute("SELECT pg_reload_conf()")


def keyword_string(host: str, port: int, role: str, password: str, db: str) -> str:
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    return f"host={host} port={port} user={role} dbname={db} password='{quoted}'"


def test_wrong_password_is_refused_without_showing_it(pg_server, password_role, tmp_path):
    role, _, db = password_role
    wrong = f"Wr0ng{SECRET}"
    urls = [f"postgresql://{role}:{wrong}@{pg_server.host}:{pg_server.port}/{db}",
            f"postgresql://{role}@{pg_server.host}:{pg_server.port}/{db}?password={wrong}",
            keyword_string(pg_server.host, pg_server.port, role, wrong, db)]
    for url in urls:
        for argv in (["run", url, "--returns", "panel", "--chars", "size", "--name", "w"], ["show", url],
                     ["sql", url, "--returns", "panel", "--chars", "size", "--name", "w"],
                     ["report", url, "w", "-o", tmp_path / "w.html"], ["export", url, "w"]):
            res = cli(*argv)
            assert_refused(res, "password authentication failed")
            assert_no_secret(res.text)


def test_a_whole_session_with_the_right_password_shows_and_stores_none_of_it(pg_server, pg_url, password_role,
                                                                              tmp_path):
    import psycopg

    role, password, db = password_role
    host, port = pg_server.host, pg_server.port
    urls = [f"postgresql://{role}:{urlquote(password, safe='')}@{host}:{port}/{db}",
            f"postgresql://{role}@{host}:{port}/{db}?password={urlquote(password, safe='')}",
            keyword_string(host, port, role, password, db)]
    case = Case(names={**CLEAN, "schema": "public"})
    outputs = []
    for i, url in enumerate(urls):
        name = f"pw{i}"
        steps = [cli("run", url, *case.run_args(name)),  # progress lines on (no -q)
                 cli("show", url), cli("show", url, name),
                 cli("sql", url, *case.run_args(name), "--inline"),
                 cli("report", url, name, "-o", tmp_path / f"{name}.html"),
                 cli("report", url, name, "-o", tmp_path / f"{name}.tex", "--no-plots"),
                 cli("export", url, name, "--format", "json"),
                 cli("update", url, name)]
        for res in steps:
            assert res.code == 0, res.text
            outputs.append(res.text)
        assert "pass 2" in steps[0].err  # the progress lines were there to leak
    for text in outputs:
        assert_no_secret(text)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    with psycopg.connect(pg_url) as con:  # every stored row, as text
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'fmduck'").fetchall()]
        assert "runs" in tables
        for table in tables:
            hits = con.execute(f'SELECT COUNT(*) FROM "fmduck"."{table}" AS x WHERE x::text LIKE %s',
                               [f"%{SECRET}%"]).fetchone()[0]
            assert hits == 0, table
        got = stored_estimates(con, "fmduck", "pw0", case)
    want = oracle()
    for term, (estimate, se) in want.items():
        assert got[(term, "fm")] == pytest.approx((estimate, se), rel=1e-9)
