"""The batched solver reading moment columns (fmduck/solve.py: ``MomentColumns.columns``, ``ols``).

Checked against the stacked-array path (``ols_from_moments``: the same solver reading views of
``sums[G, m]`` / ``cross[G, m, m]``) and against numpy ``lstsq`` per group on the raw data, with a
common or a per-group shift, with and without intercept, including collinear and too-small groups.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from fmduck import solve
from fmduck.moments import Moments

G, T, K = 300, 30, 3
PROPORTIONAL = slice(0, 20)   # x1 = 3·x0: singular with or without intercept
CONSTANT = slice(20, 35)      # x2 constant within the group: singular with an intercept only
TINY = slice(35, 45)          # n = K + 1 rows: no residual df with an intercept


def _panel(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw regressors x[G, T, K], y[G, T] and a 0/1 row mask w[G, T] (groups of unequal size)."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(-3.0, 3.0, (G, 1, K)) + np.array([0.0, 0.0, 100.0])  # one regressor far from 0
    x = level + rng.standard_normal((G, T, K)) * rng.uniform(0.5, 2.0, (G, 1, K))
    x[PROPORTIONAL, :, 1] = 3.0 * x[PROPORTIONAL, :, 0]
    x[CONSTANT, :, 2] = 7.0
    y = x @ np.array([0.5, -1.0, 0.25]) + 2.0 + rng.standard_normal((G, T))
    w = np.ones((G, T))
    w[:, T - 5:] = rng.random((G, 5)) < 0.5
    w[TINY, K + 1:] = 0.0
    return x, y, w


def _moments(x, y, w, shift) -> pl.DataFrame:
    """The moments frame of v = z − shift, named as ``MomentColumns`` names them."""
    z = np.concatenate([x, y[:, :, None]], axis=2)
    v = (z - (shift[:, None, :] if shift.ndim == 2 else shift)) * w[:, :, None]
    cols = solve.MomentColumns(K + 1)
    data = {"n": w.sum(axis=1).astype(np.int64)}
    for i, s in enumerate(cols.sums):
        data[s["name"]] = v[:, :, i].sum(axis=1)
    for p in cols.products:
        i, j = int(p["left"][1:]), int(p["right"][1:])
        data[p["name"]] = np.einsum("gt,gt->g", v[:, :, i], v[:, :, j])
    return pl.DataFrame(data)


def _shift(x, y, per_group: bool) -> np.ndarray:
    z = np.concatenate([x, y[:, :, None]], axis=2)
    common = z.mean(axis=(0, 1))
    return z.mean(axis=1) if per_group else common


def _lstsq(x, y, w, intercept: bool):
    """params, std errors, R², rmse per group from numpy lstsq on the group's rows."""
    p = K + int(intercept)
    params, se, r2, rmse = (np.full((G, p), np.nan), np.full((G, p), np.nan), np.full(G, np.nan), np.full(G, np.nan))
    for g in range(G):
        rows = w[g] > 0
        xg = x[g, rows]
        X = np.column_stack([np.ones(len(xg)), xg]) if intercept else xg
        yg = y[g, rows]
        if len(yg) - p < 1 or np.linalg.matrix_rank(X) < p:
            continue
        b, *_ = np.linalg.lstsq(X, yg, rcond=None)
        e = yg - X @ b
        s2 = e @ e / (len(yg) - p)
        params[g], se[g] = b, np.sqrt(s2 * np.diag(np.linalg.inv(X.T @ X)))
        tss = ((yg - yg.mean()) ** 2).sum() if intercept else (yg ** 2).sum()
        r2[g], rmse[g] = 1.0 - e @ e / tss, np.sqrt(s2)
    return params, se, r2, rmse


@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("per_group", [False, True])
def test_columns_match_lstsq_and_flag_singular_groups(intercept, per_group):
    x, y, w = _panel(1 + 2 * intercept + per_group)
    shift = _shift(x, y, per_group)
    fit = solve.ols(solve.MomentColumns(K + 1).columns(_moments(x, y, w, shift)), shift, intercept=intercept)
    singular = np.zeros(G, dtype=bool)
    singular[PROPORTIONAL] = True
    if intercept:
        singular[CONSTANT] = True
    too_few = np.zeros(G, dtype=bool)
    if intercept:
        too_few[TINY] = True   # n = K + 1 = p: no residual degree of freedom
    assert np.array_equal(fit.reason == solve.SINGULAR, singular & ~too_few)
    assert np.array_equal(fit.reason == solve.TOO_FEW, too_few)
    assert np.array_equal(fit.ok, ~(singular | too_few))
    bad = ~fit.ok
    for arr in (fit.params, fit.std_errors, fit.r2[:, None], fit.rmse[:, None]):
        assert np.isnan(arr[bad]).all() and not np.isnan(arr[~bad]).any()
    params, se, r2, rmse = _lstsq(x, y, w, intercept)
    good = fit.ok
    np.testing.assert_allclose(fit.params[good], params[good], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fit.std_errors[good], se[good], rtol=1e-9)
    np.testing.assert_allclose(fit.r2[good], r2[good], rtol=1e-9)
    np.testing.assert_allclose(fit.rmse[good], rmse[good], rtol=1e-9)
    assert np.array_equal(fit.nobs, w.sum(axis=1).astype(np.int64))


@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("per_group", [False, True])
@pytest.mark.parametrize("chunk", [1 << 14, 7])
def test_columns_match_stacked_arrays(monkeypatch, intercept, per_group, chunk):
    """One solver: the column views and the stacked arrays give bit-identical results."""
    monkeypatch.setattr(solve, "_CHUNK", chunk)
    x, y, w = _panel(7)
    shift = _shift(x, y, per_group)
    frame = _moments(x, y, w, shift)
    cols = solve.MomentColumns(K + 1)
    a = solve.ols(cols.columns(frame), shift, intercept=intercept, min_df=2)
    b = solve.ols_from_moments(*cols.arrays(frame), shift, intercept=intercept, min_df=2)
    for name in ("params", "std_errors", "r2", "adj_r2", "rmse", "nobs", "ok", "reason"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_columns_are_zero_copy_views_of_the_frame():
    x, y, w = _panel(3)
    frame = _moments(x, y, w, _shift(x, y, False))
    mom = solve.MomentColumns(K + 1).columns(frame)
    assert np.shares_memory(mom.products[(0, 1)], frame["p_v0_v1"].to_numpy())
    assert np.shares_memory(mom.sums[2], frame["s_v2"].to_numpy())
    assert mom.product(3, 1) is mom.products[(1, 3)]


def test_moments_built_from_columns_or_arrays():
    """``Moments`` from columns stacks ``sums``/``cross`` on first use; the array constructor still works."""
    x, y, w = _panel(4)
    shift = _shift(x, y, True)
    frame = _moments(x, y, w, shift)
    cols = solve.MomentColumns(K + 1)
    keys = pl.DataFrame({"g": np.arange(G)})
    lazy = Moments.from_columns(keys, cols.columns(frame), shift)
    assert "cross" not in vars(lazy)
    n, sums, cross = cols.arrays(frame)
    np.testing.assert_array_equal(lazy.n, n)
    np.testing.assert_array_equal(lazy.sums, sums)
    np.testing.assert_array_equal(lazy.cross, cross)
    eager = Moments(keys, n, sums, cross, shift)
    assert eager.cross is cross
    a, b = lazy.ols(intercept=True), eager.ols(intercept=True)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.reason, b.reason)
