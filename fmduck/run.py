"""The context of one run: its engine, identity, scratch tables, statement log and progress.

A design's fit works through a :class:`Run`: every statement it sends goes through ``query`` /
``execute`` / ``create`` (and is logged, so ``runs.sql_text`` is exactly what ran), every scratch
table it makes is named here (unique per run) and dropped when the run closes, and progress
messages go to one callback. Nothing else about a fit lives in an object: passes are functions
of the run and of values they return.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from fmduck import templates

Progress = Callable[[str], None]


def _silent(_message: str) -> None:
    return None


class Run:
    """One run of one spec on one engine (``results``: where it is stored, the same engine by default)."""

    def __init__(self, spec: Any, engine: Any, *, results: Any = None, progress: Progress | None = None,
                 script: bool = False) -> None:
        self.spec = spec
        self.engine = engine
        self.results = results if results is not None else engine
        self.say: Progress = progress or _silent
        self.run_id = uuid.uuid4().hex
        self.started = time.perf_counter()
        self.statements: list[tuple[str, str]] = []
        self.script = script  # rendering a runnable script: stable scratch names
        self._scratch: dict[str, tuple[str, str]] = {}  # key -> (name, kind: table | upload)

    @property
    def dialect(self) -> str:
        return self.engine.dialect

    # ---------------------------------------------------------------- names
    def name(self, key: str) -> str:
        """The scratch table name of ``key`` for this run (quoted)."""
        suffix = "" if self.script else f"_{self.run_id[:8]}"
        return templates.ident(f"fmduck_{key}{suffix}")

    def bare_name(self, key: str) -> str:
        suffix = "" if self.script else f"_{self.run_id[:8]}"
        return f"fmduck_{key}{suffix}"

    # ---------------------------------------------------------------- statements
    def record(self, label: str, sql: str) -> None:
        self.statements.append((label, str(sql)))

    def query(self, label: str, sql: str, params: dict[str, Any] | None = None) -> Any:
        self.record(label, sql)
        return self.engine.query(sql, params)

    def execute(self, label: str, sql: str, params: dict[str, Any] | None = None) -> None:
        self.record(label, sql)
        self.engine.execute(sql, params)

    def create(self, label: str, key: str, sql: str, params: dict[str, Any] | None = None) -> str:
        """Materialize the result of ``sql`` as the scratch table of ``key``; returns its quoted name."""
        name = self.name(key)
        statement = templates.scratch_table(self.dialect, name, sql)
        self.record(label, statement)
        self.engine.create_scratch(name, statement, params)
        self._scratch[key] = (name, "table")
        return name

    def upload(self, key: str, frame: Any) -> str:
        """``frame`` visible to SQL as the scratch table of ``key``; returns its quoted name."""
        self.engine.upload(self.bare_name(key), frame)
        self._scratch[key] = (self.bare_name(key), "upload")
        return self.name(key)

    def drop(self, key: str) -> None:
        entry = self._scratch.pop(key, None)
        if entry is None:
            return
        name, kind = entry
        if kind == "upload":
            self.engine.drop_upload(name)
        else:
            self.engine.drop_scratch(name)

    def close(self) -> None:
        """Drop every scratch table of the run (also after a failure)."""
        for key in list(self._scratch)[::-1]:
            try:
                self.drop(key)
            except Exception:  # noqa: BLE001 - an aborted connection: the session's temp objects go with it
                self._scratch.pop(key, None)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started
