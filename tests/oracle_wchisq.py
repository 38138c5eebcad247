"""Test-only oracle: cdf of Q = Σ w_i z_i² (z_i iid N(0,1)) by methods other than fmduck.wchisq's.

- one distinct weight: scipy.stats.chi2;
- two weights: P(Q ≤ x) = E_z[P(w_j z_j² ≤ x − w_k z²)], a one-dimensional integral (scipy quad)
  over the normal density of the other variable, with the kinks of the integrand as break points;
- three or more: Davies (1973) midpoint sum of the characteristic-function inversion,
  P(Q < x) = 1/2 − Σ_k sin θ(u_k)/(π (k + ½) ρ(u_k)), u_k = (k + ½)Δ, with Δ = 2π/L, L far
  beyond the mass of Q (aliasing error ~1e-13) and the sum run until a bound on the rest (Imhof's
  envelope, or integration by parts once x·u dominates the phase) is below 1e-10.
Imports nothing from fmduck.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, stats


def cdf(x: float, weights) -> float:
    w = np.asarray(weights, float).ravel()
    scale = np.max(np.abs(w)) if w.size else 0.0
    if scale == 0.0:
        return 1.0 if x >= 0 else 0.0
    w = w[np.abs(w) > 1e-12 * scale]
    if np.ptp(w) <= 1e-12 * scale:
        return float(stats.chi2.cdf(x / w[0], w.size)) if w[0] > 0 else float(stats.chi2.sf(x / w[0], w.size))
    if w.size == 2:
        return _two(x, w)
    return _davies(x / scale, w / scale)


def _two(x: float, w: np.ndarray) -> float:
    j = int(np.argmax(np.abs(w)))
    a, b = w[j], w[1 - j]

    def given(z: float) -> float:  # P(a z_j² ≤ x − b z²)
        c = (x - b * z * z) / a
        if a > 0:
            return stats.chi2.cdf(c, 1) if c > 0 else 0.0
        return stats.chi2.sf(c, 1) if c > 0 else 1.0

    kink = x / b
    pts = [math.sqrt(kink)] if kink > 0 else None
    top = 40.0 + (math.sqrt(kink) if kink > 0 else 0.0)
    f = lambda z: stats.norm.pdf(z) * given(z)  # noqa: E731
    val = integrate.quad(f, 0.0, top, points=pts, epsabs=1e-14, epsrel=1e-13, limit=500)[0]
    return 2.0 * val


def _davies(x: float, w: np.ndarray, eps: float = 1e-10) -> float:
    sd = math.sqrt(2.0 * np.sum(w * w))
    L = abs(x - np.sum(w)) + 25.0 * sd + 80.0
    delta = 2.0 * math.pi / L
    kmax = int(_truncation(x, w, eps) / delta) + 1
    total, chunk = 0.0, 100_000
    for start in range(0, kmax, chunk):
        k = np.arange(start, min(start + chunk, kmax)) + 0.5
        u = k * delta
        theta = 0.5 * np.arctan(2.0 * np.outer(u, w)).sum(axis=1) - x * u
        rho = np.exp(0.25 * np.log1p(4.0 * np.outer(u * u, w * w)).sum(axis=1))
        total += float(np.sum(np.sin(theta) / (rho * k)))
    return 0.5 - total / math.pi


def _truncation(x: float, w: np.ndarray, eps: float) -> float:
    """U beyond which the rest of (1/π)∫ sin θ(u) g(u) du, g = 1/(u ρ(u)) decreasing, is below eps.

    Envelope bound: (1/π)∫_U^∞ g ≤ (2/(mπ))(2U)^{-m/2}/Π_{top m}|w|^{1/2} for any m. Oscillation
    bound (integration by parts): once |θ'(u)| ≥ |x|/2 on [U, ∞) (θ'(u) = Σ w/(1 + 4w²u²) − x),
    |(1/π)∫_U^∞ sin θ g| ≤ (1/π)·2·g(U)·2/|x|. The smaller U of the two is used.
    """
    top = np.sort(np.abs(w))[::-1]
    best = math.inf
    for m in range(1, w.size + 1):
        prod = float(np.prod(np.sqrt(top[:m])))
        best = min(best, 0.5 * (2.0 / (m * math.pi * eps * prod)) ** (2.0 / m))
    if x == 0.0:
        return best
    u = 1.0
    while u < best:
        drift = float(np.sum(np.abs(w) / (1.0 + 4.0 * w * w * u * u)))
        g = 1.0 / (u * math.exp(0.25 * float(np.sum(np.log1p(4.0 * w * w * u * u)))))
        if drift <= abs(x) / 2.0 and 4.0 * g / (math.pi * abs(x)) < eps:
            return u
        u *= 1.25
    return best
