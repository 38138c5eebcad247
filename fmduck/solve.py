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
        n = frame["n"].to_numpy().astype(np.float64)
        sums = frame.select([s["name"] for s in self.sums]).to_numpy().astype(np.float64)
        flat = frame.select([p["name"] for p in self.products]).to_numpy().astype(np.float64)
        cross = np.empty((len(frame), self.m, self.m))
        iu = np.triu_indices(self.m)
        cross[:, iu[0], iu[1]] = flat
        cross[:, iu[1], iu[0]] = flat
        return n, sums, cross


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


def spd_inverse(a: np.ndarray, rcond: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of a stack of symmetric positive (semi)definite matrices ``a[G, k, k]``.

    Returns ``(inverse, singular)``. The matrices are scaled to a unit diagonal first, so the
    pivot test ``pivot² <= rcond`` reads as "a regressor is explained to within rcond by the others".
    """
    g, k, _ = a.shape
    diag = np.einsum("gii->gi", a)
    singular = ~(diag > 0).all(axis=1) if k else np.zeros(g, dtype=bool)
    d = np.sqrt(np.where(diag > 0, diag, 1.0))
    scaled = a / d[:, :, None] / d[:, None, :]
    lower = np.zeros_like(scaled)
    for j in range(k):
        pivot = scaled[:, j, j] - np.einsum("gm,gm->g", lower[:, j, :j], lower[:, j, :j])
        singular |= ~(pivot > rcond)
        lower[:, j, j] = np.sqrt(np.where(pivot > rcond, pivot, 1.0))
        for i in range(j + 1, k):
            off = scaled[:, i, j] - np.einsum("gm,gm->g", lower[:, i, :j], lower[:, j, :j])
            lower[:, i, j] = off / lower[:, j, j]
    # inverse of the triangular factor by forward substitution, vectorised over groups
    linv = np.zeros_like(lower)
    for i in range(k):
        linv[:, i, i] = 1.0 / lower[:, i, i]
        for j in range(i):
            acc = np.einsum("gm,gm->g", lower[:, i, j:i], linv[:, j:i, j])
            linv[:, i, j] = -acc / lower[:, i, i]
    inverse = np.einsum("gmi,gmj->gij", linv, linv) / d[:, :, None] / d[:, None, :]
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

    ``sums`` and ``cross`` are sums of the shifted variables ``v = z − shift``; ``shift`` (length m)
    restores the intercept and the raw moments. Groups with fewer than ``p + min_df`` observations
    (p parameters) or with singular regressors are flagged, with NaN results.
    """
    g, m = sums.shape
    k = m - 1
    p = k + int(intercept)
    nn = np.asarray(n, dtype=np.float64)
    safe_n = np.where(nn > 0, nn, 1.0)
    if intercept:
        moments = cross - sums[:, :, None] * sums[:, None, :] / safe_n[:, None, None]
    else:
        # raw moments about zero: Σ(v+s)(v+s)' = Σvv' + s Σv' + Σv s' + n s s'
        moments = (
            cross
            + shift[None, :, None] * sums[:, None, :]
            + sums[:, :, None] * shift[None, None, :]
            + nn[:, None, None] * np.outer(shift, shift)[None]
        )
    sxx, sxy, syy = moments[:, :k, :k], moments[:, :k, k], moments[:, k, k]
    inverse, singular = spd_inverse(sxx, rcond)
    slopes = np.einsum("gij,gj->gi", inverse, sxy)
    ssr = np.maximum(syy - np.einsum("gi,gi->g", slopes, sxy), 0.0)
    df = nn - p
    too_few = df < min_df
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.where(df > 0, ssr / np.where(df > 0, df, 1.0), np.nan)
        var_slopes = s2[:, None] * np.einsum("gii->gi", inverse)
        if intercept:
            xbar = sums[:, :k] / safe_n[:, None] + shift[None, :k]
            ybar = sums[:, k] / safe_n + shift[k]
            alpha = ybar - np.einsum("gi,gi->g", xbar, slopes)
            var_alpha = s2 / safe_n + s2 * np.einsum("gi,gij,gj->g", xbar, inverse, xbar)
            params = np.column_stack([alpha, slopes])
            variances = np.column_stack([var_alpha, var_slopes])
        else:
            params, variances = slopes, var_slopes
        r2 = np.where(syy > 0, 1.0 - ssr / syy, np.nan)
        adj_r2 = 1.0 - (1.0 - r2) * (nn - int(intercept)) / df
        std_errors = np.sqrt(np.maximum(variances, 0.0))
    flat_y = ~(syy > 0)
    ok = ~(singular | too_few)
    reason = np.full(g, "", dtype=object)
    reason[flat_y & ~too_few] = NO_VARIATION  # still estimable: slopes 0, R² undefined
    reason[singular] = SINGULAR
    reason[too_few] = TOO_FEW
    bad = ~ok
    for arr in (params, std_errors):
        arr[bad] = np.nan
    for arr in (r2, adj_r2):
        arr[bad] = np.nan
    rmse = np.where(ok, np.sqrt(s2), np.nan)
    return OLSBatch(params, std_errors, r2, adj_r2, rmse, nn.astype(np.int64), ok, reason)
