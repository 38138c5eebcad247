"""Report figures drawn with matplotlib (Agg backend) from a stored run: no I/O here, figures in, bytes out.

- ``lambda_figure``: λ_t over time per term, with the mean and a ±2 SE band;
- ``cumulative_figure``: cumulative λ_t per term;
- ``betas_figure``: first-pass betas per asset (bars; time-averaged for rolling betas);
- ``sml_figure``: average excess return against predicted λ̄'β_i, with the fitted line.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

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


def lambda_figure(results: FamaMacBethResults, se_type: str, labels: dict[str, str]) -> Figure:
    """The band uses ``se_type`` when its estimate is the mean of λ_t (every two-pass SE type); designs
    whose other SE types belong to another estimator (pooled OLS) fall back to the Fama-MacBeth SE."""
    terms = results.terms
    table = results.table(se_type)
    means = results.lambdas.select(terms).mean().row(0, named=True)
    if any(abs(e - means[t]) > 1e-9 * max(1.0, abs(means[t])) for t, e in zip(table["term"], table["estimate"])
           if t in means and e is not None and means[t] is not None) and "fm" in results.se_types:
        se_type, table = "fm", results.table("fm")
    mean = dict(zip(table["term"], table["estimate"]))
    se = dict(zip(table["term"], table["std_error"]))
    x = periods_axis(results.lambdas)
    with matplotlib.rc_context(RC):
        fig = new_figure((7.5, 1.9 * len(terms) + 0.4))
        axes = fig.subplots(len(terms), 1, sharex=True, squeeze=False)
        for k, (ax, term) in enumerate(zip(axes[:, 0], terms)):
            y = results.lambdas[term].to_numpy()
            ax.plot(x, y, lw=0.6, color=COLORS[k % len(COLORS)], alpha=0.8, label=r"$\lambda_t$")
            ax.axhline(mean[term], color="black", lw=1.2, label="mean")
            ax.axhspan(mean[term] - 2 * se[term], mean[term] + 2 * se[term], facecolor="#ff7f0e", alpha=0.45,
                       edgecolor="#ff7f0e", lw=0.8, label=f"mean ± 2 SE ({se_type})", zorder=3)
            ax.axhline(0, color="grey", lw=0.6, ls=":")
            ax.set_title(mathtext(labels.get(term, term)), loc="left", fontsize=9)
        axes[0, 0].legend(loc="upper right", fontsize=7, ncol=3, frameon=False)
        fig.suptitle(f"$\\lambda_t$ over time — {results.name}", fontsize=10)
        fig.tight_layout()
    return fig


def cumulative_figure(results: FamaMacBethResults, labels: dict[str, str]) -> Figure:
    x = periods_axis(results.lambdas)
    with matplotlib.rc_context(RC):
        fig = new_figure((7.5, 3.2))
        ax = fig.subplots()
        for k, term in enumerate(results.terms):
            y = np.nancumsum(results.lambdas[term].to_numpy())
            ax.plot(x, y, lw=1.2, color=COLORS[k % len(COLORS)], label=mathtext(labels.get(term, term)))
        ax.axhline(0, color="grey", lw=0.6, ls=":")
        ax.set_ylabel(r"cumulative $\lambda_t$")
        ax.legend(fontsize=7, frameon=False)
        ax.set_title(f"Cumulative $\\lambda_t$ — {results.name}", fontsize=10)
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


def betas_figure(results: FamaMacBethResults, labels: dict[str, str]) -> Figure | None:
    betas = asset_betas(results)
    factors = [t for t in results.terms if t in betas.columns and t != "const"]
    factors += [t for t in betas.columns if t not in ("asset", "const", *factors)]
    if not factors:
        return None
    assets = betas["asset"].to_list()
    x = np.arange(len(assets))
    width = 0.8 / len(factors)
    rolling = results.first_pass["period"].null_count() < results.first_pass.height
    with matplotlib.rc_context(RC):
        fig = new_figure((7.5, 3.6))
        ax = fig.subplots()
        for k, term in enumerate(factors):
            ax.bar(x + (k - (len(factors) - 1) / 2) * width, betas[term].to_numpy(), width,
                   color=COLORS[k % len(COLORS)], label=mathtext(labels.get(term, term)))
        ax.set_xticks(x, assets, rotation=90, fontsize=7)
        ax.axhline(0, color="grey", lw=0.6)
        ax.legend(fontsize=7, frameon=False, ncol=len(factors))
        kind = "time-averaged rolling betas" if rolling else "full-sample betas"
        ax.set_title(f"First-pass {kind} per asset — {results.name}", fontsize=10)
        fig.tight_layout()
    return fig


def sml_points(results: FamaMacBethResults) -> pl.DataFrame | None:
    """Predicted λ̄'β_i and average excess return (predicted + pricing error α_i) per asset.

    α_i is the asset's average pass-2 residual (``pricing_errors``); with full-sample betas and a
    balanced panel, average return = λ̄'β_i + α_i exactly. With rolling betas β_i is their time average,
    so the picture is an approximation (stated in the caption).
    """
    betas = asset_betas(results)
    factors = [t for t in results.terms if t in betas.columns and t != "const"]
    if not factors or results.pricing_errors.height == 0:
        return None
    lam = results.params
    predicted = sum(pl.col(t) * lam[t] for t in factors) + lam.get("const", 0.0)
    frame = betas.select("asset", predicted.alias("predicted")).join(
        results.pricing_errors.select("asset", "alpha"), on="asset", how="inner")
    return frame.with_columns((pl.col("predicted") + pl.col("alpha")).alias("average")).sort("asset")


def sml_figure(results: FamaMacBethResults) -> Figure | None:
    points = sml_points(results)
    if points is None or points.height < 2:
        return None
    x, y = points["predicted"].to_numpy(), points["average"].to_numpy()
    slope, intercept = np.polyfit(x, y, 1)
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    grid = np.linspace(lo, hi, 2)
    with matplotlib.rc_context(RC):
        fig = new_figure((5.5, 4.6))
        ax = fig.subplots()
        ax.scatter(x, y, s=14, color=COLORS[0], zorder=3)
        for name, xi, yi in zip(points["asset"], x, y):
            ax.annotate(name, (xi, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.plot(grid, intercept + slope * grid, color=COLORS[1], lw=1.2,
                label=f"fitted: {fmt(intercept, 4)} + {fmt(slope, 3)}·predicted")
        ax.plot(grid, grid, color="grey", lw=0.8, ls="--", label="45° line")
        ax.set_xlabel(r"predicted $\bar\lambda'\beta_i$")
        ax.set_ylabel("average excess return")
        ax.legend(fontsize=7, frameon=False, loc="upper left")
        ax.set_title(f"Security market line — {results.name}", fontsize=10)
        fig.tight_layout()
    return fig


def to_svg(fig: Figure) -> str:
    """The figure as an SVG document (with its XML prolog)."""
    buffer = io.StringIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def inline_svg(document: str) -> str:
    """An SVG document as an inline ``<svg>`` element: no prolog or DOCTYPE, no fixed size (CSS scales it)."""
    svg = document[document.index("<svg"):]
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", svg, count=1)


def save(fig: Figure, path, fmt: str) -> None:
    with matplotlib.rc_context(RC):
        fig.savefig(path, format=fmt, metadata={"CreationDate": None} if fmt == "pdf" else {"Date": None})


def mathtext(label: str) -> str:
    """``β_MKT`` -> ``β$_{\\mathrm{MKT}}$`` for matplotlib; a label without ``_`` is shown as is."""
    base, sep, sub = label.partition("_")
    if not sep or not sub or "$" in label:
        return label
    return f"{base}$_{{\\mathrm{{{sub}}}}}$"
