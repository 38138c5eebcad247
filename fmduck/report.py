"""Paper-ready reports of stored runs: HTML, LaTeX (booktabs) and text, rendered by jinja2 from ``reports/``.

Everything comes from the result tables (``load_run``), never from memory of a run. One or several
runs go side by side as columns (esttab/stargazer layout); each run adds its first-pass table, its
λ_t table, plots (matplotlib) and a reproducibility appendix. Every number goes through
``fmduck.formatting.fmt``.

    fmduck report DB RUN [RUN ...] --format html|tex|txt -o FILE [--se fm|nw|shanken] [--stat t|se]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import importlib.metadata
import polars as pl
from markupsafe import Markup, escape

import fmduck
from fmduck import templates
from fmduck.errors import FmduckError, SpecError
from fmduck.formatting import STARS_NOTE, fmt, stars
from fmduck.results import FamaMacBethResults

FORMATS = ("html", "tex", "txt")
STAT_NAMES = {"t": "t-statistics", "se": "standard errors"}
STAT_NOTE = {"t": "t-statistics", "se": "Standard errors"}
DEFAULT_LABELS = {"const": "Constant"}


@dataclass(frozen=True)
class ReportOptions:
    """What the reader asked for: which SE, t or SE beneath, term labels and order, digits, plots."""

    se_type: str = "fm"
    stat: str = "t"
    labels: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    digits: int = 4
    plots: bool = True
    title: str | None = None

    def __post_init__(self) -> None:
        if self.stat not in STAT_NAMES:
            raise SpecError(f"--stat must be t or se, got {self.stat!r}")
        if not 0 <= self.digits <= 12:
            raise SpecError(f"--digits must be between 0 and 12, got {self.digits}")

    def label(self, term: str) -> str:
        return self.labels.get(term, DEFAULT_LABELS.get(term, term))


# ====================================================================== loading
def load_runs(database: str | Path, names: list[str], schema: str = "fmduck") -> list[FamaMacBethResults]:
    """Read the named runs from the result tables of ``database`` (any engine; a DuckDB file read-only)."""
    from fmduck import store
    from fmduck.engines import open_engine

    if len(set(names)) != len(names):
        raise SpecError(f"a run is named twice: {', '.join(names)}")
    engine = open_engine(str(database) if isinstance(database, Path) else database, read_only=True)
    return [store.load_run(engine, name, schema) for name in names]


# ====================================================================== tables (format-neutral)
def _ordered_terms(runs: list[FamaMacBethResults], order: list[str]) -> list[str]:
    present = list(dict.fromkeys(t for r in runs for t in r.terms))
    unknown = [t for t in order if t not in present]
    if unknown:
        raise SpecError(f"--order names term(s) {', '.join(unknown)} that no run has (terms: {', '.join(present)})")
    return list(dict.fromkeys([*order, *present]))


def _se_label(run: FamaMacBethResults, se_type: str) -> str:
    table = run.estimates.filter(pl.col("se_type") == se_type)
    if se_type == "nw" and table.height:
        lags = table["nw_lags"][0]
        return f"Newey-West (L={lags})" if lags is not None else "Newey-West"
    return se_name(se_type)


def se_name(se_type: str) -> str:
    """Short name of an SE type for table footers and notes (designs may add their own SE types)."""
    from fmduck import covariance

    return covariance.short(se_type)


def comparison_table(runs: list[FamaMacBethResults], options: ReportOptions) -> dict[str, Any]:
    """Runs as columns: per term a coefficient row (with stars) and a t or SE row; footer rows."""
    terms = _ordered_terms(runs, options.order)
    tables = [run.table(options.se_type) for run in runs]  # FmduckError if a run lacks the SE type
    lookup = [{row["term"]: row for row in tab.iter_rows(named=True)} for tab in tables]
    rows = []
    for term in terms:
        coef, stat, values = [], [], []
        for found in lookup:
            row = found.get(term)
            if row is None:
                coef.append("")
                stat.append("")
                values.append(None)
                continue
            shown = row["t_stat"] if options.stat == "t" else row["std_error"]
            coef.append(fmt(row["estimate"], options.digits, p_value=row["p_value"]))
            stat.append(fmt(shown, 2 if options.stat == "t" else options.digits, parens=True))
            values.append({"estimate": row["estimate"], "stat": shown, "p_value": row["p_value"],
                           "stars": stars(row["p_value"])})
        rows.append({"term": term, "label": options.label(term), "coef": coef, "stat": stat, "values": values})
    footer = [
        {"key": "T", "cells": [fmt(int(r.run["n_periods"])) for r in runs]},
        {"key": "N", "cells": [fmt(r.run["avg_n"], 1) for r in runs]},
        {"key": "R2", "cells": [fmt(r.run["avg_r2"], 3) for r in runs]},
        {"key": "SE", "cells": [_se_label(r, options.se_type) for r in runs]},
    ]
    note = (f"{STAT_NOTE[options.stat]} in parentheses ({se_name(options.se_type)} standard errors). "
            f"{STARS_NOTE}. T: number of cross-sections; N: assets per cross-section; R²: average cross-sectional R².")
    return {
        "columns": [{"number": f"({i})", "name": r.name} for i, r in enumerate(runs, 1)],
        "rows": rows,
        "footer": footer,
        "note": note,
    }


def first_pass_table(run: FamaMacBethResults, options: ReportOptions) -> dict[str, Any] | None:
    """Per asset: alpha and betas (SE or t beneath), R², s(e), observations. Rolling betas are averaged."""
    fp = run.first_pass
    if fp.height == 0:
        return None
    rolling = fp["period"].null_count() < fp.height
    terms = [t for t in run.terms if t in set(fp["term"].to_list())]
    terms += sorted(set(fp["term"].to_list()) - set(terms))
    stat_col = "t_stat" if options.stat == "t" else "std_error"
    per = fp.group_by("asset", "term").agg(
        pl.col("estimate").mean(), pl.col(stat_col).mean().alias("stat"), pl.col("r2").mean(),
        pl.col("rmse").mean(), pl.col("nobs").mean(), pl.len().alias("windows"),
    )
    assets = sorted(per["asset"].unique().to_list())
    index = {(r["asset"], r["term"]): r for r in per.iter_rows(named=True)}
    rows = []
    for asset in assets:
        cells = [index.get((asset, t)) for t in terms]
        first = next(c for c in cells if c is not None)
        rows.append({
            "asset": asset,
            "coef": [fmt(c["estimate"], options.digits) if c else "" for c in cells],
            "stat": [] if rolling else [
                fmt(c["stat"], 2 if options.stat == "t" else options.digits, parens=True) if c else "" for c in cells
            ],
            "r2": fmt(first["r2"], 3),
            "rmse": fmt(first["rmse"], options.digits),
            "nobs": fmt(int(first["windows"]) if rolling else int(first["nobs"])),
        })
    labels = ["α" if t == "const" else options.labels.get(t) or f"β {t}" for t in terms]
    if rolling:
        note = ("Rolling first-pass regressions: each entry is the time-series average over the windows "
                f"(window {run.spec.get('window')} periods, at least {run.spec.get('min_obs')} observations); "
                "R² and s(e) are averages too; the last column counts the windows.")
    else:
        note = (f"Full-sample time-series regressions per asset; {STAT_NAMES[options.stat]} in parentheses "
                "(OLS). s(e): residual standard error; α: time-series intercept.")
    return {"run": run.name, "terms": terms, "labels": labels, "rows": rows, "rolling": rolling, "note": note,
            "count_label": "windows" if rolling else "obs"}


def lambda_table(run: FamaMacBethResults, options: ReportOptions) -> dict[str, Any]:
    """λ_t per period: one row per cross-section, one column per term, then R² and N."""
    lam = run.lambdas
    terms = run.terms
    columns = [lam[t].to_list() for t in terms]
    rows = []
    for i, (period, r2, n) in enumerate(zip(lam["period"].to_list(), lam["r2"].to_list(), lam["n"].to_list())):
        rows.append({"period": str(period), "cells": [fmt(col[i], options.digits) for col in columns],
                     "r2": fmt(r2, 3), "n": fmt(int(n)) if n is not None else ""})
    return {"run": run.name, "terms": terms, "labels": [options.label(t) for t in terms], "rows": rows}


def appendix(run: FamaMacBethResults) -> dict[str, Any]:
    info = run.run
    fingerprint = info.get("input_fingerprint") or {}
    return {
        "run": run.name,
        "run_id": info["run_id"],
        "created_at": str(info["created_at"]),
        "fmduck_version": info["fmduck_version"],
        "engine": info["engine"],
        "design": info["design"],
        "elapsed": fmt(info.get("elapsed_seconds"), 2),
        "spec": json.dumps(run.spec, indent=2, sort_keys=False, default=str),
        "fingerprint": [(k, fmt(v) if isinstance(v, int) else str(v)) for k, v in fingerprint.items()],
        "conventions": [line for line in str(info.get("conventions", "")).splitlines() if line],
        "sql": info["sql_text"],
    }


def environment_versions() -> dict[str, str]:
    return {
        "fmduck": fmduck.__version__,
        "DuckDB": importlib.metadata.version("duckdb"),
        "Python": platform.python_version(),
        "polars": pl.__version__,
    }


# ====================================================================== plots
def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def make_plots(run: FamaMacBethResults, options: ReportOptions, folder: Path, formats: tuple[str, ...],
               inline_svg: bool) -> list[dict[str, Any]]:
    """Draw the run's figures; save each as ``folder/<run>_<kind>.<fmt>``; return svg text and file names."""
    try:
        from fmduck import plots
    except ModuleNotFoundError as exc:
        raise FmduckError(f"plots need matplotlib ({exc}): pip install 'fmduck[report]', or pass --no-plots") from exc

    labels = {t: options.label(t) for t in run.terms}
    figures = [
        ("lambda", (f"λ_t over time with their mean and a ±2 SE band ({se_name(options.se_type)} SE when its "
                   "estimate is the mean of λ_t, else Fama-MacBeth; the legend names it)."),
         lambda: plots.lambda_figure(run, options.se_type, labels)),
        ("cumulative", "Cumulative λ_t.", lambda: plots.cumulative_figure(run, labels)),
        ("betas", "First-pass betas per asset.", lambda: plots.betas_figure(run, labels)),
        ("sml", "Average excess return (λ̄'β_i + pricing error α_i) against predicted λ̄'β_i, "
                "with the OLS fitted line and the 45° line"
                + (" (rolling betas averaged over time: approximate)." if run.spec.get("window") else "."),
         lambda: plots.sml_figure(run)),
    ]
    out = []
    for kind, caption, draw in figures:
        fig = draw()
        if fig is None:
            continue
        files = {}
        document = plots.to_svg(fig) if inline_svg or "svg" in formats else None
        folder.mkdir(parents=True, exist_ok=True)
        for ext in formats:
            path = folder / f"{_safe(run.name)}_{kind}.{ext}"
            if ext == "svg":
                path.write_text(document, encoding="utf-8")
            else:
                plots.save(fig, path, ext)
            files[ext] = path
        svg = plots.inline_svg(document) if inline_svg else None
        out.append({"kind": kind, "caption": caption, "svg": Markup(svg) if svg else None, "files": files})
    return out


# ====================================================================== format helpers
_GREEK = {
    "α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "δ": r"\delta", "ε": r"\varepsilon", "λ": r"\lambda",
    "μ": r"\mu", "π": r"\pi", "ρ": r"\rho", "σ": r"\sigma", "τ": r"\tau", "φ": r"\phi", "ω": r"\omega",
    "Γ": r"\Gamma", "Δ": r"\Delta", "Λ": r"\Lambda", "Σ": r"\Sigma", "Ω": r"\Omega", "⌊": r"\lfloor",
    "⌋": r"\rfloor", "²": r"^2", "±": r"\pm", "≥": r"\geq", "≤": r"\leq", "×": r"\times", "·": r"\cdot",
    "−": "-", "′": "'", "√": r"\surd", "°": r"^\circ", "̄": "",
}
_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
}


def tex_escape(text: Any) -> str:
    """Text for LaTeX: specials escaped, Greek and a few symbols as math, other non-ASCII as '?'."""
    out = []
    for ch in str(text):
        if ch in _TEX_SPECIAL:
            out.append(_TEX_SPECIAL[ch])
        elif ch in _GREEK:
            out.append(f"${_GREEK[ch]}$" if _GREEK[ch] else "")
        elif ord(ch) < 128:
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)


def tex_number(cell: str) -> str:
    """A formatted cell for LaTeX: a math minus and superscript stars."""
    match = re.fullmatch(r"(\(?)(-?)([0-9.,]*)(\)?)(\**)", cell)
    if not match:
        return tex_escape(cell)
    lpar, minus, digits, rpar, marks = match.groups()
    return lpar + ("$-$" if minus else "") + digits + rpar + (f"$^{{{marks}}}$" if marks else "")


def tex_label(label: str) -> str:
    """``β_MKT`` -> ``$\\beta_{\\mathrm{MKT}}$``; a label without ``_`` is escaped text."""
    base, sep, sub = label.partition("_")
    if not sep or not sub:
        return tex_escape(label)
    base_tex = _GREEK.get(base, None) if len(base) == 1 else None
    sub_tex = tex_escape(sub).replace("$", "")
    if base_tex is not None:
        return f"${base_tex}_{{\\mathrm{{{sub_tex}}}}}$"
    return f"{tex_escape(base)}$_{{\\mathrm{{{sub_tex}}}}}$"


def html_label(label: str) -> Markup:
    base, sep, sub = label.partition("_")
    if not sep or not sub:
        return escape(label)
    return Markup("{}<sub>{}</sub>").format(base, sub)


def tex_verbatim(text: str, width: int = 100) -> str:
    """SQL or JSON for a verbatim block: ASCII only, long lines wrapped."""
    lines = []
    for line in text.encode("ascii", "replace").decode().splitlines():
        while len(line) > width:
            lines.append(line[:width])
            line = "    " + line[width:]
        lines.append(line)
    return "\n".join(lines)


def _env():
    env = templates.report_environment()
    env.filters.update(tex=tex_escape, texnum=tex_number, texlabel=tex_label, htmllabel=html_label,
                       verb=tex_verbatim)
    return env


# ====================================================================== text tables
def text_grid(headers: list[list[str]], rows: list[list[str]], *, rules: list[int] | None = None) -> str:
    """A plain-text table: first column left-aligned, others right-aligned; rules before given row indices."""
    widths = [max(len(str(r[i])) for r in [*headers, *rows]) for i in range(len(headers[0]))]

    def line(cells: list[str]) -> str:
        parts = [str(c).ljust(w) if i == 0 else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    total = sum(widths) + 2 * (len(widths) - 1)
    out = ["=" * total, *[line(h) for h in headers], "-" * total]
    for i, row in enumerate(rows):
        if rules and i in rules:
            out.append("-" * total)
        out.append(line(row))
    out.append("=" * total)
    return "\n".join(out)


# ====================================================================== render
@dataclass
class Report:
    """A rendered report: the main file, the LaTeX fragment (tex only) and the plot files."""

    output: Path
    files: list[Path]


def build_context(runs: list[FamaMacBethResults], options: ReportOptions, *, output: Path,
                  fmt_name: str) -> dict[str, Any]:
    if not runs:
        raise SpecError("give at least one run to report")
    plot_ext = {"html": ("svg",), "tex": ("pdf",), "txt": ("svg",)}[fmt_name]
    folder = output.parent / f"{output.stem}_files"
    per_run = []
    for run in runs:
        per_run.append({
            "name": run.name,
            "first_pass": first_pass_table(run, options),
            "lambdas": lambda_table(run, options),
            "appendix": appendix(run),
            "plots": make_plots(run, options, folder, plot_ext, inline_svg=fmt_name == "html") if options.plots else [],
            "summary": run.summary,
        })
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return {
        "title": options.title or "Fama-MacBeth regressions: " + ", ".join(r.name for r in runs),
        "table": comparison_table(runs, options),
        "runs": per_run,
        "versions": environment_versions(),
        "generated": now,
        "se_name": se_name(options.se_type),
        "stat": options.stat,
    }


def render(runs: list[FamaMacBethResults], fmt_name: str, output: str | Path,
           options: ReportOptions | None = None) -> Report:
    """Render ``runs`` as ``fmt_name`` into ``output`` (plots and the LaTeX fragment next to it)."""
    if fmt_name not in FORMATS:
        raise SpecError(f"--format must be one of {', '.join(FORMATS)}, got {fmt_name!r}")
    options = options or ReportOptions()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    context = build_context(runs, options, output=output, fmt_name=fmt_name)
    env = _env()
    files = [output]
    if fmt_name == "html":
        text = env.get_template("report.html.j2").render(**context)
    elif fmt_name == "tex":
        fragment = env.get_template("table.tex.j2").render(**context)
        fragment_path = output.with_name(f"{output.stem}-table.tex")
        fragment_path.write_text(fragment, encoding="utf-8")
        files.append(fragment_path)
        plots_rel = {
            run["name"]: {p["kind"]: p["files"]["pdf"].relative_to(output.parent).as_posix() for p in run["plots"]}
            for run in context["runs"]
        }
        text = env.get_template("report.tex.j2").render(fragment=fragment, plot_paths=plots_rel, **context)
    else:
        context["main_table"] = _text_main_table(context["table"])
        for run in context["runs"]:
            run["first_pass_text"] = _text_first_pass(run["first_pass"]) if run["first_pass"] else ""
            run["lambdas_text"] = _text_lambdas(run["lambdas"])
        text = env.get_template("report.txt.j2").render(**context)
    output.write_text(text, encoding="utf-8")
    for run in context["runs"]:
        for plot in run["plots"]:
            files.extend(plot["files"].values())
    return Report(output=output, files=files)


def report(database: str | Path, names: list[str], fmt_name: str, output: str | Path, *, schema: str = "fmduck",
           **options: Any) -> Report:
    """Load ``names`` from ``database`` and render them: the library call behind ``fmduck report``."""
    return render(load_runs(database, names, schema), fmt_name, output, ReportOptions(**options))


def _text_main_table(table: dict[str, Any]) -> str:
    header = ["", *[c["number"] for c in table["columns"]]]
    names = ["", *[c["name"] for c in table["columns"]]]
    rows = []
    for row in table["rows"]:
        rows.append([row["label"], *row["coef"]])
        rows.append(["", *row["stat"]])
    labels = {"T": "T (periods)", "N": "Avg. N", "R2": "Avg. R2", "SE": "SE"}
    footer_start = len(rows)
    rows.extend([labels[f["key"]], *f["cells"]] for f in table["footer"])
    return text_grid([header, names], rows, rules=[footer_start])


def _text_first_pass(table: dict[str, Any]) -> str:
    header = ["asset", *[label.replace(" ", "_") if label.startswith("β") else label for label in table["labels"]],
              "R2", "s(e)", table["count_label"]]
    rows = []
    for row in table["rows"]:
        rows.append([row["asset"], *row["coef"], row["r2"], row["rmse"], row["nobs"]])
        if row["stat"]:
            rows.append(["", *row["stat"], "", "", ""])
    return text_grid([header], rows)


def _text_lambdas(table: dict[str, Any]) -> str:
    header = ["period", *table["labels"], "R2", "N"]
    rows = [[r["period"], *r["cells"], r["r2"], r["n"]] for r in table["rows"]]
    return text_grid([header], rows)


# ====================================================================== CLI
def _pairs(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise SpecError(f"--labels wants TERM=LABEL pairs separated by commas, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("database", help="DuckDB database holding the results schema")
    p.add_argument("runs", nargs="+", metavar="RUN", help="stored run name(s); several go side by side")
    p.add_argument("--format", dest="fmt", choices=FORMATS, help="output format (default: from the -o suffix)")
    p.add_argument("-o", "--output", required=True, type=Path, help="file to write (plots go to <stem>_files/)")
    p.add_argument("--se", default="fm", metavar="fm|nw|shanken",
                   help="standard errors for t/SE and stars (default fm; designs may store other types)")
    p.add_argument("--stat", choices=["t", "se"], default="t", help="beneath each coefficient: t (default) or se")
    p.add_argument("--labels", help="term labels, e.g. MktRF=β_MKT,SMB=β_SMB (text after _ is a subscript)")
    p.add_argument("--order", help="comma-separated term order (terms not named follow in run order)")
    p.add_argument("--digits", type=int, default=4, help="decimals of coefficients and SEs (default 4)")
    p.add_argument("--title", help="report title")
    p.add_argument("--no-plots", action="store_true", help="skip the figures")
    p.add_argument("--schema", default="fmduck", help="results schema (default fmduck)")


def cmd_report(args: argparse.Namespace) -> int:
    fmt_name = args.fmt or args.output.suffix.lstrip(".").lower()
    if fmt_name not in FORMATS:
        raise SpecError(f"cannot tell the format from {args.output.name!r}; give --format {'|'.join(FORMATS)}")
    order = [t.strip() for t in args.order.split(",") if t.strip()] if args.order else []
    result = report(args.database, args.runs, fmt_name, args.output, schema=args.schema, se_type=args.se,
                    stat=args.stat, labels=_pairs(args.labels), order=order, digits=args.digits,
                    plots=not args.no_plots, title=args.title)
    for path in result.files:
        print(path)
    return 0


