"""fmduck.wchisq: cdf / sf of Σ w_i z_i² against exact special cases, an independent oracle and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import oracle_wchisq
from fmduck import wchisq
from fmduck.errors import EstimationError

XS = [1e-6, 0.01, 0.3, 1.0, 2.5, 7.0, 20.0, 60.0]


@pytest.mark.parametrize("w", [0.37, 2.5, 40.0])
def test_single_weight_is_scaled_chi2_1(w):
    for x in XS:
        assert wchisq.cdf(x * w, [w]) == pytest.approx(stats.chi2.cdf(x, 1), abs=1e-12)
        assert wchisq.sf(-x * w, [-w]) == pytest.approx(stats.chi2.cdf(x, 1), abs=1e-12)


@pytest.mark.parametrize("k", [2, 3, 7, 26])
def test_equal_weights_are_scaled_chi2_k(k):
    for x in XS:
        assert wchisq.cdf(1.7 * x, [1.7] * k) == pytest.approx(stats.chi2.cdf(x, k), abs=1e-12)
        assert wchisq.cdf(-1.7 * x, [-1.7] * k) == pytest.approx(stats.chi2.sf(x, k), abs=1e-12)


def test_nearly_equal_weights_take_the_integral_and_agree_with_chi2():
    """Weights 1 ± 1e-9 miss the exact shortcut; the Imhof integral must still give the chi2(k) value."""
    w = 1.0 + 1e-9 * np.arange(5)
    for x in XS:
        assert wchisq.cdf(x, w) == pytest.approx(stats.chi2.cdf(x, 5), abs=1e-8)


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (1.0, 0.3), (2.0, 0.001), (0.01, 1.0), (3.0, 5.0)])
def test_two_weights_of_opposite_sign(a, b):
    """a z1² − b z2²: at x = 0 the closed form (2/π) atan(√(b/a)); elsewhere the conditional integral."""
    assert wchisq.cdf(0.0, [a, -b]) == pytest.approx(2.0 / math.pi * math.atan(math.sqrt(b / a)), abs=1e-12)
    scale = max(a, b)
    for x in [-20.0, -3.0, -0.5, -0.01, 0.02, 0.7, 4.0, 25.0]:
        assert wchisq.cdf(x * scale, [a, -b]) == pytest.approx(oracle_wchisq.cdf(x * scale, [a, -b]), abs=1e-9)


@pytest.mark.parametrize("a,b", [(1.0, 0.5), (1.0, 1e-3)])
def test_two_weights_of_the_same_sign(a, b):
    for x in [1e-4, 0.05, 0.8, 3.0, 15.0]:
        assert wchisq.cdf(x, [a, b]) == pytest.approx(oracle_wchisq.cdf(x, [a, b]), abs=1e-9)


@pytest.mark.parametrize("n1,n2,a,b", [(1, 2, 1.0, 0.25), (3, 2, 0.5, 1.5), (4, 9, 2.0, 0.1)])
def test_two_weight_values_at_zero_is_an_f_distribution(n1, n2, a, b):
    """P(a χ²(n1) − b χ²(n2) ≤ 0) = P(F(n1, n2) ≤ b n2 / (a n1))."""
    w = [a] * n1 + [-b] * n2
    assert wchisq.cdf(0.0, w) == pytest.approx(stats.f.cdf(b * n2 / (a * n1), n1, n2), abs=1e-9)


def test_random_weights_against_davies_sum():
    rng = np.random.default_rng(17)
    worst = 0.0
    for _ in range(60):
        n = int(rng.integers(3, 12))
        w = rng.uniform(0.05, 1.0, n) * rng.choice([-1.0, 1.0], n) * 10 ** rng.uniform(-2, 2)
        x = w.sum() + 2.0 * math.sqrt(2 * np.sum(w * w)) * rng.standard_normal()
        worst = max(worst, abs(wchisq.cdf(x, w) - oracle_wchisq.cdf(x, w)))
    assert worst < 1e-9


def test_krs_like_weights_many_terms_and_far_tails():
    """26 negative weights spread over three decades (the shape of an R² = 1 test), x from the centre to the tail."""
    w = -np.sort(np.random.default_rng(3).uniform(1e-3, 1.0, 26))
    for x in [-60.0, -30.0, -10.0, -5.0, -1.0, -0.01]:
        assert wchisq.cdf(x, w) == pytest.approx(oracle_wchisq.cdf(x, w), abs=1e-9)


def test_monte_carlo():
    rng = np.random.default_rng(20130601)
    w = np.array([1.0, -0.6, 0.3, 0.1, -0.05])
    q = (rng.standard_normal((1_000_000, w.size)) ** 2) @ w
    for x in [-2.0, -0.5, 0.0, 0.4, 1.0, 3.0, 6.0]:
        mc = float(np.mean(q <= x))
        se = math.sqrt(mc * (1 - mc) / q.size)
        assert abs(wchisq.cdf(x, w) - mc) < 5 * se + 1e-6


def test_degenerate_cases():
    assert wchisq.cdf(0.0, [0.0, 0.0]) == 1.0 and wchisq.cdf(-1e-9, [0.0]) == 0.0
    assert wchisq.sf(0.0, []) == 0.0 and wchisq.sf(-1.0, []) == 1.0
    assert wchisq.cdf(0.0, [1.0, 2.0]) == 0.0 and wchisq.cdf(-3.0, [1.0, 2.0]) == 0.0
    assert wchisq.cdf(0.0, [-1.0, -2.0]) == 1.0 and wchisq.cdf(3.0, [-1.0, -2.0]) == 1.0
    assert wchisq.cdf(1e-300, [1.0, 0.5]) == pytest.approx(0.0, abs=1e-12)
    # weights below 1e-12 of the largest are zeros: [3, 1e-15] is 3·chi2(1)
    assert wchisq.cdf(1.2, [3.0, 1e-15]) == pytest.approx(stats.chi2.cdf(0.4, 1), abs=1e-15)
    for x, w in [(0.3, [1.0, -0.5, 0.2]), (-2.0, [-1.0, 0.4]), (5.0, [2.0, 1.0, 0.5])]:
        assert wchisq.cdf(x, w) + wchisq.sf(x, w) == pytest.approx(1.0, abs=1e-15)


def test_far_tails_stay_in_unit_interval_and_match_chi2():
    assert wchisq.sf(300.0, [1.0, 1.0 + 1e-9, 1.0 - 1e-9]) == pytest.approx(stats.chi2.sf(300.0, 3), abs=1e-9)
    assert 0.0 <= wchisq.cdf(-1e4, [-1.0, -0.5, -0.2]) <= 1e-9
    assert 1.0 - 1e-9 <= wchisq.cdf(1e3, [1.0, -1.0]) <= 1.0


def test_non_finite_input_is_refused():
    with pytest.raises(EstimationError, match="must be finite"):
        wchisq.cdf(float("nan"), [1.0, 2.0])
    with pytest.raises(EstimationError, match="must be finite"):
        wchisq.cdf(1.0, [1.0, float("inf")])


def test_inversion_that_misses_its_accuracy_is_refused(monkeypatch):
    """If QUADPACK's error estimate exceeds the bound, no number is returned."""
    monkeypatch.setattr(wchisq, "MAX_ERROR", 1e-300)
    with pytest.raises(EstimationError, match="numerical inversion did not reach"):
        wchisq.cdf(0.7, [1.0, -0.5, 0.2])
