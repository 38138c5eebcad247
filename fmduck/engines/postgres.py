"""PostgreSQL engine (psycopg 3): passes 1 and 2 run as SQL inside the server.

- Inputs are tables or views (``schema.table`` allowed, mixed-case names quoted by sqlglot) or
  DataFrames (uploaded). Column types come from ``pg_attribute`` and are reported in DuckDB's
  spelling (``double precision`` -> ``DOUBLE``, ``numeric(12,4)`` -> ``DECIMAL(12,4)``) so the
  shared checks in ``fmduck.validate`` treat every engine alike.
- Small frames (calendar, betas, λ_t) are uploaded as session-local ``TEMP`` tables with ``COPY``
  (CSV, shortest round-trip float text, so doubles arrive bit for bit) and ``ANALYZE``\\d. A role
  with only ``SELECT`` on the source can run fmduck: temporary tables need the database's
  ``TEMPORARY`` privilege, which PostgreSQL grants to ``PUBLIC`` by default.
- Results go to a schema (default ``fmduck``) in one transaction, or to another engine
  (``FamaMacBeth(..., results=...)``, CLI ``--results local.duckdb``).
- Bound parameters are sent server-side; Python ints are bound as ``bigint`` (a RANGE frame offset
  must have the ORDER BY column's type), floats as ``double precision``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import polars as pl

from fmduck import templates
from fmduck.engine import Relation, bind, first_line, from_pandas, is_dataframe
from fmduck.errors import FmduckError, InputError, missing_driver
from fmduck.secrets import mask, remember, url_hint

try:
    import psycopg
    from psycopg.types.numeric import FloatLoader, Int8
    from psycopg.types.string import TextLoader
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise missing_driver("psycopg", "postgres", _exc) from _exc


# format_type() spelling -> DuckDB spelling (validate.py's numeric and period-type checks read these)
_TYPE_NAMES = {
    "smallint": "SMALLINT",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "real": "FLOAT",
    "double precision": "DOUBLE",
    "numeric": "DECIMAL",
    "text": "VARCHAR",
    "date": "DATE",
    "timestamp without time zone": "TIMESTAMP",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
    "boolean": "BOOLEAN",
}
_TYPE_PREFIXES = (
    ("numeric(", "DECIMAL("),
    ("character varying", "VARCHAR"),
    ("character", "VARCHAR"),
    ("timestamp(", "TIMESTAMP"),
)

# polars dtype -> DuckDB type name of an uploaded column (transpiled to PostgreSQL)
_UPLOAD_TYPES = {
    pl.Int8: "SMALLINT", pl.Int16: "SMALLINT", pl.Int32: "INTEGER", pl.Int64: "BIGINT",
    pl.UInt8: "SMALLINT", pl.UInt16: "INTEGER", pl.UInt32: "BIGINT", pl.UInt64: "DECIMAL(20, 0)",
    pl.Float32: "REAL", pl.Float64: "DOUBLE", pl.Utf8: "VARCHAR", pl.Boolean: "BOOLEAN",
    pl.Date: "DATE", pl.Null: "VARCHAR",
}

# result column OID -> polars dtype (so empty results keep their types)
_OID_DTYPES = {
    16: pl.Boolean, 20: pl.Int64, 21: pl.Int64, 23: pl.Int64, 700: pl.Float64, 701: pl.Float64,
    1700: pl.Float64, 25: pl.Utf8, 1043: pl.Utf8, 1042: pl.Utf8, 19: pl.Utf8, 114: pl.Utf8, 3802: pl.Utf8,
    1082: pl.Date, 1114: pl.Datetime("us"), 1184: pl.Datetime("us", "UTC"),
}

# result types fetched as CSV by COPY (``PostgresEngine.query``): CSV text reads back exactly as these
# (shortest round-trip float text since PostgreSQL 12; quoted "" vs unquoted empty = '' vs NULL)
_COPY_OIDS = {20: pl.Int64, 21: pl.Int64, 23: pl.Int64, 700: pl.Float64, 701: pl.Float64, 1700: pl.Float64,
              25: pl.Utf8, 1043: pl.Utf8}
COPY_FETCH = True


class PostgresEngine:
    """fmduck's view of one PostgreSQL connection (autocommit; explicit transactions for writes)."""

    dialect = "postgres"

    def __init__(self, database: str | Any, *, memory_limit: str | None = None, **connect_options: Any) -> None:
        if isinstance(database, psycopg.Connection):
            self.con = database
            self.url = None
        else:
            self.url = str(database)
            if self.url.lower().startswith("postgresql+psycopg://"):
                self.url = "postgresql://" + self.url.split("://", 1)[1]
            remember(self.url)
            try:
                self.con = psycopg.connect(self.url, autocommit=True, **connect_options)
            except Exception as exc:  # noqa: BLE001 - psycopg.Error, and ValueError from its URL parser
                hint = url_hint(self.url)
                raise FmduckError(mask(f"cannot connect to PostgreSQL at {self.url}: {first_line(exc)}"
                                       + (f"; {hint}" if hint else ""))) from exc
        if memory_limit is not None:
            self.execute(f"SET work_mem = {templates.literal(memory_limit.strip().upper().replace('IB', 'B'))}")
        # numeric -> float (sums and means of integer/numeric columns), json as text (results.load_run parses it)
        self.con.adapters.register_loader("numeric", FloatLoader)
        for name in ("json", "jsonb"):
            self.con.adapters.register_loader(name, TextLoader)
        self._uploads: set[str] = set()
        self.log: list[str] = []
        """Every statement sent to the server, in order (what ``fmduck sql --dialect postgres`` prints)."""

    # ---------------------------------------------------------------- inputs
    def relation(self, source: Any, role: str) -> Relation:
        """A table or view (``schema.table``, any case) or a DataFrame (uploaded as a TEMP table)."""
        if is_dataframe(source):
            name = f"fmduck_input_{role}"
            frame = source if isinstance(source, pl.DataFrame) else from_pandas(source)
            self.upload(name, frame)
            sql, label = templates.ident(name), f"{role} DataFrame"
        elif isinstance(source, str):
            sql, label = templates.table(source), f"table {source}"
        else:
            raise InputError(
                f"{role}: the PostgreSQL engine reads a table or view name or a DataFrame, got {type(source).__name__}"
            )
        # ``sql`` is sqlglot's quoted name ("schema"."Table"); PostgreSQL parses that text the same way.
        try:
            columns = self._fetch(
                "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) "
                "FROM pg_catalog.pg_attribute AS a "
                "WHERE a.attrelid = CAST(%(rel)s AS regclass) AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum",
                {"rel": sql},
            )
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName,
                psycopg.errors.InvalidName) as exc:
            raise InputError(f"{label} does not exist in the database ({first_line(exc)})") from exc
        if not columns:
            raise InputError(f"{label} has no columns")
        return Relation(sql=sql, label=label, columns={name: _duckdb_type(kind) for name, kind in columns})

    # ---------------------------------------------------------------- SQL
    def query(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        """The result of one query. Results whose columns are all numbers or text travel as CSV through
        ``COPY (query) TO STDOUT`` (one stream, parsed by polars: the rolling pass-1 moments of bench's S
        panel, 543k rows × 17 columns, took 10.0 s row by row and 7.4 s so, the query included); any
        other result is fetched row by row."""
        frame = self._query_copy(sql, params) if COPY_FETCH else None
        if frame is not None:
            return frame
        with self._cursor() as cur:
            self._run(cur, sql, params)
            if cur.description is None:
                return pl.DataFrame()
            desc = [(d.name, d.type_code) for d in cur.description]
            rows = cur.fetchall()
        columns = list(zip(*rows)) if rows else [() for _ in desc]
        return pl.DataFrame([
            pl.Series(name, list(values), dtype=_OID_DTYPES.get(oid), strict=False)
            for (name, oid), values in zip(desc, columns)
        ])

    def _query_copy(self, sql: str, params: dict[str, Any] | None) -> pl.DataFrame | None:
        """``query`` through COPY, or None when the result has a column type CSV would not carry exactly
        (dates, booleans, …), a repeated column name, or text polars cannot parse back."""
        if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
            return None
        bound = _bind(sql, params)
        with self._cursor() as cur, _refusals(sql):
            cur.execute(f"SELECT * FROM ({sql}) AS fmduck_result LIMIT 0", bound or None)  # the columns only
            desc = [(d.name, d.type_code) for d in cur.description or []]
            names = [name for name, _ in desc]
            if not desc or len(set(names)) != len(names) or any(oid not in _COPY_OIDS for _, oid in desc):
                return None
            self.log.append(sql)
            chunks = []
            # COPY takes no server-side parameters: psycopg merges the values into the text (as literals
            # of their bound types: bigint for ints, double precision for floats, so nothing is rounded)
            with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)", bound or None) as copy:
                for data in copy:
                    chunks.append(bytes(data))
        schema = {name: _COPY_OIDS[oid] for name, oid in desc}
        if not chunks:
            return pl.DataFrame(schema=schema)
        try:
            return pl.read_csv(b"".join(chunks), has_header=False, new_columns=names, schema=schema)
        except pl.exceptions.PolarsError:
            return None

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        with self._cursor() as cur:
            for statement in templates.statements(sql, self.dialect):
                self._run(cur, statement, params)

    def table_columns(self, schema: str, table: str) -> dict[str, str] | None:
        """Column name -> type of ``schema.table``, or None (never raises: safe inside a transaction). From
        pg_catalog, which every role reads: information_schema hides tables the role has no privilege on,
        and "no such table" must not stand for "permission denied"."""
        rows = self._fetch(
            "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute AS a "
            "JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace AS n ON n.oid = "
            "c.relnamespace WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND a.attnum > 0 AND NOT "
            "a.attisdropped ORDER BY a.attnum", {"schema": schema, "table": table})
        return {name: _duckdb_type(kind) for name, kind in rows} if rows else None

    def create_scratch(self, name: str, statement: str, params: dict[str, Any] | None = None) -> None:
        """A session-local TEMPORARY table from a query, analyzed for the planner of the next queries."""
        self.execute(statement, params)
        self.execute(f"ANALYZE {name}")

    def drop_scratch(self, name: str) -> None:
        self.execute(f"DROP TABLE IF EXISTS {name}")

    def lock(self, key: str) -> None:
        """A transaction-scoped advisory lock on ``key``: writers of one run name wait for each other."""
        self._fetch("SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0))", {"key": key})
    def upload(self, name: str, frame: pl.DataFrame) -> None:
        """``frame`` as the session-local TEMP table ``name`` (replacing an earlier upload)."""
        q = templates.ident(name)
        cols = ", ".join(f"{templates.ident(c)} {_upload_type(frame.schema[c], c)}" for c in frame.columns)
        with self._cursor() as cur:
            if name in self._uploads:
                self._run(cur, templates.transpile(f"DROP TABLE IF EXISTS {q}", self.dialect))
            self._run(cur, templates.transpile(f"CREATE TEMPORARY TABLE {q} ({cols})", self.dialect))
            self._uploads.add(name)
            self._copy(cur, q, frame)
            self._run(cur, f"ANALYZE {q}")

    def drop_upload(self, name: str) -> None:
        if name in self._uploads:
            self.execute(templates.transpile(f"DROP TABLE IF EXISTS {templates.ident(name)}", self.dialect))
            self._uploads.discard(name)

    @contextmanager
    def transaction(self, *, rollback: bool = False) -> Iterator[None]:
        """One transaction; ``rollback``: undo it even on success (a probe of what would be written)."""
        with self.con.transaction(force_rollback=rollback):
            yield

    def insert(self, table_sql: str, frame: pl.DataFrame) -> None:
        """Append ``frame`` to an existing table (``COPY ... FROM STDIN``), matching columns by name."""
        if frame.height == 0:
            return
        with self._cursor() as cur:
            self._copy(cur, table_sql, frame)

    def create_table(self, table_sql: str, frame: pl.DataFrame, *, replace: bool = False) -> None:
        """Create a table from ``frame`` (one transaction); an existing table is refused unless ``replace``."""
        cols = ", ".join(f"{templates.ident(c)} {_upload_type(frame.schema[c], c)}" for c in frame.columns)
        try:
            with self.con.transaction(), self._cursor() as cur:
                if replace:
                    self._run(cur, templates.transpile(f"DROP TABLE IF EXISTS {table_sql}", self.dialect))
                self._run(cur, templates.transpile(f"CREATE TABLE {table_sql} ({cols})", self.dialect))
                self._copy(cur, table_sql, frame)
        except psycopg.errors.DuplicateTable as exc:
            raise InputError(f"cannot create table {table_sql}: {first_line(exc)} "
                             "(use --replace to overwrite)") from exc

    def close(self) -> None:
        for name in list(self._uploads):
            self.drop_upload(name)
        self.con.close()

    # ---------------------------------------------------------------- internals
    def _cursor(self) -> Any:
        return self.con.cursor()

    def _fetch(self, sql: str, params: dict[str, Any]) -> list[tuple]:
        with self._cursor() as cur:
            self._run(cur, sql, params)
            return cur.fetchall()

    def _run(self, cur: Any, sql: str, params: dict[str, Any] | None = None) -> None:
        self.log.append(sql)
        bound = _bind(sql, params)
        with _refusals(sql):
            cur.execute(sql, bound if bound else None)

    def _copy(self, cur: Any, table_sql: str, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        cols = ", ".join(templates.ident(c) for c in frame.columns)
        statement = f"COPY {table_sql} ({cols}) FROM STDIN (FORMAT csv)"
        self.log.append(statement)
        data = _csv_ready(frame).write_csv(include_header=False)
        with cur.copy(statement) as copy:
            copy.write(data.encode())


@contextmanager
def _refusals(sql: str) -> Iterator[None]:
    """A missing privilege as an InputError that says what to do instead (to read: a grant; to write: a
    grant, or the results written elsewhere)."""
    try:
        yield
    except psycopg.errors.InsufficientPrivilege as exc:
        if sql.lstrip().upper().startswith(("SELECT", "WITH")):
            raise InputError(f"PostgreSQL refused: {first_line(exc)}; the role needs USAGE on the schema and SELECT "
                             "on the table (GRANT ... TO the role)") from exc
        raise InputError(
            f"PostgreSQL refused: {first_line(exc)}; with read-only rights on the source, write the "
            "results elsewhere (--results results.duckdb, or FamaMacBeth(..., results=...))"
        ) from exc


def _bind(sql: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The parameters ``sql`` uses, ints bound as bigint."""
    return {k: Int8(v) if isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in bind(sql, params, "postgres").items()}


def _duckdb_type(pg_type: str) -> str:
    lower = pg_type.lower()
    if lower in _TYPE_NAMES:
        return _TYPE_NAMES[lower]
    if lower.startswith("timestamp(") and lower.endswith("with time zone"):
        return "TIMESTAMP WITH TIME ZONE"
    for prefix, name in _TYPE_PREFIXES:
        if lower.startswith(prefix):
            return name + lower[len(prefix):].upper() if name.endswith("(") else name
    return pg_type.upper()


def _upload_type(dtype: pl.DataType, column: str) -> str:
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    if isinstance(dtype, pl.Decimal):
        return f"DECIMAL({dtype.precision or 38}, {dtype.scale or 0})"
    base = dtype.base_type() if hasattr(dtype, "base_type") else dtype
    try:
        return _UPLOAD_TYPES[base]
    except KeyError:
        raise InputError(f"column {column!r} of type {dtype} cannot be uploaded to PostgreSQL") from None


def _csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Datetimes with a zone written in UTC (PostgreSQL reads the +0000 offset)."""
    zoned = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime) and t.time_zone]
    return frame.with_columns(pl.col(c).dt.convert_time_zone("UTC") for c in zoned) if zoned else frame
