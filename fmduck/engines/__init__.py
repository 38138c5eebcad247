"""Engines beside the embedded DuckDB one: PostgreSQL (``postgres``) and Spark (``spark``).

Each implements the :class:`fmduck.engine.Engine` protocol. They receive SQL that
``fmduck.templates`` already rendered for their dialect and run it as is; the few statements an
engine writes itself (temporary tables, inserts) are written in DuckDB SQL and transpiled with
``templates.transpile`` like every template, so identifiers are quoted by sqlglot.

The engine modules import their drivers (psycopg, pyspark) lazily: ``import fmduck`` never needs
them, and a missing driver is a clear error naming the extra to install.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fmduck.errors import FmduckError

ENGINES = ("duckdb", "postgres", "spark")
_URL = re.compile(r"^postgres(ql)?(\+\w+)?://", re.IGNORECASE)
# a libpq keyword/value connection string ("host=db user=me password=..."): never a file name to create
_CONNINFO = re.compile(r"^\s*(host|hostaddr|port|dbname|user|password|passfile|service|sslmode|connect_timeout|"
                       r"application_name|options)\s*=", re.IGNORECASE)


def is_postgres_url(database: Any) -> bool:
    """``postgresql://...`` / ``postgres://...`` connection strings (also ``postgresql+psycopg://``) and
    libpq keyword/value strings (``host=db dbname=panel user=me``)."""
    return isinstance(database, str) and bool(_URL.match(database) or _CONNINFO.match(database))


def require_database(database: Any, engine: str | None = None, inputs: dict[str, Any] | None = None) -> None:
    """Refuse a DuckDB file that does not exist where an existing one is read (DuckDB would create an
    empty one: a mistyped path). ``inputs`` ({flag: source}): refuse only when one of them is a table,
    which would have to be in the file; inputs that are all CSV/Parquet files make a new database."""
    if engine not in (None, "duckdb") or not isinstance(database, (str, Path)) or is_postgres_url(database):
        return
    text = str(database)
    if text == ":memory:" or text.startswith("sc://") or Path(text).exists():
        return
    from fmduck.engine import looks_like_file

    tables = {flag: source for flag, source in (inputs or {}).items()
              if isinstance(source, str) and not looks_like_file(source)}
    if inputs is not None and not tables:
        return
    named = ", ".join(f"{flag} {source}" for flag, source in tables.items())
    where = f" (the input{'s' * (len(tables) > 1)} {named} {'are tables' if len(tables) > 1 else 'is a table'} in it)" \
        if tables else ""
    raise FmduckError(f"database file {text} does not exist{where}; check the path")


def open_engine(database: Any, engine: str | None = None, *, read_only: bool = False, memory_limit: str | None = None,
                threads: int | None = None, spark_master: str | None = None,
                spark_conf: list[str] | None = None) -> Any:
    """An engine for ``database``: a DuckDB path or connection, a ``postgresql://`` URL, or
    (``engine="spark"``) a Spark warehouse directory or an ``sc://`` Spark Connect URL. ``read_only``:
    a DuckDB source opened without write access (results go elsewhere); ``memory_limit``, ``threads``:
    engine settings; ``spark_master``, ``spark_conf``: how to reach a cluster."""
    from fmduck.engine import DuckDBEngine
    from fmduck.secrets import remember

    remember(database)
    if hasattr(database, "dialect") and hasattr(database, "query"):
        return database
    if type(database).__module__.startswith("psycopg"):
        engine = engine or "postgres"
    if isinstance(database, str) and database.startswith("sc://"):
        engine = engine or "spark"
    kind = engine or ("postgres" if is_postgres_url(database) else "duckdb")
    if kind == "postgres":
        from fmduck.engines.postgres import PostgresEngine

        return PostgresEngine(database, memory_limit=memory_limit)
    if kind == "spark":
        from fmduck.engines.spark import SparkEngine

        return SparkEngine(warehouse=database, master=spark_master, conf=spark_conf or [])
    if kind == "duckdb":
        if is_postgres_url(database):
            raise FmduckError("that is a PostgreSQL URL; the DuckDB engine needs a file path "
                              "(or use --engine postgres)")
        return DuckDBEngine(database, read_only=read_only, memory_limit=memory_limit, threads=threads)
    raise FmduckError(f"unknown engine {kind!r}; choose one of {', '.join(ENGINES)}")


def connect(database: Any) -> Any:
    """An engine for a DuckDB path or connection, a ``postgresql://`` URL or a psycopg connection
    (PostgreSQL engine, needs the ``postgres`` extra), or an engine (returned as is)."""
    return open_engine(database, "postgres" if type(database).__module__.startswith("psycopg") else None)
