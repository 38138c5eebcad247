"""Aggregates of a stored run's first pass, computed in SQL on the results engine (DuckDB, PostgreSQL).

A rolling first pass of a stock panel has one row per asset and window (5,000 assets x 240 months
give about a million windows); a report of it needs only per-asset time averages and per-period
cross-sectional quantiles. :class:`StoredFirstPass` asks the engine for them (``GROUP BY asset`` and
``GROUP BY period_index`` over ``first_pass_windows``; templates ``sql/results/first_pass_*.sql.j2``,
transpiled by sqlglot), so the long table never reaches Python.

Conventions (the same as the ``first_pass`` view and :mod:`fmduck.report.assets` in polars):
- per asset and term: ``estimate``, ``std_error`` = AVG over the asset's windows; ``t_stat`` =
  AVG(estimate / std_error), NULL where std_error = 0; ``r2``, ``rmse``, ``nobs`` = AVG (the same for
  every term); ``windows`` = COUNT(*) (1 for full-sample betas). NULLs are left out of the averages.
- per period and term (rolling betas; period = the window end): ``n`` = COUNT(*) windows, ``q05 q25
  q50 q75 q95`` = ``quantile_cont(x, [levels])`` (DuckDB) / ``percentile_cont(ARRAY[levels]) WITHIN
  GROUP (ORDER BY x)`` (PostgreSQL) of the estimates, one sort per term: linear interpolation between
  order statistics, numpy's default ``linear`` method.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import polars as pl

from fmduck import templates
from fmduck.engines import connect
from fmduck.errors import FmduckError

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
DIALECTS = ("duckdb", "postgres")  # where these templates run in the tests (Spark: not tested, not used)
ASSET_COLUMNS = ("asset", "term", "estimate", "std_error", "t_stat", "r2", "rmse", "nobs", "windows")


def quantile_name(level: float) -> str:
    """``q05`` for 0.05, ``q50`` for 0.5: the column name of a quantile."""
    return f"q{round(level * 100):02d}"


class StoredFirstPass:
    """The first pass of run ``name`` in ``schema`` of ``database`` (an engine, connection, path or URL),
    read as aggregates only. ``terms`` are in stored order (``first_pass_terms.term_index``)."""

    def __init__(self, database: Any, name: str, schema: str = "fmduck") -> None:
        self.engine = connect(database)
        self.name = name
        self.schema = schema

    def _query(self, template: str, **context: Any) -> pl.DataFrame:
        sql = templates.render(template, self.engine.dialect, schema=templates.ident(self.schema), **context)
        return self.engine.query(sql, {"run_name": self.name})

    @cached_property
    def terms(self) -> list[str]:
        sql = templates.transpile(f"SELECT term FROM {templates.ident(self.schema)}.first_pass_terms "
                                  "WHERE run_name = $run_name ORDER BY term_index", self.engine.dialect)
        return self.engine.query(sql, {"run_name": self.name})["term"].to_list()

    @cached_property
    def shape(self) -> dict[str, Any]:
        """``n_assets``, ``n_windows`` and ``rolling`` (some window has a period: rolling betas)."""
        row = self._query("results/first_pass_shape").row(0, named=True)
        n_windows = int(row["n_windows"] or 0)
        return {"n_assets": int(row["n_assets"] or 0), "n_windows": n_windows, "rolling": int(row["n_dated"] or 0) > 0}

    def by_asset_wide(self) -> pl.DataFrame:
        """One row per asset: asset, windows, nobs, r2, rmse, then e<j>, s<j>, t<j> per term (sorted by asset)."""
        frame = self._query("results/first_pass_assets", n_terms=len(self.terms))
        return frame.sort("asset")

    def by_asset(self) -> pl.DataFrame:
        """One row per (asset, term): ``ASSET_COLUMNS`` (sorted by asset, then term order)."""
        wide = self.by_asset_wide()
        parts = [wide.select(pl.col("asset").cast(pl.Utf8), pl.lit(term).alias("term"),
                             pl.col(f"e{j}").cast(pl.Float64).alias("estimate"),
                             pl.col(f"s{j}").cast(pl.Float64).alias("std_error"),
                             pl.col(f"t{j}").cast(pl.Float64).alias("t_stat"),
                             *[pl.col(c).cast(pl.Float64) for c in ("r2", "rmse", "nobs")],
                             pl.col("windows").cast(pl.Int64), pl.lit(j).alias("_j"))
                 for j, term in enumerate(self.terms)]
        if not parts:
            return pl.DataFrame(schema={c: pl.Int64 if c == "windows" else pl.Float64 if c not in ("asset", "term")
                                        else pl.Utf8 for c in ASSET_COLUMNS})
        return pl.concat(parts).sort("asset", "_j").drop("_j")

    def by_period(self, terms: list[str] | None = None) -> pl.DataFrame:
        """One row per (period, term) of ``terms`` (default all): period_index, period, term, n, q05 ... q95,
        sorted by period_index, then term order. Empty for full-sample betas."""
        wanted = self.terms if terms is None else terms
        unknown = [t for t in wanted if t not in self.terms]
        if unknown:
            raise FmduckError(f"run {self.name!r} has no first-pass term(s) {', '.join(unknown)}")
        positions = [self.terms.index(t) for t in wanted]
        levels = "[" + ", ".join(templates.literal(q) for q in QUANTILES) + "]"
        frame = self._query("results/first_pass_periods", positions=positions, levels=levels)
        names = [quantile_name(q) for q in QUANTILES]
        parts = [frame.select(pl.col("period_index").cast(pl.Int64), pl.col("period").cast(pl.Utf8),
                              pl.lit(term).alias("term"), pl.col("n").cast(pl.Int64),
                              *[pl.col(f"qs_{j}").list.get(i).cast(pl.Float64).alias(name)
                                for i, name in enumerate(names)],
                              pl.lit(k).alias("_k"))
                 for k, (term, j) in enumerate(zip(wanted, positions))]
        if not parts:
            return pl.DataFrame(schema={"period_index": pl.Int64, "period": pl.Utf8, "term": pl.Utf8, "n": pl.Int64,
                                        **{name: pl.Float64 for name in names}})
        return pl.concat(parts).sort("period_index", "_k").drop("_k")
