"""Batched OLS from moment sums: one vectorised solve for every group (no I/O, no Python loop over groups).

The numpy backend of the one OLS algorithm (:mod:`fmduck.ols`; the SQL backend is
:mod:`fmduck.sqlsolve`). Every regression that is solved in Python arrives here as the output of
``sql/moments.sql.j2``: per group the count n, the sums Σv_i and the cross-products Σv_i·v_j of
shifted variables v = z − shift (regressors first, the dependent variable last), read column by
column (:class:`MomentArrays`: zero-copy views of the query result, never a G × m × m stack). The
normal equations are centred (intercept) or un-shifted (no intercept), equilibrated to a unit
diagonal and solved by a closed-form Cholesky factorisation whose loops run over the k regressors,
vectorised over the G groups. A pivot below ``rcond`` marks the group singular (collinear
regressors); such groups get NaN and a reason, never a number. Outputs are column-major:
``params[:, j]`` is contiguous.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from fmduck.ols import NO_VARIATION, RCOND, SINGULAR, TOO_FEW, cholesky_inverse, solve


@dataclass(frozen=True)
class MomentColumns:
    """Names of the moment columns for variables ``v0 … v{m-1}`` (dependent variable last)."""

    m: int

    @property
    def aliases(self) -> list[str]:
        return [f"v{i}" for i in range(self.m)]

    @property
    def sums(self) -> list[dict[str, str]]:
        return [{"alias": a, "name": f"s_{a}"} for a in self.aliases]

    @property
    def products(self) -> list[dict[str, str]]:
        a = self.aliases
        return [
            {"left": a[i], "right": a[j], "name": f"p_{a[i]}_{a[j]}"}
            for i in range(self.m)
            for j in range(i, self.m)
        ]

    def columns(self, frame: pl.DataFrame) -> MomentArrays:
        """The moments of a moments frame as 1-D float64 columns (zero-copy for null-free float64 columns)."""
        a = self.aliases
        return MomentArrays(
            _column(frame, "n"),
            tuple(_column(frame, s["name"]) for s in self.sums),
            {(a.index(q["left"]), a.index(q["right"])): _column(frame, q["name"]) for q in self.products},
        )

    def arrays(self, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n, sums[G, m], cross[G, m, m]) as new float64 arrays from a moments frame."""
        mom = self.columns(frame)
        return (mom.n, *mom.stacked())


def _column(frame: pl.DataFrame, name: str) -> np.ndarray:
    """One moment column as float64 numpy (zero-copy when it is a null-free float64 column)."""
    return np.asarray(frame.get_column(name).to_numpy(), dtype=np.float64)


@dataclass(frozen=True)
class MomentArrays:
    """Moments of the shifted variables v0 … v{m-1}, each a 1-D float64 array over the G groups.

    ``n`` counts, ``sums[i]`` = Σv_i, ``products[(i, j)]`` = Σv_i·v_j for i <= j. The arrays may be
    views (of a moments frame's columns, of stacked ``sums[G, m]`` / ``cross[G, m, m]``): the solver
    reads them entry by entry and never builds the G × m × m stack.
    """

    n: np.ndarray
    sums: tuple[np.ndarray, ...]
    products: dict[tuple[int, int], np.ndarray]

    @classmethod
    def from_stacked(cls, n: np.ndarray, sums: np.ndarray, cross: np.ndarray) -> MomentArrays:
        """Views of stacked ``sums[G, m]`` and symmetric ``cross[G, m, m]`` (upper triangle read)."""
        m = sums.shape[1]
        return cls(np.asarray(n, dtype=np.float64), tuple(sums[:, i] for i in range(m)),
                   {(i, j): cross[:, i, j] for i in range(m) for j in range(i, m)})

    @property
    def m(self) -> int:
        return len(self.sums)

    def __len__(self) -> int:
        return len(self.n)

    def product(self, i: int, j: int) -> np.ndarray:
        """Σv_i·v_j for every group, in either order of i and j."""
        return self.products[(i, j) if i <= j else (j, i)]

    def rows(self, lo: int, hi: int) -> MomentArrays:
        """Groups ``lo … hi-1`` (views)."""
        return MomentArrays(self.n[lo:hi], tuple(s[lo:hi] for s in self.sums),
                            {key: v[lo:hi] for key, v in self.products.items()})

    def stacked(self) -> tuple[np.ndarray, np.ndarray]:
        """New arrays ``(sums[G, m], cross[G, m, m])``."""
        g, m = len(self), self.m
        sums = np.empty((g, m))
        cross = np.empty((g, m, m))
        for i in range(m):
            sums[:, i] = self.sums[i]
            for j in range(i, m):
                cross[:, i, j] = cross[:, j, i] = self.products[(i, j)]
        return sums, cross


@dataclass(frozen=True)
class OLSBatch:
    """Per-group OLS results. ``params`` columns: intercept first (when fitted), then regressors."""

    params: np.ndarray
    std_errors: np.ndarray
    r2: np.ndarray
    adj_r2: np.ndarray
    rmse: np.ndarray
    nobs: np.ndarray
    ok: np.ndarray
    reason: np.ndarray

    @property
    def tstats(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.params / self.std_errors


class NumpyOps:
    """:mod:`fmduck.ols`'s namespace on float64 vectors over the groups (NaN where a value is undefined)."""

    nan = np.nan

    @staticmethod
    def const(x: float) -> float:
        return float(x)

    @staticmethod
    def where(cond: np.ndarray, a: Any, b: Any) -> np.ndarray:
        return np.where(cond, a, b)

    sqrt = staticmethod(np.sqrt)

    @staticmethod
    def div(a: Any, b: Any) -> Any:
        return a / b

    @staticmethod
    def gt(a: Any, b: Any) -> np.ndarray:
        return np.greater(a, b)

    @staticmethod
    def lt(a: Any, b: Any) -> np.ndarray:
        return np.less(a, b)

    @staticmethod
    def both(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a & b

    @staticmethod
    def negate(a: np.ndarray) -> np.ndarray:
        return ~a

    @staticmethod
    def maximum0(x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0.0)


_CHUNK = 1 << 14  # groups per vectorised block: keeps most of the ~k² temporaries of one block in cache


def spd_inverse(a: np.ndarray, rcond: float = RCOND) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of a stack of symmetric positive (semi)definite matrices ``a[G, k, k]``.

    Returns ``(inverse, singular)``; a singular matrix's inverse is NaN. The matrices are scaled to a
    unit diagonal first, so the pivot test ``pivot² <= rcond`` reads as "a regressor is explained to
    within rcond by the others".
    """
    g, k, _ = a.shape
    inverse = np.empty((g, k, k))
    singular = np.zeros(g, dtype=bool)

    for lo in range(0, g, _CHUNK):
        hi = min(lo + _CHUNK, g)
        part = a[lo:hi]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv, sing = cholesky_inverse(NumpyOps, lambda i, j, part=part: part[:, i, j], k, rcond)
        for i in range(k):
            for j in range(i + 1):
                inverse[lo:hi, i, j] = inv[i][j]
                inverse[lo:hi, j, i] = inv[i][j]
        singular[lo:hi] = sing
    inverse[singular] = np.nan
    return inverse, singular


def ols_from_moments(
    n: np.ndarray,
    sums: np.ndarray,
    cross: np.ndarray,
    shift: np.ndarray,
    *,
    intercept: bool = True,
    min_df: int = 1,
    rcond: float = RCOND,
) -> OLSBatch:
    """:func:`ols` on stacked moments ``sums[G, m]`` and ``cross[G, m, m]`` (read through views, not copied)."""
    return ols(MomentArrays.from_stacked(n, sums, cross), shift, intercept=intercept, min_df=min_df, rcond=rcond)


def ols(
    mom: MomentArrays,
    shift: np.ndarray,
    *,
    intercept: bool = True,
    min_df: int = 1,
    rcond: float = RCOND,
) -> OLSBatch:
    """OLS of the last variable on the others, for every group at once.

    ``mom`` holds sums of the shifted variables ``v = z − shift``; ``shift`` (length m, or G × m for a
    shift per group) restores the intercept and the raw moments. Groups with fewer than ``p + min_df``
    observations (p parameters) or with singular regressors are flagged, with NaN results.
    ``params[:, j]`` and ``std_errors[:, j]`` are contiguous (column-major outputs).
    """
    g, m = len(mom), mom.m
    p = m - 1 + int(intercept)
    shift = np.asarray(shift, dtype=np.float64)
    params = np.empty((p, g)).T
    std_errors = np.empty((p, g)).T
    r2, adj_r2, rmse = np.empty(g), np.empty(g), np.empty(g)
    ok, singular, too_few, flat_y = (np.empty(g, dtype=bool) for _ in range(4))
    for lo in range(0, g, _CHUNK):
        hi = min(lo + _CHUNK, g)
        block = mom.rows(lo, hi)
        # a shift per group: one vector per variable; a common shift: scalars
        shifts = [shift[lo:hi, i] for i in range(m)] if shift.ndim == 2 else [float(v) for v in shift]
        with np.errstate(divide="ignore", invalid="ignore"):
            sol = solve(NumpyOps, block.n, list(block.sums), block.product, shifts, intercept=intercept,
                        min_df=min_df, rcond=rcond)
        for j in range(p):
            params[lo:hi, j] = sol.params[j]
            std_errors[lo:hi, j] = sol.std_errors[j]
        for out, value in ((r2, sol.r2), (adj_r2, sol.adj_r2), (rmse, sol.rmse), (ok, sol.ok),
                           (singular, sol.singular), (too_few, sol.too_few), (flat_y, sol.flat_y)):
            out[lo:hi] = value
    reason = np.full(g, "", dtype=object)
    reason[flat_y & ~too_few] = NO_VARIATION  # still estimable: slopes 0, R² undefined
    reason[singular] = SINGULAR
    reason[too_few] = TOO_FEW
    return OLSBatch(params, std_errors, r2, adj_r2, rmse, mom.n.astype(np.int64), ok, reason)
