"""Report figures drawn with matplotlib (Agg backend) from a stored run: no I/O here, figures in, bytes out.

- ``lambda_figure``: λ_t over time per term, with the mean and a ±2 SE band;
- ``cumulative_figure``: cumulative λ_t per term;
- ``betas_figure``: first-pass betas per asset (bars; time-averaged for rolling betas);
- ``sml_figure``: average excess return against predicted λ̄'β_i, with the fitted line.

For many assets (the report decides, ``fmduck.report``):

- ``distribution_figure``: histograms of per-asset values (α, betas), median and 5%/95% marked;
- ``quantile_bands_figure``: rolling betas as cross-sectional quantiles (median, 25-75%, 5-95%) over time;
- ``sml_groups_figure``: the security market line of beta-sorted groups (means, interquartile bars).

Every text from data (run and asset names, labels) goes through ``fmduck.escape.mpl`` /
``mpl_label``: shown literally, never parsed as mathtext.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fmduck.escape import Label, mpl, mpl_label
from fmduck.formatting import fmt

if TYPE_CHECKING:
    from fmduck.results import FamaMacBethResults

RC = {
    "svg.fonttype": "none",  # text stays text: small files, selectable in the browser
    "svg.hashsalt": "fmduck",  # stable ids, reproducible files
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


@contextmanager
def drawing() -> Iterator[None]:
    """The house style; quiet about glyphs the font lacks (SVG keeps the text, the browser draws it) and
    about a tight layout that long names defeat (the figure is drawn anyway)."""
    mathtext_log = logging.getLogger("matplotlib.mathtext")
    level = mathtext_log.level
    with matplotlib.rc_context(RC), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"Tight layout not applied", category=UserWarning)
        mathtext_log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            mathtext_log.setLevel(level)


def short(name: str, limit: int = 40) -> str:
    """An asset name for a tick label or an annotation: literal (``mpl``), long names shortened with …"""
    name = str(name)
    return mpl(name if len(name) <= limit else name[:limit - 1] + "…")


def label_text(labels: dict[str, Label | str], term: str) -> str:
    """The matplotlib text of a term: its label, or the raw name shown literally."""
    return mpl_label(labels.get(term, Label(term)))


def new_figure(size: tuple[float, float]) -> Figure:
    """A figure drawn by the Agg canvas, without pyplot: no global backend switch, nothing to close."""
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def periods_axis(lambdas: pl.DataFrame) -> np.ndarray:
    """Dates when the stored period strings parse as dates, else the period index."""
    parsed = lambdas["period"].cast(pl.Utf8).str.to_date(strict=False)
    if parsed.null_count() == 0:
        return parsed.to_numpy()
    return lambdas["period_index"].to_numpy()


def lambda_figure(results: FamaMacBethResults, se_type: str, labels: dict[str, Label | str],
                  columns: int = 1) -> Figure:
    """The band uses ``se_type`` when its estimate is the mean of λ_t (every two-pass SE type); designs
    whose other SE types belong to another estimator (pooled OLS) fall back to the Fama-MacBeth SE.
    One panel per term, in ``columns`` columns (row by row)."""
    terms = results.terms
    table = results.table(se_type)
    means = results.lambdas.select(terms).mean().row(0, named=True)
    if any(abs(e - means[t]) > 1e-9 * max(1.0, abs(means[t])) for t, e in zip(table["term"], table["estimate"])
           if t in means and e is not None and means[t] is not None) and "fm" in results.se_types:
        se_type, table = "fm", results.table("fm")
    mean = dict(zip(table["term"], table["estimate"]))
    se = dict(zip(table["term"], table["std_error"]))
    x = periods_axis(results.lambdas)
    with drawing():
        columns = max(1, min(columns, len(terms)))
        rows = -(-len(terms) // columns)
        fig = new_figure((7.5, (1.9 if columns == 1 else 1.6) * rows + 0.4))
        axes = fig.subplots(rows, columns, sharex=True, squeeze=False)
        for ax in axes.ravel()[len(terms):]:
            ax.set_visible(False)
        for k, (ax, term) in enumerate(zip(axes.ravel(), terms)):
            y = results.lambdas[term].to_numpy()
            ax.plot(x, y, lw=0.6, color=COLORS[k % len(COLORS)], alpha=0.8, label=r"$\lambda_t$")
            ax.axhline(mean[term], color="black", lw=1.2, label="mean")
            ax.axhspan(mean[term] - 2 * se[term], mean[term] + 2 * se[term], facecolor="#ff7f0e", alpha=0.45,
                       edgecolor="#ff7f0e", lw=0.8, label=f"mean ± 2 SE ({se_type})", zorder=3)
            ax.axhline(0, color="grey", lw=0.6, ls=":")
            ax.set_title(label_text(labels, term), loc="left", fontsize=9)
            if columns > 1:
                ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        axes[0, 0].legend(loc="upper right", fontsize=7, ncol=3, frameon=False)
        fig.suptitle(f"$\\lambda_t$ over time — {mpl(results.name)}", fontsize=10)
        fig.tight_layout()
    return fig


def cumulative_figure(results: FamaMacBethResults, labels: dict[str, Label | str]) -> Figure:
    x = periods_axis(results.lambdas)
    with drawing():
        fig = new_figure((7.5, 3.2))
        ax = fig.subplots()
        for k, term in enumerate(results.terms):
            y = np.nancumsum(results.lambdas[term].to_numpy())
            ax.plot(x, y, lw=1.2, color=COLORS[k % len(COLORS)], label=label_text(labels, term))
        ax.axhline(0, color="grey", lw=0.6, ls=":")
        ax.set_ylabel(r"cumulative $\lambda_t$")
        ax.legend(fontsize=7, frameon=False)
        ax.set_title(f"Cumulative $\\lambda_t$ — {mpl(results.name)}", fontsize=10)
        fig.tight_layout()
    return fig


def asset_betas(results: FamaMacBethResults) -> pl.DataFrame:
    """One row per asset, one column per first-pass term: full-sample betas, or rolling betas averaged."""
    fp = results.first_pass
    if fp.height == 0:
        return pl.DataFrame()
    wide = fp.group_by("asset", "term").agg(pl.col("estimate").mean()).pivot(on="term", index="asset",
                                                                            values="estimate")
    return wide.sort("asset")


def betas_figure(results: FamaMacBethResults, labels: dict[str, Label | str], betas: pl.DataFrame | None = None,
                 rolling: bool | None = None) -> Figure | None:
    """Bars of each asset's betas; ``betas`` (one row per asset, a column per term) and ``rolling``
    default to what ``results.first_pass`` gives."""
    betas = asset_betas(results) if betas is None else betas
    factors = [t for t in results.terms if t in betas.columns and t != "const"]
    factors += [t for t in betas.columns if t not in ("asset", "const", *factors)]
    if not factors:
        return None
    assets = betas["asset"].to_list()
    x = np.arange(len(assets))
    width = 0.8 / len(factors)
    if rolling is None:
        rolling = results.first_pass["period"].null_count() < results.first_pass.height
    with drawing():
        fig = new_figure((7.5, 3.6))
        ax = fig.subplots()
        for k, term in enumerate(factors):
            ax.bar(x + (k - (len(factors) - 1) / 2) * width, betas[term].to_numpy(), width,
                   color=COLORS[k % len(COLORS)], label=label_text(labels, term))
        ax.set_xticks(x, [short(a) for a in assets], rotation=90, fontsize=7)
        ax.axhline(0, color="grey", lw=0.6)
        ax.legend(fontsize=7, frameon=False, ncol=len(factors))
        kind = "time-averaged rolling betas" if rolling else "full-sample betas"
        ax.set_title(f"First-pass {kind} per asset — {mpl(results.name)}", fontsize=10)
        fig.tight_layout()
    return fig


def sml_points(results: FamaMacBethResults, betas: pl.DataFrame | None = None) -> pl.DataFrame | None:
    """Predicted λ̄'β_i and average excess return (predicted + pricing error α_i) per asset.

    α_i is the asset's average pass-2 residual (``pricing_errors``); with full-sample betas and a
    balanced panel, average return = λ̄'β_i + α_i exactly. With rolling betas β_i is their time average,
    so the picture is an approximation (stated in the caption). ``betas``: one row per asset, a column
    per term (default: from ``results.first_pass``).
    """
    betas = asset_betas(results) if betas is None else betas
    factors = [t for t in results.terms if t in betas.columns and t != "const"]
    if not factors or results.pricing_errors.height == 0:
        return None
    lam = results.params
    predicted = sum(pl.col(t) * lam[t] for t in factors) + lam.get("const", 0.0)
    frame = betas.select("asset", predicted.alias("predicted")).join(
        results.pricing_errors.select("asset", "alpha"), on="asset", how="inner")
    return frame.with_columns((pl.col("predicted") + pl.col("alpha")).alias("average")).sort("asset")


def sml_figure(results: FamaMacBethResults, betas: pl.DataFrame | None = None) -> Figure | None:
    points = sml_points(results, betas)
    if points is None or points.height < 2:
        return None
    x, y = points["predicted"].to_numpy(), points["average"].to_numpy()
    slope, intercept = np.polyfit(x, y, 1)
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    grid = np.linspace(lo, hi, 2)
    with drawing():
        fig = new_figure((5.5, 4.6))
        ax = fig.subplots()
        ax.scatter(x, y, s=14, color=COLORS[0], zorder=3)
        for name, xi, yi in zip(points["asset"], x, y):
            ax.annotate(short(name), (xi, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.plot(grid, intercept + slope * grid, color=COLORS[1], lw=1.2,
                label=f"fitted: {fmt(intercept, 4)} + {fmt(slope, 3)}·predicted")
        ax.plot(grid, grid, color="grey", lw=0.8, ls="--", label="45° line")
        ax.set_xlabel(r"predicted $\bar\lambda'\beta_i$")
        ax.set_ylabel("average excess return")
        ax.legend(fontsize=7, frameon=False, loc="upper left")
        ax.set_title(f"Security market line — {mpl(results.name)}", fontsize=10)
        fig.tight_layout()
    return fig


def sml_fit(points: pl.DataFrame) -> tuple[float, float]:
    """Intercept and slope of the OLS line of average on predicted return over all assets."""
    slope, intercept = np.polyfit(points["predicted"].to_numpy(), points["average"].to_numpy(), 1)
    return float(intercept), float(slope)


def sml_groups_figure(points: pl.DataFrame, groups: pl.DataFrame, name: str) -> Figure | None:
    """Many assets: the group means of ``groups`` (columns predicted, average, q25, q75, n; from
    ``fmduck.report.assets.sml_groups``) with interquartile bars, the OLS line of all ``points``, 45° line."""
    if points.height < 2 or groups.height == 0:
        return None
    intercept, slope = sml_fit(points)
    x, y = groups["predicted"].to_numpy(), groups["average"].to_numpy()
    lo = float(min(x.min(), groups["q25"].min()))
    hi = float(max(x.max(), groups["q75"].max()))
    grid = np.linspace(lo, hi, 2)
    with drawing():
        fig = new_figure((6.5, 3.6))
        ax = fig.subplots()
        ax.vlines(x, groups["q25"].to_numpy(), groups["q75"].to_numpy(), color=COLORS[0], alpha=0.45, lw=2.5,
                  label="25%-75% of the assets in the group")
        ax.scatter(x, y, s=18, color=COLORS[0], zorder=3, label=f"group means ({groups.height} groups)")
        ax.plot(grid, intercept + slope * grid, color=COLORS[1], lw=1.2,
                label=f"fitted on {fmt(points.height)} assets: {fmt(intercept, 4)} + {fmt(slope, 3)}·predicted")
        ax.plot(grid, grid, color="grey", lw=0.8, ls="--", label="45° line")
        ax.set_xlabel(r"predicted $\bar\lambda'\beta_i$ (group mean)")
        ax.set_ylabel("average excess return (group mean)")
        ax.legend(fontsize=7, frameon=False, loc="upper left")
        ax.set_title(f"Security market line, beta-sorted groups — {mpl(name)}", fontsize=10)
        fig.tight_layout()
    return fig


def distribution_figure(values: list[tuple[str, np.ndarray]], title: str) -> Figure | None:
    """Histograms of per-asset values, one panel per (matplotlib text, values); the median (solid)
    and the 5% and 95% quantiles (dashed) marked."""
    values = [(text, v[np.isfinite(v)]) for text, v in values]
    values = [(text, v) for text, v in values if v.size]
    if not values:
        return None
    cols = 2 if len(values) > 1 else 1
    rows = -(-len(values) // cols)
    with drawing():
        fig = new_figure((7.5, 1.6 * rows + 0.5))
        axes = fig.subplots(rows, cols, squeeze=False)
        for k, ax in enumerate(axes.ravel()):
            if k >= len(values):
                ax.set_visible(False)
                continue
            text, v = values[k]
            ax.hist(v, bins=min(40, max(5, v.size // 10)), color=COLORS[k % len(COLORS)], alpha=0.8)
            q05, q50, q95 = np.quantile(v, [0.05, 0.5, 0.95])
            ax.axvline(q50, color="black", lw=1.0)
            for q in (q05, q95):
                ax.axvline(q, color="black", lw=0.8, ls="--")
            ax.set_title(f"{text}: median {fmt(float(q50), 3)}, 5%-95% [{fmt(float(q05), 3)}, {fmt(float(q95), 3)}]",
                         loc="left", fontsize=8)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
    return fig


def quantile_bands_figure(quantiles: pl.DataFrame, terms: list[str], labels: dict[str, Label],
                          name: str) -> Figure | None:
    """Rolling first-pass estimates as cross-sectional quantiles over time, one panel per term:
    ``quantiles`` has period, period_index, term, q05, q25, q50, q75, q95 (``assets.period_quantiles``)."""
    terms = [t for t in terms if quantiles.filter(pl.col("term") == t).height]
    if not terms:
        return None
    cols = 2 if len(terms) > 1 else 1
    rows = -(-len(terms) // cols)
    with drawing():
        fig = new_figure((7.5, 1.6 * rows + 0.6))
        axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
        for k, ax in enumerate(axes.ravel()):
            if k >= len(terms):
                ax.set_visible(False)
                continue
            term = terms[k]
            q = quantiles.filter(pl.col("term") == term).sort("period_index")
            x = periods_axis(q)
            color = COLORS[k % len(COLORS)]
            ax.fill_between(x, q["q05"].to_numpy(), q["q95"].to_numpy(), color=color, alpha=0.18, lw=0, label="5%-95%")
            ax.fill_between(x, q["q25"].to_numpy(), q["q75"].to_numpy(), color=color, alpha=0.4, lw=0, label="25%-75%")
            ax.plot(x, q["q50"].to_numpy(), color=color, lw=1.1, label="median")
            ax.set_title(label_text(labels, term), loc="left", fontsize=9)
            ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        axes[0, 0].legend(fontsize=7, frameon=False, ncol=3, loc="upper right")
        fig.suptitle(f"Rolling first-pass estimates across assets, by window end — {mpl(name)}", fontsize=10)
        fig.tight_layout()
    return fig


def to_svg(fig: Figure) -> str:
    """The figure as an SVG document (with its XML prolog)."""
    buffer = io.StringIO()
    with drawing():
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def inline_svg(document: str) -> str:
    """An SVG document as an inline ``<svg>`` element: no prolog or DOCTYPE, no fixed size (CSS scales it)."""
    svg = document[document.index("<svg"):]
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", svg, count=1)


def save(fig: Figure, path, fmt: str) -> None:
    with drawing():
        fig.savefig(path, format=fmt, metadata={"CreationDate": None} if fmt == "pdf" else {"Date": None})
