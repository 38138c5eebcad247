"""Pass 2: per period, the cross-sectional regression of the excess return on the (lagged) betas of
pass 1 and the characteristics, solved where the data is into the λ_t scratch table (pidx, nobs, ok,
reason, e<j> per term, r2, adj_r2, rmse); only λ_t (one row per period) comes back to Python.

Rolling betas enter as the beta of the window ending ``beta_lag`` calendar periods before t (the
asreg / tidyfinance rule), or with ``beta_max_age`` K as the most recent beta of the asset no older
than K periods; full-sample betas as they are. Options of :mod:`fmduck.pass2_options` (WLS, absorbed
categories) change the rows and the variables, inside the same templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl
from sqlglot import exp

from fmduck import inputs, templates
from fmduck.errors import EstimationError, InputError
from fmduck.moments import RowSource, Variable, solve_source
from fmduck.plan import Plan, State

KEY = "lambdas"


@dataclass(frozen=True)
class Pass2:
    """What later steps need from pass 2: its row source and regressors, and the λ_t table."""

    src: RowSource
    regressors: list[Variable]
    table: str


def betas(spec: Any, first_pass: str) -> list[Variable]:
    """The first-pass betas as pass-2 regressors, shifted by their mean over the usable regressions."""
    return [Variable(f, exp.column(f"e{j + 1}", table="b"),
                     f"COALESCE((SELECT AVG(e{j + 1}) FROM {first_pass} WHERE ok), 0)")
            for j, f in enumerate(spec.factor_cols)]


def source(spec: Any, src: RowSource, cat: Any, first_pass: str | None) -> RowSource:
    """The pass-2 rows: the panel with lagged betas and characteristics (factors only for an rf there)."""
    return src.with_(
        factors=src.factors if cat.rf_in_factors else None,
        betas=None if first_pass is None else ("rolling" if spec.rolling else "full"),
        betas_table=first_pass,
        beta_max_age=bool(spec.rolling and spec.beta_max_age and spec.beta_max_age > spec.beta_lag),
        char_lag=bool(spec.chars and spec.char_lag),
    )


def params(spec: Any) -> dict[str, int]:
    out = {"beta_lag": spec.beta_lag, "char_lag": spec.char_lag}
    if spec.beta_max_age:
        out["beta_max_age"] = spec.beta_max_age
    return out


def min_df(spec: Any, n_regressors: int) -> int:
    p = n_regressors + int(spec.intercept)
    return max(1, (spec.min_assets or p + 1) - p)


def add(plan: Plan, spec: Any, src: RowSource, regressors: list[Variable], y: Variable, label: str,
        minimum: int = 2) -> Pass2:
    """Add the pass-2 solve and the read of λ_t to ``plan``."""
    sql = solve_source(plan.dialect, ["pidx"], [*regressors, y], src, intercept=spec.intercept,
                       min_df=min_df(spec, len(regressors)))
    plan.add(KEY, "pass 2: cross-sectional regressions per period", sql, kind="create", params=params(spec))
    table = plan.name(KEY)
    add_read(plan, spec, table, len(spec.terms), label, regressors, minimum)
    return Pass2(src, regressors, table)


def add_read(plan: Plan, spec: Any, table: str, n_terms: int, label: str, regressors: list[Variable],
             minimum: int = 2) -> None:
    """Read λ_t (and the periods without a usable regression) into the state: ``lambdas`` (wide:
    period, period_index, one column per term, r2, adj_r2, n) and ``cross_section_skipped``; fewer than
    ``minimum`` usable periods is an error (an update reads only the periods it recomputed: 0)."""
    kind = plan.calendar_kind
    sql = templates.source("read_lambdas", plan.dialect, table=table, calendar=plan.name("calendar"),
                           period=inputs.period_columns(kind, "c.period"), n_terms=n_terms)

    def then(state: State, frame: pl.DataFrame) -> None:
        if frame.height == 0 and minimum:
            raise InputError(
                f"{label}: no period has observations with every regressor "
                f"({', '.join(v.name for v in regressors)}) and the return non-NULL"
                + (f" (betas lagged {spec.beta_lag} period(s))" if spec.rolling else ""))
        ok = frame.filter(pl.col("ok"))
        if ok.height < minimum:
            bad = frame.filter(~pl.col("ok"))
            reasons = ", ".join(f"{c} {r}" for r, c in bad.group_by("reason").len().sort("reason").iter_rows())
            raise EstimationError(
                f"pass 2: fewer than 2 periods have a usable cross-sectional regression of {spec.ret} on "
                f"{', '.join(spec.terms)} ({ok.height} of {frame.height}; {reasons or 'none'})")
        names = {f"e{j}": t for j, t in enumerate(spec.terms)}
        state["lambdas"] = ok.select(*inputs.PERIOD_COLUMNS, "period_index",
                                     *[pl.col(k).alias(v) for k, v in names.items()], "r2", "adj_r2", "n")
        state["cross_section_skipped"] = frame.filter(~pl.col("ok")).select(
            pl.lit("cross_section").alias("pass"), pl.lit(None, pl.Utf8).alias("asset"),
            pl.lit(None, pl.Int64).alias("asset_int"), *inputs.PERIOD_COLUMNS,
            pl.col("reason"), pl.col("n").alias("nobs"))

    plan.add("lambdas_read", "pass 2: lambda_t", sql, then=then)
