"""Pass 3: inference on the time series λ_t (arrays in, frames out; no SQL).

The estimates of each SE type come from :mod:`fmduck.covariance` (``fm``, ``nw`` under the run's
convention preset, ``shanken`` for beta-based runs); t, p and confidence intervals from
:func:`fmduck.inference.inference` with Student t(T − 1). The same function re-infers a stored run
from its λ_t with other options (``fmduck show RUN --se nw --nw-lags 12``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from fmduck import covariance
from fmduck.conventions import preset_line
from fmduck.covariance import Covariance, InferenceOptions, LambdaSeries
from fmduck.errors import EstimationError
from fmduck.inference import inference

ESTIMATE_SCHEMA = {
    "term": pl.Utf8, "se_type": pl.Utf8, "estimate": pl.Float64, "std_error": pl.Float64, "t_stat": pl.Float64,
    "p_value": pl.Float64, "ci_lower": pl.Float64, "ci_upper": pl.Float64, "n_periods": pl.Int64, "df": pl.Int64,
    "avg_n": pl.Float64, "avg_r2": pl.Float64, "nw_lags": pl.Int64, "convention": pl.Utf8,
}


def series(lambdas: pl.DataFrame, terms: list[str], factor_cols: list[str], sigma_f: np.ndarray | None) -> LambdaSeries:
    """Pass-3 inputs from the wide λ_t frame (period_index and one column per term)."""
    lam = lambdas.select(terms).to_numpy().astype(np.float64)
    return LambdaSeries(lam, lambdas["period_index"].to_numpy(), list(terms),
                        [terms.index(c) for c in factor_cols if c in terms], sigma_f)


def estimates(covs: list[Covariance], estimate: np.ndarray, terms: list[str], *, n_periods: int, avg_n: float,
              avg_r2: float | np.ndarray, prefix: str = "") -> pl.DataFrame:
    """``estimates`` rows: one per (covariance, term); ``avg_r2`` may be per term; ``prefix`` starts
    each convention note (the preset, e.g. ``[fmduck] ``)."""
    r2 = np.broadcast_to(np.asarray(avg_r2, dtype=np.float64), (len(terms),))
    rows = []
    for cov in covs:
        inf = inference(cov.se_type, estimate, cov.matrix, cov.df)
        lags = cov.lags
        for j, term in enumerate(terms):
            rows.append({
                "term": term, "se_type": cov.se_type, "estimate": float(inf.estimate[j]),
                "std_error": float(inf.std_error[j]), "t_stat": float(inf.t_stat[j]), "p_value": float(inf.p_value[j]),
                "ci_lower": float(inf.ci_lower[j]), "ci_upper": float(inf.ci_upper[j]), "n_periods": n_periods,
                "df": inf.df, "avg_n": float(avg_n), "avg_r2": float(r2[j]),
                "nw_lags": (lags[j] if isinstance(lags, list) else lags) if lags is not None else None,
                "convention": prefix + cov.note,
            })
    return pl.DataFrame(rows, schema=ESTIMATE_SCHEMA)


def infer(lambdas: pl.DataFrame, terms: list[str], factor_cols: list[str], sigma_f: np.ndarray | None,
          options: InferenceOptions, se_types: tuple[str, ...] = covariance.LAMBDA_TYPES
          ) -> tuple[pl.DataFrame, str, dict[str, np.ndarray]]:
    """(estimates, the conventions text, covariance per SE type) of λ_t (wide: period_index, terms, r2, n)."""
    s = series(lambdas, terms, factor_cols, sigma_f)
    if s.lam.shape[0] < 2:
        raise EstimationError(f"pass 3 needs at least 2 periods with estimates, got {s.lam.shape[0]}")
    covs = covariance.lambda_covariances(s, options, se_types)
    frame = estimates(covs, s.lam.mean(axis=0), terms, n_periods=s.lam.shape[0],
                      avg_n=float(lambdas["n"].mean()), avg_r2=float(lambdas["r2"].mean()),
                      prefix=f"[{options.conventions}] ")
    text = "\n".join([preset_line(options), *(c.note for c in covs)])
    return frame, text, {c.se_type: c.matrix for c in covs}


def reinfer(results: Any, **overrides: Any) -> pl.DataFrame:
    """A stored run's estimates recomputed from its λ_t with other pass-3 options (``nw_lags``,
    ``nw_divisor``, ``lag_rule``, ``conventions``), without SQL."""
    spec = results.spec
    if results.run.get("design") != "twopass":
        from fmduck.errors import FmduckError

        raise FmduckError(f"run {results.name!r} is a {results.run.get('design')} run: re-inference from the stored "
                          "lambda_t applies to two-pass runs (run it again with the options instead)")
    options = InferenceOptions.of(spec, **overrides)
    sigma = (results.run.get("inference_inputs") or {}).get("sigma_f")
    frame, _, _ = infer(results.lambdas, results.terms, list(spec.get("factor_cols") or []),
                        np.asarray(sigma) if sigma is not None else None, options)
    return frame
