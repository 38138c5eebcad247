"""An incremental update of a stored two-pass run (rolling betas or characteristics only).

Given what changed in the inputs since the run (:class:`fmduck.fingerprints.Changes`, period keys) and
the fingerprints of the inputs now (their calendar), the plan recomputes only what depends on it, inside
the engine:

- pass 1: the rolling windows whose W periods contain a changed period of the panel or the factors
  (the windows ending in [t, t + W − 1]) and those ending in a new calendar period; the rows read start
  W − 1 periods before the first of them;
- pass 2: the cross-sections of changed periods, of new calendar periods, of periods whose (lagged)
  betas were recomputed (windows ending in [t − beta_max_age, t − beta_lag]) and of periods whose
  lagged characteristics changed; the other λ_t are the stored ones, read back with the stored windows
  they join (``first_pass_windows``);
- pass 3 and the tests: over all λ_t (cheap, in Python).

Pricing errors and coverage depend on every period. An **append** — only new periods after the stored
run's last one, nothing stored changed or removed, the calendar only grown — leaves every stored period,
window, λ_t and residual as it was: then they are computed over the appended periods' rows only and
merged with the stored run's (pricing errors by the pairwise update of the per-asset moments,
:func:`fmduck.passes.pricing.combine`; coverage by adding the counts, :func:`fmduck.passes.coverage.appended`),
and pass 2 reads only the stored windows it joins. Otherwise (restated history, a deleted row, a new asset
in the middle) they are recomputed over every period, with the whole stored first pass; ``recomputed``
says which and why. The calendar must keep every stored period at its place (new periods after the
last one; removed ones only at the end): otherwise the caller recomputes everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from fmduck import checks, fingerprints, inputs, templates
from fmduck.designs import twopass
from fmduck.errors import FmduckError
from fmduck.moments import RowSource, solve_source
from fmduck.passes import coverage, pass1, pass2, pricing
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
    last: int = 0  # the stored run's last period index
    appended: bool = False  # only periods after ``last`` changed: pricing errors and coverage are merged
    why: str = ""  # why not, when not


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
    new_periods = set(range(last + 1, t + 1))  # no stored λ_t or window: always computed
    windows: set[int] = set()
    if spec.rolling:
        for p in changed:
            windows.update(range(p, min(p + spec.window - 1, t) + 1))
        windows.update(new_periods)
    periods = set(panel) | (factor if rf_in_factors or spec.rolling else set()) | new_periods
    if spec.rolling:
        oldest = spec.beta_max_age or spec.beta_lag
        for e in windows:
            periods.update(q for q in range(e + spec.beta_lag, e + oldest + 1) if q <= t)
    elif spec.beta_based:
        raise NeedsFull("full-sample betas change everywhere when any period changes: pass 1 recomputed in full")
    if spec.chars and spec.char_lag:
        periods.update(p + spec.char_lag for p in panel if p + spec.char_lag <= t)
    history = any(changes.changed.values()) or any(changes.removed.values()) or bool(removed)
    inside = not periods or min(periods) <= last or any(w <= last for w in windows)
    why = ("every period (stored history changed)" if history else "every period (changes inside the stored "
           "run's calendar)" if inside else "" if old.run.get("coverage") else "every period (no stored coverage)")
    return Affected(sorted(windows), sorted(periods), removed, t, last, not why, why)


def calendar_of(spec: Any, prints: pl.DataFrame) -> pl.DataFrame:
    """The calendar (period text, pidx) that the fingerprints ``prints`` were taken with: the periods of
    the relation that defines time (the factors, else the panel) have their calendar index."""
    source = "factors" if spec.factors is not None else "returns"
    return (prints.filter((pl.col("source") == source) & pl.col("period_index").is_not_null())
            .select("period", pl.col("period_index").alias("pidx")).unique().sort("pidx"))


def build(run: Any, cat: inputs.Catalog, old: Any, changes: fingerprints.Changes, schema: str,
          prints: pl.DataFrame) -> tuple[Plan, Any, Affected]:
    """The incremental plan (see the module docstring) and the affected sets, found from the calendar of
    the fingerprints ``prints`` (checked against the calendar the plan computes)."""
    spec = run.spec
    found = affected(spec, old, changes, calendar_of(spec, prints), cat.rf_in_factors)
    run.upload("affected_windows", pl.DataFrame({"pidx": found.windows}, schema={"pidx": pl.Int64}))
    run.upload("affected_periods", pl.DataFrame({"pidx": found.periods}, schema={"pidx": pl.Int64}))
    keys = sorted(p for p in changes.added.get("returns", set()) | changes.changed.get("returns", set())
                  if p is not None)
    run.upload("changed_keys", pl.DataFrame({"period": keys}, schema={"period": pl.Utf8}))
    plan = Plan(run.dialect, run.name)
    plan.calendar_kind = cat.calendar_key.kind
    plan.add("calendar", "calendar", templates.source("calendar", plan.dialect, relation=cat.calendar_relation.sql,
                                                      key=cat.calendar_key.sql("r")), kind="create")
    outside = prints.filter((pl.col("source") == "returns") & pl.col("period_index").is_null())["period"].to_list()
    _checks(plan, run, spec, cat, in_calendar=not set(keys) & set(outside))

    def same(_state: State, frame: pl.DataFrame) -> None:
        if affected(spec, old, changes, frame.sort("pidx"), cat.rf_in_factors) != found:
            raise NeedsFull("the inputs changed while the update read them")

    plan.add("affected", "update: the calendar the fingerprints were taken with",
             f"SELECT CAST(period AS VARCHAR) AS period, pidx FROM {plan.name('calendar')}", then=same)
    src, prep_params, notes = twopass.base_source(plan, spec, cat)
    variables = inputs.variables(spec, cat, plan.name("profile_returns"),
                                 plan.name("profile_factors") if cat.factors is not None else None)
    setup = twopass.Setup(cat, variables, src, notes=notes, params=prep_params)
    if found.appended:  # pass 2, pricing errors and coverage read the appended periods' rows only
        setup.src = _rows(plan, spec, cat, src, "rows_from")
        setup.params = {**setup.params, "rows_from": found.periods[0] - (spec.char_lag if spec.chars else 0)}
        plan.params.update(setup.params)
    if spec.beta_based:
        setup.first_pass = _first_pass(plan, spec, cat, src, variables, old, schema, found)
    regressors = twopass.regressors_of(spec, setup)
    options = twopass.options_check(plan, spec, setup, regressors)
    src2 = options.src.with_(periods=plan.name("affected_periods"))
    pass2.add(plan, spec, src2, options.variables[:-1], options.variables[-1], cat.returns.label, minimum=0)

    def combined(state: State, _frame: Any) -> None:
        _combine(run, spec, old, state)

    plan.check("lambdas_all", "update: the new lambda_t beside the stored ones", then=combined)
    setup.pass2 = pass2.Pass2(options.src, regressors, plan.name("lambdas_all"))
    twopass.build_tail(plan, spec, setup, pricing_errors=not found.appended)  # an append merges its own
    if found.appended:
        _appended_tail(plan, run, spec, setup, src, old, schema, found)
    else:
        coverage.add(plan, spec, setup)
    return plan, setup, found


def _checks(plan: Plan, run: Any, spec: Any, cat: inputs.Catalog, in_calendar: bool) -> None:
    """The input checks of a run, the repeated or NULL keys of the panel looked for in the periods whose
    fingerprint changed only (the others hold the rows the stored run checked; rows without a period are
    always looked at; ``in_calendar``: every changed period is in the calendar, found through it). The
    profiles stay whole: their typical sizes are the units check's."""
    rows = _rows_sql(plan, spec, cat, cat.returns.sql, keys=plan.name("changed_keys"), in_calendar=in_calendar)
    checks.add(plan, run, spec, cat, keys_rows=rows)


def _rows_sql(plan: Plan, spec: Any, cat: inputs.Catalog, returns: str, **options: Any) -> str:
    """The panel rows an update reads (``sql/update_rows.sql.j2``; ``options``: assets, keys, bound, ends)."""
    context = {"assets": None, "keys": None, "in_calendar": False, "bound": None, "ends": None, **options}
    return templates.source("update_rows", plan.dialect, returns=returns, asset=templates.ident(spec.asset),
                            key=cat.panel_key.sql("r"), key2=cat.panel_key.sql("r2"), calendar=plan.name("calendar"),
                            **context)


def _rows(plan: Plan, spec: Any, cat: inputs.Catalog, src: RowSource, bound: str | None, **options: Any) -> RowSource:
    """``src`` reading only the panel rows of the periods from pidx $``bound`` on (or of ``assets``)."""
    return src.with_(returns=f"({_rows_sql(plan, spec, cat, src.returns, bound=bound, **options)})")


def _appended_tail(plan: Plan, run: Any, spec: Any, setup: Any, full: RowSource, old: Any, schema: str,
                   found: Affected) -> None:
    """An append's pricing errors and coverage: over the appended periods' rows, for merging with the
    stored run's (:func:`_merge_appended`); the pricing errors of assets whose stored row cannot be merged
    solved again over all their periods."""
    cat = setup.catalog
    periods = plan.name("affected_periods")
    asset_cols = twopass.asset_cols(spec, cat)
    params = pass2.params(spec)
    src2 = pass2.source(spec, setup.src, cat, setup.first_pass).with_(periods=periods)

    def merge(state: State, frame: pl.DataFrame) -> None:
        state["pricing_errors"], redo = pricing.combine(old.pricing_errors, frame)
        state["pricing_redo_assets"] = redo
        if redo:
            run.upload("redo_assets", pl.DataFrame({"asset": redo}, schema={"asset": pl.Utf8}))

    def again(state: State) -> bool:
        return bool(state["pricing_redo_assets"])

    pricing.add_appended(plan, spec, src2, setup.pass2.regressors, setup.variables.y, setup.pass2.table,
                         asset_cols, params, then=merge)
    redo_src = _rows(plan, spec, cat, full, None, assets=plan.name("redo_assets"))
    betas = None
    if setup.first_pass:
        betas = _stored_windows(plan, spec, cat, schema, "first_pass_redo", "update: the windows of the assets "
                                "whose pricing errors are solved again", old, assets=plan.name("redo_assets"),
                                when=again)
    pricing.add(plan, spec, pass2.source(spec, redo_src, cat, betas), setup.pass2.regressors, setup.variables.y,
                setup.pass2.table, asset_cols, pass2.params(spec), key="pricing_redo", when=again)
    plan.check("pricing_merge", "update: pricing errors of the assets solved again", then=_merge_redo)
    if setup.first_pass:
        sql = templates.source("update_coverage_betas", plan.dialect, table=setup.first_pass,
                               schema=templates.ident(schema), asset=_stored_asset(spec, cat))
        plan.add("coverage_betas", "update: the first-pass rows the coverage reads", sql, kind="create",
                 params={"old_name": old.name, "first_end": _first_end(spec, found)})
        if spec.rolling and spec.chars and spec.char_lag:  # the coverage query also classifies lagged rows
            count = templates.source("update_count", plan.dialect, variables=_plain([*setup.variables.factors,
                                                                                        setup.variables.y]),
                                     src=setup.src.with_(periods=periods))
            plan.add("pass1_rows_appended", "update: the appended rows pass 1 can use", count,
                     then=lambda state, frame: state.__setitem__("pass1_rows_appended", int(frame["n"][0] or 0)))
    coverage.add_appended(plan, spec, setup, periods, plan.name("coverage_betas") if setup.first_pass else None)


def _plain(variables: list[Any]) -> list[dict[str, str]]:
    return [{"expr": templates.sql(v.expr), "alias": f"v{i}", "shift": "CAST(0 AS DOUBLE)"}
            for i, v in enumerate(variables)]


def _merge_redo(state: State, _frame: Any) -> None:
    redo = state.get("pricing_redo")
    wanted = state["pricing_redo_assets"]
    if not wanted:
        return
    if redo is None or set(redo["asset"].to_list()) != set(wanted):
        raise FmduckError("update: the pricing errors of the assets solved again are missing")
    merged = state["pricing_errors"]
    state["pricing_errors"] = pl.concat([merged, redo.select(merged.columns).cast(merged.schema)]).sort("asset")


def _merge_appended(spec: Any, old: Any, state: State, prints: pl.DataFrame) -> None:
    """The coverage of the whole panel: the stored run's counts and the appended periods' (see
    :func:`fmduck.passes.coverage.appended`); outside the calendar: counted from the fingerprints."""
    no_period = prints.filter((pl.col("source") == "returns") & pl.col("period_index").is_null())["n"].sum()
    frame = state["coverage_appended"]
    pass1 = None
    if spec.rolling:  # the coverage query's count, unless lagged rows were classified beside (counted apart)
        pass1 = state.get("pass1_rows_appended")
        if pass1 is None:
            pass1 = int(frame.filter(pl.col("category") == "pass1_rows")["n"].sum() or 0)
    state["coverage"] = coverage.appended(old.run["coverage"], frame, int(no_period or 0), pass1)


def _first_end(spec: Any, found: Affected) -> int:
    """The first window end the recomputed cross-sections can join (an append reads the stored ones from here)."""
    return found.periods[0] - (spec.beta_max_age or spec.beta_lag)


def _stored_asset(spec: Any, cat: inputs.Catalog) -> str:
    """The stored asset (text, and asset_int for integer ids; alias w) as the source's type."""
    relation = cat.returns
    if inputs.integer_asset(relation, spec.asset):
        return "w.asset_int"
    return f"CAST(w.asset AS {relation.columns[spec.asset]})"


def _stored_windows(plan: Plan, spec: Any, cat: inputs.Catalog, schema: str, key: str, label: str, old: Any, *,
                    bounded: bool = False, assets: str | None = None, when: Any = None,
                    params: dict[str, Any] | None = None) -> str:
    sql = templates.source("update_first_pass", plan.dialect, schema=templates.ident(schema),
                           asset=_stored_asset(spec, cat), new=plan.name("first_pass_new"),
                           windows=plan.name("affected_windows"), calendar=plan.name("calendar"),
                           n_terms=len(spec.factor_cols) + 1, bounded=bounded, assets=assets)
    plan.add(key, label, sql, kind="create", params={"old_name": old.name, **(params or {})}, when=when)
    return plan.name(key)


def _first_pass(plan: Plan, spec: Any, cat: inputs.Catalog, src: Any, variables: Any, old: Any, schema: str,
                found: Affected) -> str:
    """Pass 1 for the affected window ends, then the first-pass table pass 2 joins: the stored windows
    that stay (an append: only those from the first one the recomputed cross-sections can join) and the
    recomputed ones."""
    rows = src
    params = pass1.params(spec)
    if found.appended and found.windows:  # the rows of the recomputed windows only
        rows = _rows(plan, spec, cat, src, "window_rows_from", ends=plan.name("affected_windows"))
        params["window_rows_from"] = found.windows[0] - (spec.window - 1)
    solve = solve_source(plan.dialect, pass1.keys(spec), [*variables.factors, variables.y],
                         rows.with_(pidx_from=plan.name("affected_windows")), rolling=True, intercept=True, min_df=1)
    plan.add("first_pass_new", "update: pass 1 for the windows that read changed periods",
             f"SELECT s.* FROM ({solve}) AS s JOIN {plan.name('affected_windows')} AS a ON a.pidx = s.pidx",
             kind="create", params=params)
    bounds = {"first_end": _first_end(spec, found)} if found.appended else {}
    table = _stored_windows(plan, spec, cat, schema, "first_pass", "update: the first pass (stored windows and "
                            "recomputed ones)", old, bounded=found.appended, params=bounds)
    outcomes = plan.name("first_pass_new") if found.appended else table
    plan.add("first_pass_outcomes", "pass 1: outcomes", templates.source("outcomes", plan.dialect, table=outcomes),
             then=lambda state, frame: state.__setitem__("first_pass_outcomes", frame))
    return table


def _combine(run: Any, spec: Any, old: Any, state: State) -> None:
    """λ_t of all periods: the recomputed ones and the stored ones of the other periods (uploaded for the
    pricing errors and coverage; the state's ``lambdas`` and skipped cross-sections become the whole run's)."""
    found: Affected = state["affected"]
    redo = set(found.periods)
    keep = old.lambdas.filter(~pl.col("period_index").is_in(list(redo)) & (pl.col("period_index") <= found.calendar))
    new = state.get("lambdas")
    cols = ["period", "period_date", "period_ts", "period_int", "period_index", *spec.terms, "r2", "adj_r2", "n"]
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
    of every window (for the windows below min_obs; an append counts the recomputed windows only, see
    :func:`fmduck.passes.coverage.appended`)."""
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
    if outcomes is not None and kept and not found.appended:
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


def fit(run: Any, cat: inputs.Catalog, old: Any, changes: fingerprints.Changes, schema: str,
        prints: pl.DataFrame) -> tuple[Any, dict]:
    """(RunOutput, what was recomputed) of an incremental update; ``prints``: the fingerprints of the
    inputs now (taken once by the caller, stored with the new version)."""
    plan, setup, found = build(run, cat, old, changes, schema, prints)
    state = plan.execute(run, State({"fingerprints": [prints], "affected": found}))
    if setup.first_pass:
        _kept_failures(old, state)
    if found.appended:
        _merge_appended(run.spec, old, state, prints)
    out = twopass.finish(run, run.spec, setup, state)
    if setup.first_pass:
        out.first_pass = first_pass_copy(run, run.spec, setup)
    redo = state.get("pricing_redo_assets") or []
    solved = f" ({len(redo)} asset(s) solved again)" if redo else ""
    tail = f"the appended periods, merged with the stored run's{solved}" if found.appended else found.why
    recomputed = {"mode": "incremental", "windows": len(found.windows) and _count(run, "first_pass_new"),
                  "window_ends": _span(found.windows), "cross_sections": len(found.periods),
                  "periods": _span(found.periods), "removed_periods": len(found.removed),
                  "pricing_errors_and_coverage": tail, "replace_window_ends": replaced(state), **changes.describe()}
    return out, recomputed


def _count(run: Any, key: str) -> int:
    return int(run.query("update: windows recomputed", f"SELECT COUNT(*) AS n FROM {run.name(key)}")["n"][0])


def _span(values: list[int]) -> str:
    return f"{min(values)}..{max(values)} ({len(values)})" if values else "none"
