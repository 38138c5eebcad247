"""The plan of a run (fmduck/plan.py): rendered from the catalog alone, the same text for the same spec,
and runnable as printed.

- snapshots: the rendered SQL of three reference specs (full-sample betas, rolling betas,
  characteristics) for DuckDB, PostgreSQL and Spark, stored in tests/snapshots/. A change to a
  template shows here as a diff to review; ``FMDUCK_UPDATE_SNAPSHOTS=1`` rewrites the files;
- ``fmduck sql`` on a 5M-row Parquet panel sends no statement to the engine (only the catalog is read)
  and returns in well under 2 s;
- ``fmduck sql --inline`` prints a script that DuckDB's own client (the ``duckdb`` CLI of the
  duckdb-cli package) and ``psql`` run as printed; the λ_t it leaves in its scratch table equal the
  run's λ_t to 1e-12.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from fmduck import FamaMacBeth, Spec, cli, templates
from fmduck.engine import DuckDBEngine

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
UPDATE = os.environ.get("FMDUCK_UPDATE_SNAPSHOTS") == "1"
DIALECTS = ("duckdb", "postgres", "spark")
SPECS = {
    "full": {"factor_cols": ["mkt", "smb"], "rf": "rf"},
    "rolling": {"factor_cols": ["mkt", "smb"], "rf": "rf", "window": 24, "min_obs": 12},
    "chars": {"chars": ["size", "bm"], "char_lag": 1, "standardize": True},
}
FLAGS = {
    "full": ["--factors", "factors", "--factor-cols", "mkt,smb", "--rf", "rf"],
    "rolling": ["--factors", "factors", "--factor-cols", "mkt,smb", "--rf", "rf", "--window", "24", "--min-obs", "12"],
    "chars": ["--chars", "size,bm", "--char-lag", "1", "--standardize"],
}


def reference_spec(kind: str) -> Spec:
    options = SPECS[kind]
    factors = "factors" if "factor_cols" in options else None
    return Spec(name=f"ref_{kind}", returns="panel", factors=factors, asset="asset", period="period", ret="ret",
                **options)


def panel(seed: int = 3, assets: int = 30, periods: int = 96) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Monthly panel (DATE periods at month ends) with gaps and NULLs, and its factors (rf in them)."""
    rng = np.random.default_rng(seed)
    dates = pl.date_range(date(2000, 1, 1), date(2000 + (periods - 1) // 12, (periods - 1) % 12 + 1, 1), "1mo",
                          eager=True).dt.month_end()
    f = rng.normal(0.005, 0.04, (periods, 2))
    rf = rng.uniform(0.0, 0.004, periods)
    rows = []
    for a in range(assets):
        beta = rng.normal(1.0, 0.3, 2)
        size, bm = rng.normal(0, 1), rng.normal(0, 1)
        for t in range(periods):
            if rng.random() < 0.05:
                continue  # a gap
            size, bm = size + rng.normal(0, 0.1), bm + rng.normal(0, 0.1)
            ret = rf[t] + f[t] @ beta + 0.002 * size + rng.normal(0, 0.03)
            rows.append({"asset": f"a{a:02d}", "period": dates[t], "ret": None if rng.random() < 0.02 else float(ret),
                         "size": float(size), "bm": float(bm)})
    factors = pl.DataFrame({"period": dates, "mkt": f[:, 0], "smb": f[:, 1], "rf": rf})
    return pl.DataFrame(rows), factors


def duckdb_file(path: Path) -> Path:
    """The reference panel in a DuckDB file that the duckdb CLI of duckdb-cli can open (storage v1.5)."""
    returns, factors = panel()
    con = duckdb.connect(str(path), config={"storage_compatibility_version": "v1.5.0"})
    con.register("r", returns.to_arrow())
    con.register("f", factors.to_arrow())
    con.execute("CREATE TABLE panel AS SELECT * FROM r")
    con.execute("CREATE TABLE factors AS SELECT * FROM f")
    con.close()
    return path


@pytest.fixture(scope="module")
def reference_db(tmp_path_factory) -> Path:
    return duckdb_file(tmp_path_factory.mktemp("plan") / "reference.duckdb")


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


# ====================================================================== snapshots
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("kind", list(SPECS))
def test_rendered_sql_matches_snapshot(reference_db: Path, kind: str, dialect: str):
    con = duckdb.connect(str(reference_db), read_only=True)
    text = FamaMacBeth(reference_spec(kind), con).plan(script=True, dialect=dialect).render()
    con.close()
    assert "fmduck_first_pass" in text or kind == "chars"
    path = SNAPSHOTS / f"plan_{kind}_{dialect}.sql"
    if UPDATE or not path.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text)
        if not UPDATE:
            pytest.fail(f"snapshot {path.name} was missing and has been written: review it and commit it")
    expected = path.read_text()
    if text != expected:
        diff = "".join(list(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), str(path.name),
                                                 "rendered now"))[:80])
        pytest.fail(f"the rendered SQL of spec {kind!r} for {dialect} changed (rewrite the snapshots with "
                    f"FMDUCK_UPDATE_SNAPSHOTS=1 once the change is intended):\n{diff}")


def test_rendering_is_deterministic_and_needs_no_rows(tmp_path: Path):
    """The same text from an empty copy of the tables (only their columns and types matter)."""
    empty = tmp_path / "empty.duckdb"
    con = duckdb.connect(str(empty))
    returns, factors = panel()
    con.register("r", returns.head(0).to_arrow())
    con.register("f", factors.head(0).to_arrow())
    con.execute("CREATE TABLE panel AS SELECT * FROM r")
    con.execute("CREATE TABLE factors AS SELECT * FROM f")
    for kind in SPECS:
        text = FamaMacBeth(reference_spec(kind), con).plan(script=True, dialect="postgres").render()
        assert text == (SNAPSHOTS / f"plan_{kind}_postgres.sql").read_text()
    con.close()


# ====================================================================== no scan, fast
@pytest.fixture(scope="module")
def large_parquet(tmp_path_factory) -> tuple[Path, Path]:
    """A 5,000 assets x 1,000 months panel (5M rows) and its factors, as Parquet files."""
    folder = tmp_path_factory.mktemp("large")
    panel_file, factors_file = (templates.literal(str(folder / name)) for name in ("panel.parquet", "factors.parquet"))
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT a AS asset, last_day(DATE '1950-01-01' + INTERVAL (t) MONTH) AS period,
                         random() - 0.5 AS ret, random() AS size, random() AS bm
                         FROM range(5000) r(a), range(1000) s(t)) TO {panel_file}""")
    con.execute(f"""COPY (SELECT last_day(DATE '1950-01-01' + INTERVAL (t) MONTH) AS period, random() AS mkt,
                         random() AS smb, random() / 100 AS rf FROM range(1000) s(t)) TO {factors_file}""")
    assert con.execute(f"SELECT COUNT(*) FROM {panel_file}").fetchall() == [(5_000_000,)]
    con.close()
    return folder / "panel.parquet", folder / "factors.parquet"


@pytest.mark.slow
def test_sql_on_a_large_panel_reads_only_the_catalog(large_parquet, monkeypatch):
    returns, factors = large_parquet
    sent: list[str] = []
    for method in ("query", "query_batches", "execute", "create_scratch"):
        original = getattr(DuckDBEngine, method)

        def recorded(self, sql, *args, _original=original, **kwargs):
            sent.append(str(sql))
            return _original(self, sql, *args, **kwargs)

        monkeypatch.setattr(DuckDBEngine, method, recorded)
    args = ["sql", ":memory:", "--returns", returns, "--factors", factors, "--factor-cols", "mkt,smb", "--rf", "rf",
            "--chars", "size,bm", "--window", "60", "--name", "L", "-q"]
    for inline in ([], ["--inline"]):
        wall, cpu = time.perf_counter(), time.process_time()
        code, out, err = run_cli(*args, *inline)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert code == 0 and err == ""
        assert sent == []  # not one statement: the plan needs only the column names and types
        assert str(returns) in out and "-- pass 2: cross-sectional regressions per period" in out
        assert cpu < 2.0, f"fmduck sql took {cpu:.2f} s of CPU ({wall:.2f} s wall)"


# ====================================================================== the printed script runs as printed
def _duckdb_client() -> list[str] | None:
    """DuckDB's own command-line client (duckdb-cli, installed beside this Python), or None."""
    local = Path(sys.executable).parent / "duckdb"
    found = str(local) if local.exists() else shutil.which("duckdb")
    return [found] if found else None


def _lambdas_read(kind: str) -> str:
    p = len(reference_spec(kind).terms)
    columns = ", ".join(f"e{j}" for j in range(p))
    return f"SELECT pidx, {columns} FROM fmduck_lambdas WHERE ok ORDER BY pidx;"


def _compare(kind: str, script_lambdas: pl.DataFrame, run_lambdas: pl.DataFrame) -> None:
    terms = reference_spec(kind).terms
    assert script_lambdas.height == run_lambdas.height > 20
    assert script_lambdas["pidx"].to_list() == run_lambdas["period_index"].to_list()
    for j, term in enumerate(terms):
        got, want = script_lambdas[f"e{j}"].to_numpy(), run_lambdas[term].to_numpy()
        scale = np.maximum(np.abs(want), 1e-3 * np.max(np.abs(want)))
        assert np.max(np.abs(got - want) / scale) <= 1e-12, term


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(SPECS))
def test_inline_script_runs_in_the_duckdb_client(reference_db: Path, tmp_path: Path, kind: str):
    code, script, err = run_cli("sql", reference_db, "--returns", "panel", *FLAGS[kind], "--name", "s", "--inline",
                                "-q")
    assert code == 0 and err == "", err
    con = duckdb.connect(str(reference_db), read_only=True)
    run = FamaMacBeth(reference_spec(kind), con).fit(write=False).lambdas
    con.close()
    out = tmp_path / "lambdas.csv"
    client = _duckdb_client()
    if client is None:  # no duckdb CLI: the Python client runs the same text (say so in the test's output)
        print("duckdb CLI not found (pip install duckdb-cli): the script runs through the Python client")
        runner = duckdb.connect(str(reference_db), read_only=True)
        runner.execute(script)
        runner.execute(f"COPY ({_lambdas_read(kind)[:-1]}) TO {templates.literal(str(out))} (HEADER)")
        runner.close()
    else:
        tail = f"\n.mode csv\n.headers on\n.output {out}\n{_lambdas_read(kind)}\n.output\n"
        done = subprocess.run([*client, "-readonly", "-bail", str(reference_db)], input=script + tail,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "Error" not in done.stderr, done.stderr[-2000:]
    _compare(kind, pl.read_csv(out), run)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("kind", list(SPECS))
def test_inline_script_runs_in_psql(pg, pg_url: str, tmp_path: Path, kind: str):
    psql = shutil.which("psql") or "/usr/bin/psql"
    if not Path(psql).exists():
        pytest.skip("psql not found")
    returns, factors = panel()
    pg.create_table(templates.table("panel"), returns)
    pg.create_table(templates.table("factors"), factors)
    code, script, err = run_cli("sql", pg_url, "--returns", "panel", *FLAGS[kind], "--name", "s", "--inline", "-q")
    assert code == 0 and err == "", err
    assert "%(" not in script
    run = FamaMacBeth(reference_spec(kind), pg).fit(write=False).lambdas
    out = tmp_path / "lambdas.csv"
    tail = f"\n\\pset format csv\n\\o {out}\n{_lambdas_read(kind)}\n\\o\n"
    done = subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg_url], input=script + tail,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    _compare(kind, pl.read_csv(out), run)
