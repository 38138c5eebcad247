"""Run the one moments query (``sql/moments.sql.j2``) and hand its sums to the batched solver.

Every regression in fmduck goes through :func:`compute_moments`: the caller names the variables
(SQL expressions over the joined rows, dependent variable last), the group keys and the row
source (joins); this module renders the template, binds the shifts and returns numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl
from sqlglot import exp

from fmduck import templates
from fmduck.engine import Engine
from fmduck.solve import MomentArrays, MomentColumns, OLSBatch, ols


@dataclass(frozen=True)
class Variable:
    """One regression variable: its SQL expression over the joined rows and the shift applied before summing."""

    name: str
    expr: exp.Expression
    shift: float


class Moments:
    """Moment sums per group: ``frame`` holds the keys; the moments are aligned with its rows.

    ``columns`` gives them entrywise (what the solver reads); ``n``, ``sums[G, m]`` and
    ``cross[G, m, m]`` are the stacked arrays, built on first use when the moments came as columns.
    """

    def __init__(self, frame: pl.DataFrame, n: np.ndarray, sums: np.ndarray, cross: np.ndarray,
                 shift: np.ndarray) -> None:
        """From stacked arrays (kept as given)."""
        self.frame, self.shift = frame, shift
        self.columns = MomentArrays.from_stacked(n, sums, cross)
        self.n, self.sums, self.cross = self.columns.n, sums, cross

    @classmethod
    def from_columns(cls, frame: pl.DataFrame, columns: MomentArrays, shift: np.ndarray) -> Moments:
        """From moment columns (e.g. zero-copy views of the query result)."""
        mom = cls.__new__(cls)
        mom.frame, mom.shift, mom.columns, mom.n = frame, shift, columns, columns.n
        return mom

    @cached_property
    def sums(self) -> np.ndarray:
        return self._stacked[0]

    @cached_property
    def cross(self) -> np.ndarray:
        return self._stacked[1]

    @cached_property
    def _stacked(self) -> tuple[np.ndarray, np.ndarray]:
        return self.columns.stacked()

    def ols(self, *, intercept: bool = True, min_df: int = 1) -> OLSBatch:
        """OLS of the last variable on the others, per group."""
        return ols(self.columns, self.shift, intercept=intercept, min_df=min_df)


# Rolling windows: sums of variables that depend on the period only (factor columns) come from
# cumulative sums over the calendar corrected for each asset's gaps (sql/moments.sql.j2, fast branch).
# DuckDB and PostgreSQL (each tested against the plain RANGE-window sums); Spark keeps the plain branch.
FAST_ROLLING = True
FAST_ROLLING_DIALECTS = ("duckdb", "postgres")


def common_aliases(dialect: str, variables: list[Variable], aliases: list[str], source: dict[str, Any],
                   *, rolling: bool) -> list[str]:
    """Aliases of the variables whose value depends on the period only: every column they read is a
    column of the factors relation (alias ``f``). Empty unless the fast rolling path applies."""
    if not (FAST_ROLLING and rolling and dialect in FAST_ROLLING_DIALECTS and source.get("factors")):
        return []
    if any(source.get(k) for k in ("weight", "absorb", "ranges")):
        return []
    common = []
    for v, alias in zip(variables, aliases):
        columns = list(v.expr.find_all(exp.Column))
        if columns and all(c.table == "f" for c in columns) and not any(v.expr.find_all(exp.Window, exp.AggFunc)):
            common.append(alias)
    return common


def render_moments(dialect: str, keys: list[str], variables: list[Variable], source: dict[str, Any],
                   *, rolling: bool = False, group_shift: bool = False) -> str:
    """The moments SQL for ``variables`` grouped by ``keys`` over the row source ``source``.

    ``group_shift``: re-centre each variable on its group mean before summing (columns ``ref_v<i>``).
    Fast rolling branch: ``rows_frame`` (DuckDB) sums the per-asset variables over a ROWS frame whose
    offset is the column n, and lists gap periods with UNNEST(GENERATE_SERIES); PostgreSQL takes no
    column in a frame offset, so there they share the RANGE frame of n and a lateral GENERATE_SERIES.
    """
    cols = MomentColumns(len(variables))
    common = common_aliases(dialect, variables, cols.aliases, source, rolling=rolling)
    return templates.render(
        "moments", dialect, **source, keys=keys, rolling=rolling, common=common, group_shift=group_shift,
        rows_frame=dialect == "duckdb",
        sums=[{**s, "common": s["alias"] in common} for s in cols.sums],
        products=[{**p, "common": p["left"] in common and p["right"] in common} for p in cols.products],
        variables=[
            {"expr": templates.sql(v.expr), "alias": a, "shift": f"shift_{i}"}
            for i, (v, a) in enumerate(zip(variables, cols.aliases))
        ],
    )


def compute_moments(engine: Engine, keys: list[str], variables: list[Variable], source: dict[str, Any],
                    params: dict[str, Any], *, rolling: bool = False,
                    record: Callable[[str], None] | None = None) -> Moments:
    """Render, run and unpack the moments query.

    Every variable is shifted by its constant ``Variable.shift`` (a global mean) in SQL; grouped
    queries (``keys``, not rolling) also re-centre on each group's own mean, so the returned shift is
    per group (G × m) and precision holds when a regressor's level drifts between groups.
    """
    sql, bound, group_shift = _prepare(engine, keys, variables, source, params, rolling, record)
    return _unpack(engine.query(sql, bound), keys, variables, group_shift)


def stream_moments(engine: Engine, keys: list[str], variables: list[Variable], source: dict[str, Any],
                   params: dict[str, Any], *, rolling: bool = False, record: Callable[[str], None] | None = None,
                   rows: int = 1 << 17) -> Iterator[Moments]:
    """:func:`compute_moments` read in batches of about ``rows`` groups, for engines that stream
    (DuckDB); other engines give one batch. The whole moments frame never exists at once."""
    sql, bound, group_shift = _prepare(engine, keys, variables, source, params, rolling, record)
    frames = engine.query_batches(sql, bound, rows) if hasattr(engine, "query_batches") else [engine.query(sql, bound)]
    for frame in frames:
        yield _unpack(frame, keys, variables, group_shift)


def _prepare(engine: Engine, keys: list[str], variables: list[Variable], source: dict[str, Any],
             params: dict[str, Any], rolling: bool,
             record: Callable[[str], None] | None) -> tuple[str, dict[str, Any], bool]:
    group_shift = bool(keys) and not rolling
    sql = render_moments(engine.dialect, keys, variables, source, rolling=rolling, group_shift=group_shift)
    if record is not None:
        record(sql)
    bound = dict(params)
    bound.update({f"shift_{i}": float(v.shift) for i, v in enumerate(variables)})
    return sql, bound, group_shift


def _unpack(frame: pl.DataFrame, keys: list[str], variables: list[Variable], group_shift: bool) -> Moments:
    cols = MomentColumns(len(variables))
    shift = np.array([v.shift for v in variables], dtype=np.float64)
    if group_shift:
        refs = frame.select([f"ref_{a}" for a in cols.aliases]).to_numpy().astype(np.float64, copy=False)
        shift = shift[None, :] + refs
    # the moment columns are views of ``frame``'s buffers, which they keep alive
    return Moments.from_columns(frame.select(keys), cols.columns(frame), shift)
