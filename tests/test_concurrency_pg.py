"""Two ``fmduck run`` processes writing the same run name into one PostgreSQL schema (issue 14).

The race is made deterministic with the writers' own lock: the test holds the engine lock of the run
name (``store.lock_key``) in a transaction of its own, starts both processes, waits until the server
shows both waiting for that lock (``pg_locks``: two advisory locks not granted), then commits. Exactly
one run is stored (one run_id in every table) and the other process exits 2 with the run-exists error
on one line. On a new database the winner also creates the results schema while the loser waits; a
variant holds the schema's lock instead, so two writers of different names race on creating it.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from fmduck import store
from hardening_cases import CLEAN, Case, env, oracle, stored_estimates, write_postgres

CASE = Case(names={**CLEAN, "schema": "public"})


def start(url: str, name: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fmduck", "run", url, *CASE.run_args(name), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())


def race(url: str, key: str, names: tuple[str, str]) -> list[tuple[int, str]]:
    """Both writers started while the test holds ``key``; released once both wait for it."""
    from fmduck.engines.postgres import PostgresEngine

    holder = PostgresEngine(url)
    procs = []
    try:
        with holder.transaction():
            holder.lock(key)
            procs = [start(url, name) for name in names]
            deadline = time.monotonic() + 120
            while True:
                waiting = holder.query("SELECT COUNT(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                if waiting["n"][0] == 2:
                    break
                finished = [p for p in procs if p.poll() is not None]
                assert not finished, [p.communicate() for p in finished]
                assert time.monotonic() < deadline, "the writers never reached the lock"
                time.sleep(0.05)
        return [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        holder.close()


def counts(url: str, table: str, name: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(url) as con:
        return con.execute(f'SELECT COUNT(*), COUNT(DISTINCT run_id) FROM fmduck."{table}" WHERE run_name = %s',
                           [name]).fetchone()


@pytest.mark.parametrize("schema_exists", [False, True], ids=["new database", "schema exists"])
def test_two_writers_of_one_name_store_one_run(pg_url, schema_exists):
    import psycopg

    write_postgres(pg_url, CASE)
    if schema_exists:
        from fmduck.cli import main

        assert main(["run", pg_url, *CASE.run_args("other"), "-q"]) == 0
    results = sorted(race(pg_url, store.lock_key("fmduck", "same"), ("same", "same")))
    (winner, _), (loser, message) = results
    assert (winner, loser) == (0, 2), results
    assert message.strip() == ("fmduck: error: run 'same' already exists in schema 'fmduck'; choose another name "
                               "or replace it (--replace / replace=True)")
    assert counts(pg_url, "runs", "same") == (1, 1)
    n_estimates, ids = counts(pg_url, "estimates", "same")
    assert ids == 1 and n_estimates == 4 * 3  # 4 terms x fm/nw/shanken, not twice
    with psycopg.connect(pg_url) as con:
        got = stored_estimates(con, "fmduck", "same", CASE)
    for term, (estimate, se) in oracle().items():
        assert got[(term, "fm")] == pytest.approx((estimate, se), rel=1e-9)


def test_two_first_writers_create_the_schema_one_after_the_other(pg_url):
    write_postgres(pg_url, CASE)
    results = race(pg_url, store.lock_key("fmduck"), ("one", "two"))
    assert [code for code, _ in results] == [0, 0], results
    assert counts(pg_url, "runs", "one") == (1, 1) and counts(pg_url, "runs", "two") == (1, 1)
