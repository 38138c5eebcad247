"""Pass-2 options: weighted least squares per period (``--weights COL``) and an absorbed
categorical (``--absorb COL``), both inside the one moments template (``sql/moments.sql.j2``).

- ``weights``: per period, weights are scaled to mean 1 over the period's usable rows and enter the
  moments as Σw·v, Σw·v·v' — the WLS normal equations, solved by the same batched solver (n stays
  the row count, so degrees of freedom are N_t − p; R² is the weighted R² of statsmodels WLS).
  A negative weight is an error (table, column and rows named); rows with a NULL or zero weight
  are left out and reported (``skipped`` rows with pass ``weights``, one per period, and a note).
- ``absorb``: every variable is demeaned within (period, category) — weighted when weights are
  given — so the slopes are those of a regression with one dummy per category (Frisch-Waugh-Lovell);
  no ``const`` is estimated (the dummies absorb it). R² is the within-category R²; the per-period
  degrees of freedom do not subtract the categories (they only enter the per-period SEs, which
  Fama-MacBeth inference does not use). Rows with a NULL category are left out and reported.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from fmduck import templates, validate
from fmduck.errors import InputError
from fmduck.moments import Variable


def apply(model: Any, inputs: Any, source: dict[str, Any],
          variables: list[Variable]) -> tuple[dict[str, Any], list[Variable], pl.DataFrame, list[str]]:
    """(row source, variables, skipped rows, notes) of pass 2 with the options of ``model.spec``."""
    spec = model.spec
    if not spec.weights and not spec.absorb:
        return source, variables, pl.DataFrame(), []
    returns = inputs.returns
    needed, numeric = {}, []
    if spec.weights:
        needed["--weights"] = spec.weights
        numeric.append(spec.weights)
    if spec.absorb:
        needed["--absorb"] = spec.absorb
    validate.require_columns(returns, needed, numeric)
    sql = templates.render("pass2_check", model.engine.dialect, returns=returns.sql,
                           period=templates.ident(spec.period), ret=templates.ident(spec.ret),
                           weight=templates.ident(spec.weights) if spec.weights else None,
                           absorb=templates.ident(spec.absorb) if spec.absorb else None)
    model._record("weights / absorb check", sql)
    counts = model.engine.query(sql)
    negative = counts.filter(pl.col("n_negative_weight") > 0)
    if negative.height:
        total = int(negative["n_negative_weight"].sum())
        first = ", ".join(negative["period"].head(5).to_list())
        raise InputError(f"{returns.label}: --weights column {spec.weights!r} has {total:,} negative value(s) "
                         f"(periods {first}{', ...' if negative.height > 5 else ''}); weights must be >= 0")
    source = dict(source)
    notes, skipped = [], []
    if spec.weights:
        source["weight"] = templates.sql(templates.column(spec.weights, "p"))
        dropped = counts.filter((pl.col("n_null_weight") + pl.col("n_zero_weight")) > 0)
        skipped.append(dropped.select(
            pl.lit("weights").alias("pass"), pl.lit(None, pl.Utf8).alias("asset"), pl.col("period"),
            pl.lit("rows left out: weight NULL or zero").alias("reason"),
            (pl.col("n_null_weight") + pl.col("n_zero_weight")).cast(pl.Int64).alias("nobs")))
        n_out = int((counts["n_null_weight"] + counts["n_zero_weight"]).sum())
        notes.append(f"Pass 2 is weighted least squares per period, weights {spec.weights} scaled to mean 1 "
                     f"per period; {n_out:,} row(s) with a NULL or zero weight left out")
    if spec.absorb:
        source["absorb"] = templates.ident(spec.absorb)
        dropped = counts.filter(pl.col("n_null_category") > 0)
        skipped.append(dropped.select(
            pl.lit("absorb").alias("pass"), pl.lit(None, pl.Utf8).alias("asset"), pl.col("period"),
            pl.lit("rows left out: category NULL").alias("reason"),
            pl.col("n_null_category").cast(pl.Int64).alias("nobs")))
        variables = [Variable(v.name, v.expr, 0.0) for v in variables]  # demeaned: no shift to restore
        notes.append(f"{spec.absorb} absorbed: every variable demeaned within (period, {spec.absorb})"
                     + (" with the weights" if spec.weights else "") + "; no intercept; R² within")
    frames = [s for s in skipped if s.height]
    return source, variables, (pl.concat(frames) if frames else pl.DataFrame()), notes
