"""The plain-text summary of a run, laid out like Stata's ``xtfmb`` (one block per SE type).

Nothing is cut: the term column is as wide as the longest term, each number column as wide as its
longest number plus a space, and a long header line (factor lists, run names) wraps. The header
numbers (T, average N, average R²) are the run record's (``fmduck.runs``), so a run prints the same
summary when it has just been computed and when it is read back; SE blocks follow the order of the
covariance registry (``fmduck.designs.se_order``) and carry its labels; the first line is the design's
title, and a design may add its own layout after the blocks (``Design.summary``). Names go through
``fmduck.escape.text``; numbers through ``fmt``.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import polars as pl

from fmduck import covariance
from fmduck.errors import FmduckError
from fmduck.escape import text as plain
from fmduck.formatting import fmt
from fmduck.krs_layout import heading, krs_table

if TYPE_CHECKING:
    from fmduck.results import FamaMacBethResults

WIDTH = 78  # at least this wide
HEADER_LEFT = 46  # the header's right column starts here (fmduck.designs.fm1973 rewrites the left part)
TERM_WIDTH = 12
# (header, minimum width, formatter) of the number columns, after the term and " |"
COLUMNS = (("Coef.", 11, "g"), ("Std. Err.", 11, "g"), ("t", 8, 2), ("P>|t|", 8, 3), ("", 13, "g"), ("", 12, "g"))
CI_HEADER = "[95% Conf. Interval]"


def number(value: float | None, width: int = 10, digits: int = 6) -> str:
    """A right-aligned number with ``digits`` significant digits, like Stata's %9.0g-ish columns."""
    return fmt(value, digits, significant=True, missing=".").rjust(width)


def fixed(value: float | None, width: int, digits: int) -> str:
    """A right-aligned number with ``digits`` decimals (never cut: wider numbers overflow ``width``)."""
    return fmt(value, digits, missing=".").rjust(width)


def header_lines(left: list[str], right: list[str]) -> list[str]:
    """Two header columns: ``left`` wrapped at ``HEADER_LEFT - 2`` characters (continuations indented),
    ``right`` from column ``HEADER_LEFT``, one entry per line from the top."""
    lines: list[str] = []
    for item in left:
        lines += textwrap.wrap(item, HEADER_LEFT - 2, subsequent_indent="  ", break_on_hyphens=False) or [""]
    lines += [""] * (len(right) - len(lines))
    return [f"{line:<{HEADER_LEFT}}{right[i]}".rstrip() if i < len(right) else line.rstrip()
            for i, line in enumerate(lines)]


def coefficient_block(label: str, rows: list[dict]) -> list[str]:
    """One SE type: a title line, the column header and a line per term, widths from the content."""
    terms = [plain("_cons" if r["term"] == "const" else r["term"]) for r in rows]
    cells = [[r["estimate"], r["std_error"], r["t_stat"], r["p_value"], r["ci_lower"], r["ci_upper"]] for r in rows]
    texts = [[fmt(v, 6, significant=True, missing=".") if kind == "g" else fmt(v, kind, missing=".")
              for v, (_h, _w, kind) in zip(row, COLUMNS)] for row in cells]
    term_width = max([TERM_WIDTH, *map(len, terms)])
    widths = [max([minimum, len(head) + 1, *[len(t[j]) + 1 for t in texts]]) for j, (head, minimum, _k) in
              enumerate(COLUMNS)]
    if len(CI_HEADER) + 3 > widths[4] + widths[5]:
        widths[5] = len(CI_HEADER) + 3 - widths[4]
    table_width = sum(widths) + 1  # Stata's header runs one past the last number
    # header labels end where xtfmb puts them (Coef., t under the numbers; the others one to the right)
    head = ("Coef.".rjust(widths[0]) + "Std. Err.".rjust(widths[1] + 1) + "t".rjust(widths[2] - 1)
            + "P>|t|".rjust(widths[3] + 1) + CI_HEADER.rjust(widths[4] + widths[5]))
    out = [f"{'':>{term_width + 1}}|{label:^{table_width}}".rstrip(),
           f"{'':>{term_width + 1}}|{head}".rstrip(),
           "-" * (term_width + 1) + "+" + "-" * table_width]
    for term, row in zip(terms, texts):
        out.append(f"{term:>{term_width}} |" + "".join(t.rjust(w) for t, w in zip(row, widths)))
    return out


def header_right(run: dict[str, Any]) -> list[str]:
    """The header's right column: observations, T, average N and average R² from the run record."""
    fp = run.get("input_fingerprint", {}) or {}
    return [
        f"Number of obs     = {fmt(fp.get('pass2_rows', 0)):>10}",
        f"Num. time periods = {fmt(run.get('n_periods')):>10}",
        f"Avg. obs/period   = {fixed(run.get('avg_n'), 10, 2)}",
        f"avg. R-squared    = {fixed(run.get('avg_r2'), 10, 4)}",
    ]


def replace_header(results: FamaMacBethResults, text: str, left: list[str]) -> str:
    """``text`` (a summary) with its header rebuilt from ``left`` (a design's own description, e.g.
    fm1973's portfolios line) beside the usual right column; wrapped like the generic header, nothing cut.
    The header is everything before the first rule line."""
    lines = text.splitlines()
    first_rule = next((i for i, line in enumerate(lines) if line and set(line) == {"-"}), len(lines))
    return "\n".join([*header_lines([plain(item) for item in left], header_right(results.run)), *lines[first_rule:]])


def text_summary(results: FamaMacBethResults) -> str:
    run = results.run
    spec = run["spec"]
    est = results.estimates
    left = [
        _design(run).title,
        plain(f"Run: {run['run_name']}  ({run['design']}, {run['engine']})"),
        plain(_pass1_line(spec)),
        plain(f"Dependent: {spec.get('ret')}" + (f" - {spec['rf']}" if spec.get("rf") else "")),
    ]
    lines = header_lines(left, header_right(run))
    width = _blocks(lines, est, results.se_types)
    krs = krs_table(results)
    if krs is not None:  # misspec_robust rows: the Kan-Robotti-Shanken (2013) layout
        lines.extend(krs_block(krs))
        lines.append("-" * width)
    tests = (results.extra or {}).get("tests")
    if tests is not None and tests.height:  # fmduck/modeltests.py
        from fmduck.modeltests import summary_lines

        lines.extend(summary_lines(tests))
        lines.append("-" * width)
    lines.extend(plain(f"Note: {line}") for line in str(run.get("conventions", "")).splitlines() if line)
    from fmduck.passes.coverage import line as coverage_line

    covered = coverage_line(run.get("coverage") or {})
    if covered:
        lines.append(plain(f"Coverage: {covered}"))
    lines.extend(plain(f"Warning: {warning}") for warning in results.warnings)
    skipped = results.skipped
    if skipped is not None and skipped.height:  # the coverage counts are on the Coverage line
        counts = skipped.filter(pl.col("pass") != "coverage").group_by("pass", "reason").len().sort("pass", "reason")
        for row in counts.iter_rows(named=True):
            lines.append(plain(f"Skipped ({row['pass']}): {row['len']} "
                               f"{'regression' if row['len'] == 1 else 'regressions'} - {row['reason']}"))
    return _design(run).summary(results, "\n".join(lines))  # a design may lay out more (fm1973's Table 3)


def krs_block(table: dict[str, Any]) -> list[str]:
    """The Kan-Robotti-Shanken (2013) layout (:func:`fmduck.krs_layout.krs_table`) as text: a heading,
    one line per term (γ, t_FM, t_S, t_JW, t_KRS), the CSR R² line and the note; widths from the content."""
    terms = [plain("_cons" if r["term"] == "const" else r["term"]) for r in table["rows"]]
    headers = ["gamma", *table["columns"]]
    texts = [[fmt(r["gamma"], 6, significant=True, missing="."),
              *[fmt(r["t"][h], 2, missing=".") for h in table["columns"]]]
             for r in table["rows"]]
    widths = [max([11 if j == 0 else 8, len(h) + 2, *[len(t[j]) + 1 for t in texts]]) for j, h in enumerate(headers)]
    term_width = max([TERM_WIDTH, *map(len, terms)])
    out = [plain(heading(table)),
           f"{'':>{term_width + 1}}|" + "".join(h.rjust(w) for h, w in zip(headers, widths)),
           "-" * (term_width + 1) + "+" + "-" * (sum(widths) + 1)]
    out += [f"{term:>{term_width}} |" + "".join(c.rjust(w) for c, w in zip(row, widths))
            for term, row in zip(terms, texts)]
    out.append(f"CSR R-squared = {fmt(table['r2'], 4, missing='.')} (SE {fmt(table['r2_se'], 4, missing='.')});  "
               f"p(R2 = 1) = {fmt(table['p_r2_eq_1'], 4, missing='.')};  "
               f"p(R2 = 0) = {fmt(table['p_r2_eq_0'], 4, missing='.')}")
    out.append(plain(f"Note: {table['note']}"))
    return out


def _blocks(lines: list[str], est: pl.DataFrame, se_types: list[str]) -> int:
    """Append one coefficient block per SE type (registry order) to ``lines``; returns the rule width."""
    from fmduck.designs import se_order

    order = se_order()
    blocks = [coefficient_block(covariance.label(s), est.filter(pl.col("se_type") == s).to_dicts())
              for s in sorted(se_types, key=lambda s: order.get(s, len(order)))]
    width = max([WIDTH, *[len(line) for block in blocks for line in block]])
    for block in blocks:
        lines.append("-" * width)
        lines.extend(block)
    lines.append("-" * width)
    return width


def estimates_block(results: FamaMacBethResults, estimates: pl.DataFrame, se_types: list[str] | None = None) -> str:
    """The blocks of ``estimates`` (e.g. re-inferred from a stored run's λ_t), with their notes."""
    present = list(dict.fromkeys(estimates["se_type"].to_list()))
    se_types = se_types or present
    missing = [s for s in se_types if s not in present]
    if missing:
        raise FmduckError(f"run {results.name!r} has no {', '.join(missing)} standard errors; "
                          f"it has {', '.join(present)}")
    est = estimates.filter(pl.col("se_type").is_in(se_types))
    lines = [plain(f"Run: {results.name}")]
    _blocks(lines, est, se_types)
    lines += [plain(f"Note: {n}") for n in dict.fromkeys(est["convention"].to_list()) if n]
    return "\n".join(lines)


def _design(run: dict) -> Any:
    from fmduck.designs import Design, registry

    return registry().get(run.get("design")) or Design()


def _pass1_line(spec: dict) -> str:
    factors = spec.get("factor_cols") or []
    chars = spec.get("chars") or []
    parts = []
    if factors:
        kind = (f"rolling {spec['window']}-period betas, lag {spec.get('beta_lag', 1)}" if spec.get("window")
                else "full-sample betas")
        parts.append(f"{kind} on {', '.join(factors)}")
    if chars:
        lag = spec.get("char_lag") or 0
        parts.append(f"chars {', '.join(chars)}" + (f" (lag {lag})" if lag else ""))
    return "; ".join(parts)
