"""A real, throwaway PostgreSQL 15 server for the tests (nothing mocked).

One server per test session: ``initdb`` + ``pg_ctl`` into a temporary directory, listening on
127.0.0.1 only on a free port (its unix socket in the same directory), trust authentication on
loopback, fsync off; stopped (``pg_ctl stop -m immediate``) at the end of the session even when
tests fail, and at interpreter exit as a last resort.

PostgreSQL refuses to run as root. When the tests run as root (CI), the server runs as the
unprivileged user ``fmduck_pg`` (created with ``useradd --system`` if missing) through ``runuser``;
the data directory is owned by that user. Binaries: ``$FMDUCK_PG_BIN`` or /usr/lib/postgresql/15/bin.

tests/conftest.py imports the fixtures, so every test module shares the one server by naming
``pg_server`` / ``pg_url`` / ``pg`` (importing them into a test module would give that module its own server).
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("FMDUCK_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "fmduck_pg"


@dataclass
class PgServer:
    host: str
    port: int
    superuser: str
    stop: Callable[[], None]

    def url(self, database: str = "postgres", user: str | None = None) -> str:
        return f"postgresql://{user or self.superuser}@{self.host}:{self.port}/{database}"

    def admin(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(self.url(database), autocommit=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                              capture_output=True)
        if made.returncode != 0:  # another xdist worker may have created it meanwhile
            try:
                pwd.getpwnam(PG_USER)
            except KeyError:
                raise RuntimeError(f"cannot create the user {PG_USER}: {made.stderr.decode().strip()}") from None
    return ["runuser", "-u", PG_USER, "--", *cmd]


def start_server() -> PgServer:
    """initdb + pg_ctl start in a new temporary directory; ``server.stop()`` stops it and removes it."""
    root = Path(tempfile.mkdtemp(prefix="fmduck-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        _as_server_user(["true"])  # creates the user if needed
        pw = pwd.getpwnam(PG_USER)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    superuser = "postgres"
    port = _free_port()
    log = root / "server.log"
    subprocess.run(_as_server_user([str(PG_BIN / "initdb"), "-D", str(data), "-U", superuser, "--auth=trust",
                                    "--encoding=UTF8", "--locale=C", "--no-sync"]),
                   check=True, capture_output=True)
    options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
               "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=40")
    stop_cmd = _as_server_user([str(PG_BIN / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w"])
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            subprocess.run(stop_cmd, capture_output=True)
            shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    try:
        subprocess.run(_as_server_user([str(PG_BIN / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w",
                                        "-t", "60", "-o", options]), check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        text = log.read_text() if log.exists() else ""
        stop()
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr.decode()}\n{text}") from exc
    return PgServer("127.0.0.1", port, superuser, stop)


@pytest.fixture(scope="session")
def pg_server():
    """Start PostgreSQL 15 for this session; skip (with the reason) only if the binaries are absent."""
    pytest.importorskip("psycopg")
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN} (set FMDUCK_PG_BIN)")
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server):
    """A fresh database for one test (dropped afterwards); the URL connects as the superuser."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with pg_server.admin() as con:
        con.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.url(name)
    with pg_server.admin() as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg(pg_url):
    """fmduck's PostgreSQL engine on a fresh database (closed afterwards)."""
    pytest.importorskip("psycopg")
    from fmduck.engines.postgres import PostgresEngine

    engine = PostgresEngine(pg_url)
    yield engine
    engine.close()
