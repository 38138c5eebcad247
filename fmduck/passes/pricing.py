"""Pricing errors: each asset's average pass-2 residual α_i = mean_t(r_it − x_it'λ_t), with its standard
error s/√n, solved where the data is (the moments template grouped by asset, λ_t joined per period)."""

from __future__ import annotations

from collections.abc import Callable
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
        asset_cols: Any, params: dict[str, Any], *, key: str = KEY, when: Any = None) -> None:
    """Add the pricing-error solve and its read (state ``key``) to ``plan`` (``when``: run only if true)."""
    resid = Variable("resid", residual(spec, regressors, y), 0.0)
    sql = solve_source(plan.dialect, ["asset"], [resid], src.with_(lambdas_table=lambdas_table), intercept=True)
    plan.add(key, "pricing errors per asset", sql, kind="create", params=params, when=when)
    read = templates.source("read_pricing", plan.dialect, table=plan.name(key), asset=asset_cols("p.asset"))

    def then(state: State, frame: pl.DataFrame) -> None:
        state[key] = frame

    plan.add(f"{key}_read", "pricing errors", read, then=then, when=when)


def add_appended(plan: Plan, spec: Any, src: RowSource, regressors: list[Variable], y: Variable,
                 lambdas_table: str, asset_cols: Any, params: dict[str, Any],
                 then: Callable[[State, pl.DataFrame], None]) -> None:
    """An update's appended periods (``src``'s rows): per asset, the count, mean and sum of squared
    deviations of the same pass-2 residual (asset, asset_int, n, mean, m2), read by ``then``, for
    :func:`combine`."""
    resid = {"expr": templates.sql(residual(spec, regressors, y)), "alias": "v0", "shift": "CAST(0 AS DOUBLE)"}
    sql = templates.source("update_pricing", plan.dialect, src=src.with_(lambdas_table=lambdas_table),
                           variables=[resid], asset=asset_cols("o.asset"))
    plan.add("pricing_appended", "pricing errors: the residuals of the appended periods", sql, params=params,
             then=then)


def combine(old: pl.DataFrame, new: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """α_i, its standard error, t and n over every period, from the stored pricing errors ``old`` and the
    moments of the appended periods ``new`` (asset, asset_int, n, mean, m2); and the assets whose stored
    row cannot be combined — α NULL: a single period, whose residual the stored row does not keep —
    which must be solved again over all their periods.

    The stored row gives n_a, Σe = n_a·α_a and M2_a = se_a²·n_a·(n_a − 1) (se = s/√n, s² = M2/(n − 1));
    the pairwise update of Chan, Golub & LeVeque (1979): δ = m_b − α_a, α = α_a + δ·n_b/n,
    M2 = M2_a + M2_b + δ²·n_a·n_b/n, n = n_a + n_b. Then se = √(1/n)·√(M2/(n − 1)), t = α/se, as the
    intercept-only solve gives them (fmduck/ols.py: no α below 2 periods). Assets without appended rows
    keep their stored row exactly."""
    keys = list(inputs.ASSET_COLUMNS)
    stored = old.select(*keys, "alpha", "std_error", "t_stat", "n_periods")
    appended = new.select(*keys, pl.col("n").cast(pl.Int64).alias("n_b"), pl.col("mean").cast(pl.Float64).alias("m_b"),
                          pl.col("m2").cast(pl.Float64).alias("m2_b"))
    joined = appended.join(stored, on="asset", how="left", suffix="_old")
    redo = joined.filter(pl.col("n_periods").is_not_null() & pl.col("alpha").is_null())["asset"].to_list()
    both = joined.filter(pl.col("alpha").is_not_null())
    na, nb = pl.col("n_periods").cast(pl.Float64), pl.col("n_b").cast(pl.Float64)
    n = na + nb
    delta = pl.col("m_b") - pl.col("alpha")
    both = both.with_columns(
        (pl.col("alpha") + delta * nb / n).alias("alpha_new"),
        (pl.col("std_error") * pl.col("std_error") * na * (na - 1.0) + pl.col("m2_b") + delta * delta * na * nb / n)
        .alias("m2"),
        (pl.col("n_periods") + pl.col("n_b")).alias("n_new"))
    fresh = joined.filter(pl.col("n_periods").is_null()).with_columns(
        pl.col("m_b").alias("alpha_new"), pl.col("m2_b").alias("m2"), pl.col("n_b").alias("n_new"))
    merged = pl.concat([both, fresh], how="diagonal_relaxed")
    nn = pl.col("n_new").cast(pl.Float64)
    ok = pl.col("n_new") >= 2
    se = (1.0 / nn).sqrt() * (pl.col("m2").clip(lower_bound=0.0) / (nn - 1.0)).sqrt()
    merged = merged.select(
        "asset", "asset_int",
        pl.when(ok).then(pl.col("alpha_new")).otherwise(None).alias("alpha"),
        pl.when(ok).then(se).otherwise(None).alias("std_error"),
        pl.col("n_new").alias("n_periods"))
    merged = merged.with_columns((pl.col("alpha") / pl.col("std_error")).alias("t_stat"))
    touched = set(merged["asset"].to_list()) | set(redo)
    kept = stored.filter(~pl.col("asset").is_in(list(touched)))
    out = pl.concat([kept, merged.select(kept.columns)], how="vertical_relaxed").sort("asset")
    return out.select(*COLUMNS).cast(SCHEMA), redo


SCHEMA = {"asset": pl.Utf8, "asset_int": pl.Int64, "alpha": pl.Float64, "std_error": pl.Float64,
          "t_stat": pl.Float64, "n_periods": pl.Int64}
COLUMNS = (*inputs.ASSET_COLUMNS, "alpha", "std_error", "t_stat", "n_periods")
