"""The results of one run, as a Python object: the same frames as the SQL tables of :mod:`fmduck.store`.

``lambdas`` is wide here (one column per term) and long in SQL; ``first_pass`` is long (one row per
asset, window and term, like the ``first_pass`` view) and built on first access from the wide
windows (``first_pass_windows``: one row per asset and window), which a stored run reads lazily and
in pieces (``first_pass_pieces``) — a first pass of tens of millions of windows is never one frame.
Every frame carries ``run_name`` and ``run_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl

from fmduck.errors import FmduckError

# one row per asset and window: keys, then per term j: e<j> (estimate), s<j> (SE); then the fit statistics
WINDOW_KEYS = ("asset", "asset_int", "period", "period_date", "period_ts", "period_int", "period_index")
WINDOW_STATS = ("nobs", "r2", "adj_r2", "rmse")
Pieces = Callable[[int | None], Iterator[pl.DataFrame]]


def tag(frame: pl.DataFrame, name: str, run_id: str) -> pl.DataFrame:
    """Prefix ``run_name`` and ``run_id`` columns (an empty frame stays empty)."""
    rest = [c for c in frame.columns if c not in ("run_name", "run_id")]
    return frame.select(pl.lit(name).alias("run_name"), pl.lit(run_id).alias("run_id"), *rest).head(frame.height)


class FamaMacBethResults:
    """One stored (or just computed) run."""

    def __init__(self, run: dict[str, Any], *, lambdas: pl.DataFrame, estimates: pl.DataFrame,
                 pricing_errors: pl.DataFrame, skipped: pl.DataFrame, extra: dict[str, pl.DataFrame] | None = None,
                 first_pass: pl.DataFrame | Pieces | None = None) -> None:
        """``first_pass``: the wide windows (a frame), a function yielding them in pieces, or None."""
        self.run = run
        name, run_id = run["run_name"], run["run_id"]
        self.lambdas = tag(lambdas, name, run_id)
        self.estimates = tag(estimates, name, run_id)
        self.pricing_errors = tag(pricing_errors, name, run_id)
        self.skipped = tag(skipped, name, run_id)
        self.extra = {k: tag(v, name, run_id) for k, v in (extra or {}).items()}
        self._windows = first_pass
        self.warnings: list[str] = list(run.get("warnings") or [])  # units, coverage: stored, in the summary

    # ------------------------------------------------------------ accessors
    @property
    def name(self) -> str:
        return self.run["run_name"]

    @property
    def spec(self) -> dict[str, Any]:
        return self.run["spec"]

    @property
    def terms(self) -> list[str]:
        return list(dict.fromkeys(self.estimates["term"].to_list()))

    @property
    def first_pass_terms(self) -> list[str]:
        return list(self.run.get("first_pass_terms") or [])

    @property
    def se_types(self) -> list[str]:
        return list(dict.fromkeys(self.estimates["se_type"].to_list()))

    @property
    def params(self) -> dict[str, float]:
        """Mean λ per term."""
        fm = self.estimates.filter(pl.col("se_type") == self.se_types[0])
        return dict(zip(fm["term"].to_list(), fm["estimate"].to_list()))

    def table(self, se_type: str = "fm") -> pl.DataFrame:
        """Estimates of one SE type: term, estimate, std_error, t_stat, p_value, ci_lower, ci_upper."""
        if se_type not in self.se_types:
            raise FmduckError(f"run {self.name!r} has no {se_type!r} standard errors; "
                              f"it has {', '.join(self.se_types)}")
        return self.estimates.filter(pl.col("se_type") == se_type).select(
            "term", "estimate", "std_error", "t_stat", "p_value", "ci_lower", "ci_upper")

    def std_errors(self, se_type: str = "fm") -> dict[str, float]:
        tab = self.table(se_type)
        return dict(zip(tab["term"].to_list(), tab["std_error"].to_list()))

    @property
    def tests(self) -> pl.DataFrame:
        return self.extra.get("tests", pl.DataFrame())

    @property
    def coverage(self) -> dict[str, Any]:
        """The panel rows the run used and, per reason, those it left out (``runs.coverage``), e.g.
        {"panel_rows": 62968, "used": 45879, "no_period": 432, ...}; {} for designs that do not count."""
        return dict(self.run.get("coverage") or {})

    # ------------------------------------------------------------ first pass
    def _wide_pieces(self, rows: int | None = None) -> Iterator[pl.DataFrame]:
        held = self._windows
        if held is None:
            return
        if isinstance(held, pl.DataFrame):
            if held.height:
                step = rows or max(held.height, 1)
                for start in range(0, held.height, step):
                    yield held.slice(start, step)
            return
        yield from held(rows)

    def first_pass_pieces(self, rows: int | None = None) -> Iterator[pl.DataFrame]:
        """The first pass one row per (asset, window): asset, period, period_index, then per term
        ``<term>``, ``se_<term>``, ``t_<term>``, and r2, adj_r2, rmse, nobs; in pieces of about ``rows``
        windows (a stored run reads them from the database piece by piece)."""
        terms = self.first_pass_terms
        for piece in self._wide_pieces(rows):
            cols = [c for c in WINDOW_KEYS if c in piece.columns]
            out = [pl.col(c) for c in cols]
            for j, term in enumerate(terms):
                e, s = pl.col(f"e{j}"), pl.col(f"s{j}")
                out += [e.alias(term), s.alias(f"se_{term}"), (e / s).alias(f"t_{term}")]
            out += [pl.col(c) for c in ("r2", "adj_r2", "rmse", "nobs")]
            yield tag(piece.select(out), self.name, self.run["run_id"])

    @cached_property
    def first_pass(self) -> pl.DataFrame:
        """One row per (asset, window, term), sorted by asset, period_index, term (like the SQL view)."""
        terms = self.first_pass_terms
        pieces = list(self._wide_pieces())
        if not pieces or not terms:
            return tag(pl.DataFrame(schema=_LONG_SCHEMA), self.name, self.run["run_id"])
        wide = pl.concat(pieces, how="vertical_relaxed")
        keys = [c for c in WINDOW_KEYS if c in wide.columns]
        long = pl.concat([
            wide.select(*keys, pl.lit(term).alias("term"), pl.col(f"e{j}").alias("estimate"),
                        pl.col(f"s{j}").alias("std_error"), *[pl.col(c) for c in WINDOW_STATS])
            for j, term in enumerate(terms)
        ], how="vertical_relaxed")
        with np.errstate(divide="ignore", invalid="ignore"):
            long = long.with_columns((pl.col("estimate") / pl.col("std_error")).alias("t_stat"))
        long = long.sort("asset", "period_index", "term", nulls_last=False)
        order = [*keys, "term", "estimate", "std_error", "t_stat", "r2", "adj_r2", "rmse", "nobs"]
        return tag(long.select(order), self.name, self.run["run_id"])

    @property
    def lambdas_long(self) -> pl.DataFrame:
        """λ_t as stored in SQL: one row per (period, term)."""
        return lambdas_long(self.lambdas, self.terms)

    @cached_property
    def summary(self) -> str:
        """A plain-text table laid out like Stata ``xtfmb``."""
        from fmduck.summary import text_summary

        return text_summary(self)

    def __str__(self) -> str:
        return self.summary


_LONG_SCHEMA = {"asset": pl.Utf8, "period": pl.Utf8, "period_index": pl.Int64, "term": pl.Utf8,
                "estimate": pl.Float64, "std_error": pl.Float64, "t_stat": pl.Float64, "r2": pl.Float64,
                "adj_r2": pl.Float64, "rmse": pl.Float64, "nobs": pl.Int64}


def lambdas_long(wide: pl.DataFrame, terms: list[str]) -> pl.DataFrame:
    """The long λ_t (one row per period and term, in term order within each period)."""
    if wide.height == 0:
        return wide
    ids = [c for c in ("run_name", "run_id", "period", "period_date", "period_ts", "period_int", "period_index",
                       "r2", "adj_r2", "n") if c in wide.columns]
    long = wide.unpivot(index=ids, on=terms, variable_name="term", value_name="estimate")
    order = {t: i for i, t in enumerate(terms)}
    return long.with_columns(pl.col("term").replace_strict(order, return_dtype=pl.Int64).alias("_o")).sort(
        ["period_index", "_o"]).drop("_o")


def term_order(spec: dict[str, Any], present: list[str]) -> list[str]:
    """The stored run's terms in the spec's order (constant, factors, characteristics), then any others."""
    wanted = (["const"] if spec.get("intercept", True) else []) + list(spec.get("factor_cols") or []) + list(
        spec.get("chars") or [])
    return [t for t in wanted if t in present] + sorted(t for t in present if t not in wanted)
