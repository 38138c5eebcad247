"""Paper-ready reports of stored runs: HTML, LaTeX (booktabs) and text, rendered by jinja2 from ``reports/``.

Everything comes from the result tables (``loading.load_runs``), never from memory of a run. One or
several runs go side by side as columns (esttab/stargazer layout); each run adds its first-pass
table, its λ_t table, plots (matplotlib) and a reproducibility appendix; ``sections`` picks the parts.
Runs with many assets (``ReportOptions.asset_limit``) get distributions instead of per-asset tables
and plots, and the full per-asset table as a CSV file; the first-pass aggregates of a stored run are
computed in SQL on the results engine (``fmduck.store_aggregates``), never from the long first pass. Every number goes through
``fmduck.formatting.fmt``, every name through ``fmduck.escape``.

    fmduck report DB RUN [RUN ...] --format html|tex|txt -o FILE [--se fm|nw|shanken] [--stat t|se]
                  [--sections estimates,first-pass,lambdas,plots,appendix]

Modules: ``options`` (ReportOptions), ``loading`` (load_runs), ``assets`` (first-pass aggregates),
``tables``, ``figures``, ``text``, ``render``, ``command`` (the CLI wrapper).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fmduck.escape import html_label, tex as tex_escape, tex_label, tex_number
from fmduck.report.loading import load_for_report, load_runs
from fmduck.report.options import ASSET_LIMIT, FORMATS, SECTIONS, ReportOptions
from fmduck.report.render import Report, render
from fmduck.report.text import text_grid

__all__ = [
    "ASSET_LIMIT", "FORMATS", "SECTIONS", "Report", "ReportOptions", "html_label", "load_runs", "render", "report",
    "tex_escape", "tex_label", "tex_number", "text_grid",
]


def report(database: str | Path, names: list[str], fmt_name: str, output: str | Path, *, schema: str = "fmduck",
           **options: Any) -> Report:
    """Load ``names`` from ``database`` and render them: the library call behind ``fmduck report``.

    ``options`` are ``ReportOptions`` fields: se_type, stat, labels, order, digits, plots, title,
    sections (a tuple or a comma-separated string), asset_limit."""
    report_options = ReportOptions(**options)  # option errors before any reading
    runs, first_passes = load_for_report(database, names, schema)
    return render(runs, fmt_name, output, report_options, first_passes=first_passes)


def add_arguments(parser) -> None:  # noqa: ANN001 - argparse
    """The options of ``fmduck report`` (fmduck.cli builds the command from them)."""
    from fmduck.report.command import add_arguments as add

    add(parser)


def cmd_report(args) -> int:  # noqa: ANN001 - argparse
    from fmduck.report.command import cmd_report as run

    return run(args)
