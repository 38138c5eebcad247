"""Reading stored runs for a report or an export: the one place that opens the results database.

Everything a report shows comes from the result tables (``fmduck.results.load_run``), never from
memory of a run. ``load_runs`` reads whole runs, the long first pass included; the report then
aggregates that with polars (``fmduck.report.assets``). To read less, swap this function for one
that asks the storage for the per-asset and per-period aggregates in SQL.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from fmduck.errors import FmduckError, SpecError
from fmduck.results import FamaMacBethResults, load_run


def load_runs(database: str | Path, names: list[str], schema: str = "fmduck") -> list[FamaMacBethResults]:
    """Read the named runs from the result tables of ``database`` (a DuckDB file, opened read-only)."""
    from fmduck.engine import DuckDBEngine

    path = Path(database)
    if not path.exists():
        raise FmduckError(f"database not found: {path}")
    if path.is_dir():
        raise FmduckError(f"{path} is a folder, not a DuckDB database file")
    if not names:
        raise SpecError("give at least one run")
    if len(set(names)) != len(names):
        raise SpecError(f"a run is named twice: {', '.join(names)}")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise FmduckError(f"cannot open {path} as a DuckDB database: {str(exc).splitlines()[0]}") from exc
    try:
        engine = DuckDBEngine(con)
        return [load_run(engine, name, schema) for name in names]
    finally:
        con.close()
