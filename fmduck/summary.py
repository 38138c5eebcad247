"""The plain-text summary of a run, laid out like Stata's ``xtfmb`` (one block per SE type)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from fmduck.results import FamaMacBethResults

SE_LABELS = {"fm": "Fama-MacBeth", "nw": "Newey-West", "shanken": "Shanken (1992)"}
WIDTH = 78


def number(value: float | None, width: int = 10, digits: int = 6) -> str:
    """A right-aligned number with ``digits`` significant digits, like Stata's %9.0g-ish columns."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ".".rjust(width)
    text = f"{value:.{digits}g}"
    if "e" not in text and abs(value) < 1 and value != 0:
        text = text.replace("0.", ".", 1)
    return text.rjust(width)


def text_summary(results: FamaMacBethResults) -> str:
    run = results.run
    spec = run["spec"]
    est = results.estimates
    fp = run.get("input_fingerprint", {}) or {}
    first = est.row(0, named=True)
    head_left = [
        "Fama-MacBeth (1973) two-pass procedure",
        f"Run: {run['run_name']}  ({run['design']}, {run['engine']})",
        _pass1_line(spec),
        f"Dependent: {spec.get('ret')}" + (f" - {spec['rf']}" if spec.get("rf") else ""),
    ]
    head_right = [
        f"Number of obs     = {fp.get('pass2_rows', 0):>10,}",
        f"Num. time periods = {first['n_periods']:>10,}",
        f"Avg. obs/period   = {first['avg_n']:>10.2f}",
        f"avg. R-squared    = {first['avg_r2']:>10.4f}",
    ]
    lines = [f"{left:<46}{right}" for left, right in zip(head_left, head_right)]
    for se_type in results.se_types:
        block = est.filter(pl.col("se_type") == se_type)
        lines.append("-" * WIDTH)
        lines.append(f"{'':>13}|{SE_LABELS.get(se_type, se_type):^64}")
        lines.append(f"{'':>13}|      Coef.   Std. Err.      t    P>|t|     [95% Conf. Interval]")
        lines.append("-" * 13 + "+" + "-" * (WIDTH - 14))
        for row in block.iter_rows(named=True):
            term = "_cons" if row["term"] == "const" else row["term"]
            lines.append(
                f"{term[:12]:>12} |{number(row['estimate'], 11)} {number(row['std_error'], 10)}"
                f"{_fixed(row['t_stat'], 8, 2)}{_fixed(row['p_value'], 8, 3)}"
                f"   {number(row['ci_lower'], 10)}  {number(row['ci_upper'], 10)}"
            )
    lines.append("-" * WIDTH)
    lines.extend(f"Note: {line}" for line in str(run.get("conventions", "")).splitlines() if line)
    skipped = results.skipped
    if skipped is not None and skipped.height:
        counts = skipped.group_by("pass", "reason").len().sort("pass", "reason")
        for row in counts.iter_rows(named=True):
            lines.append(f"Skipped ({row['pass']}): {row['len']} {'regression' if row['len'] == 1 else 'regressions'}"
                         f" - {row['reason']}")
    return "\n".join(lines)


def _pass1_line(spec: dict) -> str:
    factors = spec.get("factor_cols") or []
    chars = spec.get("chars") or []
    parts = []
    if factors:
        kind = f"rolling {spec['window']}-period betas, lag {spec.get('beta_lag', 1)}" if spec.get("window") else "full-sample betas"
        parts.append(f"{kind} on {', '.join(factors)}")
    if chars:
        lag = spec.get("char_lag") or 0
        parts.append(f"chars {', '.join(chars)}" + (f" (lag {lag})" if lag else ""))
    return "; ".join(parts)[:45]


def _fixed(value: float | None, width: int, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return ".".rjust(width)
    return f"{value:{width}.{digits}f}"
