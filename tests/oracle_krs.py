"""Test-only oracle for Kan, Robotti and Shanken (2013), one model. Imports nothing from fmduck.

Written from the paper's formulas in a different computational form from fmduck.krs_core:
- moments by explicit sums over periods; betas and residuals by a least-squares regression per
  asset (numpy lstsq on [1, f_t]); W^½ as the Cholesky factor L (W = L L');
- γ, λ and every γ_t, λ_t by lstsq of L'(·) on L'X period by period (not A R_t);
- influence functions h_t built period by period in a Python loop from the paper's expressions;
- Newey-West by explicit loops over lags and periods;
- the null-space map M = P'L' with P from a complete QR of L'X (fmduck uses the symmetric root and an SVD);
- weighted χ² by oracle_wchisq (Davies sum / conditional integral; fmduck uses Imhof by QUADPACK);
- eigenvalues of the non-symmetric products (np.linalg.eigvals), Shanken in the (1 + c)(V_FM − B) + B form.
``delta_influence`` differentiates the estimator in the sample moments by complex step: an
independent check that the paper's h_t are the estimator's exact influence functions.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from oracle_wchisq import cdf as wcdf


def moments(R: np.ndarray, F: np.ndarray) -> dict:
    T, K = F.shape
    mu = np.zeros(K + R.shape[1])
    for t in range(T):
        mu += np.concatenate([F[t], R[t]])
    mu /= T
    V = np.zeros((mu.size, mu.size))
    for t in range(T):
        d = np.concatenate([F[t], R[t]]) - mu
        V += np.outer(d, d)
    V /= T
    Z = np.column_stack([np.ones(T), F])
    coefs = np.linalg.lstsq(Z, R, rcond=None)[0]  # (K+1) x N, one regression per asset
    resid = R - Z @ coefs
    return {"T": T, "N": R.shape[1], "K": K, "mu1": mu[:K], "mu2": mu[K:], "V11": V[:K, :K], "V21": V[K:, :K],
            "V22": V[K:, K:], "beta": coefs[1:].T, "resid": resid, "Sigma": resid.T @ resid / T}


def weights(mo: dict, weighting: str) -> np.ndarray:
    if weighting == "ols":
        return np.eye(mo["N"])
    if weighting == "gls":
        return np.linalg.inv(mo["V22"])
    return np.diag(1.0 / np.diag(mo["Sigma"]))


def newey_west(h: np.ndarray, lags: int) -> np.ndarray:
    h = h.reshape(h.shape[0], -1)
    T, q = h.shape
    S = np.zeros((q, q))
    for t in range(T):
        S += np.outer(h[t], h[t])
    for lag in range(1, lags + 1):
        wl = 1.0 - lag / (lags + 1.0)
        for t in range(lag, T):
            S += wl * (np.outer(h[t], h[t - lag]) + np.outer(h[t - lag], h[t]))
    return S / T


def wls_fit(L: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """argmin (y − Xb)'W(y − Xb) with W = L L', as lstsq on L'X."""
    return np.linalg.lstsq(L.T @ X, L.T @ y, rcond=None)[0]


def null_map(X: np.ndarray, L: np.ndarray) -> np.ndarray:
    q, _ = np.linalg.qr(L.T @ X, mode="complete")
    return q[:, X.shape[1]:].T @ L.T


def cross_section(mo: dict, W: np.ndarray, L: np.ndarray, X: np.ndarray, intercept: bool) -> dict:
    mu2 = mo["mu2"]
    coef = wls_fit(L, X, mu2)
    e = mu2 - X @ coef
    e0 = mu2 - wls_fit(L, np.ones((mo["N"], 1)), mu2)[0] if intercept else mu2
    Q, Q0 = float(np.sum((L.T @ e) ** 2)), float(np.sum((L.T @ e0) ** 2))
    H = np.linalg.inv(X.T @ W @ X)
    return {"X": X, "coef": coef, "e": e, "e0": e0, "Q": Q, "Q0": Q0, "r2": 1 - Q / Q0, "H": H, "A": H @ X.T @ W}


def fit(R, F, weighting="ols", intercept=True, lags=0, gls_scale=True) -> dict:
    R, F = np.asarray(R, float), np.asarray(F, float).reshape(len(R), -1)
    mo = moments(R, F)
    T, N, K = mo["T"], mo["N"], mo["K"]
    W = weights(mo, weighting)
    L = np.linalg.cholesky(W)
    c = (T - N - 2) / T if (weighting == "gls" and gls_scale) else 1.0
    ones = [np.ones(N)] if intercept else []
    g = cross_section(mo, W, L, np.column_stack(ones + [mo["beta"]]), intercept)
    lm = cross_section(mo, W, L, np.column_stack(ones + [mo["V21"]]), intercept)
    p = K + int(intercept)
    sl = slice(1, None) if intercept else slice(0, None)
    V11i = np.linalg.inv(mo["V11"])
    gamma, lam = g["coef"], lm["coef"]
    M = null_map(g["X"], L)

    def z0(v):  # [0, v'] or v
        return np.concatenate([[0.0], v]) if intercept else v

    series = {k: [] for k in ("g_t", "l_t", "g_eiv", "g_null", "g_mis", "l_eiv", "l_mis", "n", "spec0", "spec")}
    for t in range(T):
        fd, rd, eps = F[t] - mo["mu1"], R[t] - mo["mu2"], mo["resid"][t]
        g_t, l_t = wls_fit(L, g["X"], R[t]), wls_fit(L, lm["X"], R[t])
        w_t = gamma[sl] @ V11i @ fd
        y_t = 1.0 - w_t
        u_t, v_t = c * (g["e"] @ W @ rd), c * (g["e0"] @ W @ rd)
        phi_dev = (g_t - gamma) - z0(fd)
        if weighting == "gls":
            om_g, om_l = -(g_t - gamma) * u_t, -(l_t - lam) * u_t
        elif weighting == "wls":
            om_g, om_l = -g["A"] @ (eps**2 * (W @ g["e"])), -lm["A"] @ (eps**2 * (W @ lm["e"]))
        else:
            om_g, om_l = np.zeros(p), np.zeros(p)
        mis_g = g["H"] @ z0(V11i @ fd) * u_t + om_g
        series["g_t"].append(g_t)
        series["l_t"].append(l_t)
        series["g_eiv"].append((g_t - gamma) - phi_dev * w_t)
        series["g_null"].append((g_t - gamma) + mis_g)
        series["g_mis"].append((g_t - gamma) - phi_dev * w_t + mis_g)
        l_eiv = (l_t - lam) * y_t + z0(lam[sl])
        series["l_eiv"].append(l_eiv)
        series["l_mis"].append(l_eiv + lm["H"] @ z0(fd) * u_t + om_l)
        one_m = 1.0 - g["r2"]
        n_t = -2 * u_t * y_t + 2 * one_m * v_t
        if weighting == "gls":
            n_t += u_t**2 - one_m * v_t**2
        elif weighting == "wls":
            d = np.diag(W)
            n_t += eps**2 @ (d * g["e"]) ** 2 - one_m * (eps**2 @ (d * g["e0"]) ** 2)
        series["n"].append(n_t / g["Q0"])
        series["spec0"].append(M @ (R[t] * y_t))
        series["spec"].append(M @ (eps * y_t))
    s = {k: np.array(v) for k, v in series.items()}
    out = {"gamma": gamma, "lam": lam, "r2": g["r2"], "gamma_t": s["g_t"], "lam_t": s["l_t"], "T": T}
    Vg_fm = sum(np.outer(x - gamma, x - gamma) for x in s["g_t"]) / T
    Vl_fm = sum(np.outer(x - lam, x - lam) for x in s["l_t"]) / T
    B = np.zeros((p, p))
    B[sl, sl] = mo["V11"]
    cg = 1 + gamma[sl] @ V11i @ gamma[sl]
    Bl = np.zeros((p, p))
    Bl[sl, sl] = V11i
    cl = 1 + lam[sl] @ mo["V11"] @ lam[sl]
    Bl2 = np.zeros((p, p))
    Bl2[sl, sl] = cl * V11i + np.outer(lam[sl], lam[sl])
    out["gamma_cov"] = {"fm": Vg_fm / T, "shanken": (cg * (Vg_fm - B) + B) / T,
                        "eiv_robust": newey_west(s["g_eiv"], lags) / T,
                        "misspec_robust": newey_west(s["g_mis"], lags) / T}
    out["lam_cov"] = {"fm": Vl_fm / T, "shanken": (cl * (Vl_fm - Bl) + Bl2) / T,
                      "eiv_robust": newey_west(s["l_eiv"], lags) / T,
                      "misspec_robust": newey_west(s["l_mis"], lags) / T}
    out["r2_se"] = float(np.sqrt(newey_west(s["n"], lags)[0, 0] / T))
    out["influence"] = {"gamma": s["g_mis"], "lam": s["l_mis"], "r2": s["n"]}
    tests = {"csr_r2": (g["r2"], None)}
    for name, key in (("r2_eq_1", "spec0"), ("r2_eq_1_unrestricted", "spec")):
        S = newey_west(s[key], lags)
        tests[name] = (T * (g["r2"] - 1), wcdf(T * (g["r2"] - 1), -np.linalg.eigvals(S).real / g["Q0"]))
    H11i = np.linalg.inv(g["H"][sl, sl])
    for name, key in (("r2_eq_0", "g_null"), ("r2_eq_0_unrestricted", "g_mis")):
        V = newey_west(s[key], lags)[sl, sl]
        tests[name] = (T * g["r2"], 1 - wcdf(T * g["r2"], np.linalg.eigvals(H11i @ V).real / g["Q0"]))
    df1 = N - p
    df2 = T - N + 1 if intercept else T - N
    e1 = M @ g["e"]
    for suffix, key in (("", "spec0"), ("_unrestricted", "spec")):
        qc = e1 @ np.linalg.inv(newey_west(s[key], lags)) @ e1
        tests["csrt" + suffix] = (T * qc, stats.chi2.sf(T * qc, df1))
        tests["csrt_f" + suffix] = (qc * df2 / df1, stats.f.sf(qc * df2 / df1, df1, df2))
    out["tests"] = tests
    return out


def estimator(mY, mYY, K, weighting, intercept):
    """[γ, λ, R²] as a function of the sample moments E[Y], E[YY'] (complex-step safe: no conj, no abs)."""
    mu = mY
    V = mYY - np.outer(mu, mu)
    V11, V21, V22, mu2 = V[:K, :K], V[K:, :K], V[K:, K:], mu[K:]
    beta = np.linalg.solve(V11, V21.T).T
    N = V22.shape[0]
    if weighting == "ols":
        W = np.eye(N, dtype=V.dtype)
    elif weighting == "gls":
        W = np.linalg.inv(V22)
    else:
        W = np.diag(1.0 / np.diag(V22 - beta @ V21.T))
    one = np.ones((N, 1), dtype=V.dtype)

    def csr(X):
        return np.linalg.solve(X.T @ W @ X, X.T @ W @ mu2)

    X = np.hstack([one, beta]) if intercept else beta
    C = np.hstack([one, V21]) if intercept else V21
    gamma, lam = csr(X), csr(C)
    e = mu2 - X @ gamma
    e0 = mu2 - one[:, 0] * csr(one)[0] if intercept else mu2
    r2 = 1 - (e @ W @ e) / (e0 @ W @ e0)
    return np.concatenate([gamma, lam, [r2]])


def delta_influence(R, F, weighting="ols", intercept=True, step=1e-30) -> dict:
    """h_t = ∂θ/∂m · (m_t − m̄) by complex step, θ = [γ, λ, R²], m = (E[Y], E[YY'])."""
    R, F = np.asarray(R, float), np.asarray(F, float).reshape(len(R), -1)
    K = F.shape[1]
    Y = np.hstack([F, R])
    T = Y.shape[0]
    mY, mYY = Y.mean(axis=0), Y.T @ Y / T
    rows = []
    for t in range(T):
        d1, d2 = Y[t] - mY, np.outer(Y[t], Y[t]) - mYY
        rows.append(estimator(mY + 1j * step * d1, mYY + 1j * step * d2, K, weighting, intercept).imag / step)
    h = np.array(rows)
    p = K + int(intercept)
    return {"gamma": h[:, :p], "lam": h[:, p:2 * p], "r2": h[:, 2 * p]}
