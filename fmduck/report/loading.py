"""Reading stored runs for a report or an export: the one place that opens the results database.

Everything a report shows comes from the result tables (``fmduck.store.load_run``), never from
memory of a run. The long first pass is not read: :func:`load_for_report` pairs each run with a
:class:`fmduck.report.assets.FirstPass` that asks the results engine for the per-asset and
per-period aggregates in SQL (:mod:`fmduck.store_aggregates`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fmduck.errors import FmduckError, SpecError
from fmduck.report.assets import FirstPass
from fmduck.results import FamaMacBethResults


def open_results(database: Any) -> Any:
    """The engine of the results database: a DuckDB file (opened read-only), a ``postgresql://`` URL
    or an engine (any engine the store reads)."""
    from fmduck.engines import is_postgres_url, open_engine

    if isinstance(database, (str, Path)) and not is_postgres_url(str(database)):
        path = Path(database)
        if not path.exists():
            raise FmduckError(f"database file {path} does not exist; check the path")
        if path.is_dir():
            raise FmduckError(f"{path} is a folder, not a DuckDB database file")
        database = str(path)
    return open_engine(database, read_only=True)


def _check_names(names: list[str]) -> None:
    if not names:
        raise SpecError("give at least one run")
    if len(set(names)) != len(names):
        raise SpecError(f"a run is named twice: {', '.join(names)}")


def load_runs(database: Any, names: list[str], schema: str = "fmduck") -> list[FamaMacBethResults]:
    """Read the named runs from the result tables of ``database`` (see :func:`open_results`)."""
    from fmduck import store

    engine = open_results(database)
    _check_names(names)
    return [store.load_run(engine, name, schema) for name in names]


def load_for_report(database: Any, names: list[str], schema: str = "fmduck"
                    ) -> tuple[list[FamaMacBethResults], list[FirstPass]]:
    """The named runs and, for each, its first pass as SQL aggregates on the results engine (DuckDB,
    PostgreSQL; on another engine the first pass is read and aggregated in Python, as before)."""
    from fmduck import store
    from fmduck.store_aggregates import DIALECTS, StoredFirstPass

    engine = open_results(database)
    _check_names(names)
    runs = [store.load_run(engine, name, schema) for name in names]
    in_sql = engine.dialect in DIALECTS
    return runs, [FirstPass(run, StoredFirstPass(engine, run.name, schema) if in_sql else None) for run in runs]
