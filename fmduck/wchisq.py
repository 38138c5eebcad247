"""Distribution of a weighted sum of independent chi-square(1) variables (no I/O).

Q = Σ_i w_i z_i², z_i independent N(0, 1), weights w_i of either sign. This is the limiting law of
the Kan-Robotti-Shanken (2013) R² statistics (fmduck.krs, fmduck.krs_compare).

Method: Imhof (1961). With the weights scaled to max |w_i| = 1,

    P(Q > x) = 1/2 + (1/π) ∫_0^∞ sin θ(u) / (u ρ(u)) du,
    θ(u) = ½ Σ_i arctan(2 w_i u) − x u,   ρ(u) = Π_i (1 + 4 w_i² u²)^{1/4}.

The integral is split at u_s = π/|x| (where x·u has made half a turn): [0, min(1, u_s)] by
adaptive Gauss-Kronrod (scipy ``quad``), [1, u_s] (when u_s > 1) in the variable log u, and
[u_s, ∞) as two Fourier integrals (QUADPACK QAWF) of the slowly varying amplitudes
sin(a(u))/(u ρ(u)) and cos(a(u))/(u ρ(u)), a(u) = ½ Σ arctan(2 w_i u). For x = 0 there is no
Fourier tail: [1, 1e15] in log u, the rest being below 5e-10. Each piece is asked for an absolute
error of 1e-10; if QUADPACK reports a total error above 1e-8 the function raises EstimationError
rather than return a doubtful number. Measured accuracy (tests/test_wchisq.py): better than 1e-9
absolute against exact special cases and a brute-force Davies (1973) sum, and within Monte Carlo
error of a seeded simulation. The accuracy is absolute: a p-value of 1e-12 is "below 1e-9".

Exact shortcuts (no integration):
- weights whose |w_i| ≤ 1e-12·max|w| count as zero (their effect on the cdf is below 1e-12);
- |x| ≤ 1e-14·max|w| is taken as x = 0 (the cdf moves by |x| times the density of Q near 0, which
  is below 1e-8 unless the two largest weights differ by a factor of more than 1e10);
- all weights zero: Q = 0, so cdf(x) = 1 if x ≥ 0 else 0;
- one common weight c over k terms: Q/c ~ chi2(k) (scipy.stats.chi2), either sign of c;
- all weights positive and x ≤ 0: cdf = 0; all negative and x ≥ 0: cdf = 1.
``cdf`` is P(Q ≤ x) and ``sf`` is P(Q > x); they add to 1 (Q is continuous unless all weights are 0).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import integrate, stats

from fmduck.errors import EstimationError

ZERO_WEIGHT = 1e-12  # |w_i| / max|w| below this counts as zero
PIECE_EPS = 1e-10  # absolute error asked of each quadrature piece (scaled by 1/π in the result)
MAX_ERROR = 1e-8  # reported total error above this raises EstimationError
U_MAX = 1e15  # x = 0: the integral stops here; the rest is below 1/(2·U_MAX·√1e-12) = 5e-10
TINY_X = 1e-14  # |x| / max|w| below this is taken as 0 (see the module docstring)


def cdf(x: float, weights) -> float:
    """P(Σ w_i z_i² ≤ x)."""
    return 1.0 - sf(x, weights)


def sf(x: float, weights) -> float:
    """P(Σ w_i z_i² > x)."""
    x = float(x)
    w = np.asarray(weights, dtype=np.float64).ravel()
    if not np.all(np.isfinite(w)) or not math.isfinite(x):
        raise EstimationError(f"weighted chi-square: weights and x must be finite, got x={x}, weights={w.tolist()}")
    scale = float(np.max(np.abs(w))) if w.size else 0.0
    if scale == 0.0:
        return 0.0 if x >= 0.0 else 1.0
    w = w[np.abs(w) > ZERO_WEIGHT * scale] / scale
    x = x / scale
    if abs(x) < TINY_X:
        x = 0.0
    if np.ptp(w) <= ZERO_WEIGHT:  # one common weight w[0] = ±1
        if w[0] > 0:
            return float(stats.chi2.sf(x, w.size))
        return float(stats.chi2.cdf(-x, w.size))
    if np.all(w > 0) and x <= 0.0:
        return 1.0
    if np.all(w < 0) and x >= 0.0:
        return 0.0
    return min(max(0.5 + _imhof_integral(x, w) / math.pi, 0.0), 1.0)


def _imhof_integral(x: float, w: np.ndarray) -> float:
    """∫_0^∞ sin θ(u)/(u ρ(u)) du for weights scaled to max|w| = 1 (see the module docstring)."""
    two_w = 2.0 * w
    cache: dict[float, tuple[float, float]] = {}

    def polar(u: float) -> tuple[float, float]:
        """(a(u), u ρ(u)), cached: the two Fourier pieces evaluate the same nodes."""
        hit = cache.get(u)
        if hit is None:
            t = two_w * u
            hit = cache[u] = (0.5 * float(np.arctan(t).sum()), u * math.exp(0.25 * float(np.log1p(t * t).sum())))
        return hit

    def integrand(u: float) -> float:
        if u == 0.0:
            return float(w.sum()) - x  # the limit as u -> 0
        a, u_rho = polar(u)
        return math.sin(a - x * u) / u_rho

    def in_log_u(v: float) -> float:  # integrand(u) du with u = e^v
        u = math.exp(v)
        a, u_rho = polar(u)
        return math.sin(a - x * u) * u / u_rho

    def amp_sin(u: float) -> float:
        a, u_rho = polar(u)
        return math.sin(a) / u_rho

    def amp_cos(u: float) -> float:
        a, u_rho = polar(u)
        return math.cos(a) / u_rho

    u_split = math.pi / abs(x) if x != 0.0 else U_MAX  # x = 0: no Fourier tail, stop at U_MAX
    plain = {"epsabs": PIECE_EPS, "epsrel": 0.0, "limit": 400, "full_output": 1}
    pieces = [integrate.quad(integrand, 0.0, min(1.0, u_split), **plain)]
    if u_split > 1.0:
        pieces.append(integrate.quad(in_log_u, 0.0, math.log(u_split), **plain))
    total = sum(p[0] for p in pieces)
    error = sum(p[1] for p in pieces)
    if x != 0.0:
        omega = abs(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", integrate.IntegrationWarning)
            fourier = {"wvar": omega, "epsabs": PIECE_EPS, "limlst": 200, "full_output": 1}
            cos_part = integrate.quad(amp_sin, u_split, np.inf, weight="cos", **fourier)
            sin_part = integrate.quad(amp_cos, u_split, np.inf, weight="sin", **fourier)
        # sin(a − x u) = sin a · cos(|x| u) − sign(x) · cos a · sin(|x| u)
        total += cos_part[0] - math.copysign(1.0, x) * sin_part[0]
        error += cos_part[1] + sin_part[1]
    if not math.isfinite(total) or error / math.pi > MAX_ERROR:
        raise EstimationError(
            f"weighted chi-square: numerical inversion did not reach {MAX_ERROR:g} "
            f"(estimated error {error / math.pi:.2e}) at x={x:g} with {w.size} scaled weights {np.round(w, 6).tolist()}"
        )
    return total
