"""Print another dialect's SQL from a DuckDB database: ``fmduck sql panel.duckdb --dialect spark``.

:class:`TranslatingEngine` presents ``dialect`` to fmduck, so every template is rendered exactly as
an engine of that dialect renders it (same code path: per-dialect overrides and dialect-dependent
choices included), and runs each statement on the wrapped DuckDB engine after translating it back
with sqlglot. The printed statements are therefore the ones a PostgreSQL/Spark engine executes for
the same relations; the back-translation only drives the run and is never printed.
"""

from __future__ import annotations

import re
from typing import Any

import polars as pl

from fmduck import templates
from fmduck.engine import Relation

_QUOTED_PARAM = re.compile(r'\$"([A-Za-z_][A-Za-z0-9_]*)"')


class TranslatingEngine:
    def __init__(self, inner: Any, dialect: str) -> None:
        self.inner = inner
        self.dialect = dialect

    def relation(self, source: Any, role: str) -> Relation:
        return self.inner.relation(source, role)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        return self.inner.query(self._back(sql), params)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self.inner.execute(self._back(sql), params)

    def upload(self, name: str, frame: pl.DataFrame) -> None:
        self.inner.upload(name, frame)

    def drop_upload(self, name: str) -> None:
        self.inner.drop_upload(name)

    def transaction(self) -> Any:
        return self.inner.transaction()

    def insert(self, table_sql: str, frame: pl.DataFrame) -> None:
        self.inner.insert(table_sql, frame)

    def _back(self, sql: str) -> str:
        duck = templates.transpile(sql, self.inner.dialect, read=self.dialect)
        return _QUOTED_PARAM.sub(r"$\1", duck)
