"""The moments of every regression: render ``sql/moments.sql.j2`` / ``sql/solve.sql.j2``, run, unpack.

Every regression in fmduck goes through here: the caller names the variables (SQL expressions over
the joined rows, dependent variable last, each with its shift), the group keys and the row source
(:class:`RowSource`: the panel, calendar, factors, betas or λ_t to join); this module renders the
moments query — per group (``moments/grouped``), per rolling window (``moments/rolling`` or the fast
``moments/rolling_fast``) — and either solves it where the data is (:func:`render_solve`: the SQL
backend of :mod:`fmduck.ols`) or brings the sums to Python (:func:`compute_moments`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl
from sqlglot import exp

from fmduck import sqlsolve, templates
from fmduck.solve import MomentArrays, MomentColumns, OLSBatch, ols

# Rolling windows: sums of variables that depend on the period only (factor columns) come from
# cumulative sums over the calendar corrected for each asset's gaps (sql/moments/rolling_fast.sql.j2).
# DuckDB and PostgreSQL (each tested against the plain RANGE-window sums); Spark keeps the plain one.
FAST_ROLLING = True
FAST_ROLLING_DIALECTS = ("duckdb", "postgres")


@dataclass(frozen=True)
class Variable:
    """One regression variable: its SQL expression over the joined rows and the constant subtracted
    before summing (a float, or SQL text such as a scalar subquery on a profile table)."""

    name: str
    expr: exp.Expression
    shift: float | str

    def shift_sql(self) -> str:
        if isinstance(self.shift, str):
            return self.shift
        return templates.sql(templates.value_expression(float(self.shift)))


@dataclass(frozen=True)
class RowSource:
    """Where a regression's rows come from (``sql/rows.sql.j2``). Texts are SQL already quoted.

    ``panel_key``/``factor_key``: the calendar key of a panel row (alias ``r``) / factors row (``f``);
    ``betas``: "full" or "rolling" joins of the first-pass table ``betas_table`` (``beta_max_age``: the
    most recent beta no older than $beta_max_age); ``char_lag``: characteristics from $char_lag periods
    before; ``lambdas_table``: λ_t joined on the period; ``ranges``: one regression per period range;
    ``pidx_from``: a table of period indexes — only rows from $window_preceding periods before its first
    (the data of the windows ending there, for an update); ``periods``: a table of the periods to keep;
    ``weight``/``absorb``: WLS and absorbed categories; ``extra_columns``: more columns of ``obs``."""

    dialect: str
    returns: str
    asset: str
    panel_key: str
    calendar: str
    factors: str | None = None
    factor_key: str | None = None
    betas: str | None = None
    betas_table: str | None = None
    beta_max_age: bool = False
    char_lag: bool = False
    lambdas_table: str | None = None
    ranges: str | None = None
    pidx_from: str | None = None
    periods: str | None = None
    weight: str | None = None
    weight_raw: bool = False
    absorb: str | None = None
    extra_columns: tuple[dict[str, str], ...] = ()

    def with_(self, **changes: Any) -> RowSource:
        return replace(self, **changes)


@dataclass(frozen=True)
class Query:
    """A moments or solve query: the rendered SQL and its bound parameters."""

    sql: templates.Sql
    params: dict[str, Any] = field(default_factory=dict)


def _algorithm(dialect: str, variables: list[Variable], src: RowSource, keys: list[str],
               rolling: bool) -> tuple[str, list[str]]:
    """(moments template, aliases of the period-only variables of the fast rolling path)."""
    if not rolling:
        return "grouped", []
    if not (FAST_ROLLING and dialect in FAST_ROLLING_DIALECTS and src.factors) or src.weight or src.absorb \
            or src.ranges:
        return "rolling", []
    common = common_aliases(variables, MomentColumns(len(variables)).aliases)
    return ("rolling_fast", common) if common else ("rolling", [])


def common_aliases(variables: list[Variable], aliases: list[str]) -> list[str]:
    """Aliases of the variables whose value depends on the period only: every column they read is a
    column of the factors relation (alias ``f``)."""
    common = []
    for v, alias in zip(variables, aliases):
        columns = list(v.expr.find_all(exp.Column))
        if columns and all(c.table == "f" for c in columns) and not any(v.expr.find_all(exp.Window, exp.AggFunc)):
            common.append(alias)
    return common


def _context(dialect: str, keys: list[str], variables: list[Variable], src: RowSource, rolling: bool,
             group_shift: bool) -> dict[str, Any]:
    cols = MomentColumns(len(variables))
    algorithm, common = _algorithm(dialect, variables, src, keys, rolling)
    sums = [{**s, "common": s["alias"] in common} for s in cols.sums]
    products = [{**p, "common": p["left"] in common and p["right"] in common} for p in cols.products]
    per_asset = [{"expr": s["alias"], "name": s["name"]} for s in sums if not s["common"]]
    per_asset += [{"expr": f"{p['left']} * {p['right']}", "name": p["name"]} for p in products if not p["common"]]
    return {
        "src": src if src.dialect == dialect else src.with_(dialect=dialect),
        "keys": keys, "algorithm": algorithm, "common": common, "sums": sums, "products": products,
        "per_asset": per_asset, "group_shift": group_shift and bool(keys) and not rolling,
        "variables": [{"expr": templates.sql(v.expr), "alias": a, "shift": v.shift_sql(), "index": i}
                      for i, (v, a) in enumerate(zip(variables, cols.aliases))],
    }


def moments_source(dialect: str, keys: list[str], variables: list[Variable], src: RowSource, *,
                   rolling: bool = False, group_shift: bool | None = None) -> str:
    """The moments query for ``variables`` grouped by ``keys`` (or per rolling window) over ``src``, in
    DuckDB syntax specialized for ``dialect``. ``group_shift`` (default: grouped queries with keys):
    re-centre each group on its own means."""
    gs = bool(keys) and not rolling if group_shift is None else group_shift
    return templates.source("moments", dialect, **_context(dialect, keys, variables, src, rolling, gs))


def solve_source(dialect: str, keys: list[str], variables: list[Variable], src: RowSource, *,
                 rolling: bool = False, intercept: bool = True, min_df: int = 1) -> str:
    """The moments of ``variables`` and their OLS solve, in one query that runs in the engine: one row
    per group with keys, nobs, ok, reason, e<j>, s<j>, r2, adj_r2, rmse (``sql/solve.sql.j2``)."""
    context = _context(dialect, keys, variables, src, rolling, bool(keys) and not rolling)
    m = len(variables)
    shifts = [(f"shift_{i} + ref_v{i}", (f"shift_{i}", f"ref_v{i}")) if context["group_shift"]
              else (f"shift_{i}", (f"shift_{i}",)) for i in range(m)]
    layout = sqlsolve.solve_layers(m, shifts, keys=keys, intercept=intercept, min_df=min_df)
    return templates.source("solve", dialect, layers=layout.layers, carry=layout.carry, outputs=layout.outputs,
                            out_keys=keys, **context)


def render_moments(dialect: str, keys: list[str], variables: list[Variable], src: RowSource, *,
                   rolling: bool = False, group_shift: bool | None = None) -> templates.Sql:
    """:func:`moments_source` transpiled to ``dialect``."""
    return templates.transpile(moments_source(dialect, keys, variables, src, rolling=rolling,
                                              group_shift=group_shift), dialect)


def render_solve(dialect: str, keys: list[str], variables: list[Variable], src: RowSource, *,
                 rolling: bool = False, intercept: bool = True, min_df: int = 1) -> templates.Sql:
    """:func:`solve_source` transpiled to ``dialect``."""
    return templates.transpile(solve_source(dialect, keys, variables, src, rolling=rolling, intercept=intercept,
                                            min_df=min_df), dialect)


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


def unpack(frame: pl.DataFrame, keys: list[str], m: int) -> Moments:
    """The moments of ``m`` variables from a frame of ``sql/moments.sql.j2``'s columns: the shift of
    each group is its global shift (``shift_<i>``) plus its re-centring mean (``ref_v<i>``) if any."""
    cols = MomentColumns(m)
    if frame.height == 0:
        shift = np.zeros(m)
    else:
        shift = np.array([float(frame[f"shift_{i}"][0]) for i in range(m)])
    if f"ref_{cols.aliases[0]}" in frame.columns:
        refs = frame.select([f"ref_{a}" for a in cols.aliases]).to_numpy().astype(np.float64, copy=False)
        shift = shift[None, :] + refs
    # the moment columns are views of ``frame``'s buffers, which they keep alive
    return Moments.from_columns(frame.select(keys), cols.columns(frame), shift)


def compute_moments(engine: Any, keys: list[str], variables: list[Variable], src: RowSource,
                    params: dict[str, Any], *, rolling: bool = False, record: Any = None) -> Moments:
    """Render, run and unpack the moments query (grouped queries re-centre each group on its means)."""
    sql = render_moments(engine.dialect, keys, variables, src, rolling=rolling)
    if record is not None:
        record(sql)
    return unpack(engine.query(sql, params), keys, len(variables))
