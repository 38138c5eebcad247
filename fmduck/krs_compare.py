"""Kan, Robotti and Shanken (2013) tests of equal CSR R² for two models (arrays in, rows out).

``compare(R, F_a, names_a, F_b, names_b, weighting=, intercept=, lags=)`` returns test rows
(test, statistic, std_error, df1, df2, p_value, note). Both models price the same test assets R
(T x N) with the same weighting matrix W (OLS: I; GLS: V22⁻¹; WLS is refused because its W depends
on the model's factors). Factors are matched by name; a name in both models must hold the same
values. Notation and influence functions as in fmduck.krs_core (λ: prices of covariance risk, the
CSR of μ2 on [1, V21]; u_t, v_t scaled by (T − N − 2)/T under GLS; Newey-West on the series as
they are, divisor T).

Nested (one model's factors a subset of the other's; F = [F_small, F_extra], λ2 the extra
factors' prices in the larger model):
- r2_diff: R²_A − R²_B.
- r2_equal: H0 ρ²_A = ρ²_B (⇔ λ2 = 0); statistic T(R²_large − R²_small);
  p = P(Σ ξ_i z_i² ≥ statistic), ξ = eig(H̃22⁻¹ V(λ̂2))/Q0, V(λ̂2) misspecification-robust with
  H0 imposed in the influence function (λ_2t in place of λ_2t − λ̂2, no +λ2 term), as the
  authors' nested.m does. Valid whether or not the models are correctly specified.
- wald_extra: T λ̂2' V(λ̂2)⁻¹ λ̂2 ~ χ²(K2), the same V.
  (nested.m v1.2 does not apply the GLS (T − N − 2)/T scaling to u_t; fmduck applies it in every
  GLS statistic, as csrgls.m and nonnested.m do.)
Non-nested (F1 shared, F2 only in A, F3 only in B):
- r2_diff: R²_A − R²_B, std_error from the normal test below.
- sdf_equal: H0 y_A = y_B (the extra prices λ_A2 and λ_B3 are both 0); Wald T ψ'V⁻¹ψ ~ χ²(K2 + K3),
  ψ = [λ̂_A2; λ̂_B3], V misspecification-robust (not imposing H0).
- r2_equal_sdf: the same H0 through T(R²_A − R²_B): weights eig(diag(H̃_A22⁻¹, −H̃_B33⁻¹) V)/Q0,
  two-sided p = 2 min(P, 1 − P).
- both_correct: H0 ρ²_A = ρ²_B = 1; T ê'S⁻¹ê ~ χ²(n_A + n_B), ê the stacked P'W^½ pricing errors,
  S the long-run covariance of [P_A'W^½ R_t y_At; P_B'W^½ R_t y_Bt] (imposing H0).
- r2_equal_both_correct: the same H0 through T(R²_A − R²_B): weights eig(diag(−I, I) S)/Q0, two-sided.
- r2_equal_normal: H0 ρ²_A = ρ²_B with 0 < ρ² < 1 and y_A ≠ y_B; z = (R²_A − R²_B)/se,
  se² = long-run variance of n_At − n_Bt over T; two-sided normal p.
The paper's sequential use (not automated here): if sdf_equal does not reject, the data cannot tell
the models apart; if it rejects, r2_equal_both_correct applies when both_correct does not reject,
and r2_equal_normal otherwise.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from fmduck import krs_core as core
from fmduck import wchisq
from fmduck.errors import EstimationError, InputError, SpecError
from fmduck.krs import row


def compare(R, F_a, names_a, F_b, names_b, *, weighting: str = "ols", intercept: bool = True,
            lags: int = 0) -> list[dict]:
    """KRS (2013) comparison of models A and B on the same test assets (see the module docstring)."""
    R, F_a = core.check_inputs(R, F_a, lags)
    _, F_b = core.check_inputs(R, F_b, lags)
    cols = _columns(F_a, names_a, "A") | _columns(F_b, names_b, "B")
    for name in set(names_a) & set(names_b):
        if not np.array_equal(F_a[:, list(names_a).index(name)], F_b[:, list(names_b).index(name)]):
            raise InputError(f"KRS compare: factor {name!r} has different values in models A and B")
    if weighting == "wls":
        raise SpecError("KRS compare: WLS weights depend on each model's residual variances, "
                        "so the two R² are not comparable; use ols or gls")
    set_a, set_b = set(names_a), set(names_b)
    if set_a == set_b:
        raise SpecError(f"KRS compare: models A and B have the same factors ({', '.join(names_a)}); nothing to compare")
    if set_a <= set_b or set_b <= set_a:
        return _nested(R, cols, list(names_a), list(names_b), weighting, intercept, lags)
    return _non_nested(R, cols, list(names_a), list(names_b), weighting, intercept, lags)


def _columns(F: np.ndarray, names, label: str) -> dict[str, np.ndarray]:
    names = list(names)
    if len(names) != F.shape[1] or len(set(names)) != len(names):
        raise SpecError(f"KRS compare: model {label} needs one distinct name per factor column; "
                        f"got {names} for {F.shape[1]} columns")
    return {name: F[:, i] for i, name in enumerate(names)}


def _setup(R: np.ndarray, F: np.ndarray, weighting: str, intercept: bool, label: str):
    n, k = R.shape[1], F.shape[1]
    if n <= k + int(intercept):
        need = "K + 1" if intercept else "K"
        raise EstimationError(f"KRS compare: model {label} needs N > {need}; N = {n}, K = {k}")
    m = core.sample_moments(R, F)
    W, scale = core.weight_matrix(m, weighting)
    return m, W, scale, core.fit_model(m, W, scale, intercept)


def _nested(R, cols, names_a, names_b, weighting, intercept, lags) -> list[dict]:
    a_is_large = set(names_b) < set(names_a)
    small, large = (names_b, names_a) if a_is_large else (names_a, names_b)
    extra = [f for f in large if f not in small]
    F = np.column_stack([cols[f] for f in small + extra])
    m, W, scale, mf = _setup(R, F, weighting, intercept, "A" if a_is_large else "B")
    t, k1 = m.T, len(small)
    small_cs = core.cross_section(m.mu2, core.design(m, m.V21[:, :k1], intercept), W, intercept, "smaller model")
    r2_large, r2_small = mf.lam.r2, small_cs.r2
    idx = mf.slope[k1:]
    lam = mf.lam
    lam2_t = (m.R @ lam.A.T)[:, idx]  # λ_2t, H0 λ2 = 0 imposed (not demeaned)
    h = lam2_t * mf.y[:, None] + (core.pad(m.Fd, intercept) @ lam.H)[:, idx] * mf.u[:, None]
    if weighting == "gls":
        h = h - lam2_t * mf.u[:, None]
    V = core.long_run(h, lags)
    root = np.linalg.cholesky(core.inverse(lam.H[np.ix_(idx, idx)], "the extra factors' block of (C'WC)⁻¹"))
    xi = np.linalg.eigvalsh(root.T @ V @ root) / lam.Q0
    stat = t * (r2_large - r2_small)
    lam2 = lam.coef[idx]
    wald = t * float(lam2 @ np.linalg.solve(_checked(V, "V(λ̂2) of the extra factors"), lam2))
    which = f"{'A' if a_is_large else 'B'} ⊃ {'B' if a_is_large else 'A'}; extra: {', '.join(extra)}"
    diff = r2_large - r2_small if a_is_large else r2_small - r2_large
    return [
        row("r2_diff", diff, note=f"R²_A − R²_B (nested, {which})"),
        row("r2_equal", stat, p_value=wchisq.sf(stat, xi),
            note=f"H0: ρ²_A = ρ²_B; statistic T(R²_large − R²_small); weighted χ², misspecification-robust ({which})"),
        row("wald_extra", wald, df1=len(idx), p_value=stats.chi2.sf(wald, len(idx)),
            note="H0: extra factors' covariance prices λ2 = 0; misspecification-robust Wald, "
                 f"χ²({len(idx)}) ({which})"),
    ]


def _non_nested(R, cols, names_a, names_b, weighting, intercept, lags) -> list[dict]:
    shared = [f for f in names_a if f in names_b]
    only_a = [f for f in names_a if f not in names_b]
    only_b = [f for f in names_b if f not in names_a]
    m_a, W, scale, fa = _setup(R, np.column_stack([cols[f] for f in shared + only_a]), weighting, intercept, "A")
    m_b, _, _, fb = _setup(R, np.column_stack([cols[f] for f in shared + only_b]), weighting, intercept, "B")
    t, k1 = m_a.T, len(shared)
    q0 = fa.gamma.Q0
    diff = fa.gamma.r2 - fb.gamma.r2
    stat = t * diff
    ia, ib = fa.slope[k1:], fb.slope[k1:]
    ka, kb = len(ia), len(ib)
    # H0 y_A = y_B: the extra prices of both models are zero
    h = np.column_stack([core.lam_influence(m_a, fa, W, weighting, intercept)["misspec"][:, ia],
                         core.lam_influence(m_b, fb, W, weighting, intercept)["misspec"][:, ib]])
    V = core.long_run(h, lags)
    psi = np.concatenate([fa.lam.coef[ia], fb.lam.coef[ib]])
    wald = t * float(psi @ np.linalg.solve(_checked(V, "V(λ̂_A2, λ̂_B3)"), psi))
    D = np.zeros((ka + kb, ka + kb))
    D[:ka, :ka] = core.inverse(fa.lam.H[np.ix_(ia, ia)], "model A's extra block of (C'WC)⁻¹")
    D[ka:, ka:] = -core.inverse(fb.lam.H[np.ix_(ib, ib)], "model B's extra block of (C'WC)⁻¹")
    rows = [
        None,  # r2_diff, filled below with the normal test's standard error
        row("sdf_equal", wald, df1=ka + kb, p_value=stats.chi2.sf(wald, ka + kb),
            note=f"H0: y_A = y_B (prices of {', '.join(only_a + only_b)} all 0); misspecification-robust Wald"),
        row("r2_equal_sdf", stat, p_value=_two_sided(stat, _sym_eig(D, V) / q0),
            note="H0: y_A = y_B through T(R²_A − R²_B); weighted χ², two-sided"),
    ]
    # H0 ρ²_A = ρ²_B = 1 (both correctly specified)
    M_a, M_b = core.null_space_map(fa.gamma.X, W), core.null_space_map(fb.gamma.X, W)
    na, nb = M_a.shape[0], M_b.shape[0]
    S = core.long_run(np.column_stack([(m_a.R * fa.y[:, None]) @ M_a.T, (m_b.R * fb.y[:, None]) @ M_b.T]), lags)
    ee = np.concatenate([M_a @ fa.gamma.e, M_b @ fb.gamma.e])
    sign = np.concatenate([-np.ones(na), np.ones(nb)])
    p_both = _two_sided(stat, _sym_eig(np.diag(sign), S) / q0)
    cond = np.linalg.cond(S)
    if np.isfinite(cond) and cond <= core.MAX_CONDITION:
        chi = t * float(ee @ np.linalg.solve(S, ee))
        rows.append(row("both_correct", chi, df1=na + nb, p_value=stats.chi2.sf(chi, na + nb),
                        note="H0: ρ²_A = ρ²_B = 1; χ² test on both models' pricing errors (imposing H0)"))
    else:
        rows.append(row("both_correct", None, df1=na + nb,
                        note="not available: the stacked pricing-error covariance is singular "
                             f"(condition {cond:.3g}, T = {t})"))
    rows.append(row("r2_equal_both_correct", stat, p_value=p_both,
                    note="H0: ρ²_A = ρ²_B = 1 through T(R²_A − R²_B); weighted χ², two-sided"))
    # H0 ρ²_A = ρ²_B with 0 < ρ² < 1
    d = core.r2_influence(m_a, fa, W, scale, weighting) - core.r2_influence(m_b, fb, W, scale, weighting)
    se = float(np.sqrt(core.long_run(d, lags)[0, 0] / t))
    z = diff / se
    rows.append(row("r2_equal_normal", z, std_error=se, p_value=2.0 * stats.norm.sf(abs(z)),
                    note="H0: ρ²_A = ρ²_B, 0 < ρ² < 1 and y_A ≠ y_B; z = (R²_A − R²_B)/se, two-sided normal"))
    rows[0] = row("r2_diff", diff, std_error=se, note="R²_A − R²_B (non-nested); std_error as in r2_equal_normal")
    return rows


def _checked(M: np.ndarray, what: str) -> np.ndarray:
    core.inverse(M, what)  # raises when singular
    return M


def _sym_eig(D: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Eigenvalues of D V (D symmetric, V symmetric PSD) as those of V^½ D V^½."""
    vals, vecs = np.linalg.eigh(V)
    half = (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T
    return np.linalg.eigvalsh(half @ D @ half)


def _two_sided(stat: float, xi: np.ndarray) -> float:
    p = wchisq.cdf(stat, xi)
    return 2.0 * min(p, 1.0 - p)
