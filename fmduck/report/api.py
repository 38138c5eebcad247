"""``report()``: the library call behind ``fmduck report`` (load stored runs, render them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fmduck.report.loading import load_for_report
from fmduck.report.options import ReportOptions
from fmduck.report.render import Report, render


def report(database: str | Path, names: list[str], fmt_name: str, output: str | Path, *, schema: str = "fmduck",
           **options: Any) -> Report:
    """Load ``names`` from ``database`` and render them: the library call behind ``fmduck report``.

    ``options`` are ``ReportOptions`` fields: se_type, stat, labels, order, digits, plots, title,
    sections (a tuple or a comma-separated string), asset_limit."""
    report_options = ReportOptions(**options)  # option errors before any reading
    runs, first_passes = load_for_report(database, names, schema)
    return render(runs, fmt_name, output, report_options, first_passes=first_passes)
