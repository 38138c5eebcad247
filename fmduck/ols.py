"""The one OLS algorithm on moment sums, written once over an array namespace.

Every regression in fmduck is solved by :func:`solve` from the sums the moments query returns per
group: the count n, Σv_i and Σv_i·v_j of shifted variables v = z − shift (regressors first, the
dependent variable last). The algorithm is written against a small namespace ``ops`` so that the
same lines of arithmetic run on two backends:

- numpy (:mod:`fmduck.solve`): each value is a float64 vector over the groups;
- SQL (:mod:`fmduck.sqlsolve`): each value is a column expression, and the solve runs inside the
  engine next to the moments (DuckDB, PostgreSQL, Spark executors) — the same operations in the same
  order, so both backends give the same IEEE doubles for every well-posed group.

Method: the normal equations are centred (intercept) or taken about zero (no intercept), the
regressor block is equilibrated to a unit diagonal and factored by a closed-form Cholesky whose loops
run over the k regressors; y rides along as the last row of the factor (c = L⁻¹D⁻¹Sxy), so
SSR = Syy − c'c and the slopes are D⁻¹L⁻ᵀc. A pivot below ``rcond`` marks the group singular
(collinear regressors); a group with fewer than p + ``min_df`` observations is too small; both get
no numbers (NaN / NULL) and a reason, never a silent estimate.

The namespace ``ops`` provides: ``const(x)`` (a float constant of the backend), ``where(c, a, b)``,
``sqrt(x)`` (no value for x < 0), ``div(a, b)`` (no value for b = 0), ``gt(a, b)``, ``lt(a, b)``
(false when either side has no value), ``both(a, b)``, ``negate(c)``, ``maximum0(x)`` and ``nan``.
Values combine with ``+``, ``-``, ``*`` and Python floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SINGULAR = "singular or collinear regressors"
TOO_FEW = "too few observations"
NO_VARIATION = "dependent variable has no variation"
RCOND = 1e-10


@dataclass(frozen=True)
class Solution:
    """Per-group results (backend values). ``params``/``std_errors``: intercept first when fitted."""

    params: list[Any]
    std_errors: list[Any]
    r2: Any
    adj_r2: Any
    rmse: Any
    ok: Any
    singular: Any
    too_few: Any
    flat_y: Any


def dot(a: list, b: list) -> Any:
    """Σ_m a[m]·b[m], summed left to right (the order is part of the result)."""
    acc = a[0] * b[0]
    for x, y in zip(a[1:], b[1:]):
        acc = acc + x * y
    return acc


def cholesky(ops: Any, a: list[list], k: int, rcond: float) -> tuple[list, list[list], list, Any]:
    """Cholesky factor, entrywise, of a symmetric matrix given by its lower triangle ``a[i][j]``.

    The leading k × k block (the regressors) is scaled to a unit diagonal first; rows k… (right-hand
    sides) are carried along unscaled, so their row of the factor is L⁻¹D⁻¹b. Returns ``(rd, lower, rl,
    fine)``: ``rd[i]`` = 1/√a_ii, the factor's off-diagonal ``lower[i][j]`` (i > j), ``rl[j]`` =
    1/lower[j][j], and ``fine``: every diagonal positive and every scaled pivot above ``rcond``.
    """
    fine = None
    rd: list = []
    for i in range(k):
        positive = ops.gt(a[i][i], 0.0)
        fine = positive if fine is None else ops.both(fine, positive)
        rd.append(ops.div(1.0, ops.sqrt(a[i][i])))
    lower: list[list] = [[None] * i for i in range(len(a))]
    rl: list = []
    for j in range(k):
        row = lower[j]
        if j:
            pivot = 1.0 - dot(row, row)  # the scaled diagonal is 1
            fine = ops.both(fine, ops.gt(pivot, rcond))
            rl.append(ops.div(1.0, ops.sqrt(pivot)))
        else:
            rl.append(1.0)
        for i in range(j + 1, len(a)):
            off = a[i][j] * rd[j]
            if i < k:
                off = off * rd[i]
            if j:
                off = (off - dot(lower[i][:j], row)) * rl[j]
            lower[i][j] = off
    return rd, lower, rl, fine


def inverse_factor(lower: list[list], rl: list, k: int) -> list[list]:
    """``linv[i][j]`` (i >= j) of the inverse of the unit-diagonal-scaled factor, by forward substitution."""
    linv: list[list] = [[None] * (i + 1) for i in range(k)]
    for i in range(k):
        linv[i][i] = rl[i]
        if i:
            minus_rl = -rl[i]
            for j in range(i):
                linv[i][j] = dot(lower[i][j:i], [linv[q][j] for q in range(j, i)]) * minus_rl
    return linv


def cholesky_inverse(ops: Any, entry: Any, k: int, rcond: float = RCOND) -> tuple[list[list], Any]:
    """Inverse entries ``inv[i][j]`` (i >= j) of symmetric PSD matrices given entrywise by ``entry(i, j)``,
    and the flag of the singular ones: Cholesky of the unit-diagonal scaling, then L⁻ᵀL⁻¹ unscaled."""
    rd, lower, rl, fine = cholesky(ops, [[entry(i, j) for j in range(i + 1)] for i in range(k)], k, rcond)
    linv = inverse_factor(lower, rl, k)
    inverse: list[list] = [[None] * (i + 1) for i in range(k)]
    for i in range(k):
        for j in range(i + 1):
            acc = dot([linv[q][i] for q in range(i, k)], [linv[q][j] for q in range(i, k)])
            inverse[i][j] = acc * (rd[i] * rd[j])
    return inverse, ops.negate(fine)


def solve(ops: Any, n: Any, sums: list, product: Any, shift: list, *, intercept: bool = True,
          min_df: int = 1, rcond: float = RCOND) -> Solution:
    """OLS of the last variable on the others, for every group at once.

    ``n`` counts, ``sums[i]`` = Σv_i, ``product(i, j)`` = Σv_i·v_j (i <= j) of the shifted variables;
    ``shift[i]`` (a float or a per-group value) restores the intercept and the raw moments.
    """
    m = len(sums)
    k = m - 1
    p = k + int(intercept)
    rn = ops.div(1.0, ops.where(ops.gt(n, 0.0), n, 1.0))
    if intercept:
        mean = [v * rn for v in sums]
        a = [[product(i, j) - sums[i] * mean[j] for j in range(i + 1)] for i in range(m)]
    else:
        # raw moments about zero: Σ(v+s)(v+s)' = Σvv' + s Σv' + Σv s' + n s s'
        a = [[product(i, j) + shift[i] * sums[j] + sums[i] * shift[j] + n * (shift[i] * shift[j])
              for j in range(i + 1)] for i in range(m)]
    rd, lower, rl, fine = cholesky(ops, a, k, rcond)
    linv = inverse_factor(lower, rl, k)
    c, syy = lower[k], a[k][k]
    ssr = ops.maximum0(syy - dot(c, c)) if k else ops.maximum0(syy)
    column = [[linv[q][i] for q in range(i, k)] for i in range(k)]  # of L⁻¹, from the diagonal down
    slopes = [dot(column[i], c[i:]) * rd[i] for i in range(k)]
    spread = [ops.sqrt(dot(column[i], column[i])) * rd[i] for i in range(k)]  # √(Sxx⁻¹)_ii
    df = n - float(p)
    too_few = ops.lt(df, float(min_df))
    ok = ops.negate(too_few) if fine is None else ops.both(fine, ops.negate(too_few))
    singular = ops.negate(fine) if fine is not None else ops.gt(n, n)  # no regressors: never singular
    s2 = ops.div(ssr, ops.where(ops.gt(df, 0.0), df, ops.nan))
    rmse = ops.sqrt(s2)
    estimates, spreads = slopes, spread
    if intercept:
        xbar = [mean[i] + shift[i] for i in range(k)]
        alpha = mean[k] + shift[k]
        if k:
            alpha = alpha - dot(xbar, slopes)
            scaled = [xbar[i] * rd[i] for i in range(k)]
            u = [dot(linv[i], scaled[: i + 1]) for i in range(k)]  # L⁻¹D⁻¹x̄
            quad = dot(u, u)
            estimates, spreads = [alpha, *slopes], [ops.sqrt(rn + quad), *spread]
        else:
            estimates, spreads = [alpha], [ops.sqrt(rn)]
    varies = ops.gt(syy, 0.0)
    unexplained = ops.div(ssr, ops.where(varies, syy, ops.nan))  # 1 − R²
    r2 = 1.0 - unexplained
    adj_r2 = 1.0 - ops.div(unexplained * (n - float(int(intercept))), df)
    return Solution(
        params=[ops.where(ok, e, ops.nan) for e in estimates],
        std_errors=[ops.where(ok, s * rmse, ops.nan) for s in spreads[:p]],
        r2=ops.where(ok, r2, ops.nan), adj_r2=ops.where(ok, adj_r2, ops.nan), rmse=ops.where(ok, rmse, ops.nan),
        ok=ok, singular=singular, too_few=too_few, flat_y=ops.negate(varies),
    )
