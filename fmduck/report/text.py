"""Plain-text tables of the text report (and the layout helper the summary shares): widths from the
longest cell, nothing cut. Cells are strings already (``fmt`` numbers, ``escape.text`` names)."""

from __future__ import annotations

import unicodedata
from typing import Any

from fmduck.escape import text as plain

FOOTER_LABELS = {"T": "T (periods)", "N": "Avg. N", "R2": "Avg. R2", "SE": "SE"}


def width(cell: Any) -> int:
    """Columns a string takes in a terminal: East Asian wide characters count twice, combining marks not."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in str(cell))


def pad(cell: Any, size: int, *, left: bool) -> str:
    """``cell`` padded with spaces to ``size`` terminal columns (left- or right-aligned); never cut."""
    fill = " " * max(0, size - width(cell))
    return f"{cell}{fill}" if left else f"{fill}{cell}"


def text_grid(headers: list[list[str]], rows: list[list[str]], *, rules: list[int] | None = None) -> str:
    """A plain-text table: first column left-aligned, others right-aligned; rules before given row indices."""
    widths = [max(width(r[i]) for r in [*headers, *rows]) for i in range(len(headers[0]))]

    def line(cells: list[str]) -> str:
        parts = [pad(c, w, left=i == 0) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    total = sum(widths) + 2 * (len(widths) - 1)
    out = ["=" * total, *[line(h) for h in headers], "-" * total]
    for i, row in enumerate(rows):
        if rules and i in rules:
            out.append("-" * total)
        out.append(line(row))
    out.append("=" * total)
    return "\n".join(out)


def main_table(table: dict[str, Any]) -> str:
    header = ["", *[c["number"] for c in table["columns"]]]
    names = ["", *[plain(c["name"]) for c in table["columns"]]]
    rows = []
    for row in table["rows"]:
        rows.append([plain(row["label"]), *row["coef"]])
        rows.append(["", *row["stat"]])
    footer_start = len(rows)
    rows.extend([FOOTER_LABELS[f["key"]], *f["cells"]] for f in table["footer"])
    return text_grid([header, names], rows, rules=[footer_start])


def first_pass(table: dict[str, Any]) -> str:
    if table["mode"] == "summary":
        return first_pass_summary(table)
    header = ["asset", *[str(label).replace(" ", "_") if str(label).startswith("β") else str(label)
                         for label in table["labels"]], "R2", "s(e)", table["count_label"]]
    rows = []
    for row in table["rows"]:
        rows.append([plain(row["asset"]), *row["coef"], row["r2"], row["rmse"], row["nobs"]])
        if row["stat"]:
            rows.append(["", *row["stat"], "", "", ""])
    return text_grid([[plain(h) for h in header]], rows)


def first_pass_summary(table: dict[str, Any]) -> str:
    grid = text_grid([["", "n", *table["columns"]]],
                     [[plain(r["label"]), r["n"], *r["cells"]] for r in table["rows"]])
    if not table["top"]:
        return grid
    top = text_grid([["asset", "alpha", table["top_stat"]]],
                    [[plain(r["asset"]), r["alpha"], r["stat"]] for r in table["top"]])
    return f"{grid}\n\n{plain(table['top_title'])}\n{top}"


def lambdas(table: dict[str, Any]) -> str:
    header = ["period", *[plain(label) for label in table["labels"]], "R2", "N"]
    rows = [[plain(r["period"]), *r["cells"], r["r2"], r["n"]] for r in table["rows"]]
    return text_grid([header], rows)
