"""Kan, Robotti and Shanken (2013): the CSR and its influence functions, one model (arrays in, arrays out).

Notation (KRS 2013, with Y_t = [f_t', R_t']'): μ1, μ2 the sample means of the K factors and the N
returns; V11, V21, V22 the blocks of the sample covariance of Y_t with divisor T; β = V21 V11⁻¹;
Σ = V22 − V21 V11⁻¹ V12 (residual covariance, divisor T); ε_t = R_t − μ2 − β(f_t − μ1).

The CSR of μ2 on X = [1_N, β] (on β alone without intercept) with weighting matrix W:
γ = H X'W μ2, H = (X'WX)⁻¹, A = H X'W, pricing errors e = μ2 − Xγ, Q = e'We; Q0 = e0'We0 with
e0 = μ2 − 1_N (1'W1)⁻¹ 1'Wμ2 (e0 = μ2 without intercept: the uncentred R²); R² = 1 − Q/Q0.
The prices of covariance risk λ are the same CSR on C = [1_N, V21], so λ1 = V11⁻¹ γ1, λ0 = γ0.
W: "ols" I_N; "gls" V22⁻¹; "wls" diag(Σ)⁻¹.

Influence functions (each row t is one period; √T(θ̂ − θ) ≈ T^{-1/2} Σ_t h_t):
  γ_t − γ = A(R_t − μ2);  φ_t − φ = (γ_t − γ) − [0, (f_t − μ1)'];  w_t = γ1'V11⁻¹(f_t − μ1);
  y_t = 1 − w_t (the SDF, normalised);  u_t = c·e'W(R_t − μ2);  z_t = [0, (V11⁻¹(f_t − μ1))'];
  correctly specified (Jagannathan-Wang 1998 / KRS without the misspecification term):
      h_t = (γ_t − γ) − (φ_t − φ) w_t
  misspecification-robust (KRS 2013):
      h_t = (γ_t − γ) − (φ_t − φ) w_t + H z_t u_t + ω_t
  with ω_t the effect of an estimated W: GLS −(γ_t − γ) u_t, WLS −A(ε_t² ∘ We), OLS 0.
  For λ: (λ_t − λ) y_t + [0, λ1'] (+ H̃ [0, (f_t − μ1)'] u_t + ω̃_t when misspecified), H̃ = (C'WC)⁻¹.
  R²: n_t = [−2 u_t y_t + 2(1 − R²) v_t + q_t(e) − (1 − R²) q_t(e0)] / Q0, v_t = c·e0'W(R_t − μ2),
  q_t(a) = (c·a'W(R_t − μ2))² for GLS, Σ_i ε_it² (W_ii a_i)² for WLS, 0 for OLS.
c = (T − N − 2)/T for GLS (the authors' finite-sample scaling of V̂22⁻¹, whose mean is T/(T − N − 2)
times V22⁻¹ under normality), 1 for OLS and WLS. These h_t have sample mean zero (c = 1) and are the
exact derivative of the estimator in the sample moments (checked by complex-step differentiation in
tests/oracle_krs.py).

Long-run covariance: S = (1/T)[Σ_t h_t h_t' + Σ_{l=1}^{L} (1 − l/(L+1)) Σ_t (h_t h_{t−l}' + h_{t−l} h_t')],
on h_t as they stand (not demeaned), as the authors' nw.m does; Var(θ̂) = S/T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fmduck.errors import EstimationError, InputError, SpecError
from fmduck.inference import bartlett_gamma

WEIGHTINGS = ("ols", "gls", "wls")
MAX_CONDITION = 1e13  # a matrix to invert with a larger condition number is refused as singular


@dataclass(frozen=True)
class Moments:
    """Sample moments of Y_t = [f_t', R_t']' (divisor T) and the time-series regressions."""

    R: np.ndarray  # T x N returns
    F: np.ndarray  # T x K factors
    mu1: np.ndarray
    mu2: np.ndarray
    V11: np.ndarray
    V21: np.ndarray
    V22: np.ndarray
    V11_inv: np.ndarray
    beta: np.ndarray  # N x K
    Sigma: np.ndarray  # N x N residual covariance
    Rd: np.ndarray  # R_t − μ2
    Fd: np.ndarray  # f_t − μ1
    resid: np.ndarray  # ε_t

    @property
    def T(self) -> int:
        return self.R.shape[0]

    @property
    def N(self) -> int:
        return self.R.shape[1]

    @property
    def K(self) -> int:
        return self.F.shape[1]


@dataclass(frozen=True)
class CrossSection:
    """One CSR of μ2 on the columns of X with weighting W."""

    X: np.ndarray
    H: np.ndarray  # (X'WX)⁻¹
    A: np.ndarray  # H X'W
    coef: np.ndarray
    e: np.ndarray  # pricing errors μ2 − X coef
    e0: np.ndarray  # pricing errors of the constant-only CSR (μ2 without intercept)
    Q: float
    Q0: float

    @property
    def r2(self) -> float:
        return 1.0 - self.Q / self.Q0


def inverse(M: np.ndarray, what: str) -> np.ndarray:
    """M⁻¹, or EstimationError naming ``what`` when M is singular or nearly so."""
    cond = np.linalg.cond(M) if M.size else 1.0
    if not np.isfinite(cond) or cond > MAX_CONDITION:
        raise EstimationError(f"KRS: {what} is singular (condition number {cond:.3g} > {MAX_CONDITION:g})")
    return np.linalg.inv(M)


def check_inputs(R, F, lags: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate a balanced block: R (T x N) and F (T x K) finite floats with the same T; 0 ≤ lags < T."""
    R = np.asarray(R, dtype=np.float64)
    F = np.asarray(F, dtype=np.float64)
    if F.ndim == 1:
        F = F[:, None]
    if R.ndim != 2 or F.ndim != 2 or R.shape[0] != F.shape[0]:
        raise InputError(f"KRS: returns must be T x N and factors T x K with the same T, got {R.shape} and {F.shape}")
    if not (np.all(np.isfinite(R)) and np.all(np.isfinite(F))):
        bad = int(np.sum(~np.isfinite(R)) + np.sum(~np.isfinite(F)))
        raise InputError(f"KRS: {bad} missing or infinite values; the test assets must form a balanced block")
    if F.shape[1] < 1:
        raise InputError("KRS: at least one factor is needed")
    t = R.shape[0]
    if not isinstance(lags, (int, np.integer)) or isinstance(lags, bool) or lags < 0 or lags >= t:
        raise SpecError(f"KRS: Newey-West lags must be an integer between 0 and T-1 = {t - 1}, got {lags!r}")
    return R, F


def sample_moments(R: np.ndarray, F: np.ndarray) -> Moments:
    """Means, covariances (divisor T), betas and residuals of a validated balanced block."""
    t, k = F.shape
    if t <= k + 1:
        raise EstimationError(f"KRS: T = {t} periods cannot estimate betas on K = {k} factors (need T > K + 1)")
    mu1, mu2 = F.mean(axis=0), R.mean(axis=0)
    Fd, Rd = F - mu1, R - mu2
    V11 = Fd.T @ Fd / t
    V21 = Rd.T @ Fd / t
    V22 = Rd.T @ Rd / t
    V11_inv = inverse(V11, "the factor covariance matrix V11")
    beta = V21 @ V11_inv
    resid = Rd - Fd @ beta.T
    Sigma = V22 - beta @ V21.T
    return Moments(R, F, mu1, mu2, V11, V21, V22, V11_inv, beta, Sigma, Rd, Fd, resid)


def weight_matrix(m: Moments, weighting: str) -> tuple[np.ndarray, float]:
    """W and the GLS scaling c = (T − N − 2)/T (1 for OLS and WLS)."""
    t, n = m.T, m.N
    if weighting == "ols":
        return np.eye(n), 1.0
    if weighting == "gls":
        if t <= n + 2:
            raise EstimationError(f"KRS GLS: needs T > N + 2 (V22 invertible, (T−N−2)/T > 0); T = {t}, N = {n}")
        return inverse(m.V22, "the return covariance matrix V22 (GLS weights)"), (t - n - 2) / t
    if weighting == "wls":
        if n >= t:
            raise EstimationError(f"KRS WLS: needs N < T; T = {t}, N = {n}")
        s2 = np.diag(m.Sigma)
        if np.any(s2 <= 1e-14 * np.max(np.abs(s2))):
            raise EstimationError(f"KRS WLS: {int(np.sum(s2 <= 0))} test asset(s) have zero residual variance")
        return np.diag(1.0 / s2), 1.0
    raise SpecError(f"KRS: weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")


def cross_section(mu2: np.ndarray, X: np.ndarray, W: np.ndarray, intercept: bool, what: str) -> CrossSection:
    """The CSR of μ2 on X (whose first column is 1_N when ``intercept``) with weights W."""
    H = inverse(X.T @ W @ X, f"X'WX of the {what}")
    A = H @ X.T @ W
    coef = A @ mu2
    e = mu2 - X @ coef
    if intercept:
        ones = np.ones_like(mu2)
        e0 = mu2 - ones * (ones @ W @ mu2) / (ones @ W @ ones)
    else:
        e0 = mu2
    Q0 = float(e0 @ W @ e0)
    if not Q0 > 1e-20 * float(mu2 @ W @ mu2):
        raise EstimationError(f"KRS: R² is undefined for the {what}: Q0 = {Q0:.3g}, "
                              "the mean returns do not vary across assets")
    return CrossSection(X, H, A, coef, e, e0, float(e @ W @ e), Q0)


def design(m: Moments, loadings: np.ndarray, intercept: bool) -> np.ndarray:
    """[1_N, loadings] or loadings."""
    return np.column_stack([np.ones(m.N), loadings]) if intercept else loadings


def long_run(h: np.ndarray, lags: int) -> np.ndarray:
    """Newey-West (Bartlett) long-run covariance of the rows of h, divisor T, h not demeaned."""
    h = h if h.ndim == 2 else h[:, None]
    return bartlett_gamma(h, lags) / h.shape[0]


def pad(block: np.ndarray, intercept: bool) -> np.ndarray:
    """Prepend a zero column (the intercept's entry) to a T x K block when there is an intercept."""
    return np.column_stack([np.zeros(block.shape[0]), block]) if intercept else block


def w_term(m: Moments, A: np.ndarray, dev: np.ndarray, u: np.ndarray, We: np.ndarray, weighting: str) -> np.ndarray:
    """ω_t, the effect of an estimated W on A μ2: GLS −dev_t u_t, WLS −A(ε_t² ∘ We), OLS 0."""
    if weighting == "gls":
        return -dev * u[:, None]
    if weighting == "wls":
        return -(m.resid**2 * We) @ A.T
    return np.zeros_like(dev)


@dataclass(frozen=True)
class ModelFit:
    """One model's CSRs (γ on [1, β], λ on [1, V21]) and the per-period series of its influence functions."""

    gamma: CrossSection
    lam: CrossSection
    slope: np.ndarray  # positions of the factor terms in gamma / lam
    w: np.ndarray  # w_t
    y: np.ndarray  # y_t = 1 − w_t
    u: np.ndarray  # u_t (scaled by c for GLS)
    v: np.ndarray  # v_t (scaled by c for GLS)
    gamma_dev: np.ndarray  # γ_t − γ
    lam_dev: np.ndarray  # λ_t − λ


def fit_model(m: Moments, W: np.ndarray, scale: float, intercept: bool) -> ModelFit:
    """The two CSRs of one model and the series w_t, y_t, u_t, v_t."""
    g = cross_section(m.mu2, design(m, m.beta, intercept), W, intercept, "beta CSR")
    lam = cross_section(m.mu2, design(m, m.V21, intercept), W, intercept, "covariance CSR")
    slope = np.arange(1, m.K + 1) if intercept else np.arange(m.K)
    w = m.Fd @ (m.V11_inv @ g.coef[slope])
    u = scale * (m.Rd @ (W @ g.e))
    v = scale * (m.Rd @ (W @ g.e0))
    return ModelFit(g, lam, slope, w, 1.0 - w, u, v, m.Rd @ g.A.T, m.Rd @ lam.A.T)


def gamma_influence(m: Moments, fit: ModelFit, W: np.ndarray, weighting: str, intercept: bool) -> dict[str, np.ndarray]:
    """h_t of γ: "eiv" (correctly specified), "null" (γ1 = 0 imposed: w_t = 0), "misspec" (KRS)."""
    g, dev = fit.gamma, fit.gamma_dev
    phi_dev = dev - pad(m.Fd, intercept)
    z = pad(m.Fd @ m.V11_inv, intercept)
    mis_term = (z @ g.H) * fit.u[:, None] + w_term(m, g.A, dev, fit.u, W @ g.e, weighting)
    eiv = dev - phi_dev * fit.w[:, None]
    return {"eiv": eiv, "null": dev + mis_term, "misspec": eiv + mis_term}


def lam_influence(m: Moments, fit: ModelFit, W: np.ndarray, weighting: str, intercept: bool) -> dict[str, np.ndarray]:
    """h_t of λ: "eiv" (correctly specified) and "misspec" (KRS)."""
    lam, dev = fit.lam, fit.lam_dev
    shift = np.zeros_like(lam.coef)
    shift[fit.slope] = lam.coef[fit.slope]
    eiv = dev * fit.y[:, None] + shift
    mis_term = (pad(m.Fd, intercept) @ lam.H) * fit.u[:, None] + w_term(m, lam.A, dev, fit.u, W @ lam.e, weighting)
    return {"eiv": eiv, "misspec": eiv + mis_term}


def r2_influence(m: Moments, fit: ModelFit, W: np.ndarray, scale: float, weighting: str) -> np.ndarray:
    """n_t of the sample R² (misspecification-robust, valid for 0 < ρ² < 1)."""
    g = fit.gamma
    one_minus = g.Q / g.Q0
    n = -2.0 * fit.u * fit.y + 2.0 * one_minus * fit.v
    if weighting == "gls":
        n = n + fit.u**2 - one_minus * fit.v**2
    elif weighting == "wls":
        d = np.diag(W)
        n = n + m.resid**2 @ (d * g.e) ** 2 - one_minus * (m.resid**2 @ (d * g.e0) ** 2)
    return n / g.Q0


def null_space_map(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """M = P'W^{1/2} ((N − p) x N), P an orthonormal basis of the null space of X'W^{1/2}; M X = 0."""
    vals, vecs = np.linalg.eigh(W)
    w_half = (vecs * np.sqrt(vals)) @ vecs.T
    _, _, vt = np.linalg.svd(X.T @ w_half)
    P = vt[X.shape[1]:].T
    return P.T @ w_half
