"""The SQL backend of the one OLS algorithm (fmduck/ols.py through fmduck/sqlsolve.py, rendered by
``moments.solve_source``) against the numpy backend (``fmduck.solve.ols``) on the same moment sums.

Random groups of observations, planted so that every branch of the algorithm is taken: well-posed
groups (regressors with large levels and different scales), too few observations (df below min_df,
zero and negative df), exactly collinear regressors (singular), a constant dependent variable (no
variation: still estimated, R² undefined); k = 0..5 regressors, with and without intercept, min_df 1
and 3. The numpy backend solves the moments that the engine's own moments query returns
(``moments.moments_source`` → ``moments.unpack``); the SQL backend solves them inside the engine.

- DuckDB: the same IEEE doubles (``np.array_equal``), NULL exactly where numpy has NaN;
- PostgreSQL 15: equal to 1e-14 relative to each column's scale (measured when written: 0, the same
  doubles as well);
- bad groups: ok false, their reason, and NULL (never NaN) estimates.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest

from fmduck import moments, ols, solve, templates
from fmduck.engine import DuckDBEngine
from fmduck.moments import RowSource, Variable

KEYS = ["asset"]
KINDS = ("fine", "fine", "fine", "few", "singular", "flat")


def _groups(seed: int, k: int, intercept: bool, min_df: int, n_groups: int = 48) -> tuple[pl.DataFrame, dict[str, str]]:
    """Rows (asset, period, x0.., y) of ``n_groups`` regressions and the kind planted in each group."""
    rng = np.random.default_rng(seed)
    p = k + int(intercept)
    scale = rng.uniform(0.01, 50.0, max(k, 1))
    level = rng.uniform(-1e3, 1e3, max(k, 1))
    rows, kinds = [], {}
    for g in range(n_groups):
        kind = KINDS[g % len(KINDS)]
        if kind == "singular" and k == 0:
            kind = "fine"
        if kind == "flat" and not intercept:  # uncentred: a constant y still varies about zero
            kind = "fine"
        if kind == "few" and p + min_df <= 1:  # no parameter and min_df 1: one row is enough
            kind = "fine"
        n = int(rng.integers(max(p + min_df, 2), 40)) if kind != "few" else int(rng.integers(1, p + min_df))
        x = rng.standard_normal((n, k)) * scale[:k] + level[:k] * rng.uniform(0.5, 1.5)
        if kind == "singular":
            if k == 1:
                x[:, 0] = 0.0
            else:
                x[:, 1] = 2.0 * x[:, 0]  # exactly collinear, with or without an intercept
        y = 0.3 + x @ rng.normal(0.0, 1.0, k) + rng.normal(0.0, 0.5, n) if k else 0.3 + rng.normal(0.0, 0.5, n)
        if kind == "flat":
            y[:] = 1.25
        asset = f"g{g:03d}"
        kinds[asset] = kind
        for t in range(n):
            rows.append({"asset": asset, "period": t + 1, **{f"x{i}": float(x[t, i]) for i in range(k)},
                         "y": float(y[t])})
    return pl.DataFrame(rows), kinds


def _variables(frame: pl.DataFrame, k: int) -> list[Variable]:
    """x0.., y with global shifts (rounded means: the shift a profile scan would give, up to digits)."""
    names = [f"x{i}" for i in range(k)] + ["y"]
    return [Variable(c, templates.column(c, "p"), round(float(frame[c].mean()), 3)) for c in names]


def _source(dialect: str) -> RowSource:
    return RowSource(dialect=dialect, returns=templates.ident("sample_rows"), asset=templates.ident("asset"),
                     panel_key=f"r.{templates.ident('period')}", calendar=templates.ident("sample_calendar"))


def _load(engine, frame: pl.DataFrame) -> None:
    calendar = pl.DataFrame({"period": sorted(frame["period"].unique().to_list())}).with_row_index(
        "pidx", offset=1).select("period", pl.col("pidx").cast(pl.Int64))
    for name, data in (("sample_rows", frame), ("sample_calendar", calendar)):
        engine.create_table(templates.table(name), data, replace=True)


def _both(engine, frame: pl.DataFrame, k: int, intercept: bool, min_df: int):
    """(the SQL solve's rows, the numpy solve of the engine's moments), both sorted by group."""
    variables = _variables(frame, k)
    src = _source(engine.dialect)
    sql = moments.render_solve(engine.dialect, KEYS, variables, src, intercept=intercept, min_df=min_df)
    solved = engine.query(sql).sort(KEYS)
    mom_frame = engine.query(moments.render_moments(engine.dialect, KEYS, variables, src)).sort(KEYS)
    mom = moments.unpack(mom_frame, KEYS, len(variables))
    fit = solve.ols(mom.columns, mom.shift, intercept=intercept, min_df=min_df)
    assert solved["asset"].to_list() == mom.frame["asset"].to_list()
    return solved, fit


def _pairs(solved: pl.DataFrame, fit: solve.OLSBatch, p: int):
    """(name, SQL column as float64 with NULL -> NaN, numpy column) of every number the solve returns."""
    out = [(f"e{j}", fit.params[:, j]) for j in range(p)] + [(f"s{j}", fit.std_errors[:, j]) for j in range(p)]
    out += [("r2", fit.r2), ("adj_r2", fit.adj_r2), ("rmse", fit.rmse)]
    return [(name, solved[name].cast(pl.Float64).fill_null(np.nan).to_numpy(), ref) for name, ref in out]


def _check_flags(solved: pl.DataFrame, fit: solve.OLSBatch, kinds: dict[str, str], p: int, intercept: bool) -> None:
    """Flags equal numpy's; each planted group got its flag; bad groups have NULL numbers, never NaN."""
    reasons = [r or None for r in fit.reason]
    assert solved["reason"].to_list() == reasons
    assert solved["ok"].to_list() == fit.ok.tolist()
    assert solved["nobs"].to_list() == fit.nobs.tolist()
    numbers = [f"e{j}" for j in range(p)] + [f"s{j}" for j in range(p)] + ["r2", "adj_r2", "rmse"]
    assert solved.select(pl.sum_horizontal(pl.col(numbers).is_nan().sum())).item() == 0
    expected = {"few": ols.TOO_FEW, "singular": ols.SINGULAR, "flat": ols.NO_VARIATION}
    for row in solved.iter_rows(named=True):
        kind = kinds[row["asset"]]
        if kind in expected:
            assert row["reason"] == expected[kind], (row["asset"], kind, row["reason"])
        if kind in ("few", "singular"):
            assert row["ok"] is False and all(row[c] is None for c in numbers)
        elif kind == "flat":  # estimable: the slopes are 0, R² has no value
            assert row["ok"] is True and row["r2"] is None and row["adj_r2"] is None
            assert all(row[f"e{j}"] is not None for j in range(p))
            assert all(abs(row[f"e{j}"]) < 1e-9 for j in range(int(intercept), p))
        else:
            assert row["ok"] is True and row["reason"] is None
            assert all(row[c] is not None for c in numbers)


CASES = [(k, intercept, min_df) for k in range(6) for intercept in (True, False) for min_df in (1, 3)]


@pytest.fixture(scope="module")
def duck():
    engine = DuckDBEngine(duckdb.connect())
    yield engine
    engine.close()


@pytest.mark.parametrize(("k", "intercept", "min_df"), CASES)
def test_sql_solve_is_the_numpy_solve_on_duckdb(duck, k, intercept, min_df):
    frame, kinds = _groups(100 + 10 * k + 2 * intercept + min_df, k, intercept, min_df)
    _load(duck, frame)
    p = k + int(intercept)
    solved, fit = _both(duck, frame, k, intercept, min_df)
    assert solved.columns == [*KEYS, "nobs", "ok", "reason", *[f"e{j}" for j in range(p)],
                              *[f"s{j}" for j in range(p)], "r2", "adj_r2", "rmse"]
    for name, got, ref in _pairs(solved, fit, p):
        assert np.array_equal(got, ref, equal_nan=True), (name, np.nanmax(np.abs(got - ref)))
    _check_flags(solved, fit, kinds, p, intercept)
    assert fit.ok.sum() >= 20 and ("few" in kinds.values() or p + min_df <= 1)


def test_sql_solve_of_one_group_without_keys(duck):
    """keys = [] (one regression over every row, no re-centring): the same numbers."""
    frame, _ = _groups(7, 3, True, 1, n_groups=5)
    _load(duck, frame)
    variables = _variables(frame, 3)
    src = _source("duckdb")
    solved = duck.query(moments.render_solve("duckdb", [], variables, src))
    mom = moments.unpack(duck.query(moments.render_moments("duckdb", [], variables, src)), [], 4)
    fit = solve.ols(mom.columns, mom.shift)
    assert solved.height == 1 and solved["nobs"].item() == frame.height
    for name, got, ref in _pairs(solved, fit, 4):
        assert np.array_equal(got, ref, equal_nan=True), name
    # and it is the least-squares fit
    x = np.column_stack([np.ones(frame.height), frame.select("x0", "x1", "x2").to_numpy()])
    beta = np.linalg.lstsq(x, frame["y"].to_numpy(), rcond=None)[0]
    np.testing.assert_allclose([solved[f"e{j}"].item() for j in range(4)], beta, rtol=1e-9)


@pytest.mark.postgres
@pytest.mark.parametrize(("k", "intercept", "min_df"), [c for c in CASES if c[2] == 1] + [(3, True, 3), (5, False, 3)])
def test_sql_solve_is_the_numpy_solve_on_postgres(pg, k, intercept, min_df):
    frame, kinds = _groups(200 + 10 * k + 2 * intercept + min_df, k, intercept, min_df)
    _load(pg, frame)
    p = k + int(intercept)
    solved, fit = _both(pg, frame, k, intercept, min_df)
    for name, got, ref in _pairs(solved, fit, p):
        assert np.array_equal(np.isnan(got), np.isnan(ref)), name
        fine = ~np.isnan(ref)
        if fine.any():
            scale = np.maximum(np.abs(ref[fine]), max(1e-3 * np.max(np.abs(ref[fine])), 1e-300))
            assert np.max(np.abs(got[fine] - ref[fine]) / scale) <= 1e-14, name
    _check_flags(solved, fit, kinds, p, intercept)
