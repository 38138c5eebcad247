"""Convention presets: one switch (``--conventions``) that makes pass-3 numbers match another tool.

A preset fixes, for the Newey-West covariance of λ̄: the divisor, the lag rule when ``nw_lags`` is
``auto``, prewhitening, how calendar gaps in λ_t are treated, and the F form of the joint Wald
test. Every preset compares t statistics with Student's t(T − 1) (T = periods with an estimate),
which is what each of the tools does (linearmodels ``debiased=True``; R ``coeftest`` on
``lm(lambda ~ 1)``; Stata ``xtfmb``/``asreg``).

=============  =========  ==============================================  ==========  ==========  =========
preset         divisor    automatic lag (``nw_lags = "auto"``)             prewhiten   gaps        Wald F
=============  =========  ==============================================  ==========  ==========  =========
fmduck         T (or      ⌊4(T/100)^{2/9}⌋ (NW 1994 rule of thumb)         no          compress    Hotelling
               nw_divisor)
stata          T − 1      ⌊4(T/100)^{2/9}⌋ (xtfmb/asreg need a lag given)  no          calendar    W/k, F(k, T−1)
linearmodels   T − 1      NW (1994) data-driven plug-in on Σ_j e_j/sd_j,   no          compress    Hotelling
                          ⌈·⌉, at most T − 1 (``kernel_optimal_bandwidth``)
sandwich       T          ⌊bwNeweyWest⌋ with VAR(1) prewhitening, per      VAR(1)      compress    Hotelling
                          term (``NeweyWest(lm(lambda ~ 1))`` defaults)
=============  =========  ==============================================  ==========  ==========  =========

Gaps: ``compress`` counts lags over the T estimated periods in order (a period without an
estimate is skipped, as linearmodels and R do with a vector of estimates); ``calendar`` counts
lags in calendar periods, so a pair (t, t − l) with either end missing contributes nothing, as
Stata's time-series operator ``L.`` does on a tsset series with gaps.

The Hotelling form (linearmodels 7.1): F = W (T − k)/(k (T − 1)) ~ F(k, T − k); the Stata form
(``asreg, fmb`` header): F = W/k ~ F(k, T − 1); the χ² form: W ~ χ²(k).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fmduck.errors import EstimationError, SpecError
from fmduck.inference import LAG_RULES, automatic_lag, bartlett_gamma

BARTLETT_C = 1.1447  # Newey-West (1994), Table I B, Bartlett kernel


@dataclass(frozen=True)
class Convention:
    name: str
    divisor: str  # "T" | "T-1"
    lag_rule: str  # "nw1994" | "nw1994-plugin" | "bwNeweyWest"
    prewhite: bool
    gaps: str  # "compress" | "calendar"
    per_term: bool  # lag and prewhitening chosen for each term separately (R: one lm per term)
    wald_f: str  # "hotelling" | "stata" | "none"
    source: str


PRESETS: dict[str, Convention] = {
    "fmduck": Convention("fmduck", "T", "nw1994", False, "compress", False, "hotelling",
                         "fmduck defaults"),
    "stata": Convention("stata", "T-1", "nw1994", False, "calendar", False, "stata",
                        "Stata xtfmb lag() / asreg fmb newey()"),
    "linearmodels": Convention("linearmodels", "T-1", "nw1994-plugin", False, "compress", False, "hotelling",
                               "linearmodels 7.1 FamaMacBeth.fit(cov_type='kernel')"),
    "sandwich": Convention("sandwich", "T", "bwNeweyWest", True, "compress", True, "hotelling",
                           "R sandwich::NeweyWest(lm(lambda ~ 1)) defaults"),
}

LAG_RULE_TEXT = {
    **LAG_RULES,
    "nw1994-plugin": "Newey-West (1994) plug-in on Σ_j e_j/sd_j, ⌈m⌉ ≤ T−1 (linearmodels)",
    "bwNeweyWest": "⌊bwNeweyWest⌋, prewhitened, per term (R sandwich)",
}


def preset(name: str) -> Convention:
    try:
        return PRESETS[name]
    except KeyError:
        raise SpecError(f"unknown conventions preset {name!r}; choose one of {', '.join(PRESETS)}") from None


@dataclass(frozen=True)
class HAC:
    covariance: np.ndarray  # p x p (per-term presets: the diagonal is filled, off-diagonal NaN)
    lags: list[int]  # per term
    note: str


# ====================================================================== lag rules
def plugin_bandwidth(dev: np.ndarray) -> int:
    """linearmodels 7.1: Newey-West (1994) plug-in on x_t = Σ_j e_tj / sd(e_j) (ddof 0), ⌈m⌉ ≤ T − 1."""
    t = dev.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.sum(dev / dev.std(axis=0)[None, :], axis=1)
    n = int(math.ceil(4.0 * (t / 100.0) ** (2.0 / 9.0)))
    if n >= t - 1:
        raise EstimationError(f"the automatic (linearmodels) Newey-West lag needs at least 4 periods, got T = {t}")
    sigma = np.array([x @ x / t] + [x[j:] @ x[:-j] / t for j in range(1, n + 1)])
    s0 = sigma[0] + 2.0 * sigma[1:].sum()
    s1 = 2.0 * np.sum(np.arange(1, n + 1) * sigma[1:])
    with np.errstate(divide="ignore", invalid="ignore"):
        m = BARTLETT_C * ((s1 / s0) ** 2) ** (1.0 / 3.0) * t ** (1.0 / 3.0)
    if not np.isfinite(m):
        raise EstimationError("the automatic (linearmodels) Newey-West lag is not finite: λ_t do not vary")
    return min(int(math.ceil(m)), t - 1)


def _ar1(e: np.ndarray) -> tuple[float, np.ndarray]:
    """OLS AR(1) without intercept (R ``ar(..., method = "ols", demean = FALSE)``): coefficient, residuals."""
    lagged, current = e[:-1], e[1:]
    denom = float(lagged @ lagged)
    a = float(lagged @ current) / denom if denom > 0 else 0.0
    return a, current - a * lagged


def sandwich_bandwidth(e: np.ndarray, prewhite: bool = True) -> float:
    """R sandwich ``bwNeweyWest`` (Bartlett) for one series of deviations (not truncated)."""
    n = e.shape[0]
    m = int(math.floor((3.0 if prewhite else 4.0) * (n / 100.0) ** (2.0 / 9.0)))
    u = _ar1(e)[1] if prewhite else e
    nu = u.shape[0]
    if m >= nu:
        raise EstimationError(f"the automatic (sandwich) Newey-West lag needs more periods, got T = {n}")
    sigma = np.array([u[: nu - j] @ u[j:] / nu for j in range(m + 1)])
    s0 = sigma[0] + 2.0 * sigma[1:].sum()
    s1 = 2.0 * np.sum(np.arange(1, m + 1) * sigma[1:])
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(BARTLETT_C * ((s1 / s0) ** 2) ** (1.0 / 3.0) * (nu + int(prewhite)) ** (1.0 / 3.0))


# ====================================================================== covariances
def _gamma(dev: np.ndarray, lags: int, positions: np.ndarray | None) -> np.ndarray:
    """Bartlett Γ with lags over rows, or over calendar ``positions`` (a missing period is a zero row)."""
    if positions is not None:
        full = np.zeros((int(positions.max() - positions.min()) + 1, dev.shape[1]))
        full[positions - positions.min()] = dev
        dev = full
    return bartlett_gamma(dev, lags)


def sandwich_variance(e: np.ndarray, lag: int, prewhite: bool = True) -> float:
    """R ``NeweyWest(lm(x ~ 1), lag, prewhite)`` for one series of deviations e (adjust = FALSE)."""
    n = e.shape[0]
    a, u = _ar1(e) if prewhite else (0.0, e)
    nu = u.shape[0]
    weights = np.arange(lag + 2, dtype=np.float64)
    weights = 1.0 - weights / (lag + 1.0)  # R: seq(1, 0, by = -1/(lag + 1)); the last weight is 0
    weights = weights[:nu]
    utu = 0.5 * float(u @ u) * weights[0]
    for i in range(1, len(weights)):
        utu += weights[i] * float(u[: nu - i] @ u[i:])
    utu *= 2.0
    d = 1.0 / (1.0 - a) if prewhite else 1.0
    return d * utu * d / n / n


def newey_west(lam: np.ndarray, period_index: np.ndarray, conv: Convention, nw_lags: int | str,
               divisor: str = "T") -> HAC:
    """The Newey-West covariance of λ̄ under a preset (``divisor`` is used by the fmduck preset only)."""
    t, p = lam.shape
    dev = lam - lam.mean(axis=0)
    div = divisor if conv.name == "fmduck" else conv.divisor
    fixed = nw_lags != "auto"
    if fixed and int(nw_lags) >= t:
        raise EstimationError(f"Newey-West lag {nw_lags} is not below the number of periods T = {t}")
    if conv.per_term:
        lags, var = [], np.full((p, p), np.nan)
        for j in range(p):
            e = dev[:, j]
            lag = int(nw_lags) if fixed else int(math.floor(sandwich_bandwidth(e, conv.prewhite)))
            lags.append(lag)
            var[j, j] = sandwich_variance(e, lag, conv.prewhite)
        how = "fixed" if fixed else LAG_RULE_TEXT[conv.lag_rule]
        note = (f"Newey-West ({conv.name} preset: {conv.source}): Bartlett, L = {_lags_text(lags)} ({how}), "
                f"VAR(1) prewhitened per term, Var = D Γ_u D / T², gaps {conv.gaps}; t with T-1 = {t - 1} df")
        return HAC(var, lags, note)
    if fixed:
        lag = int(nw_lags)
    elif conv.lag_rule == "nw1994":
        lag = automatic_lag(t)
    else:
        lag = plugin_bandwidth(dev)
    if lag >= t:
        raise EstimationError(f"Newey-West lag {lag} is not below the number of periods T = {t}")
    positions = np.asarray(period_index, dtype=np.int64) if conv.gaps == "calendar" else None
    gamma = _gamma(dev, lag, positions)
    scale = t * t if div == "T" else t * (t - 1)
    how = "fixed" if fixed else f"automatic, {LAG_RULE_TEXT[conv.lag_rule]}"
    vtext = "Γ/T²" if div == "T" else "Γ/(T(T−1))"
    note = (f"Newey-West ({conv.name} preset" + (f": {conv.source}" if conv.name != "fmduck" else "")
            + f"): Bartlett, L = {lag} ({how}), Var = {vtext}, gaps {conv.gaps}; t with T-1 = {t - 1} df")
    return HAC(gamma / scale, [lag] * p, note)


def _lags_text(lags: list[int]) -> str:
    return str(lags[0]) if len(set(lags)) == 1 else "/".join(str(x) for x in lags)


def conventions_hac(lam: np.ndarray, period_index: np.ndarray, spec) -> HAC:
    """The Newey-West covariance of λ̄ for ``spec.conventions`` (model.py's hook)."""
    return newey_west(lam, period_index, preset(spec.conventions), spec.nw_lags, spec.nw_divisor)


def preset_line(spec) -> str:
    """The first note line of every run: which preset produced the numbers."""
    conv = preset(spec.conventions)
    return (f"Conventions preset: {conv.name} ({conv.source}); NW divisor "
            f"{spec.nw_divisor if conv.name == 'fmduck' else conv.divisor}, lag rule "
            f"{LAG_RULE_TEXT[conv.lag_rule]}, prewhitening {'VAR(1)' if conv.prewhite else 'none'}, "
            f"gaps {conv.gaps}, t df T-1")
