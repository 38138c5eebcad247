"""An incremental update of a stored two-pass run (rolling betas or characteristics only).

Given what changed in the inputs since the run (:class:`fmduck.fingerprints.Changes`, period keys), the
plan recomputes only what depends on it, inside the engine:

- pass 1: the rolling windows whose W periods contain a changed period of the panel or the factors
  (the windows ending in [t, t + W − 1]); the rows read start W − 1 periods before the first of them.
  The other windows are the stored ones (``first_pass_windows``), read back as the betas pass 2 joins;
- pass 2: the cross-sections of changed periods, of periods whose (lagged) betas were recomputed
  (windows ending in [t − beta_max_age, t − beta_lag]) and of periods whose lagged characteristics
  changed; the other λ_t are the stored ones;
- pricing errors, coverage, pass 3 and the tests: over all periods (one pass over the panel).
The calendar must keep every stored period at its place (new periods after the last one; removed ones
only at the end): otherwise the period index moves and the caller recomputes everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from fmduck import checks, fingerprints, inputs, templates
from fmduck.designs import twopass
from fmduck.errors import FmduckError
from fmduck.moments import solve_source
from fmduck.passes import coverage, pass1, pass2
from fmduck.plan import Plan, State
from fmduck.store import TableCopy


class NeedsFull(FmduckError):
    """The update cannot be incremental (the reason says why); the caller recomputes everything."""


@dataclass(frozen=True)
class Affected:
    windows: list[int]  # window ends (pidx) recomputed
    periods: list[int]  # cross-sections recomputed
    removed: list[int]  # pidx of stored windows / λ_t no longer in the calendar
    calendar: int  # periods in the new calendar


def affected(spec: Any, old: Any, changes: fingerprints.Changes, calendar: pl.DataFrame,
             rf_in_factors: bool) -> Affected:
    """The windows and cross-sections to recompute, from the changed period keys and the new calendar
    (period text -> pidx); NeedsFull when stored periods would move."""
    index = dict(zip(calendar["period"].to_list(), calendar["pidx"].to_list()))
    prints = old.extra["input_fingerprints"]
    stored = prints.filter(pl.col("period_index").is_not_null()).unique("period").sort("period_index")
    for period, pidx in stored.select("period", "period_index").iter_rows():
        if pidx <= len(calendar) and index.get(period) != pidx:
            raise NeedsFull(f"the calendar changed inside the stored span (period {period} moved): every period "
                            "index shifts")
    last = int(stored["period_index"].max() or 0)
    removed = list(range(len(calendar) + 1, last + 1))
    panel = {index[p] for p in changes.periods("returns") if p in index}
    factor = {index[p] for p in changes.periods("factors") if p in index}
    t = len(calendar)
    changed = panel | factor
    windows: set[int] = set()
    if spec.rolling:
        for p in changed:
            windows.update(range(p, min(p + spec.window - 1, t) + 1))
    periods = set(panel) | (factor if rf_in_factors or spec.rolling else set())
    if spec.rolling:
        oldest = spec.beta_max_age or spec.beta_lag
        for e in windows:
            periods.update(q for q in range(e + spec.beta_lag, e + oldest + 1) if q <= t)
    elif spec.beta_based:
        raise NeedsFull("full-sample betas change everywhere when any period changes: pass 1 recomputed in full")
    if spec.chars and spec.char_lag:
        periods.update(p + spec.char_lag for p in panel if p + spec.char_lag <= t)
    return Affected(sorted(windows), sorted(periods), removed, t)


def build(run: Any, cat: inputs.Catalog, old: Any, changes: fingerprints.Changes, schema: str) -> tuple[Plan, Any]:
    """The incremental plan (see the module docstring); the affected sets are uploaded when the calendar is known."""
    spec = run.spec
    plan = Plan(run.dialect, run.name)
    plan.calendar_kind = cat.calendar_key.kind
    checks.add(plan, run, spec, cat)
    plan.add("calendar", "calendar", templates.source("calendar", plan.dialect, relation=cat.calendar_relation.sql,
                                                      key=cat.calendar_key.sql("r")), kind="create")
    fingerprints.add(plan, cat)

    def sets(state: State, frame: pl.DataFrame) -> None:
        found = affected(spec, old, changes, frame.sort("pidx"), cat.rf_in_factors)
        state["affected"] = found
        run.upload("affected_windows", pl.DataFrame({"pidx": found.windows}, schema={"pidx": pl.Int64}))
        run.upload("affected_periods", pl.DataFrame({"pidx": found.periods}, schema={"pidx": pl.Int64}))

    plan.add("affected", "update: the windows and periods to recompute",
             f"SELECT CAST(period AS VARCHAR) AS period, pidx FROM {plan.name('calendar')}", then=sets)
    src, prep_params, notes = twopass.base_source(plan, spec, cat)
    variables = inputs.variables(spec, cat, plan.name("profile_returns"),
                                 plan.name("profile_factors") if cat.factors is not None else None)
    setup = twopass.Setup(cat, variables, src, notes=notes, params=prep_params)
    if spec.beta_based:
        setup.first_pass = _first_pass(plan, spec, cat, src, variables, old, schema)
    regressors = twopass.regressors_of(spec, setup)
    options = twopass.options_check(plan, spec, setup, regressors)
    src2 = options.src.with_(periods=plan.name("affected_periods"))
    pass2.add(plan, spec, src2, options.variables[:-1], options.variables[-1], cat.returns.label, setup.params,
              minimum=0)

    def combined(state: State, _frame: Any) -> None:
        _combine(run, spec, old, state)

    plan.check("lambdas_all", "update: the new lambda_t beside the stored ones", then=combined)
    setup.pass2 = pass2.Pass2(options.src, regressors, plan.name("lambdas_all"))
    twopass.build_tail(plan, spec, setup)
    coverage.add(plan, spec, setup)
    return plan, setup


def _first_pass(plan: Plan, spec: Any, cat: inputs.Catalog, src: Any, variables: Any, old: Any, schema: str) -> str:
    """Pass 1 for the affected window ends, then the first-pass table pass 2 joins: the stored windows
    that stay and the recomputed ones."""
    solve = solve_source(plan.dialect, pass1.keys(spec), [*variables.factors, variables.y],
                         src.with_(pidx_from=plan.name("affected_windows")), rolling=True, intercept=True, min_df=1)
    plan.add("first_pass_new", "update: pass 1 for the windows that read changed periods",
             f"SELECT s.* FROM ({solve}) AS s JOIN {plan.name('affected_windows')} AS a ON a.pidx = s.pidx",
             kind="create", params=pass1.params(spec))
    k = len(spec.factor_cols) + 1
    relation = cat.returns
    asset_type = relation.columns[spec.asset]
    typed = ("w.asset_int" if inputs.asset_columns(relation, spec.asset, "x")[1][1] != "CAST(NULL AS BIGINT)"
             else f"CAST(w.asset AS {asset_type})")
    sql = templates.source("update_first_pass", plan.dialect, schema=templates.ident(schema), asset=typed,
                           new=plan.name("first_pass_new"), windows=plan.name("affected_windows"),
                           calendar=plan.name("calendar"), n_terms=k)
    plan.add("first_pass", "update: the first pass (stored windows and recomputed ones)", sql, kind="create",
             params={"old_name": old.name})
    plan.add("first_pass_outcomes", "pass 1: outcomes", templates.source("outcomes", plan.dialect,
                                                                      table=plan.name("first_pass")),
             then=lambda state, frame: state.__setitem__("first_pass_outcomes", frame))
    return plan.name("first_pass")


def _combine(run: Any, spec: Any, old: Any, state: State) -> None:
    """λ_t of all periods: the recomputed ones and the stored ones of the other periods (uploaded for the
    pricing errors and coverage; the state's ``lambdas`` and skipped cross-sections become the whole run's)."""
    found: Affected = state["affected"]
    redo = set(found.periods)
    keep = old.lambdas.filter(~pl.col("period_index").is_in(list(redo)) & (pl.col("period_index") <= found.calendar))
    new = state.get("lambdas")
    cols = [c for c in ("period", "period_date", "period_ts", "period_int", "period_index", *spec.terms, "r2", "adj_r2",
                        "n")]
    parts = [keep.select(cols)] + ([new.select(cols)] if new is not None and new.height else [])
    lambdas = pl.concat(parts, how="vertical_relaxed").sort("period_index")
    if lambdas.height < 2:
        raise FmduckError("update: fewer than 2 periods have a usable cross-section")
    state["lambdas"] = lambdas
    index = _stored_index(old)
    old_skipped = old.skipped.filter(pl.col("pass") == "cross_section")
    old_cs = old_skipped.drop("run_name", "run_id") if old_skipped.height else None
    if old_cs is not None:
        pidx = old_cs["period"].replace_strict(index, default=None, return_dtype=pl.Int64)
        old_cs = old_cs.filter(~pidx.is_in(list(redo)) & (pidx <= found.calendar))
    parts = [p for p in (old_cs, state.get("cross_section_skipped")) if p is not None and p.height]
    state["cross_section_skipped"] = pl.concat(parts, how="vertical_relaxed") if parts else None
    table = lambdas.select(pl.col("period_index").alias("pidx"), pl.lit(True).alias("ok"),
                           *[pl.col(t).alias(f"e{j}") for j, t in enumerate(spec.terms)])
    run.upload("lambdas_all", table)


def _stored_index(old: Any) -> dict[str, int]:
    """Period text -> its calendar index in the stored run (from its input fingerprints)."""
    prints = old.extra["input_fingerprints"].filter(pl.col("period_index").is_not_null())
    return dict(zip(prints["period"].to_list(), prints["period_index"].to_list()))


def _kept_failures(old: Any, state: State) -> None:
    """Pass-1 failures: the stored ones of windows not recomputed, and the new ones; the outcome counts
    of every window (for the windows below min_obs)."""
    found: Affected = state["affected"]
    index = _stored_index(old)
    failed = old.skipped.filter((pl.col("pass") == "first_pass") & pl.col("period").is_not_null())
    if failed.height:
        pidx = failed["period"].replace_strict(index, default=None, return_dtype=pl.Int64)
        failed = failed.filter(~pidx.is_in(replaced(state)) & (pidx <= found.calendar)).drop("run_name", "run_id")
    new = state.get("first_pass_failures")
    parts = [p.drop("pass", strict=False) for p in (failed, new) if p is not None and p.height]
    state["first_pass_failures"] = pl.concat(parts, how="vertical_relaxed") if parts else None
    kept = failed.height if failed is not None else 0
    outcomes = state.get("first_pass_outcomes")
    if outcomes is not None and kept:
        state["first_pass_outcomes"] = pl.concat([outcomes, pl.DataFrame(
            {"ok": [False], "reason": ["stored failures"], "n": [kept], "nobs": [0]},
            schema=outcomes.schema)], how="vertical_relaxed")


def first_pass_copy(run: Any, spec: Any, setup: Any) -> TableCopy:
    """The recomputed windows only (the store replaces those and keeps the others)."""
    copy = twopass.first_pass_copy(run, spec, setup)
    return TableCopy(copy.engine, copy.source.replace(setup.first_pass, run.name("first_pass_new")), copy.params,
                     copy.n_terms)


def replaced(state: State) -> list[int]:
    found: Affected = state["affected"]
    return sorted(set(found.windows) | set(found.removed))


def fit(run: Any, cat: inputs.Catalog, old: Any, changes: fingerprints.Changes, schema: str) -> tuple[Any, dict]:
    """(RunOutput, what was recomputed) of an incremental update."""
    plan, setup = build(run, cat, old, changes, schema)
    state = plan.execute(run)
    if setup.first_pass:
        _kept_failures(old, state)
    out = twopass.finish(run, run.spec, setup, state)
    found: Affected = state["affected"]
    if setup.first_pass:
        out.first_pass = first_pass_copy(run, run.spec, setup)
    recomputed = {"mode": "incremental", "windows": len(found.windows) and _count(run, "first_pass_new"),
                  "window_ends": _span(found.windows), "cross_sections": len(found.periods),
                  "periods": _span(found.periods), "removed_periods": len(found.removed),
                  "replace_window_ends": replaced(state), **changes.describe()}
    return out, recomputed


def _count(run: Any, key: str) -> int:
    return int(run.query("update: windows recomputed", f"SELECT COUNT(*) AS n FROM {run.name(key)}")["n"][0])


def _span(values: list[int]) -> str:
    if not values:
        return "none"
    arr = np.asarray(values)
    return f"{int(arr.min())}..{int(arr.max())} ({len(values)})"
