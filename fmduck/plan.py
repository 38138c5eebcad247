"""A plan: the statements of a run, rendered before any data is read, then executed in order.

A design turns a spec and the catalog of its inputs (column names and types) into a :class:`Plan`:
an ordered list of :class:`Step` s, each one SQL statement (rendered from ``sql/`` for the engine's
dialect) that either materializes a scratch table (``create``) or returns rows to Python
(``query``), whose result a callback reads — a check that refuses bad input, or a value the run
keeps (λ_t, counts). ``fmduck sql`` prints the plan without running it; ``--inline`` prints it with
every parameter written as a literal, so the script runs as printed in the engine's own client.
Executing a plan runs exactly these statements, in this order (``runs.sql_text`` logs them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fmduck import templates


@dataclass
class State:
    """What the steps of one execution learn (values read by callbacks, for the steps after them)."""

    values: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.values[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def setdefault_list(self, key: str) -> list:
        return self.values.setdefault(key, [])


@dataclass(frozen=True)
class Step:
    """One statement of a plan. ``source``: its SQL in DuckDB syntax, already specialized for the
    plan's dialect (per-dialect templates chosen); ``params``: its bound values; ``then(state, frame)``
    reads a query's rows; ``when(state)``: run only if true (printed with its ``note`` either way)."""

    key: str
    label: str
    source: str
    kind: str = "query"  # "query" | "create" | "execute" | "check" (Python only, no SQL: ``then(state, None)``)
    params: dict[str, Any] = field(default_factory=dict)
    then: Callable[[State, Any], None] | None = None
    when: Callable[[State], bool] | None = None
    note: str = ""

    def sql(self, dialect: str, *, inline: bool = False) -> templates.Sql:
        return templates.transpile(self.source, dialect, inline=dict(self.params) if inline else None)


class Plan:
    """The ordered steps of a run on one dialect, with the scratch names they use. ``params``: the values
    of the run's row source (the prepared panel's winsorizing levels, an update's row bounds), which every
    step added after they are set binds beside its own: any step may read the rows."""

    def __init__(self, dialect: str, names: Callable[[str], str], params: dict[str, Any] | None = None) -> None:
        self.dialect = dialect
        self.name = names  # key -> quoted scratch table name
        self.steps: list[Step] = []
        self.params: dict[str, Any] = dict(params or {})

    def add(self, key: str, label: str, source: str, *, kind: str = "query", params: dict[str, Any] | None = None,
            then: Callable[[State, Any], None] | None = None, when: Callable[[State], bool] | None = None,
            note: str = "") -> Step:
        step = Step(key, label, str(source), kind, {**self.params, **(params or {})}, then, when, note)
        self.steps.append(step)
        return step

    def check(self, key: str, label: str, then: Callable[[State, Any], None]) -> Step:
        """A decision in Python on what earlier steps found (no SQL: not in the printed script)."""
        return self.add(key, label, "", kind="check", then=then)

    def __iter__(self):
        return iter(self.steps)

    def render(self, *, inline: bool = False) -> str:
        """The plan as one script: each statement under a comment with its label."""
        out = []
        for step in self.steps:
            if step.kind == "check":  # a decision in Python on earlier results: no statement to print
                continue
            sql = step.sql(self.dialect, inline=inline)
            if step.kind == "create":
                sql = templates.scratch_table(self.dialect, self.name(step.key), sql)
            head = f"-- {step.label}" + (f" ({step.note})" if step.note else "")
            out.append(f"{head}\n{sql};\n")
        return "\n".join(out)

    def execute(self, run: Any, state: State | None = None, *, until: str | None = None) -> State:
        """Run the steps in order through ``run`` (or up to and including the step ``until``)."""
        state = state if state is not None else State()
        for step in self.steps:
            if step.when is None or step.when(state):
                run_step(run, step, state)
            if step.key == until:
                break
        return state


def run_step(run: Any, step: Step, state: State) -> None:
    if step.kind == "check":
        step.then(state, None)
        return
    sql = step.sql(run.dialect)
    if step.kind != "query" or step.then is None:
        run.say(step.label)
    if step.kind == "create":
        run.create(step.label, step.key, sql, step.params)
        return
    if step.kind == "execute":
        run.execute(step.label, sql, step.params)
        return
    frame = run.query(step.label, sql, step.params)
    if step.then is not None:
        step.then(state, frame)
