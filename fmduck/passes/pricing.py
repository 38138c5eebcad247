"""Pricing errors: each asset's average pass-2 residual α_i = mean_t(r_it − x_it'λ_t), with its standard
error s/√n, solved where the data is (the moments template grouped by asset, λ_t joined per period)."""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlglot import exp

from fmduck import inputs, templates
from fmduck.moments import RowSource, Variable, solve_source
from fmduck.plan import Plan, State

KEY = "pricing_errors"


def residual(spec: Any, regressors: list[Variable], y: Variable, alias: str = "l") -> exp.Expression:
    """y − x'λ_t with λ_t from the joined table ``alias`` (columns e0.. in term order)."""
    fitted: exp.Expression | None = exp.column("e0", table=alias) if spec.intercept else None
    offset = int(spec.intercept)
    for j, reg in enumerate(regressors):
        term = exp.Mul(this=exp.column(f"e{j + offset}", table=alias), expression=exp.Paren(this=reg.expr))
        fitted = term if fitted is None else exp.Add(this=fitted, expression=term)
    return exp.Sub(this=exp.Paren(this=y.expr), expression=exp.Paren(this=fitted))


def add(plan: Plan, spec: Any, src: RowSource, regressors: list[Variable], y: Variable, lambdas_table: str,
        asset_cols: Any, params: dict[str, Any]) -> None:
    """Add the pricing-error solve and its read (state ``pricing_errors``) to ``plan``."""
    resid = Variable("resid", residual(spec, regressors, y), 0.0)
    sql = solve_source(plan.dialect, ["asset"], [resid], src.with_(lambdas_table=lambdas_table), intercept=True)
    plan.add(KEY, "pricing errors per asset", sql, kind="create", params=params)
    read = templates.source("read_pricing", plan.dialect, table=plan.name(KEY), asset=asset_cols("p.asset"))

    def then(state: State, frame: pl.DataFrame) -> None:
        state["pricing_errors"] = frame

    plan.add("pricing_errors_read", "pricing errors", read, then=then)


SCHEMA = {"asset": pl.Utf8, "asset_int": pl.Int64, "alpha": pl.Float64, "std_error": pl.Float64,
          "t_stat": pl.Float64, "n_periods": pl.Int64}
COLUMNS = (*inputs.ASSET_COLUMNS, "alpha", "std_error", "t_stat", "n_periods")
