"""The plain-text summary of a run, laid out like Stata's ``xtfmb`` (one block per SE type).

Nothing is cut: the term column is as wide as the longest term, each number column as wide as its
longest number plus a space, and a long header line (factor lists, run names) wraps. The header
numbers (T, average N, average R²) are the run record's (``fmduck.runs``), so a run prints the same
summary when it has just been computed and when it is read back; SE blocks follow the order of
``fmduck.results.SE_TYPES``. Names go through ``fmduck.escape.text``; numbers through ``fmt``.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import polars as pl

from fmduck.escape import text as plain
from fmduck.formatting import fmt

if TYPE_CHECKING:
    from fmduck.results import FamaMacBethResults

# design -> "module:function(results, text) -> text", called with this xtfmb-style text
DESIGN_SUMMARIES: dict[str, str] = {"fm1973": "fmduck.designs.fm1973:design_summary"}
SE_LABELS = {"fm": "Fama-MacBeth", "nw": "Newey-West", "shanken": "Shanken (1992)"}
SE_LABELS.update({  # designs pooled and mimicking (fmduck/designs/pooled.py, mimicking.py)
    "ols": "Pooled OLS", "white": "Pooled OLS, White (HC1)", "cluster_asset": "Pooled OLS, clustered by asset",
    "cluster_period": "Pooled OLS, clustered by period", "cluster_both": "Pooled OLS, clustered by asset and period",
    "driscoll_kraay": "Pooled OLS, Driscoll-Kraay", "twopass_fm": "Two-pass, Fama-MacBeth",
    "twopass_nw": "Two-pass, Newey-West", "twopass_shanken": "Two-pass, Shanken (1992)",
})
# first header line per design (default: the two-pass title)
TITLES = {"pooled": "Pooled OLS beside Fama-MacBeth (firm effect)", "mimicking": "Mimicking portfolios beside two-pass"}
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


def text_summary(results: FamaMacBethResults) -> str:
    from fmduck.results import SE_TYPES

    run = results.run
    spec = run["spec"]
    est = results.estimates
    fp = run.get("input_fingerprint", {}) or {}
    left = [
        TITLES.get(run.get("design"), "Fama-MacBeth (1973) two-pass procedure"),
        plain(f"Run: {run['run_name']}  ({run['design']}, {run['engine']})"),
        plain(_pass1_line(spec)),
        plain(f"Dependent: {spec.get('ret')}" + (f" - {spec['rf']}" if spec.get("rf") else "")),
    ]
    right = [
        f"Number of obs     = {fmt(fp.get('pass2_rows', 0)):>10}",
        f"Num. time periods = {fmt(run.get('n_periods')):>10}",
        f"Avg. obs/period   = {fixed(run.get('avg_n'), 10, 2)}",
        f"avg. R-squared    = {fixed(run.get('avg_r2'), 10, 4)}",
    ]
    header = header_lines(left, right)
    order = {s: i for i, s in enumerate(SE_TYPES)}
    blocks = [coefficient_block(SE_LABELS.get(s, s), est.filter(pl.col("se_type") == s).to_dicts())
              for s in sorted(results.se_types, key=lambda s: order.get(s, len(order)))]
    width = max([WIDTH, *[len(line) for block in blocks for line in block]])
    lines = list(header)
    for block in blocks:
        lines.append("-" * width)
        lines.extend(block)
    lines.append("-" * width)
    tests = (results.extra or {}).get("tests")
    if tests is not None and tests.height:  # fmduck/modeltests.py
        from fmduck.modeltests import summary_lines

        lines.extend(summary_lines(tests))
        lines.append("-" * width)
    lines.extend(plain(f"Note: {line}") for line in str(run.get("conventions", "")).splitlines() if line)
    skipped = results.skipped
    if skipped is not None and skipped.height:
        counts = skipped.group_by("pass", "reason").len().sort("pass", "reason")
        for row in counts.iter_rows(named=True):
            lines.append(plain(f"Skipped ({row['pass']}): {row['len']} "
                               f"{'regression' if row['len'] == 1 else 'regressions'} - {row['reason']}"))
    text = "\n".join(lines)
    hook = DESIGN_SUMMARIES.get(run.get("design"))
    if hook is not None:  # a design that lays out more than this block (e.g. fm1973's Table 3)
        import importlib

        module, _, function = hook.partition(":")
        return getattr(importlib.import_module(module), function)(results, text)
    return text


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
