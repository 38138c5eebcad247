"""Cross-engine cases shared by tests/test_postgres.py and tests/test_spark.py.

The same seeded panels run on DuckDB (the reference engine, itself tested against numpy /
statsmodels oracles in test_engine_*.py) and on PostgreSQL / Spark; every estimate, λ_t, beta
and pricing error must agree to 1e-10 relative.
"""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import polars as pl

import oracles

ENGINE_RTOL = 1e-10
ENGINE_ATOL = 1e-12


def _monthly(periods: pl.Series, kind: str) -> pl.Series:
    """Integer periods 1..T as month-end DATEs or TIMESTAMPs (exercises uploads of both types)."""
    values = []
    for p in periods.to_list():
        y, m = 2000 + (p - 1) // 12, (p - 1) % 12 + 1
        values.append(date(y, m, 28) if kind == "date" else datetime(y, m, 28, 16, 0, 0))
    return pl.Series(periods.name, values, dtype=pl.Date if kind == "date" else pl.Datetime("us"))


def case(name: str) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """(panel, factors, spec options) of one cross-engine case."""
    if name == "full":  # full-sample betas, rf in the panel, integer periods
        panel, factors = oracles.synthetic_panel(seed=11, n_assets=8, n_periods=36, missing=0.1, null_ret=0.05)
        panel = panel.with_columns((0.01 * (pl.col("period") % 5)).alias("rf"))
        return panel, factors, {"factor_cols": ["mkt", "smb"], "rf": "rf"}
    if name == "rolling":  # rolling betas on DATE periods with gaps, min_obs below the window
        panel, factors = oracles.synthetic_panel(seed=12, n_assets=7, n_periods=40, missing=0.15, null_ret=0.05)
        panel = panel.with_columns(_monthly(panel["period"], "date"))
        factors = factors.with_columns(_monthly(factors["period"], "date"))
        return panel, factors, {"factor_cols": ["mkt", "smb"], "window": 12, "min_obs": 8}
    if name == "chars":  # characteristic FM, lagged characteristics, TIMESTAMP periods
        panel, factors = oracles.synthetic_panel(seed=13, n_assets=10, n_periods=30, chars=("size", "bm"),
                                                 missing=0.1, null_ret=0.05)
        panel = panel.with_columns(_monthly(panel["period"], "timestamp"))
        return panel, factors, {"chars": ["size", "bm"], "char_lag": 1}
    raise KeyError(name)


CASES = ("full", "rolling", "chars")


def duckdb_fit(panel: pl.DataFrame, factors: pl.DataFrame, options: dict):
    from fmduck import FamaMacBeth, Spec

    con = duckdb.connect()
    spec = Spec(name="reference", returns=panel, factors=factors if options.get("factor_cols") else None, **options)
    return FamaMacBeth(spec, con).fit(write=False)


def assert_same_results(got, want, *, label: str) -> None:
    """Every number of two FamaMacBethResults agrees to ENGINE_RTOL (recorded under ``label``)."""
    tol = {"label": label, "rtol": ENGINE_RTOL, "atol": ENGINE_ATOL}
    oracles.compare_frames(got.estimates, want.estimates, ["term", "se_type"],
                           ["estimate", "std_error", "t_stat", "p_value", "ci_lower", "ci_upper", "avg_n", "avg_r2"],
                           **tol)
    terms = [t for t in want.terms]
    oracles.compare_frames(got.lambdas, want.lambdas, ["period_index"], [*terms, "r2", "adj_r2", "n"], **tol)
    if want.first_pass.height:
        rolling = want.first_pass["period_index"].null_count() < want.first_pass.height
        keys = ["asset", "period_index", "term"] if rolling else ["asset", "term"]
        oracles.compare_frames(got.first_pass, want.first_pass, keys,
                               ["estimate", "std_error", "t_stat", "r2", "adj_r2", "rmse", "nobs"], **tol)
    oracles.compare_frames(got.pricing_errors, want.pricing_errors, ["asset"],
                           ["alpha", "std_error", "t_stat", "n_periods"], **tol)
    assert got.lambdas["period"].to_list() == want.lambdas["period"].to_list() or _same_instants(got, want)
    assert got.run["n_periods"] == want.run["n_periods"]


def _same_instants(got, want) -> bool:
    """Period labels as text differ between engines only in timestamp spelling; compare the instants."""
    a = pl.Series(got.lambdas["period"]).str.to_datetime(strict=False)
    b = pl.Series(want.lambdas["period"]).str.to_datetime(strict=False)
    return a.to_list() == b.to_list()
