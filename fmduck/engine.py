"""The only module that talks to a database. DuckDB is the embedded default.

An engine runs rendered SQL with bound parameters and returns polars frames, makes small frames
(calendar, betas, λ_t) visible to SQL under an internal name, and writes result frames inside one
transaction. Other engines (PostgreSQL, Spark) implement the same methods in ``fmduck/engines/``
(drivers imported there, lazily); ``connect`` picks one from a path, URL or engine object.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import duckdb
import polars as pl

from fmduck import templates
from fmduck.errors import FmduckError, InputError

_NUMERIC = re.compile(
    r"^(TINYINT|SMALLINT|INTEGER|INT|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|"
    r"FLOAT|REAL|DOUBLE|DOUBLE PRECISION|DECIMAL.*|NUMERIC.*|INT\d|FLOAT\d)$",
    re.IGNORECASE,
)
FILE_SUFFIXES = (".csv", ".tsv", ".parquet", ".csv.gz", ".tsv.gz")


@dataclass(frozen=True)
class Relation:
    """A user's input as SQL can read it: the FROM text, a label for messages, and its columns."""

    sql: str
    label: str
    columns: dict[str, str]

    def is_numeric(self, column: str) -> bool:
        return bool(_NUMERIC.match(self.columns[column].strip()))


class Engine(Protocol):
    """What fmduck needs of a database. Every engine solves in place: the solve is SQL (fmduck/sqlsolve.py)
    and runs where the data is; only per-period and per-run tables come back to Python."""

    dialect: str

    def relation(self, source: Any, role: str) -> Relation: ...
    def query(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame: ...
    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None: ...
    def create_scratch(self, name: str, statement: str, params: dict[str, Any] | None = None) -> None: ...
    def drop_scratch(self, name: str) -> None: ...
    def upload(self, name: str, frame: pl.DataFrame) -> None: ...
    def drop_upload(self, name: str) -> None: ...
    def transaction(self, *, rollback: bool = False) -> Any: ...
    def insert(self, table_sql: str, frame: pl.DataFrame) -> None: ...
    def create_table(self, table_sql: str, frame: pl.DataFrame, *, replace: bool = False) -> None: ...
    # Optional: query_batches(sql, params, rows) - results in pieces; lock(key) - a lock held until the
    # transaction ends (PostgreSQL: advisory); delete_rows(table_sql, column, value) - engines without
    # DELETE (Spark) stage it in transaction(); check_writable(ddl) - engines without transactional DDL.


def bind(sql: str, params: dict[str, Any] | None, dialect: str = "duckdb") -> dict[str, Any]:
    """The subset of ``params`` that ``sql`` uses (DuckDB refuses unused named parameters). The names
    come from the parsed statement (:func:`fmduck.templates.placeholders`), never from scanning text
    that may hold quoted identifiers such as ``"price$usd"``."""
    used = templates.placeholders(sql, dialect)
    missing = used - set(params or {})
    if missing:
        raise KeyError(f"SQL parameters without a value: {', '.join(sorted(missing))}")
    return {k: v for k, v in (params or {}).items() if k in used}


@contextmanager
def errors() -> Iterator[None]:
    """DuckDB's errors that are the user's to fix, as fmduck errors (others pass: they are bugs)."""
    try:
        yield
    except duckdb.OutOfMemoryException as exc:
        raise FmduckError(f"DuckDB ran out of memory ({first_line(exc)}); give it more with --memory-limit "
                          "(e.g. --memory-limit 8GB), or fewer threads (--threads 1)") from exc
    except duckdb.IOException as exc:
        raise FmduckError(f"DuckDB could not read or write a file: {first_line(exc)}") from exc
    except (duckdb.ConversionException, duckdb.OutOfRangeException) as exc:
        raise InputError(f"a value could not be converted or is out of range: {first_line(exc)}") from exc


class DuckDBEngine:
    """fmduck's view of one DuckDB connection (``read_only``: open a file without write access, e.g. a
    source when the results go elsewhere; ``memory_limit``/``threads``: DuckDB settings)."""

    dialect = "duckdb"

    def __init__(self, database: str | Path | duckdb.DuckDBPyConnection = ":memory:", *, threads: int | None = None,
                 memory_limit: str | None = None, read_only: bool = False):
        if isinstance(database, duckdb.DuckDBPyConnection):
            self.con = database
            self.path = None
        else:
            self.path = str(database)
            if self.path != ":memory:" and not Path(self.path).parent.exists():
                raise FmduckError(f"cannot open DuckDB database {self.path}: folder "
                                  f"{str(Path(self.path).parent)!r} does not exist")
            if read_only and self.path != ":memory:" and not Path(self.path).exists():
                raise FmduckError(f"database file {self.path} does not exist; check the path")
            try:
                self.con = duckdb.connect(self.path, read_only=read_only and self.path != ":memory:")
                # fmduck's own connection: no DuckDB progress bar (progress is fmduck's, on stderr; -q silences it)
                self.con.execute("SET enable_progress_bar = false")
            except duckdb.Error as exc:
                raise FmduckError(_open_error(self.path, exc, read_only)) from exc
        self._registered: set[str] = set()
        self.configure(threads=threads, memory_limit=memory_limit)

    def configure(self, *, threads: int | None = None, memory_limit: str | None = None) -> None:
        """Apply engine settings (values checked by the Spec: an integer, a size such as 4GB)."""
        try:
            if threads is not None:
                self.con.execute(f"SET threads = {int(threads)}")
            if memory_limit is not None:
                self.con.execute("SET memory_limit = " + templates.literal(str(memory_limit).strip()))
        except duckdb.Error as exc:
            raise FmduckError(f"cannot apply the engine settings: {first_line(exc)}") from exc

    # ---------------------------------------------------------------- inputs
    def relation(self, source: Any, role: str) -> Relation:
        """Resolve a table/view name, a CSV/Parquet path or a DataFrame into a readable relation."""
        if isinstance(source, (str, Path)) and looks_like_file(str(source)):
            path = Path(source)
            if not path.exists():
                raise InputError(f"{role} file not found: {path}")
            reader = "read_parquet" if ".parquet" in path.suffixes else "read_csv"
            sql = f"{reader}({templates.literal(str(path))})"
            label = f"{role} file {path}"
        elif isinstance(source, str):
            sql = templates.table(source)
            label = f"table {source}"
        elif is_dataframe(source):
            name = f"fmduck_input_{role}"
            frame = source if isinstance(source, pl.DataFrame) else from_pandas(source)
            self.upload(name, frame)
            sql = templates.ident(name)
            label = f"{role} DataFrame"
        else:
            raise InputError(f"{role}: expected a table name, a CSV/Parquet path or a DataFrame, "
                             f"got {type(source).__name__}")
        try:
            described = self.con.sql(f"DESCRIBE SELECT * FROM {sql}").fetchall()
        except duckdb.CatalogException as exc:
            raise InputError(f"{label} does not exist in the database ({first_line(exc)})") from exc
        except duckdb.Error as exc:
            raise InputError(f"{label} cannot be read: {first_line(exc)}") from exc
        return Relation(sql=sql, label=label, columns={row[0]: row[1] for row in described})

    # ---------------------------------------------------------------- SQL
    def query(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        with errors():
            return self.con.sql(sql, params=bind(sql, params) or None).pl()

    def query_batches(self, sql: str, params: dict[str, Any] | None = None,
                      rows: int = 1 << 17) -> Iterator[pl.DataFrame]:
        """The result of ``sql`` as polars frames of about ``rows`` rows each, streamed (never all at once)."""
        with errors():
            reader = self.con.sql(sql, params=bind(sql, params) or None).to_arrow_reader(rows)
            for batch in reader:
                if batch.num_rows:
                    yield pl.from_arrow(batch)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        with errors():
            for statement in templates.statements(sql, self.dialect):
                self.con.execute(statement, bind(statement, params) or None)

    def table_columns(self, schema: str, table: str) -> dict[str, str] | None:
        """Column name -> type of ``schema.table``, or None when there is no such table (never raises, so
        it can run inside a transaction)."""
        return table_columns(self, schema, table)

    def create_scratch(self, name: str, statement: str, params: dict[str, Any] | None = None) -> None:
        """Run the statement that materializes a scratch table (a TEMPORARY table, dropped with the run)."""
        self.execute(statement, params)

    def drop_scratch(self, name: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {name}")

    def upload(self, name: str, frame: pl.DataFrame) -> None:
        """Make ``frame`` readable by SQL as ``name`` for this connection (zero-copy in DuckDB)."""
        self.con.register(name, frame.to_arrow())
        self._registered.add(name)

    def drop_upload(self, name: str) -> None:
        if name in self._registered:
            self.con.unregister(name)
            self._registered.discard(name)

    @contextmanager
    def transaction(self, *, rollback: bool = False) -> Iterator[None]:
        """One transaction; ``rollback``: undo it even on success (a probe of what would be written)."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("ROLLBACK" if rollback else "COMMIT")

    def insert(self, table_sql: str, frame: pl.DataFrame) -> None:
        """Append ``frame`` to an existing table, matching columns by name."""
        if frame.height == 0:
            return
        name = "fmduck_insert_buffer"
        self.upload(name, frame)
        try:
            cols = ", ".join(templates.ident(c) for c in frame.columns)
            self.con.execute(f"INSERT INTO {table_sql} ({cols}) SELECT {cols} FROM {templates.ident(name)}")
        except BaseException:
            # an aborted transaction refuses unregister(); keep the original error (the caller rolls back)
            self._registered.discard(name)
            raise
        self.drop_upload(name)

    def create_table(self, table_sql: str, frame: pl.DataFrame, *, replace: bool = False) -> None:
        """Create a new table from ``frame``; an existing table is refused unless ``replace``."""
        name = "fmduck_create_buffer"
        self.upload(name, frame)
        try:
            verb = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE"
            self.con.execute(f"{verb} {table_sql} AS SELECT * FROM {templates.ident(name)}")
        except duckdb.CatalogException as exc:
            hint = " (use --replace to overwrite)" if "already exists" in str(exc) else ""
            raise InputError(f"cannot create table {table_sql}: {first_line(exc)}{hint}") from exc
        finally:
            self.drop_upload(name)

    def close(self) -> None:
        self.con.close()


def _open_error(path: str, exc: Exception, read_only: bool) -> str:
    text = first_line(exc)
    if "lock" not in text.lower():
        return f"cannot open DuckDB database {path}: {text}"
    holder = re.search(r"lock is held in (.*?\(PID \d+\))", text)
    message = (f"cannot open DuckDB database {path}: another process holds it open ("
               f"{holder.group(1) if holder else text}); wait for it to finish")
    if not read_only and "read-only mode" in text:  # the holder only reads: so can we, if the results go elsewhere
        message += ", or write the results elsewhere (--results results.duckdb): the database is then only read"
    return message


def table_columns(engine: Any, schema: str, table: str) -> dict[str, str] | None:
    """``information_schema.columns`` of one table (DuckDB and PostgreSQL), None when it does not exist."""
    sql = templates.transpile("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
                              "$schema AND table_name = $table ORDER BY ordinal_position", engine.dialect)
    frame = engine.query(sql, {"schema": schema, "table": table})
    return dict(zip(frame["column_name"].to_list(), frame["data_type"].to_list())) if frame.height else None


def looks_like_file(text: str) -> bool:
    if text.lstrip().startswith('"'):  # a quoted table name ("a/b.csv") is a table, whatever it holds
        return False
    lower = text.lower()
    return lower.endswith(FILE_SUFFIXES) or "/" in text and Path(text).suffix != ""


def is_dataframe(obj: Any) -> bool:
    if isinstance(obj, pl.DataFrame):
        return True
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "columns") and hasattr(obj, "iloc")


def from_pandas(frame: Any) -> pl.DataFrame:
    """A pandas frame as polars; named index levels (a MultiIndex of asset and period, as linearmodels
    wants it) become columns, as ``reset_index()`` would make them."""
    named = any(name is not None for name in getattr(frame.index, "names", [None]))
    return pl.from_pandas(frame, include_index=named)


def first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]
