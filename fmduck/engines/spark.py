"""Spark engine (pyspark >= 4): every pass runs as Spark SQL on the executors; the driver gets per-period
and per-run tables only.

- Sessions: a local or cluster master (``master``: ``local[2]``, ``spark://host:7077``, ``yarn``; default
  ``$FMDUCK_SPARK_MASTER`` or ``local[*]``) with ``conf`` settings, or Spark Connect (``sc://host:15002``:
  the driver is the Connect server's, this process is a thin client). See :func:`session`.
- Inputs are catalog tables (``db.table``), Parquet paths (read lazily into a temporary view; with
  Spark Connect the path is read by the server), Spark DataFrames or polars/pandas frames (uploaded).
  Column types are reported in DuckDB's spelling (``double`` -> ``DOUBLE``) for ``fmduck.validate``.
- Scratch tables (calendar, profiles, the first pass, pass-2 rows) are temporary views whose rows are
  computed once, eagerly, and kept on the executors (``localCheckpoint``: memory, then disk; see
  :meth:`SparkEngine.create_scratch`); every later statement that names the view scans those rows.
  The regressions themselves are solved inside those statements (``sql/solve.sql.j2``: the one OLS
  algorithm of fmduck/ols.py as column expressions), so pass 1 runs on the executors and its rows never
  reach the driver: the store copies them into ``first_pass_windows`` with ``INSERT ... SELECT`` from
  the stored view.
- Parameters are Spark named parameter markers (``:name``), bound with ``spark.sql(sql, args=...)``.
- Results are tables in the database ``fmduck`` (or the spec's schema) of the session's catalog: any
  Spark session of that catalog (classic or Connect) reads them. Writes are staged and applied at the
  end of :meth:`SparkEngine.transaction` (:mod:`fmduck.engines.spark_commit` says what is atomic).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from fmduck import templates
from fmduck.engine import Relation, bind, first_line, from_pandas, is_dataframe
from fmduck.engines.spark_commit import Staged, commit
from fmduck.errors import FmduckError, InputError, missing_driver

try:
    import pyarrow as pa
    from pyspark.errors import AnalysisException
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession
    from pyspark.sql.pandas.types import to_arrow_schema
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise missing_driver("pyspark", "spark", _exc) from _exc

CONNECT_PREFIX = "sc://"
CATALOG_AS_CONFIGURED = "-"

# Spark simpleString -> DuckDB spelling
_TYPE_NAMES = {
    "tinyint": "TINYINT", "smallint": "SMALLINT", "int": "INTEGER", "bigint": "BIGINT", "float": "FLOAT",
    "double": "DOUBLE", "string": "VARCHAR", "date": "DATE", "timestamp": "TIMESTAMP WITH TIME ZONE",
    "timestamp_ntz": "TIMESTAMP", "boolean": "BOOLEAN", "array<double>": "DOUBLE[]",
}


def parse_conf(conf: Any) -> dict[str, str]:
    """Spark settings from ``["k=v", ...]`` (the ``spark_conf`` option) or a dict."""
    if isinstance(conf, dict):
        return {str(k): str(v) for k, v in conf.items()}
    out = {}
    for item in conf or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise FmduckError(f"--spark-conf {item!r}: expected key=value, e.g. spark.executor.memory=4g")
        out[key.strip()] = value.strip()
    return out


def session(master: str | None = None, warehouse: str | Path | None = None, **conf: str) -> Any:
    """A SparkSession for fmduck.

    ``warehouse``: ``sc://host:port[/;params]`` connects through Spark Connect (``master`` is the server's
    business then); ``-`` uses the catalog and warehouse the cluster configures (spark-defaults.conf,
    a Hive metastore); a directory holds the results tables (Parquet) and their catalog (a Hive
    metastore in embedded Derby inside it), so runs persist between sessions; None: the active session
    if there is one. ``conf``: more settings. fmduck's sessions run in UTC (timestamps as written).
    """
    if isinstance(warehouse, str) and warehouse.startswith(CONNECT_PREFIX):
        return connect_session(warehouse, conf)
    active = SparkSession.getActiveSession()
    if active is not None and warehouse is None and not conf:
        return active
    builder = (
        SparkSession.builder.master(master or os.environ.get("FMDUCK_SPARK_MASTER", "local[*]"))
        .appName("fmduck")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
    )
    if (master or os.environ.get("FMDUCK_SPARK_MASTER", "local")).startswith("local"):
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
    if warehouse is not None and str(warehouse) != CATALOG_AS_CONFIGURED:
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


def connect_session(url: str, conf: dict[str, str] | None = None) -> Any:
    """A Spark Connect session to ``url`` (``sc://host:15002``; token and TLS as URL parameters,
    ``sc://host:443/;token=...;use_ssl=true``). It is the Connect client's own session class, so a
    classic session in the same process (tests, notebooks) does not stand in the way."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    builder = ConnectSession.builder.remote(url)
    for key, value in {"spark.sql.session.timeZone": "UTC", **(conf or {})}.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - grpc / pyspark errors of a server that does not answer
        raise FmduckError(f"cannot reach the Spark Connect server at {url}: {first_line(exc)}") from exc


def is_connect(spark: Any) -> bool:
    return type(spark).__module__.startswith("pyspark.sql.connect")


class SparkEngine:
    """fmduck's view of one SparkSession (classic or Spark Connect)."""

    dialect = "spark"

    def __init__(self, spark: Any = None, *, warehouse: str | Path | None = None, master: str | None = None,
                 conf: Any = None) -> None:
        self.spark = spark if spark is not None else session(master, warehouse, **parse_conf(conf))
        self._views: set[str] = set()
        self._staged: Staged | None = None
        self._scratch: dict[str, SparkDataFrame] = {}
        self.log: list[str] = []
        """Every statement run, in order (what ``fmduck sql --dialect spark`` prints)."""

    @property
    def connect(self) -> bool:
        """True when this process is a Spark Connect client (the driver is elsewhere)."""
        return is_connect(self.spark)

    # ---------------------------------------------------------------- inputs
    def relation(self, source: Any, role: str) -> Relation:
        """A catalog table (``db.table``), a Parquet path, a Spark DataFrame or a polars/pandas frame."""
        view = f"fmduck_input_{role}"
        if isinstance(source, SparkDataFrame):
            self._view(view, source)
            sql, label = templates.ident(view), f"{role} Spark DataFrame"
        elif is_dataframe(source):
            frame = source if isinstance(source, pl.DataFrame) else from_pandas(source)
            self.upload(view, frame)
            sql, label = templates.ident(view), f"{role} DataFrame"
        elif isinstance(source, (str, Path)) and _is_parquet(str(source)):
            path = Path(source)
            if not self.connect and not path.exists():
                raise InputError(f"{role} file not found: {path}")
            try:
                self._view(view, self.spark.read.parquet(str(path.resolve()) if path.exists() else str(source)))
            except AnalysisException as exc:
                raise InputError(f"{role} file {path} cannot be read: {first_line(exc)}") from exc
            sql, label = templates.ident(view), f"{role} file {path}"
        elif isinstance(source, str):
            if source.lower().endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz")):
                raise InputError(f"{role}: the Spark engine reads Parquet files or tables; convert {source} to Parquet")
            sql, label = templates.table(source), f"table {source}"
        else:
            raise InputError(f"{role}: expected a table name, a Parquet path or a DataFrame, "
                             f"got {type(source).__name__}")
        try:
            schema = self.spark.table(self.spark_name(sql)).schema
        except AnalysisException as exc:
            raise InputError(f"{label} does not exist in the Spark catalog ({first_line(exc)})") from exc
        return Relation(sql=sql, label=label,
                        columns={f.name: _duckdb_type(f.dataType.simpleString()) for f in schema.fields})

    # ---------------------------------------------------------------- SQL
    def query(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        """A result that fits the driver (per-period and per-run tables), in one Arrow transfer."""
        return _polars(self.sql(sql, params).toArrow())

    def query_batches(self, sql: str, params: dict[str, Any] | None = None,
                      rows: int = 1 << 17) -> Iterator[pl.DataFrame]:
        """The result of ``sql`` as polars frames of at most ``rows`` rows: ``toLocalIterator`` fetches one
        partition at a time, so the driver holds one partition and one piece, never the result."""
        frame = self.sql(sql, params)
        schema = to_arrow_schema(frame.schema)
        names = frame.columns
        piece: list[dict[str, Any]] = []
        for row in frame.toLocalIterator():
            piece.append(dict(zip(names, row)))
            if len(piece) >= rows:
                yield _polars(pa.Table.from_pylist(piece, schema=schema))
                piece = []
        if piece:
            yield _polars(pa.Table.from_pylist(piece, schema=schema))

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        """Run each statement; inside :meth:`transaction` an ``INSERT`` is staged for the commit."""
        for statement in templates.statements(sql, self.dialect):
            if self._staged is not None and statement.lstrip().upper().startswith("INSERT"):
                self._staged.add_sql(statement, bind(statement, params, self.dialect))
                continue
            self.sql(statement, params).collect()

    def table_columns(self, schema: str, table: str) -> dict[str, str] | None:
        """Column name -> type (DuckDB spelling) of ``schema.table``, or None when there is no such table.

        Looking up ``runs`` (the store does before it reads or writes a run) also refreshes this session's
        cached file listings of the schema's tables: rows another session wrote are then seen."""
        name = self.spark_name(f"{templates.ident(schema)}.{templates.ident(table)}")
        try:
            if not self.spark.catalog.tableExists(name):
                return None
            if table == "runs":
                for other in self.spark.catalog.listTables(self.spark_name(templates.ident(schema))):
                    if other.tableType != "VIEW" and not other.isTemporary:
                        self.spark.catalog.refreshTable(f"{self.spark_name(templates.ident(schema))}."
                                                        f"{self.spark_name(templates.ident(other.name))}")
            return self.fields(name)
        except Exception:  # noqa: BLE001 - no such database, or a catalog that cannot be read: no table
            return None

    def create_scratch(self, name: str, statement: str, params: dict[str, Any] | None = None) -> None:
        """``CREATE OR REPLACE TEMPORARY VIEW name AS query``, materialized now, once, on the executors:
        the query's rows are stored there (``localCheckpoint``: executor memory, spilled to disk) and the
        view reads them. Later statements that name the view scan the stored rows, and their plans hold a
        scan instead of the view's whole plan (with ``CACHE TABLE`` each plan still carried the deep
        solve layers and pass 2's analysis ran out of driver memory)."""
        self.log.append(statement)
        head, _, query = statement.partition(" AS\n")
        if not query or not head.startswith("CREATE OR REPLACE TEMPORARY VIEW"):
            raise FmduckError(f"the Spark engine materializes templates.scratch_table statements, got: {head[:80]}")
        data = self.spark.sql(query, args=bind(statement, params, self.dialect) or None)
        try:
            stored = data.localCheckpoint(eager=True)
        except AnalysisException as exc:
            raise InputError(f"Spark refused a statement: {first_line(exc)}") from exc
        stored.createOrReplaceTempView(_bare(name))
        self._scratch[_bare(name)] = stored

    def drop_scratch(self, name: str) -> None:
        stored = self._scratch.pop(_bare(name), None)
        self.spark.catalog.dropTempView(_bare(name))
        if stored is not None:
            stored.unpersist()

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
    def transaction(self, *, rollback: bool = False) -> Iterator[None]:
        """Stage deletes and inserts; on success apply them (:func:`fmduck.engines.spark_commit.commit`).
        ``rollback``: a probe: what was staged is dropped (DDL inside it is not undone: Spark's is not
        transactional)."""
        if self._staged is not None:
            raise FmduckError("the Spark engine does not nest transactions")
        self._staged = Staged()
        try:
            yield
            staged, self._staged = self._staged, None
            if not rollback:
                commit(self, staged)
        finally:
            self._staged = None

    def check_writable(self, ddl: Any) -> None:
        """Before pass 1: create the results schema and tables if absent (``ddl``: idempotent, no rows),
        refusing foreign tables. Spark DDL is not transactional, so this is done for real, not probed and
        rolled back: a refused write (no permission on the warehouse or metastore) fails here, before
        any computation. The run name is checked again at commit."""
        try:
            ddl()
        except FmduckError:
            raise
        except Exception as exc:  # noqa: BLE001 - the catalog's own message, first line
            raise InputError(f"cannot write results to the Spark catalog: {first_line(exc)}; write them elsewhere "
                             "(--results results.duckdb)") from exc

    def delete_rows(self, table_sql: str, column: str, value: Any) -> None:
        """Delete the rows of ``table_sql`` whose ``column`` equals ``value`` (staged in a transaction)."""
        if column != "run_name":
            raise FmduckError("the Spark engine deletes results by run_name only")
        if self._staged is None:
            with self.transaction():
                self.delete_rows(table_sql, column, value)
            return
        self._staged.delete(table_sql, str(value))

    def insert(self, table_sql: str, frame: pl.DataFrame) -> None:
        """Append ``frame`` to an existing table, matching columns by name (staged in a transaction)."""
        if self._staged is None:
            with self.transaction():
                self.insert(table_sql, frame)
            return
        self._staged.add_frame(table_sql, frame)

    def create_table(self, table_sql: str, frame: pl.DataFrame, *, replace: bool = False) -> None:
        """A new Parquet table from ``frame``; an existing table is refused unless ``replace``."""
        name = "fmduck_create_buffer"
        self.upload(name, frame)
        try:
            if replace:  # Parquet tables cannot CREATE OR REPLACE
                self.sql(self.tx(f"DROP TABLE IF EXISTS {table_sql}")).collect()
            self.sql(self.tx(f"CREATE TABLE {table_sql} AS SELECT * FROM {templates.ident(name)}")).collect()
        except AnalysisException as exc:
            raise InputError(f"cannot create table {table_sql}: {first_line(exc)} "
                             "(use --replace to overwrite)") from exc
        finally:
            self.drop_upload(name)

    def close(self) -> None:
        for name in list(self._views):
            self.drop_upload(name)

    # ---------------------------------------------------------------- for spark_commit
    def sql(self, sql: str, params: dict[str, Any] | None = None) -> SparkDataFrame:
        """One Spark statement with its parameters (logged); lazy until collected."""
        self.log.append(sql)
        return self.spark.sql(sql, args=bind(sql, params, self.dialect) or None)

    def tx(self, duckdb_sql: str) -> str:
        """A statement written in DuckDB SQL, in Spark's."""
        return templates.transpile(duckdb_sql, self.dialect)

    def fields(self, spark_table: str) -> dict[str, str]:
        """Column name -> type (DuckDB spelling) of a table or view named in Spark SQL."""
        return {f.name: _duckdb_type(f.dataType.simpleString()) for f in self.spark.table(spark_table).schema.fields}

    def spark_name(self, table_sql: str) -> str:
        """The Spark text of a quoted DuckDB table name (`db`.`t`), for spark.table()."""
        return templates.table_in(self.dialect, table_sql)

    def _view(self, name: str, frame: SparkDataFrame) -> None:
        frame.createOrReplaceTempView(name)
        self._views.add(name)


def _bare(name: str) -> str:
    """The unquoted name of a scratch table (``"fmduck_x_1"`` -> ``fmduck_x_1``)."""
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _polars(table: pa.Table) -> pl.DataFrame:
    """An Arrow result as polars: decimals as doubles, Spark's zone-aware timestamps (UTC) zone-less as
    fmduck's TIMESTAMP columns are in the other engines."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    fixes = [pl.col(c).cast(pl.Float64) for c, t in frame.schema.items() if isinstance(t, pl.Decimal)]
    fixes += [pl.col(c).dt.convert_time_zone("UTC").dt.replace_time_zone(None)
              for c, t in frame.schema.items() if isinstance(t, pl.Datetime) and t.time_zone]
    return frame.with_columns(fixes) if fixes else frame


def _duckdb_type(spark_type: str) -> str:
    lower = spark_type.lower()
    if lower in _TYPE_NAMES:
        return _TYPE_NAMES[lower]
    if lower.startswith("decimal"):
        return lower.upper()
    return spark_type.upper()


def _is_parquet(text: str) -> bool:
    return text.lower().endswith(".parquet") or (Path(text).is_dir() and any(Path(text).glob("*.parquet")))
