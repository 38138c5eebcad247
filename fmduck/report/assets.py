"""Per-asset and cross-sectional aggregates of a run's first pass (polars; no I/O, no formatting).

A rolling first pass has one row per (asset, window, term); the report shows per asset the time
average over the windows, and for many assets the cross-sectional distribution. These functions are
what a storage module would compute in SQL (``GROUP BY asset, term`` and ``GROUP BY period, term``)
to avoid reading the long table.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fmduck.results import FamaMacBethResults

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def is_rolling(run: FamaMacBethResults) -> bool:
    fp = run.first_pass
    return fp.height > 0 and fp["period"].null_count() < fp.height


def n_assets(run: FamaMacBethResults) -> int:
    """Assets in the first pass (or, without one, in the pricing errors)."""
    frame = run.first_pass if run.first_pass.height else run.pricing_errors
    return frame["asset"].n_unique() if frame.height else 0


def first_pass_terms(run: FamaMacBethResults) -> list[str]:
    """First-pass terms: the run's terms first (in run order), then any other, sorted."""
    present = set(run.first_pass["term"].unique().to_list())
    terms = [t for t in run.terms if t in present]
    return terms + sorted(present - set(terms))


def per_asset(run: FamaMacBethResults, stat_col: str) -> pl.DataFrame:
    """One row per (asset, term): mean estimate, mean ``stat_col`` (``t_stat`` or ``std_error``) as
    ``stat``, mean R², s(e), observations, and the number of windows (1 for full-sample betas)."""
    return run.first_pass.group_by("asset", "term").agg(
        pl.col("estimate").mean(), pl.col(stat_col).mean().alias("stat"), pl.col("r2").mean(),
        pl.col("rmse").mean(), pl.col("nobs").mean(), pl.len().alias("windows"),
    ).sort("asset", "term")


def asset_table(run: FamaMacBethResults, stat: str) -> pl.DataFrame:
    """The full per-asset table, one row per asset (the CSV next to a report of many assets):
    ``b_<term>`` (time-averaged estimate), ``t_<term>`` or ``se_<term>`` (its time average), r2, rmse,
    nobs, windows, then the pricing error ``pe_alpha``, ``pe_se``, ``pe_t`` when the run has them."""
    prefix = "t_" if stat == "t" else "se_"
    columns: list[pl.Expr] = []
    frame = None
    if run.first_pass.height:
        long = per_asset(run, "t_stat" if stat == "t" else "std_error")
        terms = first_pass_terms(run)
        wide = long.pivot(on="term", index="asset", values=["estimate", "stat"])
        common = long.group_by("asset").agg(pl.col("r2").first(), pl.col("rmse").first(), pl.col("nobs").first(),
                                            pl.col("windows").first())
        frame = wide.join(common, on="asset", how="left")
        for term in terms:
            columns += [pl.col(f"estimate_{term}").alias(f"b_{term}"), pl.col(f"stat_{term}").alias(f"{prefix}{term}")]
        columns += [pl.col("r2"), pl.col("rmse"), pl.col("nobs"), pl.col("windows")]
        frame = frame.select(pl.col("asset"), *columns)
    pe = run.pricing_errors
    if pe.height:
        pe = pe.select("asset", pl.col("alpha").alias("pe_alpha"), pl.col("std_error").alias("pe_se"),
                       pl.col("t_stat").alias("pe_t"))
        frame = pe if frame is None else frame.join(pe, on="asset", how="left")
    if frame is None:
        return pl.DataFrame(schema={"asset": pl.Utf8})
    return frame.sort("asset")


def distribution(values: np.ndarray) -> dict[str, float | int]:
    """n, mean, sd (ddof 1), min, the ``QUANTILES`` (linear interpolation) and max of the finite values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0}
    qs = np.quantile(v, QUANTILES)
    return {"n": int(v.size), "mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else float("nan"),
            "min": float(v.min()), **{f"q{round(q * 100):02d}": float(x) for q, x in zip(QUANTILES, qs)},
            "max": float(v.max())}


def largest(frame: pl.DataFrame, column: str, k: int) -> pl.DataFrame:
    """The ``k`` rows with the largest ``|column|`` (ties by asset name)."""
    return frame.filter(pl.col(column).is_finite()).sort(
        [pl.col(column).abs(), pl.col("asset")], descending=[True, False]).head(k)


def period_quantiles(run: FamaMacBethResults, terms: list[str]) -> pl.DataFrame:
    """Rolling first pass: per (period, term) the cross-sectional n and ``QUANTILES`` of the estimates
    (columns period, period_index, term, n, q05, q25, q50, q75, q95), by period_index."""
    fp = run.first_pass.filter(pl.col("term").is_in(terms))
    return fp.group_by("period_index", "term").agg(
        pl.col("period").first(), pl.len().alias("n"),
        *[pl.col("estimate").quantile(q, interpolation="linear").alias(f"q{round(q * 100):02d}") for q in QUANTILES],
    ).sort("period_index", "term")


def sml_groups(points: pl.DataFrame, groups: int = 20) -> pl.DataFrame:
    """Assets sorted by ``predicted`` into ``groups`` groups of (nearly) equal counts: per group n,
    mean predicted, mean average return and the quartiles of the assets' average returns."""
    points = points.filter(pl.col("predicted").is_finite() & pl.col("average").is_finite()).sort("predicted", "asset")
    count = points.height
    groups = max(1, min(groups, count))
    group = (np.arange(count) * groups) // max(count, 1)
    return points.with_columns(pl.Series("group", group)).group_by("group").agg(
        pl.len().alias("n"), pl.col("predicted").mean(), pl.col("average").mean().alias("average"),
        pl.col("average").quantile(0.25, interpolation="linear").alias("q25"),
        pl.col("average").quantile(0.75, interpolation="linear").alias("q75"),
    ).sort("group")
