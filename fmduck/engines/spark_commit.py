"""What a Spark "transaction" writes, and how (Spark has no multi-statement transactions and its Parquet
tables no ``DELETE``). :class:`Staged` collects a transaction's deletes and inserts — polars frames
(per-run tables) and ``INSERT ... SELECT`` statements (the first pass, copied from the cached pass-1
view on the executors) — and :func:`commit` applies them:

- Each touched table's file listing is refreshed first (rows other sessions wrote are seen), then
  the run name is checked: a staged ``runs`` row whose name is already stored (and not being
  replaced) is refused with :class:`RunExistsError`. Spark has no lock or UNIQUE constraint, so this is
  as far as Spark allows: two writers of one new name that commit within the same moment can both
  succeed (the window is the few seconds between this check and the ``runs`` insert).
- A new run (no deletes): one ``INSERT`` per results table, the ``runs`` row last. Each insert is
  atomic on its own (a Spark job commit: a reader sees all of its rows or none). The ``runs`` row is
  the commit marker: ``list_runs``/``load_run`` find a run through it, so a run is never visible
  before all of its rows are. If an insert fails, the rows already appended are removed again
  (those tables rebuilt without this run id, as below) before the error is raised.
- A replaced run (deletes): each touched table ``T`` is rebuilt as ``T__fmduck_stage`` (kept rows +
  new rows). Only when every stage table is written does the swap start: ``T`` -> ``T__fmduck_old``,
  stage -> ``T`` for every table, then the old tables are dropped. A failure while writing (the slow
  part) leaves the results exactly as they were; readers see the old or the new version of each
  table, never a partial table. The swap itself is a sequence of catalog renames: in those
  milliseconds a reader may see a mix of old and new tables, and a crash inside it leaves
  ``T__fmduck_old`` tables to restore from (the next commit refuses to run until they are gone).
  A replacement rewrites the touched tables (cost: their size).

What is not achieved is cross-table isolation for concurrent readers during a commit, or a rollback
that survives the driver being killed mid-commit (orphan rows then carry a ``run_id`` that ``runs``
does not list).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from fmduck import templates
from fmduck.errors import FmduckError, RunExistsError

STAGE, OLD = "__fmduck_stage", "__fmduck_old"
# the target of a staged INSERT as sqlglot writes it for Spark: `db`.`t` (backticks doubled inside)
_PART = r"(?:`(?:[^`]|``)*`|[A-Za-z_][A-Za-z0-9_]*)"
_INSERT = re.compile(rf"^\s*INSERT\s+INTO\s+({_PART}(?:\.{_PART})*)", re.IGNORECASE)


@dataclass
class Staged:
    """A transaction's writes per table (Spark table names, backtick-quoted)."""

    frames: dict[str, list[pl.DataFrame]] = field(default_factory=dict)
    statements: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    deletes: dict[str, set[str]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def _touch(self, table: str) -> None:
        if table not in self.order:
            self.order.append(table)

    def add_frame(self, table_sql: str, frame: pl.DataFrame) -> None:
        table = canonical(templates.table_in("spark", table_sql))
        self._touch(table)
        if frame.height:
            self.frames.setdefault(table, []).append(frame)

    def add_sql(self, statement: str, params: dict[str, Any]) -> None:
        """An ``INSERT INTO t ... SELECT`` statement in Spark SQL, with its bound values."""
        match = _INSERT.match(statement)
        if match is None:
            raise FmduckError(f"the Spark engine stages INSERT INTO statements only, got: {statement[:80]}")
        table = canonical(match.group(1))
        self._touch(table)
        self.statements.setdefault(table, []).append((statement, params))

    def delete(self, table_sql: str, run_name: str) -> None:
        table = canonical(templates.table_in("spark", table_sql))
        self._touch(table)
        self.deletes.setdefault(table, set()).add(run_name)

    def has_rows(self, table: str) -> bool:
        return bool(self.frames.get(table) or self.statements.get(table))

    def run_ids(self, tables: list[str]) -> set[str]:
        ids = {v for t in tables for f in self.frames.get(t, []) if "run_id" in f.columns
               for v in f["run_id"].to_list()}
        ids |= {p["run_id"] for t in tables for _, p in self.statements.get(t, []) if "run_id" in p}
        return ids


def commit(engine: Any, staged: Staged) -> None:
    """Apply ``staged`` through ``engine`` (a :class:`fmduck.engines.spark.SparkEngine`)."""
    tables = [t for t in staged.order if staged.has_rows(t) or staged.deletes.get(t)]
    for table in tables:
        if _exists(engine, suffixed(table, OLD)):
            raise FmduckError(f"{table}{OLD} exists: an earlier commit was interrupted during its swap; restore "
                              f"{table} from it (or drop it) before writing again")
        if _exists(engine, table):  # see the rows other sessions wrote since this one listed the table's files
            engine.spark.catalog.refreshTable(table)
    _check_run_names(engine, staged)
    if any(staged.deletes.get(t) for t in tables):
        # a table with no new rows and none of the deleted runs' rows needs no rewrite
        tables = [t for t in tables if staged.has_rows(t) or _holds(engine, t, "run_name", staged.deletes[t])]
        rebuild_and_swap(engine, tables, "run_name", staged.deletes, staged)
    else:
        _append(engine, tables, staged)


def _check_run_names(engine: Any, staged: Staged) -> None:
    for table, frames in staged.frames.items():
        if _last(table) != "runs":
            continue
        names = {n for f in frames for n in f["run_name"].to_list()} - staged.deletes.get(table, set())
        if not names or not _exists(engine, table):
            continue
        if _holds(engine, table, "run_name", names):
            raise RunExistsError(f"run {min(names)!r} was stored by another writer while this one ran; "
                                 "choose another name or replace it (--replace / replace=True)")


def _append(engine: Any, tables: list[str], staged: Staged) -> None:
    """No deletes: one INSERT per table (each atomic: a Spark job commit), the ``runs`` row last."""
    ordered = sorted(tables, key=lambda t: _last(t) == "runs")
    done: list[str] = []
    try:
        for k, table in enumerate(ordered):
            if staged.frames.get(table):
                view = _stage_rows(engine, k, staged.frames[table])
                try:
                    engine.sql(f"INSERT INTO {table} {_select_as(engine, table, view)}").collect()
                finally:
                    engine.drop_upload(view)
            done.append(table)
            for statement, params in staged.statements.get(table, []):
                engine.sql(statement, params).collect()
    except BaseException:
        # roll back: rebuild the tables already appended to without this commit's run ids
        run_ids = staged.run_ids(done)
        if done and run_ids:
            rebuild_and_swap(engine, done, "run_id", {t: run_ids for t in done}, Staged())
        raise


def rebuild_and_swap(engine: Any, tables: list[str], column: str, deletes: dict[str, set[str]],
                     staged: Staged) -> None:
    """Each table rebuilt as ``T__fmduck_stage`` (kept + new rows); then renames swap them in."""
    built: list[str] = []
    try:
        for k, table in enumerate(tables):
            _build_stage(engine, k, table, column, sorted(deletes.get(table, ())), staged)
            built.append(table)
    except BaseException:
        for table in built:
            engine.sql(f"DROP TABLE IF EXISTS {suffixed(table, STAGE)}").collect()
        raise
    for table in tables:  # the swap: catalog renames only
        engine.sql(f"ALTER TABLE {table} RENAME TO {suffixed(table, OLD)}").collect()
        engine.sql(f"ALTER TABLE {suffixed(table, STAGE)} RENAME TO {table}").collect()
    for table in tables:
        engine.sql(f"DROP TABLE {suffixed(table, OLD)}").collect()


def _build_stage(engine: Any, k: int, table: str, column: str, deleted: list[str], staged: Staged) -> None:
    stage = suffixed(table, STAGE)
    engine.sql(f"DROP TABLE IF EXISTS {stage}").collect()
    kept = f"SELECT * FROM {table}"
    params: dict[str, Any] = {}
    if deleted:
        markers = ", ".join(f":value_{i}" for i in range(len(deleted)))
        kept += f" WHERE `{column}` NOT IN ({markers})"
        params = {f"value_{i}": v for i, v in enumerate(deleted)}
    frames = staged.frames.get(table)
    view = _stage_rows(engine, k, frames) if frames else None
    parts = [kept] + ([_select_as(engine, table, view)] if view else [])
    try:
        engine.sql(f"CREATE TABLE {stage} AS {' UNION ALL '.join(parts)}", params).collect()
    finally:
        if view:
            engine.drop_upload(view)
    for statement, values in staged.statements.get(table, []):
        retargeted = _INSERT.sub(lambda m: m.group(0)[: m.start(1) - m.start(0)] + stage, statement, count=1)
        engine.sql(retargeted, values).collect()


def _holds(engine: Any, table: str, column: str, values: set[str]) -> bool:
    markers = ", ".join(f":value_{i}" for i in range(len(values)))
    sql = f"SELECT 1 AS hit FROM {table} WHERE `{column}` IN ({markers}) LIMIT 1"
    return bool(engine.sql(sql, {f"value_{i}": v for i, v in enumerate(sorted(values))}).take(1))


def _stage_rows(engine: Any, k: int, frames: list[pl.DataFrame]) -> str:
    view = f"fmduck_stage_rows_{k}"
    engine.upload(view, pl.concat(frames, how="diagonal_relaxed"))
    return view


def _select_as(engine: Any, table: str, view: str) -> str:
    """SELECT the view's rows in the table's column order and types (absent columns NULL)."""
    present = set(engine.fields(view))
    cols = ", ".join(f"CAST({templates.ident(name) if name in present else 'NULL'} AS {kind}) "
                     f"AS {templates.ident(name)}"
                     for name, kind in engine.fields(table).items())
    return engine.tx(f"SELECT {cols} FROM {templates.ident(view)}")


def _exists(engine: Any, table: str) -> bool:
    return bool(engine.spark.catalog.tableExists(table))


def canonical(table: str) -> str:
    """A Spark table name with every part in backticks (```db`.t`` and ```db`.`t``` are one table)."""
    parts = re.findall(_PART, table)
    return ".".join("`" + (p[1:-1].replace("``", "`") if p.startswith("`") else p).replace("`", "``") + "`"
                    for p in parts)


def _last(table: str) -> str:
    """The unquoted last part of a Spark table name."""
    match = re.search(rf"({_PART})$", table)
    part = match.group(1) if match else table
    return part[1:-1].replace("``", "`") if part.startswith("`") else part


def suffixed(table: str, suffix: str) -> str:
    """```db`.`t``` -> ```db`.`t__suffix``` (Spark quoting)."""
    head = table[: len(table) - len(re.search(rf"({_PART})$", table).group(1))]
    return head + "`" + (_last(table) + suffix).replace("`", "``") + "`"
