"""Pass-2 options: weighted least squares per period (``--weights COL``) and an absorbed
categorical (``--absorb COL``), both inside the one moments template (``sql/moments/grouped.sql.j2``).

- ``weights``: per period, weights are scaled to mean 1 over the period's usable rows and enter the
  moments as Σw·v, Σw·v·v' — the WLS normal equations, solved by the same solver (n stays the row
  count, so degrees of freedom are N_t − p; R² is the weighted R² of statsmodels WLS). A negative
  weight is an error (table, column and rows named); rows with a NULL or zero weight are left out and
  reported (``skipped`` rows with pass ``weights``, one per period, and a note).
- ``absorb``: every variable is demeaned within (period, category) — weighted when weights are
  given — so the slopes are those of a regression with one dummy per category (Frisch-Waugh-Lovell);
  no ``const`` is estimated (the dummies absorb it). R² is the within-category R²; the per-period
  degrees of freedom do not subtract the categories (they only enter the per-period SEs, which
  Fama-MacBeth inference does not use). Rows with a NULL category are left out and reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from fmduck import inputs, templates, validate
from fmduck.errors import InputError
from fmduck.moments import RowSource, Variable


@dataclass(frozen=True)
class Pass2Options:
    """The pass-2 rows and variables under ``--weights`` / ``--absorb``, the check query and the notes."""

    src: RowSource
    variables: list[Variable]
    check: str | None
    notes: list[str]


def apply(spec: Any, cat: Any, src: RowSource, variables: list[Variable], dialect: str) -> Pass2Options:
    if not spec.weights and not spec.absorb:
        return Pass2Options(src, variables, None, [])
    needed, numeric = {}, []
    if spec.weights:
        needed["--weights"] = spec.weights
        numeric.append(spec.weights)
    if spec.absorb:
        needed["--absorb"] = spec.absorb
    validate.require_columns(cat.returns, needed, numeric, dialect)
    check = templates.source("pass2_check", dialect, returns=cat.returns.sql, period=cat.panel_key.sql("r"),
                             ret=templates.ident(spec.ret),
                             weight=templates.ident(spec.weights) if spec.weights else None,
                             absorb=templates.ident(spec.absorb) if spec.absorb else None)
    notes = []
    if spec.weights:
        src = src.with_(weight=templates.sql(templates.column(spec.weights, "p")))
        notes.append(f"Pass 2 is weighted least squares per period, weights {spec.weights} scaled to mean 1 per period")
    if spec.absorb:
        src = src.with_(absorb=templates.ident(spec.absorb))
        variables = [Variable(v.name, v.expr, 0.0) for v in variables]  # demeaned: no shift to restore
        notes.append(f"{spec.absorb} absorbed: every variable demeaned within (period, {spec.absorb})"
                     + (" with the weights" if spec.weights else "") + "; no intercept; R² within")
    return Pass2Options(src, variables, check, notes)


def read_check(spec: Any, label: str, counts: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Refuse negative weights; the rows left out per period as skipped rows, and the count note."""
    negative = counts.filter(pl.col("n_negative_weight") > 0)
    if negative.height:
        total = int(negative["n_negative_weight"].sum())
        first = ", ".join(str(p) for p in negative["period"].head(5).to_list())
        raise InputError(f"{label}: --weights column {spec.weights!r} has {total:,} negative value(s) "
                         f"(periods {first}{', ...' if negative.height > 5 else ''}); weights must be >= 0")
    skipped, notes = [], []
    if spec.weights:
        out = pl.col("n_null_weight") + pl.col("n_zero_weight")
        skipped.append(_skipped(counts.filter(out > 0), "weights", "rows left out: weight NULL or zero", out))
        notes.append(f"{int(counts.select(out.sum()).item() or 0):,} row(s) with a NULL or zero weight left out")
    if spec.absorb:
        out = pl.col("n_null_category")
        skipped.append(_skipped(counts.filter(out > 0), "absorb", "rows left out: category NULL", out))
    frames = [s for s in skipped if s.height]
    return (pl.concat(frames) if frames else pl.DataFrame()), notes


def _skipped(frame: pl.DataFrame, pass_name: str, reason: str, count: pl.Expr) -> pl.DataFrame:
    return frame.select(pl.lit(pass_name).alias("pass"), pl.lit(None, pl.Utf8).alias("asset"),
                        pl.lit(None, pl.Int64).alias("asset_int"),
                        pl.col("period").cast(pl.Utf8), *[pl.lit(None).alias(c) for c in inputs.PERIOD_COLUMNS[1:]],
                        pl.lit(reason).alias("reason"), count.cast(pl.Int64).alias("nobs"))
