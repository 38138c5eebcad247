"""Pass 1: time-series regressions of the excess return on the factors, per asset (full sample) or per
rolling window of W calendar periods (windows with fewer than ``min_obs`` observations left out),
solved where the data is into the first-pass scratch table: keys, nobs, ok, reason, e0 (alpha),
e1..eK (betas), s0..sK, r2, adj_r2, rmse. The table stays in the engine: pass 2 joins its betas,
the store copies it, and only counts come back to Python.
"""

from __future__ import annotations

from typing import Any

from fmduck import templates
from fmduck.errors import EstimationError, InputError
from fmduck.moments import RowSource, solve_source
from fmduck.plan import Plan, State

KEY = "first_pass"


def keys(spec: Any) -> list[str]:
    return ["asset", "pidx"] if spec.rolling else ["asset"]


def params(spec: Any) -> dict[str, int]:
    return {"window_preceding": (spec.window or 1) - 1, "min_obs": spec.effective_min_obs}


def add(plan: Plan, spec: Any, src: RowSource, variables: Any, label: str) -> str:
    """Add pass 1 to ``plan``; returns the quoted name of the first-pass table."""
    p = len(spec.factor_cols) + 1
    min_df = 1 if spec.rolling else max(1, spec.effective_min_obs - p)
    sql = solve_source(plan.dialect, keys(spec), [*variables.factors, variables.y], src.with_(betas=None),
                       rolling=spec.rolling, intercept=True, min_df=min_df)
    kind = f"rolling {spec.window}-period" if spec.rolling else "full-sample"
    plan.add(KEY, f"pass 1: {kind} time-series regressions on {', '.join(spec.factor_cols)}", sql, kind="create",
             params=params(spec))
    table = plan.name(KEY)
    counts = templates.source("outcomes", plan.dialect, table=table)
    plan.add("first_pass_outcomes", "pass 1: outcomes", counts,
             then=lambda state, frame: check(state, frame, spec, label))
    return table


def check(state: State, frame: Any, spec: Any, label: str) -> None:
    """At least one usable regression; the outcome counts are kept for the run's coverage line."""
    state["first_pass_outcomes"] = frame
    if frame.height == 0 or int(frame["n"].sum()) == 0:
        raise InputError(
            f"{label}: no (asset, period) row has a non-NULL return and factors"
            + (f" in a window with at least {spec.effective_min_obs} observations" if spec.rolling else "")
        )
    if int(frame.filter(frame["ok"])["n"].sum()) == 0:
        reasons = ", ".join(f"{r['n']} {r['reason']}" for r in frame.iter_rows(named=True))
        raise EstimationError(f"pass 1: no asset of {label} has a usable time-series regression of "
                              f"{spec.ret} on {', '.join(spec.factor_cols)} ({reasons})")
