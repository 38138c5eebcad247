"""Covariance estimators, in one registry (in the manner of linearmodels' covariance estimators).

Each estimator turns its inputs into a :class:`Covariance`: the matrix, the degrees of freedom of
its t statistics, the Newey-West lag(s) it used and the note that every table prints. Two families:

- pass 3 (``family = "lambda"``): from the time series of cross-sectional estimates λ_t
  (:class:`LambdaSeries`) — ``fm``, ``nw`` (with the convention presets of :mod:`fmduck.conventions`
  as parameters), ``shanken``; stored λ_t can be re-inferred with another estimator or lag without
  SQL (``fmduck show RUN --se nw --nw-lags 12``);
- pooled OLS (``family = "pooled"``, :class:`Sandwich` inputs): ``ols``, ``white``, ``cluster_asset``,
  ``cluster_period``, ``cluster_both``, ``driscoll_kraay``.

Designs that store other SE types (the two-pass premium beside a mimicking one, Kan-Robotti-Shanken)
add entries with :func:`register`; :func:`label` gives every table its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fmduck import conventions
from fmduck.errors import EstimationError
from fmduck.inference import (
    LAG_RULES,
    NW_DIVISORS,
    automatic_lag,
    fm_covariance,
    newey_west_covariance,
    shanken_covariance,
)


@dataclass(frozen=True)
class Covariance:
    se_type: str
    matrix: np.ndarray
    df: int
    note: str
    lags: int | list[int] | None = None


@dataclass(frozen=True)
class LambdaSeries:
    """Pass-3 inputs: λ_t (T × p, calendar order), their period index, the terms, and for Shanken the
    positions of the factor terms and the factor covariance Σ_f (sample, T − 1) over the λ_t periods."""

    lam: np.ndarray
    period_index: np.ndarray
    terms: list[str]
    factor_positions: list[int]
    sigma_f: np.ndarray | None = None


@dataclass(frozen=True)
class InferenceOptions:
    """The options pass 3 reads (a Spec has them all)."""

    nw_lags: int | str = "auto"
    nw_divisor: str = "T"
    lag_rule: str = "nw1994"
    conventions: str = "fmduck"

    @classmethod
    def of(cls, spec: Any, **overrides: Any) -> InferenceOptions:
        get = spec.get if isinstance(spec, dict) else lambda k, d: getattr(spec, k, d)
        values = {k: get(k, getattr(cls, k)) for k in ("nw_lags", "nw_divisor", "lag_rule", "conventions")}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass(frozen=True)
class Estimator:
    name: str
    label: str  # the summary block title
    short: str  # report footers and notes
    family: str  # "lambda" | "pooled" | "other"
    compute: Callable[..., Covariance] | None = None


REGISTRY: dict[str, Estimator] = {}


def register(name: str, label: str, short: str | None = None, family: str = "other",
             compute: Callable[..., Covariance] | None = None) -> Estimator:
    est = Estimator(name, label, short or label, family, compute)
    REGISTRY[name] = est
    return est


def label(se_type: str) -> str:
    est = REGISTRY.get(se_type)
    return est.label if est else se_type


def short(se_type: str) -> str:
    est = REGISTRY.get(se_type)
    return est.short if est else se_type


# ====================================================================== pass 3
def _fm(series: LambdaSeries, options: InferenceOptions) -> Covariance:
    t = series.lam.shape[0]
    return Covariance("fm", fm_covariance(series.lam), t - 1,
                      f"Fama-MacBeth: sd(lambda_t, ddof=1)/sqrt(T); t with T-1 = {t - 1} df")


def nw_lag(t: int, options: InferenceOptions, *, label: str = "Newey-West", periods: str = "periods") -> int:
    """The Bartlett lag for a series of ``t`` periods (automatic or fixed); an error unless below ``t``."""
    lags = automatic_lag(t, options.lag_rule) if options.nw_lags == "auto" else int(options.nw_lags)
    if lags >= t:
        raise EstimationError(f"{label} lag {lags} is not below the number of {periods} T = {t}")
    return lags


def nw_note(options: InferenceOptions, lags: int, df: int) -> str:
    return (f"Bartlett, L = {lags}"
            + (f" (automatic, {options.lag_rule}: {LAG_RULES[options.lag_rule]})" if options.nw_lags == "auto"
               else " (fixed)")
            + f", Var = {NW_DIVISORS[options.nw_divisor]}; t with T-1 = {df} df")


def _nw(series: LambdaSeries, options: InferenceOptions) -> Covariance:
    lam = series.lam
    t = lam.shape[0]
    if options.conventions != "fmduck":  # another tool's Newey-West (fmduck/conventions.py)
        hac = conventions.newey_west(lam, series.period_index, conventions.preset(options.conventions),
                                     options.nw_lags, options.nw_divisor)
        return Covariance("nw", hac.covariance, t - 1, hac.note, hac.lags if len(set(hac.lags)) > 1 else hac.lags[0])
    lags = nw_lag(t, options)
    return Covariance("nw", newey_west_covariance(lam, lags, options.nw_divisor), t - 1,
                      "Newey-West: " + nw_note(options, lags, t - 1), lags)


def _shanken(series: LambdaSeries, options: InferenceOptions) -> Covariance:
    t = series.lam.shape[0]
    if series.sigma_f is None:
        raise EstimationError("Shanken correction: no factor covariance (a beta-based run is needed)")
    v, c = shanken_covariance(fm_covariance(series.lam), series.lam.mean(axis=0), None, series.factor_positions,
                              periods=t, sigma_f=series.sigma_f)
    return Covariance("shanken", v, t - 1,
                      f"Shanken (1992): (1+c)(V_FM - Sigma_f/T) + Sigma_f/T, c = {c:.6g}, Sigma_f sample "
                      f"covariance (ddof=1) over the T periods; t with T-1 = {t - 1} df")


register("fm", "Fama-MacBeth", family="lambda", compute=_fm)
register("nw", "Newey-West", family="lambda", compute=_nw)
register("shanken", "Shanken (1992)", "Shanken", family="lambda", compute=_shanken)
LAMBDA_TYPES = ("fm", "nw", "shanken")


def lambda_covariances(series: LambdaSeries, options: InferenceOptions, se_types: tuple[str, ...] = LAMBDA_TYPES
                       ) -> list[Covariance]:
    """The pass-3 covariances of λ̄ of ``se_types`` (Shanken only when the run has factor terms)."""
    out = []
    for name in se_types:
        if name == "shanken" and not series.factor_positions:
            continue
        out.append(REGISTRY[name].compute(series, options))
    return out


# ====================================================================== pooled OLS sandwiches
@dataclass(frozen=True)
class Sandwich:
    """Pooled OLS pieces (fmduck/designs/pooled.py): bread (X'X)⁻¹ in shifted coordinates, the
    transform back to raw coordinates, the White meat, per-asset and per-period score sums (period
    order), SSR, N and the parameter count."""

    bread: np.ndarray
    transform: np.ndarray
    meat_white: np.ndarray
    by_asset: np.ndarray
    by_period: np.ndarray
    ssr: float
    n: float
    p: int

    def sandwich(self, meat: np.ndarray, factor: float) -> np.ndarray:
        v = factor * self.bread @ meat @ self.bread
        return self.transform @ ((v + v.T) / 2) @ self.transform.T

    def cluster_factor(self, g: int) -> float:
        return g / (g - 1) * (self.n - 1) / (self.n - self.p) if g > 1 else np.nan


def _ols(s: Sandwich, options: InferenceOptions) -> Covariance:
    dof = s.n - s.p
    return Covariance("ols", s.transform @ (s.ssr / dof * s.bread) @ s.transform.T, int(dof),
                      f"OLS: s^2 (X'X)^-1, s^2 = SSR/(N-K), N = {int(s.n)}, K = {s.p}; t with N-K df")


def _white(s: Sandwich, options: InferenceOptions) -> Covariance:
    return Covariance("white", s.sandwich(s.meat_white, s.n / (s.n - s.p)), int(s.n - s.p),
                      "White HC1: N/(N-K) (X'X)^-1 sum(e^2 z z') (X'X)^-1; t with N-K df")


def _cluster(which: str) -> Callable[[Sandwich, InferenceOptions], Covariance]:
    def compute(s: Sandwich, options: InferenceOptions) -> Covariance:
        scores = s.by_asset if which == "asset" else s.by_period
        g = scores.shape[0]
        return Covariance(f"cluster_{which}", s.sandwich(scores.T @ scores, s.cluster_factor(g)), g - 1,
                          f"clustered by {which}: G/(G-1)(N-1)/(N-K) sandwich, G = {g}; t with G-1 df")
    return compute


def _cluster_both(s: Sandwich, options: InferenceOptions) -> Covariance:
    a, p, w = _cluster("asset")(s, options), _cluster("period")(s, options), _white(s, options)
    return Covariance("cluster_both", a.matrix + p.matrix - w.matrix, min(a.df, p.df),
                      "clustered by asset and period (Cameron-Gelbach-Miller / Thompson): V_asset + V_period"
                      " - V_White(HC1), each with its own G/(G-1)(N-1)/(N-K); t with min(G)-1 df")


def _driscoll_kraay(s: Sandwich, options: InferenceOptions) -> Covariance:
    g_t = s.by_period.shape[0]
    lags = nw_lag(g_t, options, label="Driscoll-Kraay")
    meat = newey_west_covariance(s.by_period, lags, "T") * g_t * g_t
    return Covariance("driscoll_kraay", s.sandwich(meat, 1.0), g_t - 1,
                      f"Driscoll-Kraay: Bartlett kernel on per-period score sums, L = {lags}"
                      + (f" ({options.lag_rule}: {LAG_RULES[options.lag_rule]})" if options.nw_lags == "auto" else "")
                      + ", no small-sample factor; t with T-1 df", lags)


register("ols", "Pooled OLS", family="pooled", compute=_ols)
register("white", "Pooled OLS, White (HC1)", family="pooled", compute=_white)
register("cluster_asset", "Pooled OLS, clustered by asset", family="pooled", compute=_cluster("asset"))
register("cluster_period", "Pooled OLS, clustered by period", family="pooled", compute=_cluster("period"))
register("cluster_both", "Pooled OLS, clustered by asset and period", family="pooled", compute=_cluster_both)
register("driscoll_kraay", "Pooled OLS, Driscoll-Kraay", family="pooled", compute=_driscoll_kraay)
POOLED_TYPES = ("ols", "white", "cluster_asset", "cluster_period", "cluster_both", "driscoll_kraay")


def pooled_covariances(s: Sandwich, options: InferenceOptions) -> list[Covariance]:
    return [REGISTRY[name].compute(s, options) for name in POOLED_TYPES]
