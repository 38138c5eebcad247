"""Which figures a run gets, drawn by ``fmduck.plots`` and saved next to the report.

Up to ``ReportOptions.asset_limit`` assets: λ_t, cumulative λ_t, betas per asset (bars) and the
security market line with one labelled point per asset. Above it, the per-asset pictures become
distributions: histograms of α and the betas, rolling betas as cross-sectional quantiles over time,
and the security market line of 20 beta-sorted groups without labels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from markupsafe import Markup

from fmduck.errors import FmduckError
from fmduck.formatting import fmt
from fmduck.report import assets
from fmduck.report.options import ReportOptions
from fmduck.report.tables import se_name
from fmduck.results import FamaMacBethResults

SML_GROUPS = 20


def _lambda_caption(options: ReportOptions) -> str:
    return (f"λ_t over time with their mean and a ±2 SE band ({se_name(options.se_type)} SE when its "
            "estimate is the mean of λ_t, else Fama-MacBeth; the legend names it).")


def _figures(run: FamaMacBethResults, options: ReportOptions, fp: assets.FirstPass
             ) -> list[tuple[str, str, Callable[[], Any]]]:
    """(kind, caption, draw) of each figure of ``run``; draw() returns a Figure or None."""
    from fmduck import plots

    labels = {t: options.label(t) for t in run.terms}
    many = fp.n_assets > options.asset_limit
    out: list[tuple[str, str, Callable[[], Any]]] = [
        ("lambda", _lambda_caption(options),
         lambda: plots.lambda_figure(run, options.se_type, labels, columns=2 if many else 1)),
        ("cumulative", "Cumulative λ_t.", lambda: plots.cumulative_figure(run, labels)),
    ]
    rolling = bool(run.spec.get("window"))
    if not many:
        out += [
            ("betas", "First-pass betas per asset.", lambda: plots.betas_figure(run, labels, fp.betas(), fp.rolling)),
            ("sml", "Average excess return (λ̄'β_i + pricing error α_i) against predicted λ̄'β_i, "
                    "with the OLS fitted line and the 45° line"
                    + (" (rolling betas averaged over time: approximate)." if rolling else "."),
             lambda: plots.sml_figure(run, fp.betas())),
        ]
        return out
    n = fmt(fp.n_assets)
    terms = fp.terms
    beta_labels = {t: options.beta_label(t) for t in terms}

    def distribution() -> Any:
        table = assets.asset_table(fp, options.stat)
        values = [(plots.label_text(beta_labels, t), table[f"b_{t}"].to_numpy()) for t in terms]
        kind = "time-averaged rolling" if fp.rolling else "full-sample"
        return plots.distribution_figure(values, f"First-pass {kind} estimates across {n} assets — "
                                         f"{plots.mpl(run.name)}")

    def sml() -> Any:
        points = plots.sml_points(run, fp.betas())
        if points is None:
            return None
        return plots.sml_groups_figure(points, assets.sml_groups(points, SML_GROUPS), run.name)

    averaged = " (time averages of the rolling estimates)" if fp.rolling else ""
    out.append(("betas", f"Distribution across the {n} assets of the first-pass α and betas{averaged}: "
                         "histograms with the median (solid) and the 5% and 95% quantiles (dashed).", distribution))
    if fp.rolling:
        out.append(("rolling", f"Rolling first-pass estimates across the {n} assets at each window end: median, "
                               "25%-75% and 5%-95% bands.",
                    lambda: plots.quantile_bands_figure(fp.period_quantiles(terms), terms, beta_labels,
                                                        run.name)))
    out.append(("sml", f"Security market line of {n} assets in {SML_GROUPS} groups sorted by predicted λ̄'β_i "
                       "(equal counts): group means of the average excess return (λ̄'β_i + pricing error α_i) "
                       "against predicted, bars from the 25% to the 75% quantile of the assets in the group, the "
                       "OLS line fitted to all assets and the 45° line"
                       + (" (rolling betas averaged over time: approximate)." if rolling else "."), sml))
    return out


def make_plots(run: FamaMacBethResults, options: ReportOptions, folder: Path, stem: str, formats: tuple[str, ...],
               inline_svg: bool, first_pass: assets.FirstPass | None = None) -> list[dict[str, Any]]:
    """Draw the run's figures; save each as ``folder/<stem>_<kind>.<fmt>``; return captions, inline
    SVG (HTML) and file names. ``first_pass``: where the first-pass aggregates come from (default:
    polars on the run in memory)."""
    try:
        from fmduck import plots
    except ModuleNotFoundError as exc:  # matplotlib is a dependency; a broken install says so
        raise FmduckError(f"plots need matplotlib ({exc}): pip install matplotlib, or leave out the plots "
                          "section (--no-plots)") from exc
    out = []
    for kind, caption, draw in _figures(run, options, first_pass or assets.FirstPass(run)):
        fig = draw()
        if fig is None:
            continue
        files = {}
        document = plots.to_svg(fig) if inline_svg or "svg" in formats else None
        folder.mkdir(parents=True, exist_ok=True)
        for ext in formats:
            path = folder / f"{stem}_{kind}.{ext}"
            if ext == "svg":
                path.write_text(document, encoding="utf-8")
            else:
                plots.save(fig, path, ext)
            files[ext] = path
        svg = plots.inline_svg(document) if inline_svg else None
        out.append({"kind": kind, "caption": caption, "svg": Markup(svg) if svg else None, "files": files})
    return out
