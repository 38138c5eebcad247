"""Kan, Robotti and Shanken (2013) two-pass CSR inference for one model (arrays in, arrays out).

``fit(R, F, weighting=, intercept=, lags=)`` on a balanced block of test-asset returns R (T x N) and
factors F (T x K) returns a frozen ``KRSResult``: γ (zero-beta rate and risk premia) and λ (prices
of covariance risk) with four covariance matrices each, the per-period γ_t and λ_t, the CSR R² with
its standard error, and the specification tests as rows. The formulas and the influence functions
are in fmduck.krs_core; ``CONVENTIONS`` (also ``KRSResult.conventions``) states every convention.
Model comparison (nested and non-nested) is fmduck.krs_compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from fmduck import krs_core as core
from fmduck import wchisq
from fmduck.errors import EstimationError

SE_TYPES = ("fm", "shanken", "eiv_robust", "misspec_robust")

CONVENTIONS = """\
KRS (2013) two-pass CSR on a balanced block of N test assets over T periods, full-sample betas.
Moments: means and covariances of [f_t, R_t] with divisor T (V11, V21, V22, Σ = V22 − V21 V11⁻¹ V12).
Weighting: OLS W = I; GLS W = V22⁻¹; WLS W = diag(Σ)⁻¹. γ = (X'WX)⁻¹X'Wμ2, X = [1, β] (β alone
without intercept); λ is the same CSR on [1, V21] (λ0 = γ0, λ1 = V11⁻¹γ1). γ_t = A R_t, A = (X'WX)⁻¹X'W,
so mean(γ_t) = γ; with OLS γ_t is the period-t OLS CSR on the full-sample betas.
R² = 1 − Q/Q0, Q = e'We, Q0 = weighted cross-sectional variation of μ2 around its W-weighted mean
(around 0, i.e. uncentred, without intercept).
Covariances of γ (and λ), all Var = S/T:
- fm: Fama-MacBeth, S = A V22 A' = the covariance of γ_t with divisor T. fmduck's existing fm row uses
  divisor T − 1; with OLS (γ_t = the engine's λ_t): fm(here) = fm(fmduck) × (T − 1)/T. Right only when
  betas are known (no EIV) and the model is correctly specified.
- shanken: Shanken (1992), S = (1 + γ1'V11⁻¹γ1) A Σ A' + [0, 0; 0, V11] (for λ: (1 + λ1'V11λ1) A Σ A'
  + [0, 0; 0, (1 + λ1'V11λ1) V11⁻¹ + λ1λ1']); divisor T in V11, Σ and the c. Assumes a correctly
  specified model, conditional homoskedasticity and no serial correlation (lags are ignored).
  fmduck's existing shanken row uses divisor T − 1 throughout, so the two differ by O(1/T).
- eiv_robust: EIV-corrected under general distributions (conditional heteroskedasticity; serial
  correlation through the Newey-West lags), correctly specified model (Jagannathan-Wang 1998; KRS
  V(γ̂) without the misspecification term).
- misspec_robust: KRS (2013), valid whether or not the model is correctly specified (adds H z_t u_t
  and, for GLS/WLS, the effect of estimating W). Use it unless the model is known to price the test
  assets exactly; R² = 1 tests below tell whether misspecification matters.
Newey-West: Bartlett weights 1 − l/(L+1) on the influence series as they are (not demeaned), as the
authors' nw.m; divisor T. GLS: u_t = e'W(R_t − μ2) and v_t = e0'W(R_t − μ2) are scaled by (T−N−2)/T,
as csrgls.m does (V̂22⁻¹ overstates V22⁻¹ by T/(T−N−2) in expectation under normality); OLS and WLS
are not scaled.
Tests: r2_eq_1 p = P(Σ ξ_i z_i² ≤ T(R² − 1)), ξ = −eig(P'W^½ S W^½ P)/Q0 with S the long-run
covariance of R_t y_t (imposing H0: R² = 1) or ε_t y_t (_unrestricted), y_t = 1 − γ1'V11⁻¹(f_t − μ1);
r2_eq_0 p = P(Σ ξ_i z_i² ≥ T R²), ξ = eig(H11⁻¹ V(γ̂1))/Q0 with V(γ̂1) imposing γ1 = 0 (w_t = 0)
or misspecification-robust (_unrestricted); weighted χ² by Imhof (fmduck.wchisq, 1e-8 absolute).
csrt: Shanken's CSRT T·Q̂c, Q̂c = ê'M'(M S M')⁻¹Mê, M = P'W^½, S imposing H0 (R_t y_t), χ²(N − K − 1);
csrt_f: Q̂c (T − N + 1)/(N − K − 1) ~ F(N − K − 1, T − N + 1) (the authors' approximation);
_unrestricted versions use ε_t y_t. Without intercept the degrees of freedom are N − K and T − N.
csr_r2: the standard error of R² is misspecification-robust and valid for 0 < ρ² < 1 only."""


@dataclass(frozen=True)
class KRSResult:
    """One model's KRS (2013) estimates; arrays ordered [zero-beta rate (if intercept), factors in F's order]."""

    weighting: str
    intercept: bool
    lags: int
    T: int
    N: int
    K: int
    gamma: np.ndarray
    lam: np.ndarray
    gamma_cov: dict[str, np.ndarray]
    lam_cov: dict[str, np.ndarray]
    gamma_t: np.ndarray  # T x p, mean = gamma
    lam_t: np.ndarray  # T x p, mean = lam
    r2: float
    r2_se: float
    tests: tuple[dict, ...]
    conventions: str = field(default=CONVENTIONS, repr=False)

    def std_errors(self, se_type: str, of: str = "gamma") -> np.ndarray:
        """Standard errors of ``gamma`` or ``lam`` for one of SE_TYPES."""
        cov = (self.gamma_cov if of == "gamma" else self.lam_cov)[se_type]
        return np.sqrt(np.diag(cov))


def fit(R, F, *, weighting: str = "ols", intercept: bool = True, lags: int = 0) -> KRSResult:
    """KRS (2013) estimates, four covariance types, R² and specification tests (see CONVENTIONS)."""
    R, F = core.check_inputs(R, F, lags)
    t, n = R.shape
    k = F.shape[1]
    p = k + 1 if intercept else k
    if n <= p:
        need = "K + 1" if intercept else "K"
        raise EstimationError(f"KRS: needs more test assets than CSR coefficients, N > {need}; N = {n}, K = {k}")
    m = core.sample_moments(R, F)
    W, scale = core.weight_matrix(m, weighting)
    mf = core.fit_model(m, W, scale, intercept)
    g, lam = mf.gamma, mf.lam
    h_g = core.gamma_influence(m, mf, W, weighting, intercept)
    h_l = core.lam_influence(m, mf, W, weighting, intercept)
    gamma_cov = {
        "fm": g.A @ m.V22 @ g.A.T / t,
        "shanken": _shanken_gamma(m, g, mf.slope) / t,
        "eiv_robust": core.long_run(h_g["eiv"], lags) / t,
        "misspec_robust": core.long_run(h_g["misspec"], lags) / t,
    }
    lam_cov = {
        "fm": lam.A @ m.V22 @ lam.A.T / t,
        "shanken": _shanken_lam(m, lam, mf.slope) / t,
        "eiv_robust": core.long_run(h_l["eiv"], lags) / t,
        "misspec_robust": core.long_run(h_l["misspec"], lags) / t,
    }
    n_t = core.r2_influence(m, mf, W, scale, weighting)
    r2_se = float(np.sqrt(core.long_run(n_t, lags)[0, 0] / t))
    r2_eq_1, csrt = _spec_rows(m, g, mf, W, lags, intercept)
    tests = [_r2_row(g, r2_se), *r2_eq_1, *_r2_eq_0_rows(g, mf, h_g, t, lags), *csrt]
    return KRSResult(
        weighting, intercept, lags, t, n, k, g.coef, lam.coef, gamma_cov, lam_cov,
        g.coef + mf.gamma_dev, lam.coef + mf.lam_dev, g.r2, r2_se, tuple(tests),
    )


def _shanken_gamma(m: core.Moments, g: core.CrossSection, slope: np.ndarray) -> np.ndarray:
    g1 = g.coef[slope]
    out = (1.0 + g1 @ m.V11_inv @ g1) * (g.A @ m.Sigma @ g.A.T)
    out[np.ix_(slope, slope)] += m.V11
    return out


def _shanken_lam(m: core.Moments, lam: core.CrossSection, slope: np.ndarray) -> np.ndarray:
    l1 = lam.coef[slope]
    c = 1.0 + l1 @ m.V11 @ l1
    out = c * (lam.A @ m.Sigma @ lam.A.T)
    out[np.ix_(slope, slope)] += c * m.V11_inv + np.outer(l1, l1)
    return out


def row(test: str, statistic, *, std_error=None, df1=None, df2=None, p_value=None, note: str = "") -> dict:
    """One test row; None where a column does not apply."""
    def num(x):
        return None if x is None else float(x)

    return {"test": test, "statistic": num(statistic), "std_error": num(std_error), "df1": df1, "df2": df2,
            "p_value": num(p_value), "note": note}


def _r2_row(g: core.CrossSection, r2_se: float) -> dict:
    return row("csr_r2", g.r2, std_error=r2_se,
               note="sample CSR R² = 1 − Q/Q0 (KRS); std_error misspecification-robust, valid for 0 < ρ² < 1")


def _r2_eq_0_rows(g: core.CrossSection, mf: core.ModelFit, h: dict, t: int, lags: int) -> list[dict]:
    rows = []
    s = mf.slope
    H11_inv = core.inverse(g.H[np.ix_(s, s)], "the slope block of (X'WX)⁻¹")
    root = np.linalg.cholesky(H11_inv)
    for name, key, how in (("r2_eq_0", "null", "imposing γ1 = 0"),
                           ("r2_eq_0_unrestricted", "misspec", "not imposing γ1 = 0")):
        V = core.long_run(h[key], lags)[np.ix_(s, s)]
        xi = np.linalg.eigvalsh(root.T @ V @ root) / g.Q0
        stat = t * g.r2
        rows.append(row(name, stat, p_value=wchisq.sf(stat, xi),
                        note=f"H0: ρ² = 0 (γ1 = 0); statistic T·R²; p = P(Σ ξ_i z_i² ≥ T·R²), V(γ̂1) {how}"))
    return rows


def _spec_rows(m: core.Moments, g: core.CrossSection, mf: core.ModelFit, W: np.ndarray, lags: int,
               intercept: bool) -> tuple[list[dict], list[dict]]:
    t, n = m.T, m.N
    M = core.null_space_map(g.X, W)
    df1 = M.shape[0]
    df2 = t - n + 1 if intercept else t - n
    e1 = M @ g.e
    rows_r2, rows_csrt = [], []
    for suffix, series, how in (("", m.R, "imposing H0 (R_t y_t)"),
                                ("_unrestricted", m.resid, "not imposing H0 (ε_t y_t)")):
        S = core.long_run((series * mf.y[:, None]) @ M.T, lags)
        xi = -np.linalg.eigvalsh(S) / g.Q0
        stat = t * (g.r2 - 1.0)
        rows_r2.append(row(f"r2_eq_1{suffix}", stat, p_value=wchisq.cdf(stat, xi),
                           note=f"H0: ρ² = 1 (correct specification); statistic T(R² − 1); "
                                f"p = P(Σ ξ_i z_i² ≤ T(R² − 1)), S {how}"))
        cond = np.linalg.cond(S)
        if not np.isfinite(cond) or cond > core.MAX_CONDITION:
            why = (f"not available: the {df1} x {df1} covariance of the pricing errors is singular "
                   f"(condition {cond:.3g}; T = {t})")
            rows_csrt += [row(f"csrt{suffix}", None, df1=df1, note=why),
                          row(f"csrt_f{suffix}", None, df1=df1, df2=df2, note=why)]
            continue
        qc = float(e1 @ np.linalg.solve(S, e1))
        rows_csrt.append(row(f"csrt{suffix}", t * qc, df1=df1, p_value=stats.chi2.sf(t * qc, df1),
                             note=f"Shanken's CSRT T·Q̂c, χ²({df1}), S {how}"))
        if df2 > 0:
            f_stat = qc * df2 / df1
            rows_csrt.append(row(f"csrt_f{suffix}", f_stat, df1=df1, df2=df2, p_value=stats.f.sf(f_stat, df1, df2),
                                 note=f"approximate finite-sample F = Q̂c·{df2}/{df1}, S {how}"))
        else:
            rows_csrt.append(row(f"csrt_f{suffix}", None, df1=df1, df2=df2,
                                 note=f"not available: needs T > N (T = {t}, N = {n})"))
    return rows_r2, rows_csrt
