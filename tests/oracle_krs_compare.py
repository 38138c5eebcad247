"""Test-only oracle for the KRS (2013) model comparisons. Imports nothing from fmduck.

Each model's CSR is refitted here from its own factors (lstsq on L'X, W = L L'), the influence
functions are built period by period from the paper's expressions, Newey-West by explicit loops
(oracle_krs.newey_west), and the weighted χ² by oracle_wchisq. Conventions as fmduck.krs_compare:
GLS u_t, v_t scaled by (T − N − 2)/T; nested tests impose λ2 = 0 in the influence function.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from oracle_krs import moments, newey_west, null_map, weights, wls_fit
from oracle_wchisq import cdf as wcdf


def _model(R, F, weighting, intercept):
    """One model's pieces: λ (CSR on [1, V21]), its H, A, e, e0, Q, Q0, and per-period y_t, u_t, v_t, λ_t."""
    mo = moments(R, F)
    T, N = mo["T"], mo["N"]
    W = weights(mo, weighting)
    L = np.linalg.cholesky(W)
    c = (T - N - 2) / T if weighting == "gls" else 1.0
    ones = [np.ones(N)] if intercept else []
    C = np.column_stack(ones + [mo["V21"]])
    X = np.column_stack(ones + [mo["beta"]])
    lam = wls_fit(L, C, mo["mu2"])
    e = mo["mu2"] - C @ lam
    e0 = mo["mu2"] - wls_fit(L, np.ones((N, 1)), mo["mu2"])[0] if intercept else mo["mu2"]
    Q, Q0 = float(e @ W @ e), float(e0 @ W @ e0)
    H = np.linalg.inv(C.T @ W @ C)
    sl = slice(1, None) if intercept else slice(0, None)
    per = {"y": [], "u": [], "v": [], "lam_t": [], "z": []}
    for t in range(T):
        fd, rd = F[t] - mo["mu1"], R[t] - mo["mu2"]
        per["y"].append(1.0 - fd @ lam[sl])
        per["u"].append(c * (e @ W @ rd))
        per["v"].append(c * (e0 @ W @ rd))
        per["lam_t"].append(wls_fit(L, C, R[t]))
        per["z"].append(np.concatenate([[0.0], fd]) if intercept else fd)
    out = {k: np.array(v) for k, v in per.items()}
    out.update(mo=mo, W=W, L=L, X=X, lam=lam, e=e, e0=e0, Q=Q, Q0=Q0, H=H, r2=1 - Q / Q0, sl=sl, T=T)
    return out


def _n(md, weighting):
    one_m = md["Q"] / md["Q0"]
    n = -2 * md["u"] * md["y"] + 2 * one_m * md["v"]
    if weighting == "gls":
        n = n + md["u"] ** 2 - one_m * md["v"] ** 2
    return n / md["Q0"]


def nested(R, F_small, F_extra, weighting="ols", intercept=True, lags=0) -> dict:
    """r2_diff (large − small), r2_equal (statistic, p) and wald_extra (statistic, p)."""
    big = _model(R, np.column_stack([F_small, F_extra]), weighting, intercept)
    small = _model(R, F_small, weighting, intercept)
    T, k2 = big["T"], F_extra.shape[1]
    p = big["lam"].size
    idx = np.arange(p - k2, p)
    H = big["H"]
    h = []
    for t in range(T):
        lam2_t = big["lam_t"][t][idx]  # H0 λ2 = 0 imposed: λ_2t, not λ_2t − λ̂2
        term = lam2_t * big["y"][t] + (H @ big["z"][t])[idx] * big["u"][t]
        if weighting == "gls":
            term = term - lam2_t * big["u"][t]
        h.append(term)
    V = newey_west(np.array(h), lags)
    xi = np.linalg.eigvals(np.linalg.inv(H[np.ix_(idx, idx)]) @ V).real / big["Q0"]
    diff = big["r2"] - small["r2"]
    lam2 = big["lam"][idx]
    wald = T * lam2 @ np.linalg.inv(V) @ lam2
    return {"r2_diff": diff, "r2_equal": (T * diff, 1 - wcdf(T * diff, xi)),
            "wald_extra": (wald, stats.chi2.sf(wald, k2))}


def non_nested(R, F1, F2, F3, weighting="ols", intercept=True, lags=0) -> dict:
    """Model A = [F1, F2], model B = [F1, F3]; every non-nested row as (statistic, p)."""
    a = _model(R, np.column_stack([F1, F2]), weighting, intercept)
    b = _model(R, np.column_stack([F1, F3]), weighting, intercept)
    T, q0 = a["T"], a["Q0"]
    k2, k3 = F2.shape[1], F3.shape[1]
    ia = np.arange(a["lam"].size - k2, a["lam"].size)
    ib = np.arange(b["lam"].size - k3, b["lam"].size)
    diff = a["r2"] - b["r2"]

    def h_lam(md, idx):  # misspecification-robust, not imposing H0
        rows = []
        for t in range(T):
            dev = md["lam_t"][t] - md["lam"]
            term = dev * md["y"][t] + md["H"] @ md["z"][t] * md["u"][t]
            term[md["sl"]] += md["lam"][md["sl"]]
            if weighting == "gls":
                term = term - dev * md["u"][t]
            rows.append(term[idx])
        return np.array(rows)

    V = newey_west(np.hstack([h_lam(a, ia), h_lam(b, ib)]), lags)
    psi = np.concatenate([a["lam"][ia], b["lam"][ib]])
    wald = T * psi @ np.linalg.inv(V) @ psi
    D = np.zeros((k2 + k3, k2 + k3))
    D[:k2, :k2] = np.linalg.inv(a["H"][np.ix_(ia, ia)])
    D[k2:, k2:] = -np.linalg.inv(b["H"][np.ix_(ib, ib)])
    pp = wcdf(T * diff, np.linalg.eigvals(D @ V).real / q0)
    out = {"r2_diff": diff, "sdf_equal": (wald, stats.chi2.sf(wald, k2 + k3)),
           "r2_equal_sdf": (T * diff, 2 * min(pp, 1 - pp))}
    Ma, Mb = null_map(a["X"], a["L"]), null_map(b["X"], b["L"])
    na, nb = Ma.shape[0], Mb.shape[0]
    g = np.array([np.concatenate([Ma @ (R[t] * a["y"][t]), Mb @ (R[t] * b["y"][t])]) for t in range(T)])
    S = newey_west(g, lags)
    ee = np.concatenate([Ma @ a["e"], Mb @ b["e"]])
    chi = T * ee @ np.linalg.inv(S) @ ee
    out["both_correct"] = (chi, stats.chi2.sf(chi, na + nb))
    Sneg = S.copy()
    Sneg[:na] = -Sneg[:na]
    pp = wcdf(T * diff, np.linalg.eigvals(Sneg).real / q0)
    out["r2_equal_both_correct"] = (T * diff, 2 * min(pp, 1 - pp))
    d = _n(a, weighting) - _n(b, weighting)
    se = np.sqrt(newey_west(d, lags)[0, 0] / T)
    out["r2_equal_normal"] = (diff / se, 2 * stats.norm.sf(abs(diff / se)))
    out["se"] = se
    return out
