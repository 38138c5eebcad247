"""Pieces shared by the designs beside the two-pass default: option checks, the Newey-West lag and
its note, and the ``estimates`` rows built from :class:`fmduck.inference.Inference` objects."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import polars as pl

from fmduck.errors import EstimationError, SpecError
from fmduck.inference import LAG_RULES, NW_DIVISORS, Inference, automatic_lag

# per-period preparation and weighting options of the two-pass engine that pooled and mimicking do not apply
UNSUPPORTED = ("winsorize", "standardize", "rank", "weights", "absorb", "grid")


def reject_unsupported(spec: Any) -> None:
    """A clear error rather than a silently ignored option (pooled and mimicking use raw, unweighted rows)."""
    given = [f"--{name}" for name in UNSUPPORTED if getattr(spec, name, None) not in (None, False, [], {})]
    if given:
        raise SpecError(f"design {spec.design} does not support {', '.join(given)}: it uses the raw, "
                        "unweighted rows of the panel")


def nw_lags(spec: Any, t: int, *, label: str = "Newey-West", periods: str = "periods") -> int:
    """The run's Bartlett lag for a series of ``t`` periods (automatic or fixed); an error unless below ``t``."""
    lags = automatic_lag(t, spec.lag_rule) if spec.nw_lags == "auto" else int(spec.nw_lags)
    if lags >= t:
        raise EstimationError(f"{label} lag {lags} is not below the number of {periods} T = {t}")
    return lags


def nw_note(spec: Any, lags: int, df: int) -> str:
    """The Newey-West convention line (after its ``Newey-West: `` prefix)."""
    return (f"Bartlett, L = {lags}"
            + (f" (automatic, {spec.lag_rule}: {LAG_RULES[spec.lag_rule]})" if spec.nw_lags == "auto" else " (fixed)")
            + f", Var = {NW_DIVISORS[spec.nw_divisor]}; t with T-1 = {df} df")


def estimates_frame(results: Iterable[tuple[Inference, str]], terms: list[str], *, n_periods: int, avg_n: float,
                    avg_r2: float | np.ndarray, lags: int, lag_se_type: str = "nw") -> pl.DataFrame:
    """``estimates`` rows: one per (SE type, term) of each (inference, convention note); ``avg_r2`` may be
    per term; ``nw_lags`` is filled on the rows of ``lag_se_type``."""
    r2 = np.broadcast_to(np.asarray(avg_r2, dtype=np.float64), (len(terms),))
    rows = [
        {"term": term, "se_type": inf.se_type, "estimate": float(inf.estimate[j]),
         "std_error": float(inf.std_error[j]), "t_stat": float(inf.t_stat[j]), "p_value": float(inf.p_value[j]),
         "ci_lower": float(inf.ci_lower[j]), "ci_upper": float(inf.ci_upper[j]), "n_periods": n_periods,
         "df": inf.df, "avg_n": float(avg_n), "avg_r2": float(r2[j]),
         "nw_lags": lags if inf.se_type == lag_se_type else None, "convention": note}
        for inf, note in results for j, term in enumerate(terms)
    ]
    return pl.DataFrame(rows, schema_overrides={"nw_lags": pl.Int64, "avg_r2": pl.Float64})
