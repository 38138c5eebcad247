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
from typing import Any

from fmduck.errors import FmduckError

ENGINES = ("duckdb", "postgres", "spark")
_URL = re.compile(r"^postgres(ql)?(\+\w+)?://", re.IGNORECASE)


def is_postgres_url(database: Any) -> bool:
    """``postgresql://...`` / ``postgres://...`` connection strings (also ``postgresql+psycopg://``)."""
    return isinstance(database, str) and bool(_URL.match(database))


def open_engine(database: Any, engine: str | None = None, **options: Any) -> Any:
    """An engine for ``database``: a DuckDB path, a ``postgresql://`` URL, or (``engine="spark"``)
    a Spark warehouse directory (``None``: the session's default)."""
    from fmduck.engine import DuckDBEngine

    if hasattr(database, "dialect") and hasattr(database, "query"):
        return database
    kind = engine or ("postgres" if is_postgres_url(database) else "duckdb")
    if kind == "postgres":
        from fmduck.engines.postgres import PostgresEngine

        return PostgresEngine(database, **options)
    if kind == "spark":
        from fmduck.engines.spark import SparkEngine

        return SparkEngine(warehouse=database, **options)
    if kind == "duckdb":
        if is_postgres_url(database):
            raise FmduckError(f"{database!r} is a PostgreSQL URL; the DuckDB engine needs a file path")
        return DuckDBEngine(database)
    raise FmduckError(f"unknown engine {kind!r}; choose one of {', '.join(ENGINES)}")


def missing_driver(package: str, extra: str, exc: ImportError) -> FmduckError:
    return FmduckError(f"the {extra} engine needs {package}: pip install 'fmduck[{extra}]' ({exc})")
