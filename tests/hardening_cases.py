"""Shared pieces of the hardening tests (issue 14): one seeded panel under any names, the CLI entry point
called in-process or as a process, and the oracle the renamed runs are checked against.

The panel is ``oracles.synthetic_panel`` scaled to decimal returns (12 assets, 36 periods, factors mkt
and smb, characteristic size). Every renamed run (hostile table, schema, column and asset names) must
give the estimates of the clean-named run, and the clean-named run those of the numpy oracle
(``oracles.pass1_full`` → ``pass2`` → FM means and SEs), so a name that changes a number is caught.
Tables are created with each client's own quoting (``"..."`` with doubled quotes in DuckDB,
``psycopg.sql.Identifier`` in PostgreSQL), never with fmduck's.
"""

from __future__ import annotations

import contextlib
import gc
import io
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

import oracles

ROOT = Path(__file__).resolve().parent.parent
CLEAN = {"schema": "main", "panel": "panel", "factors": "factors", "asset": "asset", "period": "period",
         "ret": "ret", "size": "size", "mkt": "mkt", "smb": "smb"}
TERMS = ("const", "mkt", "smb", "size")  # the run's terms in order: intercept, factor betas, characteristic


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def cli(*args: object) -> Result:
    """``fmduck.cli.main`` in this process (stdout and stderr captured); engines it left open are collected
    so the next command may open the same DuckDB file with other settings."""
    from fmduck.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse errors
            code = exc.code if isinstance(exc.code, int) else 2
    gc.collect()
    return Result(code, out.getvalue(), err.getvalue())


def process(*args: object, cwd: Path | None = None, timeout: float = 120) -> Result:
    """``python -m fmduck ARGS`` as a process of its own."""
    done = subprocess.run([sys.executable, "-m", "fmduck", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env())
    return Result(done.returncode, done.stdout, done.stderr)


def env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def assert_refused(res: Result, *fragments: str) -> None:
    """Exit 2, one ``fmduck: error:`` line naming the fragments, no traceback."""
    assert res.code == 2, res.text
    assert "Traceback" not in res.text, res.text
    errors = [line for line in res.err.splitlines() if line.startswith("fmduck: error:") or "error:" in line]
    assert errors, res.err
    for fragment in fragments:
        assert fragment in res.err, f"{fragment!r} not in {res.err!r}"


# ====================================================================== data
@dataclass
class Case:
    """A panel, its factors, and the names they are stored under (keys of CLEAN)."""

    names: dict[str, str] = field(default_factory=lambda: dict(CLEAN))
    assets: dict[str, str] | None = None  # clean asset id -> stored asset id

    def frames(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        panel, factors = data()
        n = self.names
        if self.assets:
            panel = panel.with_columns(pl.col("asset").replace_strict(self.assets))
        return (panel.rename({"asset": n["asset"], "period": n["period"], "ret": n["ret"], "size": n["size"]}),
                factors.rename({"period": n["period"], "mkt": n["mkt"], "smb": n["smb"]}))

    def table(self, key: str) -> str:
        """The --returns / --factors text: the quoted, schema-qualified name."""
        return f"{quote(self.names['schema'])}.{quote(self.names[key])}"

    def run_args(self, name: str, *extra: object) -> list[str]:
        n = self.names
        return ["--returns=" + self.table("panel"), "--factors=" + self.table("factors"), "--asset=" + n["asset"],
                "--period=" + n["period"], "--ret=" + n["ret"], "--chars=" + n["size"],
                "--factor-cols=" + n["mkt"] + "," + n["smb"], "--name=" + name, "--nw-lags=2", "--threads=1",
                *map(str, extra)]

    def term(self, clean: str) -> str:
        return "const" if clean == "const" else self.names[clean]


def data() -> tuple[pl.DataFrame, pl.DataFrame]:
    panel, factors = oracles.synthetic_panel(seed=14, n_assets=12, n_periods=36, chars=("size",))
    panel = panel.with_columns(pl.col("ret") / 100)
    factors = factors.with_columns(pl.col("mkt") / 100, pl.col("smb") / 100)
    return panel, factors


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def write_duckdb(path: Path, case: Case) -> None:
    import duckdb

    panel, factors = case.frames()
    con = duckdb.connect(str(path))
    try:
        schema = case.names["schema"]
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        for key, frame in (("panel", panel), ("factors", factors)):
            con.register("fmduck_test_frame", frame.to_arrow())
            con.execute(f"CREATE OR REPLACE TABLE {case.table(key)} AS SELECT * FROM fmduck_test_frame")
            con.unregister("fmduck_test_frame")
    finally:
        con.close()


def write_postgres(url: str, case: Case) -> None:
    import psycopg
    from psycopg import sql

    panel, factors = case.frames()
    types = {pl.Utf8: "text", pl.Int64: "bigint", pl.Float64: "double precision"}
    with psycopg.connect(url, autocommit=True) as con:
        schema = sql.Identifier(case.names["schema"])
        con.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        for key, frame in (("panel", panel), ("factors", factors)):
            table = sql.Identifier(case.names["schema"], case.names[key])
            cols = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(types[frame.schema[c]]))
                                      for c in frame.columns)
            con.execute(sql.SQL("CREATE TABLE {} ({})").format(table, cols))
            with con.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(table)) as copy:
                for row in frame.iter_rows():
                    copy.write_row(row)


# ====================================================================== numbers
def oracle() -> dict[str, tuple[float, float]]:
    """term -> (FM estimate, FM standard error) from the numpy oracle on the clean panel."""
    panel, factors = data()
    fits = oracles.pass1_full(panel, factors, ["mkt", "smb"], ols=oracles.ols_numpy)
    lam = oracles.pass2(panel, factors, betas=oracles.betas_from(fits), factor_cols=["mkt", "smb"], chars=["size"])
    matrix = np.array([f["params"] for _, f in lam.values()])
    return {t: (float(matrix[:, j].mean()), float(oracles.fm_se(matrix)[j])) for j, t in enumerate(TERMS)}


def stored_estimates(con, schema: str, run: str, case: Case) -> dict[tuple[str, str], tuple[float, float]]:
    """(clean term, se_type) -> (estimate, std_error) of a stored run (``con``: a DuckDB connection or a
    psycopg connection), the run's own term names mapped back to the clean ones."""
    back = {case.term(t): t for t in TERMS}
    if type(con).__module__.startswith("psycopg"):
        from psycopg import sql

        # no parameters: psycopg would read the % of an identifier such as "r$ %" as a placeholder
        query = sql.SQL("SELECT term, se_type, estimate, std_error FROM {} WHERE run_name = {}").format(
            sql.Identifier(schema, "estimates"), sql.Literal(run))
        rows = con.execute(query).fetchall()
    else:
        rows = con.execute(f"SELECT term, se_type, estimate, std_error FROM {quote(schema)}.estimates "
                           "WHERE run_name = ?", [run]).fetchall()
    return {(back[t], se): (e, s) for t, se, e, s in rows}


def assert_same_numbers(got: dict, want: dict, rtol: float = 1e-10) -> None:
    assert got.keys() == want.keys(), (sorted(got), sorted(want))
    keys = sorted(want)
    np.testing.assert_allclose([got[k] for k in keys], [want[k] for k in keys], rtol=rtol, atol=1e-14)
