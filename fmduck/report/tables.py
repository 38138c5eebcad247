"""The report's tables, format-neutral: cells are strings from ``fmduck.formatting.fmt``, labels are
``fmduck.escape.Label``; the templates escape them for HTML, LaTeX or text."""

from __future__ import annotations

import json
import platform
from typing import Any

import duckdb
import polars as pl

import fmduck
from fmduck.errors import SpecError
from fmduck.escape import Label
from fmduck.formatting import STARS_NOTE, fmt, stars
from fmduck.report import assets
from fmduck.report.options import STAT_NAMES, ReportOptions
from fmduck.results import FamaMacBethResults

STAT_NOTE = {"t": "t-statistics", "se": "Standard errors"}
TOP_ALPHAS = 10  # rows of the largest-|α| table of a report of many assets


def se_name(se_type: str) -> str:
    """Short name of an SE type for table footers and notes (the covariance registry's; designs add theirs)."""
    from fmduck import covariance

    return covariance.short(se_type)


def _se_label(run: FamaMacBethResults, se_type: str) -> str:
    table = run.estimates.filter(pl.col("se_type") == se_type)
    if se_type == "nw" and table.height:
        lags = table["nw_lags"][0]
        return f"Newey-West (L={lags})" if lags is not None else "Newey-West"
    return se_name(se_type)


def _ordered_terms(runs: list[FamaMacBethResults], order: list[str]) -> list[str]:
    present = list(dict.fromkeys(t for r in runs for t in r.terms))
    unknown = [t for t in order if t not in present]
    if unknown:
        raise SpecError(f"--order names term(s) {', '.join(unknown)} that no run has (terms: {', '.join(present)})")
    return list(dict.fromkeys([*order, *present]))


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


def krs_tables(runs: list[FamaMacBethResults], options: ReportOptions) -> list[dict[str, Any]]:
    """One Kan-Robotti-Shanken (2013) table per run that has ``misspec_robust`` rows
    (:func:`fmduck.krs_layout.krs_table`): per term γ and t_FM, t_S, t_JW, t_KRS; footer rows R², its
    SE and the p-values of R² = 1 and R² = 0."""
    from fmduck.krs_layout import heading, krs_table

    out = []
    for run in runs:
        table = krs_table(run)
        if table is None:
            continue
        rows = [{"term": r["term"], "label": options.label(r["term"]), "gamma_value": r["gamma"],
                 "gamma": fmt(r["gamma"], options.digits),
                 "t": [{"kind": header, "value": r["t"][header], "text": fmt(r["t"][header], 2)}
                       for header in table["columns"]]}
                for r in table["rows"]]
        footer = [(Label("R²"), table["r2"], 4), (Label("SE of R²"), table["r2_se"], 4),
                  (Label("p(R² = 1)"), table["p_r2_eq_1"], 4), (Label("p(R² = 0)"), table["p_r2_eq_0"], 4)]
        out.append({"run": run.name, "heading": heading(table), "rows": rows,
                    "columns": [Label("t", header[2:]) for header in table["columns"]],
                    "footer": [{"label": label, "value": value, "text": fmt(value, digits)}
                               for label, value, digits in footer],
                    "note": table["note"]})
    return out


def first_pass_table(run: FamaMacBethResults, options: ReportOptions,
                     first_pass: assets.FirstPass | None = None) -> dict[str, Any] | None:
    """Per asset: alpha and betas (SE or t beneath), R², s(e), observations; rolling betas averaged.
    Above ``options.asset_limit`` assets: :func:`first_pass_summary` instead. ``first_pass``: where the
    aggregates come from (default: polars on the run in memory)."""
    fp = first_pass or assets.FirstPass(run)
    if fp.n_assets > options.asset_limit:
        return first_pass_summary(run, options, fp)
    if not fp.has_rows:
        return None
    rolling = fp.rolling
    terms = fp.terms
    stat_col = "t_stat" if options.stat == "t" else "std_error"
    index = {(r["asset"], r["term"]): r for r in fp.per_asset.iter_rows(named=True)}
    rows = []
    for asset in sorted(fp.per_asset["asset"].unique().to_list()):
        cells = [index.get((asset, t)) for t in terms]
        first = next(c for c in cells if c is not None)
        rows.append({
            "asset": asset,
            "coef": [fmt(c["estimate"], options.digits) if c else "" for c in cells],
            "stat": [] if rolling else [
                fmt(c[stat_col], 2 if options.stat == "t" else options.digits, parens=True) if c else "" for c in cells
            ],
            "r2": fmt(first["r2"], 3),
            "rmse": fmt(first["rmse"], options.digits),
            "nobs": fmt(int(first["windows"]) if rolling else int(first["nobs"])),
        })
    if rolling:
        note = ("Rolling first-pass regressions: each entry is the time-series average over the windows "
                f"(window {run.spec.get('window')} periods, at least {run.spec.get('min_obs')} observations); "
                "R² and s(e) are averages too; the last column counts the windows.")
    else:
        note = (f"Full-sample time-series regressions per asset; {STAT_NAMES[options.stat]} in parentheses "
                "(OLS). s(e): residual standard error; α: time-series intercept.")
    return {"mode": "assets", "run": run.name, "terms": terms, "labels": [options.beta_label(t) for t in terms],
            "rows": rows, "rolling": rolling, "note": note, "count_label": "windows" if rolling else "obs"}


def first_pass_summary(run: FamaMacBethResults, options: ReportOptions,
                       first_pass: assets.FirstPass | None = None) -> dict[str, Any]:
    """Many assets: the cross-sectional distribution of each first-pass column and of the pricing
    errors, and the assets with the largest |α_i|; the full per-asset table goes to a CSV file."""
    fp = first_pass or assets.FirstPass(run)
    table = assets.asset_table(fp, options.stat)
    rolling = fp.rolling
    prefix = "t_" if options.stat == "t" else "se_"
    terms = fp.terms
    d = options.digits
    specs: list[tuple[Label, str, int]] = [(options.beta_label(t), f"b_{t}", d) for t in terms]
    if terms:
        specs += [(Label("R²"), "r2", 3), (Label("s(e)"), "rmse", d),
                  (Label("windows" if rolling else "obs"), "windows" if rolling else "nobs", 1)]
    if "pe_alpha" in table.columns:
        specs += [(Label("pricing error α", "i"), "pe_alpha", d), (Label("t-statistic of α", "i"), "pe_t", 2)]
    columns = ["mean", "sd", "min", "5%", "25%", "median", "75%", "95%", "max"]
    keys = ["mean", "sd", "min", "q05", "q25", "q50", "q75", "q95", "max"]
    rows = []
    for label, column, digits in specs:
        dist = assets.distribution(table[column].to_numpy())
        rows.append({"label": label, "n": fmt(dist["n"]), "cells": [fmt(dist.get(k), digits) for k in keys]})
    if "pe_alpha" in table.columns:
        alpha_col, stat_col, kind = "pe_alpha", "pe_t", "pricing errors (average pass-2 residual)"
        stat_label = "t"
    else:
        alpha_col, stat_col, kind = "b_const", f"{prefix}const", "first-pass α"
        stat_label = "t" if options.stat == "t" else "SE"
    top = []
    if alpha_col in table.columns and stat_col in table.columns:
        for r in assets.largest(table, alpha_col, TOP_ALPHAS).iter_rows(named=True):
            top.append({"asset": r["asset"], "alpha": fmt(r[alpha_col], d),
                        "stat": fmt(r[stat_col], 2 if stat_label == "t" else d)})
    averaged = " (time averages over the rolling windows)" if rolling else ""
    parts = ([f"the per-asset first-pass estimates{averaged}"] if terms else []) + (
        ["the pricing errors"] if "pe_alpha" in table.columns else [])
    note = (f"{fmt(table.height)} assets: the cross-sectional distribution of {' and of '.join(parts) or 'nothing'}; "
            "the full table, one row per asset, is in the CSV file.")
    heading = (f"First pass: {fmt(table.height)} assets, summarized" if terms
               else f"Pricing errors of {fmt(table.height)} assets, summarized")
    return {"mode": "summary", "run": run.name, "heading": heading, "n_assets": fmt(table.height),
            "columns": columns, "rows": rows,
            "top": top, "top_title": f"Largest |α|: {kind}", "top_stat": stat_label, "rolling": rolling,
            "note": note, "asset_table": table, "csv": None}


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


def statement_labels(sql_text: str) -> list[str]:
    """The statements of a stored ``runs.sql_text``, by their labels: every line that is a ``-- `` comment
    (fmduck writes one before each statement: ``-- pass 1: full-sample time-series regressions on ...``)."""
    return [line[3:].strip() for line in sql_text.splitlines() if line.startswith("-- ")]


def appendix(run: FamaMacBethResults) -> dict[str, Any]:
    """The reproducibility appendix: run record, input fingerprint, conventions, coverage, spec and SQL
    (``statements``: the SQL's labels, what the LaTeX document lists; the text goes to a file beside it)."""
    from fmduck.passes.coverage import line as coverage_line

    info = run.run
    fingerprint = info.get("input_fingerprint") or {}
    sql = str(info.get("sql_text") or "")
    return {
        "run": run.name,
        "run_id": info["run_id"],
        "created_at": str(info["created_at"]),
        "fmduck_version": info["fmduck_version"],
        "engine": info["engine"],
        "design": info["design"],
        "elapsed": fmt(info.get("elapsed_seconds"), 2),
        "spec": json.dumps(run.spec, indent=2, sort_keys=False, default=str),
        "spec_compact": json.dumps(run.spec, sort_keys=False, default=str),
        "fingerprint": [(k, fmt(v) if isinstance(v, int) else str(v)) for k, v in fingerprint.items()],
        "conventions": [line for line in str(info.get("conventions", "")).splitlines() if line],
        "coverage": coverage_line(info.get("coverage") or {}),
        "sql": sql,
        "statements": statement_labels(sql),
        "sql_file": None,  # tex: the SQL written beside the report (render.build_context)
    }


def environment_versions() -> dict[str, str]:
    return {
        "fmduck": fmduck.__version__,
        "DuckDB": duckdb.__version__,
        "Python": platform.python_version(),
        "polars": pl.__version__,
    }
