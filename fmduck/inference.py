"""Pass 3: inference on the time series of cross-sectional estimates λ_t (arrays in, arrays out).

Conventions (stated in every result):
- Fama-MacBeth: Var(λ̄) = s²(λ_t)/T with the sample covariance using T − 1 (Stata ``xtfmb``,
  R ``pmg``, Petersen).
- Newey-West: Bartlett weights w_l = 1 − l/(L+1) on the deviations e_t = λ_t − λ̄, counted over
  the T estimated periods in calendar order (periods without an estimate are left out, as
  linearmodels does). Γ = Σ_t e_t e_t' + Σ_l w_l Σ_t (e_t e_{t−l}' + e_{t−l} e_t').
  Divisor "T" (default; the seed, statsmodels HAC, R sandwich): Var(λ̄) = Γ / T².
  Divisor "T-1" (Stata ``newey``/``xtfmb lag()``/``asreg newey()``, linearmodels' default):
  Var(λ̄) = Γ / (T(T − 1)); with L = 0 it equals the Fama-MacBeth variance.
- Automatic lag "nw1994": L = ⌊4 (T/100)^{2/9}⌋ (Newey-West 1994 rule of thumb).
- Shanken (1992): V = (1 + c)(V_FM − Σ̃_f/T) + Σ̃_f/T, c = λ_f' Σ_f⁻¹ λ_f, Σ_f the sample
  covariance (T − 1) of the factors over the T periods, Σ̃_f bordered with zeros for the intercept
  and characteristics.
- t statistics compared with Student's t with T − 1 degrees of freedom; 95% intervals likewise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from fmduck.errors import EstimationError, SpecError

NW_DIVISORS = {"T": "Γ/T² (seed, statsmodels, R sandwich)", "T-1": "Γ/(T(T−1)) (Stata, linearmodels)"}
LAG_RULES = {"nw1994": "⌊4(T/100)^(2/9)⌋"}


def fm_covariance(lambdas: np.ndarray) -> np.ndarray:
    """Fama-MacBeth covariance of the mean of ``lambdas[T, p]``: sample covariance (T − 1) / T."""
    t = lambdas.shape[0]
    if t < 2:
        raise EstimationError(f"Fama-MacBeth standard errors need at least 2 periods with estimates, got {t}")
    dev = lambdas - lambdas.mean(axis=0)
    return dev.T @ dev / (t - 1) / t


def automatic_lag(t: int, rule: str = "nw1994") -> int:
    """The lag an automatic rule picks for T periods."""
    if rule != "nw1994":
        raise SpecError(f"unknown automatic lag rule {rule!r}; known: {', '.join(LAG_RULES)}")
    return int(math.floor(4.0 * (t / 100.0) ** (2.0 / 9.0)))


def newey_west_covariance(lambdas: np.ndarray, lags: int, divisor: str = "T") -> np.ndarray:
    """Newey-West (Bartlett) covariance of the mean of ``lambdas[T, p]``."""
    t = lambdas.shape[0]
    if divisor not in NW_DIVISORS:
        raise SpecError(f"unknown Newey-West divisor {divisor!r}; choose 'T' or 'T-1'")
    if lags < 0 or lags >= t:
        raise SpecError(f"Newey-West lag must be between 0 and T-1 = {t - 1}, got {lags}")
    scale = t * t if divisor == "T" else t * (t - 1)
    return bartlett_gamma(lambdas - lambdas.mean(axis=0), lags) / scale


def bartlett_gamma(dev: np.ndarray, lags: int) -> np.ndarray:
    """Γ = Σ_t e_t e_t' + Σ_l w_l Σ_t (e_t e_{t−l}' + e_{t−l} e_t'), w_l = 1 − l/(L+1), lags over rows."""
    gamma = dev.T @ dev
    for lag in range(1, lags + 1):
        cross = dev[lag:].T @ dev[:-lag]
        gamma += (1.0 - lag / (lags + 1.0)) * (cross + cross.T)
    return gamma


def factor_covariance(factor_returns: np.ndarray) -> np.ndarray:
    """Σ_f: the sample covariance (ddof 1) of the factors over the periods that have them."""
    return np.atleast_2d(np.cov(factor_returns, rowvar=False, ddof=1))


def shanken_covariance(
    v_fm: np.ndarray,
    lambda_bar: np.ndarray,
    factor_returns: np.ndarray | None,
    factor_positions: list[int],
    periods: int | None = None,
    sigma_f: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Shanken (1992) errors-in-variables corrected covariance and its factor c.

    ``factor_positions`` are the indices of the factor terms in ``lambda_bar``; ``sigma_f`` is the
    factor covariance (or it is computed from ``factor_returns[T_f, K]``, the factors over the pass-2
    periods that have them). ``periods`` is the T of V_FM (the number of λ_t); it differs from T_f
    when a factor value is NULL.
    """
    if sigma_f is None:
        sigma_f = factor_covariance(factor_returns)
    t = periods if periods is not None else factor_returns.shape[0]
    sigma_f = np.atleast_2d(sigma_f)
    lam_f = lambda_bar[factor_positions]
    try:
        c = float(lam_f @ np.linalg.solve(sigma_f, lam_f))
    except np.linalg.LinAlgError as exc:
        raise EstimationError("Shanken correction: the factor covariance matrix is singular") from exc
    bordered = np.zeros_like(v_fm)
    idx = np.ix_(factor_positions, factor_positions)
    bordered[idx] = sigma_f / t
    return (1.0 + c) * (v_fm - bordered) + bordered, c


@dataclass(frozen=True)
class Inference:
    """Estimates of one SE type for every term."""

    se_type: str
    estimate: np.ndarray
    std_error: np.ndarray
    t_stat: np.ndarray
    p_value: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    df: int | None
    covariance: np.ndarray


def inference(se_type: str, estimate: np.ndarray, covariance: np.ndarray, df: int | None,
              level: float = 0.95) -> Inference:
    """t, two-sided p and confidence interval from a covariance, with Student t(df) (``df=None``: the
    standard normal, for asymptotic tests such as Kan-Robotti-Shanken's)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(np.where(np.diag(covariance) >= 0, np.diag(covariance), np.nan))
        t = estimate / se
    if df is None:
        p = 2.0 * special.ndtr(-np.abs(t))
        q = special.ndtri(0.5 + level / 2.0)
    else:
        p = 2.0 * special.stdtr(df, -np.abs(t))
        q = special.stdtrit(df, 0.5 + level / 2.0)
    return Inference(se_type, estimate, se, t, p, estimate - q * se, estimate + q * se, df, covariance)


# The distribution functions the tests need, from scipy.special (what scipy.stats calls underneath, with
# the same results, without importing scipy.stats: a second of start-up). A statistic at or below 0
# has p = 1 (scipy.stats' convention at the edge of the support); NaN stays NaN.
def chi2_sf(x: float, df: float) -> float:
    """P(χ²(df) > x), as ``scipy.stats.chi2.sf(x, df)``."""
    return float(special.chdtrc(df, np.maximum(x, 0.0)))


def t_sf(x: float, df: float) -> float:
    """P(t(df) > x), as ``scipy.stats.t.sf(x, df)``."""
    return float(special.stdtr(df, -x))


def f_sf(x: float, df1: float, df2: float) -> float:
    """P(F(df1, df2) > x), as ``scipy.stats.f.sf(x, df1, df2)``."""
    return float(special.fdtrc(df1, df2, np.maximum(x, 0.0)))
