"""Reading stored runs for a report or an export: the one place that opens the results database.

Everything a report shows comes from the result tables (``fmduck.store.load_run``), never from
memory of a run. ``load_runs`` reads whole runs, the long first pass included; the report then
aggregates that with polars (``fmduck.report.assets``). To read less, swap this function for one
that asks the storage for the per-asset and per-period aggregates in SQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fmduck.errors import FmduckError, SpecError
from fmduck.results import FamaMacBethResults


def load_runs(database: Any, names: list[str], schema: str = "fmduck") -> list[FamaMacBethResults]:
    """Read the named runs from the result tables of ``database``: a DuckDB file (opened read-only), a
    ``postgresql://`` URL or an engine (any engine the store reads)."""
    from fmduck import store
    from fmduck.engines import is_postgres_url, open_engine

    if isinstance(database, (str, Path)) and not is_postgres_url(str(database)):
        path = Path(database)
        if not path.exists():
            raise FmduckError(f"database not found: {path}")
        if path.is_dir():
            raise FmduckError(f"{path} is a folder, not a DuckDB database file")
        database = str(path)
    if not names:
        raise SpecError("give at least one run")
    if len(set(names)) != len(names):
        raise SpecError(f"a run is named twice: {', '.join(names)}")
    engine = open_engine(database, read_only=True)
    return [store.load_run(engine, name, schema) for name in names]
