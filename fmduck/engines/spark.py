"""Spark engine (pyspark): passes 1 and 2 run as Spark SQL on a SparkSession.

- Inputs are catalog tables (``db.table``), Parquet paths (read lazily into a temporary view), Spark
  DataFrames or polars/pandas frames (uploaded). Column types are reported in DuckDB's spelling
  (``double`` -> ``DOUBLE``, ``string`` -> ``VARCHAR``) so ``fmduck.validate`` treats every engine alike.
- Small frames (calendar, betas, λ_t) become temporary views of local data (Arrow).
- Parameters are Spark named parameter markers (``:name``), bound with ``spark.sql(sql, args=...)``.
- Results are tables in the database ``fmduck`` (or the spec's schema) of the session catalog.

Atomicity. Spark has no multi-statement transactions and its Parquet tables no ``DELETE``. Inside
:meth:`SparkEngine.transaction` deletes and inserts are staged and applied at commit:

- A new run (no deletes): one ``INSERT`` per results table, the ``runs`` row last. Each insert is
  atomic on its own (a Spark job commit: a reader sees all of its rows or none). The ``runs`` row is
  the commit marker: ``list_runs``/``load_run`` find a run through it, so a run is never visible
  before all of its rows are. If an insert fails, the rows already appended are removed again
  (those tables rebuilt without this run id, as below) before the error is raised.
- A replaced run (deletes): each touched table ``T`` is rebuilt as ``T__fmduck_stage`` (kept rows
  + new rows). Only when every stage table is written does the swap start: ``T`` ->
  ``T__fmduck_old``, stage -> ``T`` for every table, then the old tables are dropped. A failure
  while writing (the slow part) leaves the results exactly as they were; readers see the old or
  the new version of each table, never a partial table. The swap itself is a sequence of catalog
  renames: in those milliseconds a reader may see a mix of old and new tables, and a crash inside
  it leaves ``T__fmduck_old`` tables to restore from (the next commit refuses to run until they
  are gone). A replacement rewrites the touched tables (cost: their size).

What is not achieved is cross-table isolation for concurrent readers during a commit, or a
rollback that survives the driver being killed mid-commit (orphan rows then carry a ``run_id``
that ``runs`` does not list).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from fmduck import templates
from fmduck.engine import Relation, _first_line, _is_dataframe, _split, bind
from fmduck.engines import missing_driver
from fmduck.errors import FmduckError, InputError

try:
    from pyspark.errors import AnalysisException
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise missing_driver("pyspark", "spark", _exc) from _exc

# ``:name`` parameter markers (not ``::`` casts, not inside words)
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")
_STAGE, _OLD = "__fmduck_stage", "__fmduck_old"

# Spark simpleString -> DuckDB spelling
_TYPE_NAMES = {
    "tinyint": "TINYINT", "smallint": "SMALLINT", "int": "INTEGER", "bigint": "BIGINT", "float": "FLOAT",
    "double": "DOUBLE", "string": "VARCHAR", "date": "DATE", "timestamp": "TIMESTAMP WITH TIME ZONE",
    "timestamp_ntz": "TIMESTAMP", "boolean": "BOOLEAN",
}


def session(master: str | None = None, warehouse: str | Path | None = None, **conf: str) -> SparkSession:
    """A SparkSession for fmduck: the active one if any, else a new one (UI off, UTC, loopback driver).

    ``warehouse``: a directory holding the results tables (Parquet) and their catalog (a Hive
    metastore in embedded Derby), so runs persist between sessions (the CLI's ``--engine spark DIR``).
    """
    active = SparkSession.getActiveSession()
    if active is not None and warehouse is None and not conf:
        return active
    builder = (
        SparkSession.builder.master(master or os.environ.get("FMDUCK_SPARK_MASTER", "local[*]"))
        .appName("fmduck")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
    )
    if warehouse is not None:
        # a persistent catalog: Hive metastore (embedded Derby) kept inside the warehouse directory
        root = Path(warehouse).resolve()
        root.mkdir(parents=True, exist_ok=True)
        builder = (
            builder.config("spark.sql.warehouse.dir", str(root))
            .config("spark.sql.catalogImplementation", "hive")
            .config("spark.hadoop.javax.jdo.option.ConnectionURL",
                    f"jdbc:derby:;databaseName={root / 'metastore_db'};create=true")
            .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={root}")
        )
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


class SparkEngine:
    """fmduck's view of one SparkSession."""

    dialect = "spark"

    def __init__(self, spark: SparkSession | None = None, *, warehouse: str | Path | None = None,
                 master: str | None = None) -> None:
        self.spark = spark if spark is not None else session(master, warehouse)
        self._views: set[str] = set()
        self._staged: dict[str, list[pl.DataFrame]] | None = None
        self._deletes: dict[str, set[str]] = {}
        self.log: list[str] = []
        """Every statement run, in order (what ``fmduck sql --dialect spark`` prints)."""

    # ---------------------------------------------------------------- inputs
    def relation(self, source: Any, role: str) -> Relation:
        """A catalog table (``db.table``), a Parquet path, a Spark DataFrame or a polars/pandas frame."""
        view = f"fmduck_input_{role}"
        if isinstance(source, SparkDataFrame):
            self._view(view, source)
            sql, label = templates.ident(view), f"{role} Spark DataFrame"
        elif _is_dataframe(source):
            frame = source if isinstance(source, pl.DataFrame) else pl.from_pandas(source)
            self.upload(view, frame)
            sql, label = templates.ident(view), f"{role} DataFrame"
        elif isinstance(source, (str, Path)) and _is_parquet(str(source)):
            path = Path(source)
            if not path.exists():
                raise InputError(f"{role} file not found: {path}")
            try:
                self._view(view, self.spark.read.parquet(str(path.resolve())))
            except AnalysisException as exc:
                raise InputError(f"{role} file {path} cannot be read: {_first_line(exc)}") from exc
            sql, label = templates.ident(view), f"{role} file {path}"
        elif isinstance(source, str):
            if source.lower().endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz")):
                raise InputError(f"{role}: the Spark engine reads Parquet files or tables; convert {source} to Parquet")
            sql, label = templates.table(source), f"table {source}"
        else:
            raise InputError(f"{role}: expected a table name, a Parquet path or a DataFrame, got {type(source).__name__}")
        try:
            schema = self.spark.table(self._spark_name(sql)).schema
        except AnalysisException as exc:
            raise InputError(f"{label} does not exist in the Spark catalog ({_first_line(exc)})") from exc
        return Relation(sql=sql, label=label,
                        columns={f.name: _duckdb_type(f.dataType.simpleString()) for f in schema.fields})

    # ---------------------------------------------------------------- SQL
    def query(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        table = self._sql(sql, params).toArrow()
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        decimals = [c for c, t in frame.schema.items() if isinstance(t, pl.Decimal)]
        return frame.with_columns(pl.col(decimals).cast(pl.Float64)) if decimals else frame

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        for statement in _split(sql):
            self._sql(statement, params).collect()

    def upload(self, name: str, frame: pl.DataFrame) -> None:
        """``frame`` as the temporary view ``name`` (local data, sent once through Arrow).

        Datetimes without a time zone stay zone-less (TIMESTAMP_NTZ), as in DuckDB and PostgreSQL.
        """
        data = self.spark.createDataFrame(frame.to_arrow(compat_level=pl.CompatLevel.oldest()))
        naive = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime) and t.time_zone is None]
        if naive:
            data = data.withColumns({c: data[c].cast("timestamp_ntz") for c in naive})
        self._view(name, data)

    def drop_upload(self, name: str) -> None:
        if name in self._views:
            self.spark.catalog.dropTempView(name)
            self._views.discard(name)

    # ---------------------------------------------------------------- writes
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Stage deletes and inserts; on success rebuild each touched table and swap (see module doc)."""
        if self._staged is not None:
            raise FmduckError("the Spark engine does not nest transactions")
        self._staged, self._deletes = {}, {}
        try:
            yield
            self._commit()
        finally:
            self._staged, self._deletes = None, {}

    def delete_rows(self, table_sql: str, column: str, value: Any) -> None:
        """Delete the rows of ``table_sql`` whose ``column`` equals ``value`` (staged in a transaction)."""
        if column != "run_name":
            raise FmduckError("the Spark engine deletes results by run_name only")
        if self._staged is None:
            with self.transaction():
                self.delete_rows(table_sql, column, value)
            return
        self._deletes.setdefault(table_sql, set()).add(str(value))
        self._staged.setdefault(table_sql, [])

    def insert(self, table_sql: str, frame: pl.DataFrame) -> None:
        """Append ``frame`` to an existing table, matching columns by name (staged in a transaction)."""
        if self._staged is None:
            with self.transaction():
                self.insert(table_sql, frame)
            return
        self._staged.setdefault(table_sql, [])
        if frame.height:
            self._staged[table_sql].append(frame)

    def create_table(self, table_sql: str, frame: pl.DataFrame, *, replace: bool = False) -> None:
        """A new Parquet table from ``frame``; an existing table is refused unless ``replace``."""
        name = "fmduck_create_buffer"
        self.upload(name, frame)
        try:
            if replace:  # Parquet tables cannot CREATE OR REPLACE
                self._sql(self._tx(f"DROP TABLE IF EXISTS {table_sql}")).collect()
            self._sql(self._tx(f"CREATE TABLE {table_sql} AS SELECT * FROM {templates.ident(name)}")).collect()
        except AnalysisException as exc:
            raise InputError(f"cannot create table {table_sql}: {_first_line(exc)} (use --replace to overwrite)") from exc
        finally:
            self.drop_upload(name)

    def close(self) -> None:
        for name in list(self._views):
            self.drop_upload(name)

    # ---------------------------------------------------------------- internals
    def _commit(self) -> None:
        assert self._staged is not None
        tables = [t for t, frames in self._staged.items() if frames or self._deletes.get(t)]
        for table_sql in tables:
            if self._exists(table_sql, _OLD):
                raise FmduckError(
                    f"{table_sql}{_OLD} exists: an earlier commit was interrupted during its swap; "
                    f"restore {table_sql} from it (or drop it) before writing again"
                )
        if any(self._deletes.get(t) for t in tables):
            # a table with no new rows and none of the deleted runs' rows needs no rewrite
            tables = [t for t in tables if self._staged[t] or self._holds(t, "run_name", self._deletes[t])]
            self._rebuild_and_swap(tables, "run_name", self._deletes, self._staged)
        else:
            self._append(tables)

    def _append(self, tables: list[str]) -> None:
        """No deletes: one INSERT per table (each atomic: a Spark job commit), the ``runs`` row last."""
        assert self._staged is not None
        staged = self._staged
        runs = templates.ident("runs")
        ordered = sorted(tables, key=lambda t: t.rpartition(".")[2] == runs)
        done: list[str] = []
        try:
            for k, table_sql in enumerate(ordered):
                view = self._stage_rows(k, table_sql, staged[table_sql])
                try:
                    self._sql(self._tx(f"INSERT INTO {table_sql} {self._select_as(table_sql, view)}")).collect()
                finally:
                    self.drop_upload(view)
                done.append(table_sql)
        except BaseException:
            # roll back: rebuild the tables already appended to without this commit's run ids
            run_ids = {v for t in done for f in staged[t] if "run_id" in f.columns for v in f["run_id"].to_list()}
            if done and run_ids:
                self._rebuild_and_swap(done, "run_id", {t: run_ids for t in done}, {t: [] for t in done})
            raise

    def _rebuild_and_swap(self, tables: list[str], column: str, deletes: dict[str, set[str]],
                          staged: dict[str, list[pl.DataFrame]]) -> None:
        """Each table rebuilt as ``T__fmduck_stage`` (kept + new rows); then renames swap them in."""
        built: list[str] = []
        try:
            for k, table_sql in enumerate(tables):
                self._build_stage(k, table_sql, column, sorted(deletes.get(table_sql, ())), staged[table_sql])
                built.append(table_sql)
        except BaseException:
            for table_sql in built:
                self._sql(self._tx(f"DROP TABLE IF EXISTS {_suffixed(table_sql, _STAGE)}")).collect()
            raise
        for table_sql in tables:  # the swap: catalog renames only
            self._sql(self._tx(f"ALTER TABLE {table_sql} RENAME TO {_suffixed(table_sql, _OLD)}")).collect()
            self._sql(self._tx(f"ALTER TABLE {_suffixed(table_sql, _STAGE)} RENAME TO {table_sql}")).collect()
        for table_sql in tables:
            self._sql(self._tx(f"DROP TABLE {_suffixed(table_sql, _OLD)}")).collect()

    def _build_stage(self, k: int, table_sql: str, column: str, deleted: list[str],
                     frames: list[pl.DataFrame]) -> None:
        stage = _suffixed(table_sql, _STAGE)
        self._sql(self._tx(f"DROP TABLE IF EXISTS {stage}")).collect()
        kept = f"SELECT * FROM {table_sql}"
        params: dict[str, Any] = {}
        if deleted:
            markers = ", ".join(f"$value_{i}" for i in range(len(deleted)))
            kept += f" WHERE {templates.ident(column)} NOT IN ({markers})"
            params = {f"value_{i}": v for i, v in enumerate(deleted)}
        view = self._stage_rows(k, table_sql, frames) if frames else None
        parts = [kept] + ([self._select_as(table_sql, view)] if view else [])
        try:
            self._sql(self._tx(f"CREATE TABLE {stage} AS {' UNION ALL '.join(parts)}"), params).collect()
        finally:
            if view:
                self.drop_upload(view)

    def _holds(self, table_sql: str, column: str, values: set[str]) -> bool:
        markers = ", ".join(f"$value_{i}" for i in range(len(values)))
        sql = self._tx(f"SELECT 1 AS hit FROM {table_sql} WHERE {templates.ident(column)} IN ({markers}) LIMIT 1")
        return bool(self._sql(sql, {f"value_{i}": v for i, v in enumerate(sorted(values))}).take(1))

    def _stage_rows(self, k: int, table_sql: str, frames: list[pl.DataFrame]) -> str:
        view = f"fmduck_stage_rows_{k}"
        self.upload(view, pl.concat(frames, how="diagonal_relaxed"))
        return view

    def _select_as(self, table_sql: str, view: str) -> str:
        """SELECT the view's rows in the table's column order and types (absent columns NULL)."""
        present = set(self.spark.table(view).columns)
        fields = self.spark.table(self._spark_name(table_sql)).schema.fields
        cols = ", ".join(
            f"CAST({templates.ident(f.name) if f.name in present else 'NULL'} AS "
            f"{_duckdb_type(f.dataType.simpleString())}) AS {templates.ident(f.name)}"
            for f in fields
        )
        return f"SELECT {cols} FROM {templates.ident(view)}"

    def _exists(self, table_sql: str, suffix: str) -> bool:
        return bool(self.spark.catalog.tableExists(self._spark_name(_suffixed(table_sql, suffix))))

    def _tx(self, duckdb_sql: str) -> str:
        return templates.transpile(duckdb_sql, self.dialect)

    def _spark_name(self, table_sql: str) -> str:
        """The Spark text of a quoted DuckDB table name (`db`.`t`), for spark.table()."""
        return templates.transpile(f"SELECT * FROM {table_sql}", self.dialect).split("\n")[-1].removeprefix("FROM ")

    def _view(self, name: str, frame: SparkDataFrame) -> None:
        frame.createOrReplaceTempView(name)
        self._views.add(name)

    def _sql(self, sql: str, params: dict[str, Any] | None = None) -> SparkDataFrame:
        self.log.append(sql)
        return self.spark.sql(sql, args=bind(sql, params, _PARAM) or None)


def _suffixed(table_sql: str, suffix: str) -> str:
    """``"db"."t"`` -> ``"db"."t__suffix"`` (DuckDB quoting, as every fmduck table name)."""
    head, _, last = table_sql.rpartition(".")
    quoted = last.startswith('"')
    bare = last[1:-1].replace('""', '"') if quoted else last
    name = templates.ident(bare + suffix)
    return f"{head}.{name}" if head else name


def _duckdb_type(spark_type: str) -> str:
    lower = spark_type.lower()
    if lower in _TYPE_NAMES:
        return _TYPE_NAMES[lower]
    if lower.startswith("decimal"):
        return lower.upper()
    return spark_type.upper()


def _is_parquet(text: str) -> bool:
    return text.lower().endswith(".parquet") or (Path(text).is_dir() and any(Path(text).glob("*.parquet")))
