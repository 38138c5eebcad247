"""Batched OLS from moment sums: one vectorised solve for every group (no I/O, no Python loop over groups).

Every regression in fmduck (pass 1 per asset or per rolling window, pass 2 per period, pricing
errors per asset) arrives here as the output of ``sql/moments.sql.j2``: per group the count n, the
sums Σv_i and the cross-products Σv_i·v_j of shifted variables v = z − shift (regressors first,
the dependent variable last), read column by column (:class:`MomentArrays`: zero-copy views of
the query result, never a G × m × m stack). The normal equations are centred (intercept) or
un-shifted (no intercept), equilibrated to a unit diagonal and solved by a closed-form Cholesky
factorisation whose loops run over the k regressors, vectorised over the G groups. A pivot below
``rcond`` marks the group singular (collinear regressors); such groups get NaN and a reason, never
a number. Outputs are column-major: ``params[:, j]`` is contiguous.
"""

from __future__ import annotations

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


def _dot(a: list, b: list) -> np.ndarray:
    """Σ_m a[m]·b[m] over lists of group vectors, summed left to right."""
    acc = a[0] * b[0]
    for x, y in zip(a[1:], b[1:]):
        acc = acc + x * y
    return acc


_CHUNK = 1 << 14  # groups per vectorised block: keeps most of the ~k² temporaries of one block in cache


def _cholesky(a: list[list], k: int, g: int, rcond: float) -> tuple[list, list[list], list, np.ndarray]:
    """Cholesky factor, entrywise over groups, of a symmetric matrix given by its lower triangle ``a[i][j]``.

    The leading k × k block (the regressors) is scaled to a unit diagonal first; rows k… (right-hand
    sides) are carried along unscaled, so their row of the factor is L⁻¹D⁻¹b. Returns ``(rd, lower, rl,
    fine)``: ``rd[i]`` = 1/√a_ii, the factor's off-diagonal ``lower[i][j]`` (i > j), ``rl[j]`` =
    1/lower[j][j], and ``fine``: every diagonal positive and every scaled pivot above ``rcond``.
    """
    # a group failing a test goes on with NaN or inf; its results are discarded by the caller
    fine = np.ones(g, dtype=bool)
    rd: list = []
    for i in range(k):
        fine &= a[i][i] > 0
        rd.append(1.0 / np.sqrt(a[i][i]))
    lower: list[list] = [[None] * i for i in range(len(a))]
    rl: list = []
    for j in range(k):
        row = lower[j]
        if j:
            pivot = 1.0 - _dot(row, row)  # the scaled diagonal is 1
            fine &= pivot > rcond
            rl.append(1.0 / np.sqrt(pivot))
        else:
            rl.append(1.0)
        for i in range(j + 1, len(a)):
            off = a[i][j] * rd[j]
            if i < k:
                off *= rd[i]
            if j:
                off -= _dot(lower[i][:j], row)
                off *= rl[j]
            lower[i][j] = off
    return rd, lower, rl, fine


def _inverse_factor(lower: list[list], rl: list, k: int) -> list[list]:
    """``linv[i][j]`` (i >= j) of the inverse of the unit-diagonal-scaled factor, by forward substitution."""
    linv: list[list] = [[None] * (i + 1) for i in range(k)]
    for i in range(k):
        linv[i][i] = rl[i]
        if i:
            minus_rl = -rl[i]
            for j in range(i):
                linv[i][j] = _dot(lower[i][j:i], [linv[q][j] for q in range(j, i)]) * minus_rl
    return linv


def _cholesky_inverse(entry, g: int, k: int, rcond: float) -> tuple[list[list[np.ndarray]], np.ndarray]:
    """Inverse entries ``inv[i][j]`` (1-D over groups, i >= j) of symmetric PSD matrices given entrywise.

    ``entry(i, j)`` returns the (i, j) element for every group. Closed-form Cholesky of the matrix scaled
    to a unit diagonal, forward substitution for the inverse of the factor, then L⁻ᵀL⁻¹ unscaled; every
    operation is on length-G vectors, so the loops run over the k² entries only.
    """
    rd, lower, rl, fine = _cholesky([[entry(i, j) for j in range(i + 1)] for i in range(k)], k, g, rcond)
    linv = _inverse_factor(lower, rl, k)
    inverse: list[list[np.ndarray]] = [[None] * (i + 1) for i in range(k)]  # type: ignore[list-item]
    for i in range(k):
        for j in range(i + 1):
            acc = _dot([linv[q][i] for q in range(i, k)], [linv[q][j] for q in range(i, k)])
            inverse[i][j] = acc * (rd[i] * rd[j])
    return inverse, ~fine


def spd_inverse(a: np.ndarray, rcond: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
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
            inv, sing = _cholesky_inverse(lambda i, j: part[:, i, j], hi - lo, k, rcond)
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
    rcond: float = 1e-10,
) -> OLSBatch:
    """:func:`ols` on stacked moments ``sums[G, m]`` and ``cross[G, m, m]`` (read through views, not copied)."""
    return ols(MomentArrays.from_stacked(n, sums, cross), shift, intercept=intercept, min_df=min_df, rcond=rcond)


def ols(
    mom: MomentArrays,
    shift: np.ndarray,
    *,
    intercept: bool = True,
    min_df: int = 1,
    rcond: float = 1e-10,
) -> OLSBatch:
    """OLS of the last variable on the others, for every group at once.

    ``mom`` holds sums of the shifted variables ``v = z − shift``; ``shift`` (length m, or G × m for a
    shift per group) restores the intercept and the raw moments. Groups with fewer than ``p + min_df``
    observations (p parameters) or with singular regressors are flagged, with NaN results.
    ``params[:, j]`` and ``std_errors[:, j]`` are contiguous (column-major outputs).
    """
    g, m = len(mom), mom.m
    k = m - 1
    p = k + int(intercept)
    shift = np.asarray(shift, dtype=np.float64)
    params = np.empty((p, g)).T
    std_errors = np.empty((p, g)).T
    r2 = np.empty(g)
    adj_r2 = np.empty(g)
    rmse = np.empty(g)
    ok = np.empty(g, dtype=bool)
    singular = np.empty(g, dtype=bool)
    too_few = np.empty(g, dtype=bool)
    flat_y = np.empty(g, dtype=bool)

    for lo in range(0, g, _CHUNK):
        hi = min(lo + _CHUNK, g)
        # a shift per group: one vector per variable; a common shift: scalars
        shifts = [shift[lo:hi, i] for i in range(m)] if shift.ndim == 2 else [float(v) for v in shift]
        with np.errstate(divide="ignore", invalid="ignore"):
            _ols_block(mom.rows(lo, hi), shifts, k, p, intercept, min_df, rcond,
                       params[lo:hi], std_errors[lo:hi], r2[lo:hi], adj_r2[lo:hi], rmse[lo:hi], ok[lo:hi],
                       singular[lo:hi], too_few[lo:hi], flat_y[lo:hi])
    reason = np.full(g, "", dtype=object)
    reason[flat_y & ~too_few] = NO_VARIATION  # still estimable: slopes 0, R² undefined
    reason[singular] = SINGULAR
    reason[too_few] = TOO_FEW
    return OLSBatch(params, std_errors, r2, adj_r2, rmse, mom.n.astype(np.int64), ok, reason)


def _ols_block(mom: MomentArrays, shift: list, k: int, p: int, intercept: bool, min_df: int, rcond: float,
               params: np.ndarray, std_errors: np.ndarray, r2: np.ndarray, adj_r2: np.ndarray, rmse: np.ndarray,
               ok: np.ndarray, singular: np.ndarray, too_few: np.ndarray, flat_y: np.ndarray) -> None:
    """One block of groups of :func:`ols`; writes into the output slices.

    The centred (intercept) or raw (no intercept) moment matrix of (x, y) is factored with y as the
    last row: that row is c = L⁻¹D⁻¹Sxy, so SSR = Syy − c'c and the slopes are D⁻¹L⁻ᵀc.
    """
    n, s, m = mom.n, mom.sums, k + 1
    rn = 1.0 / np.where(n > 0, n, 1.0)
    if intercept:
        mean = [v * rn for v in s]
        a = [[mom.product(i, j) - s[i] * mean[j] for j in range(i + 1)] for i in range(m)]
    else:
        # raw moments about zero: Σ(v+s)(v+s)' = Σvv' + s Σv' + Σv s' + n s s'
        a = [[mom.product(i, j) + shift[i] * s[j] + s[i] * shift[j] + n * (shift[i] * shift[j])
              for j in range(i + 1)] for i in range(m)]
    rd, lower, rl, fine = _cholesky(a, k, len(n), rcond)
    linv = _inverse_factor(lower, rl, k)
    c, syy = lower[k], a[k][k]
    ssr = np.maximum(syy - _dot(c, c), 0.0) if k else np.maximum(syy, 0.0)
    column = [[linv[q][i] for q in range(i, k)] for i in range(k)]  # of L⁻¹, from the diagonal down
    slopes = [_dot(column[i], c[i:]) * rd[i] for i in range(k)]
    spread = [np.sqrt(_dot(column[i], column[i])) * rd[i] for i in range(k)]  # √(Sxx⁻¹)_ii
    df = n - p
    np.less(df, min_df, out=too_few)
    np.logical_or(too_few, ~fine, out=ok)  # bad groups, inverted below
    np.logical_not(fine, out=singular)
    np.logical_not(ok, out=ok)
    mask = np.where(ok, 1.0, np.nan)  # × mask: NaN in every output of a bad group
    s2 = ssr / np.where(df > 0, df, np.nan)
    np.multiply(np.sqrt(s2), mask, out=rmse)
    estimates, spreads = slopes, spread
    if intercept:
        xbar = [mean[i] + shift[i] for i in range(k)]
        alpha = mean[k] + shift[k]
        if k:
            alpha = alpha - _dot(xbar, slopes)
            scaled = [xbar[i] * rd[i] for i in range(k)]
            u = [_dot(linv[i], scaled[: i + 1]) for i in range(k)]  # L⁻¹D⁻¹x̄
            quad = _dot(u, u)
            estimates, spreads = [alpha, *slopes], [np.sqrt(rn + quad), *spread]
        else:
            estimates, spreads = [alpha], [np.sqrt(rn)]
    for j in range(p):
        np.multiply(estimates[j], mask, out=params[:, j])
        np.multiply(spreads[j], rmse, out=std_errors[:, j])
    varies = syy > 0
    np.logical_not(varies, out=flat_y)
    unexplained = ssr / np.where(varies, syy, np.nan)  # 1 − R²
    np.multiply(1.0 - unexplained, mask, out=r2)
    np.multiply(1.0 - unexplained * (n - int(intercept)) / df, mask, out=adj_r2)
