"""The plain-text summary of a run, laid out like Stata's ``xtfmb`` (one block per SE type)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from fmduck import covariance
from fmduck.errors import FmduckError
from fmduck.formatting import fmt

if TYPE_CHECKING:
    from fmduck.results import FamaMacBethResults

WIDTH = 78


def number(value: float | None, width: int = 10, digits: int = 6) -> str:
    """A right-aligned number with ``digits`` significant digits, like Stata's %9.0g-ish columns."""
    return fmt(value, digits, significant=True, missing=".").rjust(width)


def text_summary(results: FamaMacBethResults) -> str:
    run = results.run
    spec = run["spec"]
    est = results.estimates
    fp = run.get("input_fingerprint", {}) or {}
    first = est.row(0, named=True)
    head_left = [
        _design(run).title,
        f"Run: {run['run_name']}  ({run['design']}, {run['engine']})",
        _pass1_line(spec),
        f"Dependent: {spec.get('ret')}" + (f" - {spec['rf']}" if spec.get("rf") else ""),
    ]
    head_right = [
        f"Number of obs     = {fmt(fp.get('pass2_rows', 0)):>10}",
        f"Num. time periods = {fmt(first['n_periods']):>10}",
        f"Avg. obs/period   = {_fixed(first['avg_n'], 10, 2)}",
        f"avg. R-squared    = {_fixed(first['avg_r2'], 10, 4)}",
    ]
    lines = [f"{left:<46}{right}" for left, right in zip(head_left, head_right)]
    lines.extend(_blocks(est, results.se_types))
    tests = (results.extra or {}).get("tests")
    if tests is not None and tests.height:  # fmduck/modeltests.py
        from fmduck.modeltests import summary_lines

        lines.extend(summary_lines(tests))
        lines.append("-" * WIDTH)
    lines.extend(f"Note: {line}" for line in str(run.get("conventions", "")).splitlines() if line)
    skipped = results.skipped
    if skipped is not None and skipped.height:
        counts = skipped.group_by("pass", "reason").len().sort("pass", "reason")
        for row in counts.iter_rows(named=True):
            lines.append(f"Skipped ({row['pass']}): {row['len']} {'regression' if row['len'] == 1 else 'regressions'}"
                         f" - {row['reason']}")
    return _design(run).summary(results, "\n".join(lines))  # a design may lay out more (fm1973's Table 3)


def _design(run: dict) -> Any:
    from fmduck.designs import Design, registry

    return registry().get(run.get("design")) or Design()


def _blocks(est: pl.DataFrame, se_types: list[str]) -> list[str]:
    lines = []
    for se_type in se_types:
        block = est.filter(pl.col("se_type") == se_type)
        lines.append("-" * WIDTH)
        lines.append(f"{'':>13}|{covariance.label(se_type):^64}")
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
    return lines


def estimates_block(results: FamaMacBethResults, estimates: pl.DataFrame, se_types: list[str] | None = None) -> str:
    """The xtfmb-style blocks of ``estimates`` (e.g. re-inferred from a stored run's λ_t), with their notes."""
    se_types = se_types or list(dict.fromkeys(estimates["se_type"].to_list()))
    missing = [s for s in se_types if s not in set(estimates["se_type"].to_list())]
    if missing:
        raise FmduckError(f"run {results.name!r} has no {', '.join(missing)} standard errors; it has "
                          f"{', '.join(dict.fromkeys(estimates['se_type'].to_list()))}")
    est = estimates.filter(pl.col("se_type").is_in(se_types))
    notes = list(dict.fromkeys(n for n in est["convention"].to_list() if n))
    return "\n".join([f"Run: {results.name}", *_blocks(est, se_types), *(f"Note: {n}" for n in notes)])


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
    return fmt(value, digits, missing=".").rjust(width)
