"""Batched OLS from moment sums: one vectorised solve for every group (no I/O, no Python loop over groups).

Every regression in fmduck (pass 1 per asset or per rolling window, pass 2 per period, pricing
errors per asset) arrives here as the output of ``sql/moments.sql.j2``: per group the count n, the
sums Σv_i and the cross-products Σv_i·v_j of shifted variables v = z − shift (regressors first,
the dependent variable last). The normal equations are centred (intercept) or un-shifted (no
intercept), equilibrated to a unit diagonal and solved by a closed-form Cholesky factorisation
whose loops run over the k regressors, vectorised over the G groups. A pivot below ``rcond``
marks the group singular (collinear regressors); such groups get NaN and a reason, never a number.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl

SINGULAR = "singular or collinear regressors"
TOO_FEW = "too few observations"
NO_VARIATION = "dependent variable has no variation"


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

    def arrays(self, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n, sums[G, m], cross[G, m, m]) as float64 arrays from a moments frame."""
        g, m = len(frame), self.m
        n = np.asarray(frame["n"].to_numpy(), dtype=np.float64)
        sums = np.empty((g, m))
        for i, s in enumerate(self.sums):
            sums[:, i] = _column(frame, s["name"])
        cross = np.empty((g, m, m))
        pairs = [(i, j) for i in range(m) for j in range(i, m)]  # the order of ``products``
        for (i, j), product in zip(pairs, self.products):
            col = _column(frame, product["name"])
            cross[:, i, j] = col
            cross[:, j, i] = col
        return n, sums, cross


def _column(frame: pl.DataFrame, name: str) -> np.ndarray:
    """One moment column as float64 numpy (zero-copy when it is a null-free float64 column)."""
    return np.asarray(frame.get_column(name).to_numpy(), dtype=np.float64)


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


def _dot(a: list, b: list) -> np.ndarray:
    """Σ_m a[m]·b[m] over lists of group vectors, summed left to right."""
    acc = a[0] * b[0]
    for x, y in zip(a[1:], b[1:]):
        acc = acc + x * y
    return acc


_CHUNK = 1 << 13  # groups per vectorised block: keeps the ~k² temporaries of one block in cache
_THREADS = int(os.environ.get("FMDUCK_SOLVE_THREADS", "1"))  # numpy releases the GIL inside each vector operation


def _run_blocks(block, g: int) -> None:
    """Call ``block(lo)`` for every block of groups, on up to two threads for large batches."""
    starts = range(0, g, _CHUNK)
    if _THREADS > 1 and len(starts) >= 8:
        with ThreadPoolExecutor(_THREADS) as pool:
            list(pool.map(block, starts))
    else:
        for lo in starts:
            block(lo)


def _cholesky_inverse(entry, g: int, k: int, rcond: float) -> tuple[list[list[np.ndarray]], np.ndarray]:
    """Inverse entries ``inv[i][j]`` (1-D over groups, i >= j) of symmetric PSD matrices given entrywise.

    ``entry(i, j)`` returns the (i, j) element for every group. Closed-form Cholesky of the matrix scaled
    to a unit diagonal, forward substitution for the inverse of the factor, then L⁻ᵀL⁻¹ unscaled; every
    operation is on length-G vectors, so the loops run over the k² entries only.
    """
    singular = np.zeros(g, dtype=bool)
    d = []
    for i in range(k):
        diag = entry(i, i)
        positive = diag > 0
        singular |= ~positive
        d.append(np.sqrt(np.where(positive, diag, 1.0)))
    lower: list[list[np.ndarray]] = [[None] * k for _ in range(k)]  # type: ignore[list-item]
    for j in range(k):
        pivot = entry(j, j) / d[j] / d[j]
        if j:
            pivot = pivot - _dot([lower[j][m] for m in range(j)], [lower[j][m] for m in range(j)])
        fine = pivot > rcond
        singular |= ~fine
        lower[j][j] = np.sqrt(np.where(fine, pivot, 1.0))
        for i in range(j + 1, k):
            off = entry(i, j) / d[i] / d[j]
            if j:
                off = off - _dot([lower[i][m] for m in range(j)], [lower[j][m] for m in range(j)])
            lower[i][j] = off / lower[j][j]
    linv: list[list[np.ndarray]] = [[None] * k for _ in range(k)]  # type: ignore[list-item]
    for i in range(k):
        linv[i][i] = 1.0 / lower[i][i]
        for j in range(i):
            acc = _dot([lower[i][m] for m in range(j, i)], [linv[m][j] for m in range(j, i)])
            linv[i][j] = -acc / lower[i][i]
    inverse: list[list[np.ndarray]] = [[None] * k for _ in range(k)]  # type: ignore[list-item]
    for i in range(k):
        for j in range(i + 1):
            acc = _dot([linv[m][i] for m in range(i, k)], [linv[m][j] for m in range(i, k)])
            inverse[i][j] = acc / d[i] / d[j]
    return inverse, singular


def spd_inverse(a: np.ndarray, rcond: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of a stack of symmetric positive (semi)definite matrices ``a[G, k, k]``.

    Returns ``(inverse, singular)``. The matrices are scaled to a unit diagonal first, so the
    pivot test ``pivot² <= rcond`` reads as "a regressor is explained to within rcond by the others".
    """
    g, k, _ = a.shape
    inverse = np.empty((g, k, k))
    singular = np.zeros(g, dtype=bool)

    def block(lo: int) -> None:
        hi = min(lo + _CHUNK, g)
        part = a[lo:hi]
        inv, sing = _cholesky_inverse(lambda i, j: part[:, i, j], hi - lo, k, rcond)
        for i in range(k):
            for j in range(i + 1):
                inverse[lo:hi, i, j] = inv[i][j]
                inverse[lo:hi, j, i] = inv[i][j]
        singular[lo:hi] = sing

    _run_blocks(block, g)
    return inverse, singular


def ols_from_moments(
    n: np.ndarray,
    sums: np.ndarray,
    cross: np.ndarray,
    shift: np.ndarray,
    *,
    intercept: bool = True,
    min_df: int = 1,
    rcond: float = 1e-10,
) -> OLSBatch:
    """OLS of the last variable on the others, for every group at once.

    ``sums`` and ``cross`` are sums of the shifted variables ``v = z − shift``; ``shift`` (length m,
    or G × m for a shift per group) restores the intercept and the raw moments. Groups with fewer than ``p + min_df`` observations
    (p parameters) or with singular regressors are flagged, with NaN results.
    """
    g, m = sums.shape
    k = m - 1
    p = k + int(intercept)
    nn = np.asarray(n, dtype=np.float64)
    shift = np.broadcast_to(np.asarray(shift, dtype=np.float64), (g, m))
    params = np.empty((g, p))
    std_errors = np.empty((g, p))
    r2 = np.empty(g)
    adj_r2 = np.empty(g)
    rmse = np.empty(g)
    ok = np.empty(g, dtype=bool)
    singular = np.empty(g, dtype=bool)
    too_few = np.empty(g, dtype=bool)
    flat_y = np.empty(g, dtype=bool)

    def block(lo: int) -> None:
        hi = min(lo + _CHUNK, g)
        with np.errstate(divide="ignore", invalid="ignore"):
            _ols_block(nn[lo:hi], sums[lo:hi], cross[lo:hi], shift[lo:hi], k, p, intercept, min_df, rcond,
                       params[lo:hi], std_errors[lo:hi], r2[lo:hi], adj_r2[lo:hi], rmse[lo:hi], ok[lo:hi],
                       singular[lo:hi], too_few[lo:hi], flat_y[lo:hi])

    _run_blocks(block, g)
    reason = np.full(g, "", dtype=object)
    reason[flat_y & ~too_few] = NO_VARIATION  # still estimable: slopes 0, R² undefined
    reason[singular] = SINGULAR
    reason[too_few] = TOO_FEW
    return OLSBatch(params, std_errors, r2, adj_r2, rmse, nn.astype(np.int64), ok, reason)


def _ols_block(nn, sums, cross, shift, k, p, intercept, min_df, rcond,
               params, std_errors, r2, adj_r2, rmse, ok, singular, too_few, flat_y) -> None:
    """One block of groups of :func:`ols_from_moments`; writes into the output slices."""
    g = len(nn)
    safe_n = np.where(nn > 0, nn, 1.0)
    s = [sums[:, i] for i in range(k + 1)]
    if intercept:
        def moment(i: int, j: int) -> np.ndarray:
            return cross[:, i, j] - s[i] * s[j] / safe_n
    else:
        # raw moments about zero: Σ(v+s)(v+s)' = Σvv' + s Σv' + Σv s' + n s s'
        def moment(i: int, j: int) -> np.ndarray:
            return cross[:, i, j] + shift[:, i] * s[j] + s[i] * shift[:, j] + nn * (shift[:, i] * shift[:, j])
    sxx = {(i, j): moment(i, j) for i in range(k) for j in range(i + 1)}
    sxy = [moment(i, k) for i in range(k)]
    syy = moment(k, k)
    inverse, sing = _cholesky_inverse(lambda i, j: sxx[(max(i, j), min(i, j))], g, k, rcond)

    def inv(i: int, j: int) -> np.ndarray:
        return inverse[max(i, j)][min(i, j)]

    slopes = [_dot([inv(i, j) for j in range(k)], sxy) for i in range(k)]
    ssr = np.maximum(syy - _dot(slopes, sxy), 0.0) if k else np.maximum(syy, 0.0)
    df = nn - p
    few = df < min_df
    s2 = np.where(df > 0, ssr / np.where(df > 0, df, 1.0), np.nan)
    variances = [s2 * inv(i, i) for i in range(k)]
    estimates = list(slopes)
    if intercept:
        xbar = [s[i] / safe_n + shift[:, i] for i in range(k)]
        ybar = s[k] / safe_n + shift[:, k]
        alpha = ybar - _dot(xbar, slopes) if k else ybar
        quad = np.zeros(g)
        for i in range(k):
            quad = quad + xbar[i] * xbar[i] * inv(i, i)
            for j in range(i):
                quad = quad + 2.0 * (xbar[i] * xbar[j] * inv(i, j))
        estimates.insert(0, alpha)
        variances.insert(0, s2 / safe_n + s2 * quad)
    good = ~(sing | few)
    bad = ~good
    for j in range(p):
        params[:, j] = estimates[j]
        std_errors[:, j] = np.sqrt(np.maximum(variances[j], 0.0))
    params[bad] = np.nan
    std_errors[bad] = np.nan
    rsq = np.where(syy > 0, 1.0 - ssr / syy, np.nan)
    r2[:] = np.where(bad, np.nan, rsq)
    adj_r2[:] = np.where(bad, np.nan, 1.0 - (1.0 - rsq) * (nn - int(intercept)) / df)
    rmse[:] = np.where(good, np.sqrt(s2), np.nan)
    ok[:] = good
    singular[:] = sing
    too_few[:] = few
    flat_y[:] = ~(syy > 0)
