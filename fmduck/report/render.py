"""Render runs into files: HTML, LaTeX (standalone document and a table fragment) or text.

Every file is written into a hidden staging folder next to the output first and moved into place
only when everything rendered, so a failed render leaves neither a partial report nor a partial
``<stem>_files/`` folder. Writing errors (a folder given as ``-o``, no permission) are FmduckErrors.

Escaping: HTML by jinja autoescape; LaTeX by the environment's ``finalize`` (every ``{{ value }}``
goes through ``fmduck.escape.tex`` unless it is a ``Tex`` string fmduck built); text by
``fmduck.escape.text`` the same way.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fmduck import escape, templates
from fmduck.errors import FmduckError, SpecError
from fmduck.report import text as text_tables
from fmduck.report.assets import FirstPass
from fmduck.report.figures import make_plots
from fmduck.report.options import FORMATS, ReportOptions
from fmduck.report.tables import (
    appendix,
    comparison_table,
    environment_versions,
    first_pass_table,
    krs_tables,
    lambda_table,
    se_name,
)
from fmduck.results import FamaMacBethResults

TEX_FOOTER_LABELS = {"T": "$T$ (periods)", "N": "Avg.\\ $N$", "R2": "Avg.\\ $R^2$", "SE": "SE"}


@dataclass
class Report:
    """A rendered report: the main file, the LaTeX fragment (tex only), plot and CSV files."""

    output: Path
    files: list[Path]


def safe_stem(name: str, limit: int = 60) -> str:
    """A file-name stem from a run name or an output stem: letters, digits, ``_.-`` only."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:limit].strip(".") or "run"


def _file_stems(runs: list[FamaMacBethResults]) -> list[str]:
    out: list[str] = []
    for run in runs:
        base = stem = safe_stem(run.name)
        i = 2
        while stem in out:
            stem, i = f"{base}-{i}", i + 1
        out.append(stem)
    return out


class Staging:
    """A hidden folder beside ``output`` that receives every file; ``commit`` moves them into place."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.folder_name = f"{safe_stem(output.stem)}_files"
        self.dir = Path(tempfile.mkdtemp(prefix=f".{safe_stem(output.stem)}.", suffix=".partial", dir=output.parent))
        self.folder = self.dir / self.folder_name

    def path(self, name: str) -> Path:
        return self.dir / name

    def final(self, path: Path) -> Path:
        """Where a staged file ends up."""
        return self.output.parent / path.relative_to(self.dir)

    def commit(self, staged: list[Path]) -> list[Path]:
        out = []
        if self.folder.exists():
            (self.output.parent / self.folder_name).mkdir(exist_ok=True)
        for path in staged:
            target = self.final(path)
            os.replace(path, target)
            out.append(target)
        return out

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def check_output(output: str | Path) -> Path:
    """``output`` as a Path; a folder (existing, or written with a trailing slash) is an FmduckError."""
    text = str(output)
    path = Path(output)
    if text.endswith(("/", os.sep)) or path.is_dir():
        raise FmduckError(f"-o {text} is a folder; give a file name such as {path / 'report.html'}")
    if not path.name:
        raise FmduckError(f"-o {text!r} is not a file name")
    return path


def build_context(runs: list[FamaMacBethResults], options: ReportOptions, *, stage: Staging,
                  fmt_name: str, first_passes: list[FirstPass] | None = None) -> dict[str, Any]:
    if not runs:
        raise SpecError("give at least one run to report")
    plot_ext = {"html": ("svg",), "tex": ("pdf",), "txt": ("svg",)}[fmt_name]
    per_run = []
    sources = first_passes or [FirstPass(run) for run in runs]
    for run, stem, source in zip(runs, _file_stems(runs), sources):
        first_pass = first_pass_table(run, options, source) if options.shows("first-pass") else None
        if first_pass is not None and first_pass["mode"] == "summary":
            from fmduck.export import write_frame

            stage.folder.mkdir(parents=True, exist_ok=True)
            csv = stage.folder / f"{stem}_assets.csv"
            write_frame(first_pass.pop("asset_table"), "csv", csv)
            first_pass["csv"] = csv
        plots = (make_plots(run, options, stage.folder, stem, plot_ext, inline_svg=fmt_name == "html",
                            first_pass=source) if options.shows("plots") else [])
        record = appendix(run) if options.shows("appendix") else None
        if record is not None and fmt_name == "tex":  # the document lists the statements; the SQL is a file
            stage.folder.mkdir(parents=True, exist_ok=True)
            record["sql_file"] = stage.folder / f"{stem}.sql"
            record["sql_file"].write_text(record["sql"], encoding="utf-8")
        per_run.append({
            "name": run.name,
            "first_pass": first_pass,
            "lambdas": lambda_table(run, options) if options.shows("lambdas") else None,
            "appendix": record,
            "plots": plots,
            "summary": run.summary if options.shows("estimates") else "",
        })
    return {
        "title": options.title or "Fama-MacBeth regressions: " + ", ".join(r.name for r in runs),
        "table": comparison_table(runs, options),
        "krs": krs_tables(runs, options) if options.shows("estimates") else [],
        "sections": options.sections,
        "runs": per_run,
        "versions": environment_versions(),
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "se_name": se_name(options.se_type),
        "stat": options.stat,
    }


LAMBDA_LINES = 60  # LaTeX: λ_t rows per column of a page when two columns of periods go side by side


def tex_lambda_blocks(table: dict[str, Any]) -> list[list[tuple[dict, dict | None]]] | None:
    """LaTeX layout of a long λ_t table with few terms: pages of two columns of periods (reading down
    the left, then the right), as (left row, right row or None) lines; None: one long table."""
    rows = table["rows"]
    if len(table["terms"]) > 4 or len(rows) <= 40:
        return None
    blocks = []
    for start in range(0, len(rows), 2 * LAMBDA_LINES):
        chunk = rows[start:start + 2 * LAMBDA_LINES]
        half = -(-len(chunk) // 2)
        left, right = chunk[:half], chunk[half:]
        blocks.append([(row, right[i] if i < len(right) else None) for i, row in enumerate(left)])
    return blocks


class TexWriter:
    """The LaTeX filters and ``finalize`` of one rendering; notes whether some character was written
    as a code point (the document then says so)."""

    def __init__(self) -> None:
        self.unsupported = False

    def _seen(self, value: Any) -> None:
        self.unsupported = self.unsupported or escape.tex_unsupported(value)

    def finalize(self, value: Any) -> Any:
        if isinstance(value, escape.Tex):
            return value
        self._seen(value)
        return escape.tex(value)

    def text(self, value: Any) -> escape.Tex:
        self._seen(value)
        return escape.tex(value)

    def label(self, value: Any) -> escape.Tex:
        self._seen(value)
        return escape.tex_label(value)

    def number(self, value: Any) -> escape.Tex:
        self._seen(value)
        return escape.tex_number(value)

    def code(self, value: Any, width: int = 88) -> escape.Tex:
        self._seen(value)
        return escape.tex_code(value, width)


def _environment(fmt_name: str, writer: TexWriter):
    base = templates.report_environment()
    if fmt_name == "tex":
        env = base.overlay(finalize=writer.finalize)
    elif fmt_name == "txt":
        env = base.overlay(finalize=escape.text)
    else:
        env = base.overlay()
    env.filters = dict(base.filters)
    env.filters.update(tex=writer.text, texnum=writer.number, texlabel=writer.label, code=writer.code,
                       htmllabel=escape.html_label)
    return env


def _final_names(context: dict[str, Any], stage: Staging) -> None:
    """Paths as the reader sees them (relative to the report): plots and CSV files."""
    for run in context["runs"]:
        for plot in run["plots"]:
            plot["shown"] = {ext: stage.final(path).relative_to(stage.output.parent).as_posix()
                             for ext, path in plot["files"].items()}
        if run["first_pass"] and run["first_pass"].get("csv"):
            run["first_pass"]["csv_name"] = stage.final(run["first_pass"]["csv"]).relative_to(
                stage.output.parent).as_posix()
        if run["appendix"] and run["appendix"].get("sql_file"):
            run["appendix"]["sql_name"] = stage.final(run["appendix"]["sql_file"]).relative_to(
                stage.output.parent).as_posix()


def _render_files(context: dict[str, Any], fmt_name: str, stage: Staging) -> list[Path]:
    """Render the templates into the staging folder; return the main file (first) and the fragment."""
    output = stage.output
    writer = TexWriter()
    env = _environment(fmt_name, writer)
    main = stage.path(output.name)
    staged = [main]
    if fmt_name == "html":
        main.write_text(env.get_template("report.html.j2").render(**context), encoding="utf-8")
        return staged
    if fmt_name == "txt":
        context["main_table"] = text_tables.main_table(context["table"])
        for run in context["runs"]:
            run["first_pass_text"] = text_tables.first_pass(run["first_pass"]) if run["first_pass"] else ""
            run["lambdas_text"] = text_tables.lambdas(run["lambdas"]) if run["lambdas"] else ""
        main.write_text(env.get_template("report.txt.j2").render(**context), encoding="utf-8")
        return staged
    for run in context["runs"]:
        for plot in run["plots"]:
            plot["tex_path"] = escape.Tex(plot["shown"]["pdf"])  # safe_stem names: letters, digits, _.-/
        if run["lambdas"]:
            run["lambdas"]["blocks"] = tex_lambda_blocks(run["lambdas"])
    context["footer_labels"] = {key: escape.Tex(value) for key, value in TEX_FOOTER_LABELS.items()}
    context["unicode_note_text"] = escape.tex(escape.UNICODE_NOTE)
    for note in (False, True):  # again with the note when some character had to be written as a code point
        fragment = env.get_template("table.tex.j2").render(unicode_note=note, **context)
        document = env.get_template("report.tex.j2").render(fragment=escape.Tex(fragment), unicode_note=note,
                                                            **context)
        if not writer.unsupported:
            break
    if "estimates" in context["sections"]:
        fragment_path = stage.path(f"{output.stem}-table.tex")
        fragment_path.write_text(fragment, encoding="utf-8")
        staged.append(fragment_path)
    main.write_text(document, encoding="utf-8")
    return staged


def render(runs: list[FamaMacBethResults], fmt_name: str, output: str | Path,
           options: ReportOptions | None = None, *, first_passes: list[FirstPass] | None = None) -> Report:
    """Render ``runs`` as ``fmt_name`` into ``output`` (plots, CSV files and the LaTeX fragment next to it).
    ``first_passes``: one :class:`fmduck.report.assets.FirstPass` per run (stored runs: aggregates in SQL);
    default: polars on each run's first pass in memory."""
    if fmt_name not in FORMATS:
        raise SpecError(f"--format must be one of {', '.join(FORMATS)}, got {fmt_name!r}")
    options = options or ReportOptions()
    output = check_output(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        stage = Staging(output)
    except OSError as exc:
        raise FmduckError(f"cannot write the report to {output}: {exc.strerror or exc}") from exc
    try:
        context = build_context(runs, options, stage=stage, fmt_name=fmt_name, first_passes=first_passes)
        _final_names(context, stage)
        staged = _render_files(context, fmt_name, stage)
        for run in context["runs"]:
            staged += [path for plot in run["plots"] for path in plot["files"].values()]
            if run["first_pass"] and run["first_pass"].get("csv"):
                staged.append(run["first_pass"]["csv"])
            if run["appendix"] and run["appendix"].get("sql_file"):
                staged.append(run["appendix"]["sql_file"])
        files = stage.commit(staged)
    except OSError as exc:
        raise FmduckError(f"cannot write the report to {output}: {exc.strerror or exc}") from exc
    finally:
        stage.discard()
    return Report(output=files[0], files=files)
