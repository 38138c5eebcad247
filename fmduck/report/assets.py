"""Per-asset and cross-sectional aggregates of a run's first pass (no formatting).

A rolling first pass has one row per (asset, window, term); the report shows per asset the time
average over the windows, and for many assets the cross-sectional distribution. :class:`FirstPass`
is what the report asks: for a stored run it reads the aggregates computed in SQL on the results
engine (:class:`fmduck.store_aggregates.StoredFirstPass`: the long first pass never reaches Python);
for a run in memory it computes the same numbers with polars (the functions below).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import polars as pl

from fmduck.results import FamaMacBethResults
from fmduck.store_aggregates import QUANTILES, quantile_name


def is_rolling(run: FamaMacBethResults) -> bool:
    fp = run.first_pass
    return fp.height > 0 and fp["period"].null_count() < fp.height


def n_assets(run: FamaMacBethResults) -> int:
    """Assets in the first pass (or, without one, in the pricing errors)."""
    frame = run.first_pass if run.first_pass.height else run.pricing_errors
    return frame["asset"].n_unique() if frame.height else 0


def ordered_terms(run: FamaMacBethResults, present: list[str]) -> list[str]:
    """First-pass terms: the run's terms first (in run order), then any other, sorted."""
    terms = [t for t in run.terms if t in set(present)]
    return terms + sorted(set(present) - set(terms))


def first_pass_terms(run: FamaMacBethResults) -> list[str]:
    return ordered_terms(run, run.first_pass["term"].unique().to_list())


def per_asset(run: FamaMacBethResults) -> pl.DataFrame:
    """One row per (asset, term): mean estimate, std_error and t_stat, mean R², s(e), observations,
    and the number of windows (1 for full-sample betas)."""
    return run.first_pass.group_by("asset", "term").agg(
        pl.col("estimate").mean(), pl.col("std_error").mean(), pl.col("t_stat").mean(), pl.col("r2").mean(),
        pl.col("rmse").mean(), pl.col("nobs").mean().cast(pl.Float64), pl.len().cast(pl.Int64).alias("windows"),
    ).sort("asset", "term")


def period_quantiles(run: FamaMacBethResults, terms: list[str]) -> pl.DataFrame:
    """Rolling first pass: per (period, term) the cross-sectional n and ``QUANTILES`` of the estimates
    (columns period, period_index, term, n, q05, q25, q50, q75, q95), by period_index."""
    fp = run.first_pass.filter(pl.col("term").is_in(terms))
    return fp.group_by("period_index", "term").agg(
        pl.col("period").first(), pl.len().alias("n"),
        *[pl.col("estimate").quantile(q, interpolation="linear").alias(quantile_name(q)) for q in QUANTILES],
    ).sort("period_index", "term")


class FirstPass:
    """A run's first pass as the report needs it: the number of assets, rolling or not, the terms,
    per-asset averages (:func:`per_asset` columns) and per-period quantiles. ``stored``: a
    :class:`fmduck.store_aggregates.StoredFirstPass` of the run (SQL on the results engine); None:
    polars on ``run.first_pass`` (a run in memory)."""

    def __init__(self, run: FamaMacBethResults, stored: Any = None) -> None:
        self.run = run
        self.stored = stored

    @cached_property
    def n_assets(self) -> int:
        if self.stored is None:
            return n_assets(self.run)
        found = self.stored.shape["n_assets"]
        return found or (self.run.pricing_errors["asset"].n_unique() if self.run.pricing_errors.height else 0)

    @cached_property
    def has_rows(self) -> bool:
        return (self.stored.shape["n_windows"] > 0) if self.stored is not None else self.run.first_pass.height > 0

    @cached_property
    def rolling(self) -> bool:
        return self.stored.shape["rolling"] if self.stored is not None else is_rolling(self.run)

    @cached_property
    def terms(self) -> list[str]:
        if not self.has_rows:
            return []
        return ordered_terms(self.run, self.stored.terms) if self.stored is not None else first_pass_terms(self.run)

    @cached_property
    def per_asset(self) -> pl.DataFrame:
        """One row per (asset, term), sorted by asset: estimate, std_error, t_stat, r2, rmse, nobs, windows."""
        frame = self.stored.by_asset() if self.stored is not None else per_asset(self.run)
        return frame.sort("asset", maintain_order=True)

    def period_quantiles(self, terms: list[str]) -> pl.DataFrame:
        if self.stored is not None:
            return self.stored.by_period(terms).select(
                "period_index", "term", "period", "n", *[quantile_name(q) for q in QUANTILES])
        return period_quantiles(self.run, terms)

    def betas(self) -> pl.DataFrame:
        """One row per asset, one column per first-pass term: the (time-averaged) estimates."""
        long = self.per_asset
        if long.height == 0:
            return pl.DataFrame()
        return long.pivot(on="term", index="asset", values="estimate").sort("asset")


def asset_table(first_pass: FirstPass, stat: str) -> pl.DataFrame:
    """The full per-asset table, one row per asset (the CSV next to a report of many assets):
    ``b_<term>`` (time-averaged estimate), ``t_<term>`` or ``se_<term>`` (its time average), r2, rmse,
    nobs, windows, then the pricing error ``pe_alpha``, ``pe_se``, ``pe_t`` when the run has them."""
    run = first_pass.run
    prefix, stat_col = ("t_", "t_stat") if stat == "t" else ("se_", "std_error")
    frame = None
    if first_pass.has_rows:
        long = first_pass.per_asset
        wide = long.pivot(on="term", index="asset", values=["estimate", stat_col])
        common = long.group_by("asset").agg(pl.col("r2").first(), pl.col("rmse").first(), pl.col("nobs").first(),
                                            pl.col("windows").first())
        columns: list[pl.Expr] = []
        for term in first_pass.terms:
            columns += [pl.col(f"estimate_{term}").alias(f"b_{term}"),
                        pl.col(f"{stat_col}_{term}").alias(f"{prefix}{term}")]
        frame = wide.join(common, on="asset", how="left").select(
            pl.col("asset"), *columns, pl.col("r2"), pl.col("rmse"), pl.col("nobs"), pl.col("windows"))
    pe = run.pricing_errors
    if pe.height:
        pe = pe.select(pl.col("asset").cast(pl.Utf8), pl.col("alpha").alias("pe_alpha"),
                       pl.col("std_error").alias("pe_se"), pl.col("t_stat").alias("pe_t"))
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
