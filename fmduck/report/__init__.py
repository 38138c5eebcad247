"""Paper-ready reports of stored runs: HTML, LaTeX (booktabs) and text, rendered by jinja2 from ``reports/``.

Everything comes from the result tables (``loading.load_runs``), never from memory of a run. One or
several runs go side by side as columns (esttab/stargazer layout); each run adds its first-pass
table, its λ_t table, plots (matplotlib) and a reproducibility appendix; ``sections`` picks the parts.
Runs with many assets (``ReportOptions.asset_limit``) get distributions instead of per-asset tables
and plots, and the full per-asset table as a CSV file; the first-pass aggregates of a stored run are
computed in SQL on the results engine (``fmduck.store_aggregates``), never from the long first pass.
Every number goes through ``fmduck.formatting.fmt``, every name through ``fmduck.escape``.

    fmduck report DB RUN [RUN ...] --format html|tex|txt -o FILE [--se fm|nw|shanken] [--stat t|se]
                  [--sections estimates,first-pass,lambdas,plots,appendix]

Modules: ``options`` (ReportOptions), ``loading`` (load_runs), ``assets`` (first-pass aggregates),
``tables``, ``figures``, ``text``, ``render``, ``api`` (report()), ``command`` (the CLI wrapper).
"""

from __future__ import annotations

from fmduck.escape import html_label, tex_label, tex_number
from fmduck.escape import tex as tex_escape
from fmduck.report.api import report
from fmduck.report.loading import load_runs
from fmduck.report.options import ASSET_LIMIT, FORMATS, SECTIONS, ReportOptions
from fmduck.report.render import Report, render
from fmduck.report.text import text_grid

__all__ = [
    "ASSET_LIMIT", "FORMATS", "SECTIONS", "Report", "ReportOptions", "html_label", "load_runs", "render", "report",
    "tex_escape", "tex_label", "tex_number", "text_grid",
]
