"""``fmduck update DB RUN [--as NEW]``: bring a stored run up to date with its inputs, recomputing only what changed.

1. The stored run gives its spec and the fingerprints of its inputs per period (``fmduck.input_fingerprints``).
2. The same fingerprints are taken of the inputs now (SQL, one GROUP BY per input; once: the update's plan
   reuses them and stores them with the new version) and compared: nothing changed -> nothing is done
   (None, and the CLI says so).
3. A rolling-beta or characteristic two-pass run is updated incrementally (fmduck/designs/twopass_update.py):
   the windows and cross-sections that read a changed period, then pass 3 and the tests over all periods;
   pricing errors and coverage over the appended periods only, merged with the stored run's, when only
   periods after its last one were added — else over all periods. Everything else is recomputed in full,
   and the record says why: full-sample betas change everywhere; a grid, fm1973's cohorts, pooled and
   mimicking are full-sample by nature; a calendar whose stored periods moved shifts every index; results
   stored in another database than the inputs.
4. The new version replaces the run in one transaction (or is stored under ``--as NEW``; the old run then
   stays as it was); ``runs`` and ``run_history`` record its version, the parent run_id and what was
   recomputed (``fmduck show RUN --history``).
"""

from __future__ import annotations

from typing import Any

from fmduck import designs, fingerprints, fitting, store, templates
from fmduck.engines import connect, require_database
from fmduck.errors import FmduckError, SpecError
from fmduck.run import Progress, Run


def current_fingerprints(spec: Any, engine: Any) -> Any:
    """The fingerprints of ``spec``'s inputs now (SQL only)."""
    from fmduck import inputs
    from fmduck.plan import Plan

    with Run(spec, engine) as run:
        cat = inputs.catalog(spec, engine)
        plan = Plan(run.dialect, run.name)
        plan.add("calendar", "calendar", templates.source("calendar", plan.dialect, relation=cat.calendar_relation.sql,
                                                          key=cat.calendar_key.sql("r")), kind="create")
        fingerprints.add(plan, cat)
        return fingerprints.frame(plan.execute(run))


def update(database: Any, name: str, *, schema: str = "fmduck", new_name: str | None = None, results: Any = None,
           progress: Progress | None = None) -> Any:
    """The updated run (stored), or None when nothing changed in its inputs."""
    from fmduck.spec import Spec

    say = progress or (lambda _m: None)
    require_database(database)
    engine = connect(database)
    results_engine = engine if results is None else connect(results)
    old = store.load_run(results_engine, name, schema, extra=("input_fingerprints",), first_pass=False)
    stored = old.extra.get("input_fingerprints")
    if stored is None or stored.height == 0:
        raise FmduckError(f"run {name!r} has no input fingerprints (stored by an older fmduck): run it again to "
                          "make it updatable")
    data = dict(old.spec)
    if any(str(data.get(k, "")).startswith("<") for k in ("returns", "factors")):
        raise SpecError(f"run {name!r} was fitted on a DataFrame: update reads its inputs again from tables or files")
    renamed = new_name is not None and new_name != name  # a new run: version 1, its parent the old run
    spec = Spec.from_dict({**data, "name": new_name or name, "replace": not renamed})
    if renamed:
        store.check_writable(results_engine, schema, new_name)  # never replaces a run stored under that name
    say("fingerprints of the inputs now")
    now = current_fingerprints(spec, engine)
    changes = fingerprints.diff(stored.drop("run_name", "run_id", "period_index"), now.drop("period_index"))
    if changes.none:
        return None
    version = 1 if renamed else int(old.run.get("version") or 1) + 1
    options = {"version": version, "parent_run_id": old.run["run_id"]}
    design = designs.get(spec.design)
    reason = _full_reason(design, spec, results_engine is not engine)
    if reason is None:
        from fmduck.designs import twopass_update

        try:
            return _incremental(spec, engine, old, changes, now, schema, options, say)
        except twopass_update.NeedsFull as exc:
            reason = str(exc)
    say(f"recomputing in full: {reason}")
    recomputed = {"mode": "full", "reason": reason, **changes.describe()}
    return fitting.fit(spec, engine, results=None if results is None else results_engine, progress=progress,
                       recomputed=recomputed, **options)


def _full_reason(design: Any, spec: Any, elsewhere: bool) -> str | None:
    if design.name != "twopass" or design.update is not None:
        return (design.update or "").format(name=design.name) or f"design {design.name} is recomputed in full"
    if spec.grid:
        return "a specification grid is recomputed in full"
    if spec.beta_based and not spec.rolling:
        return "full-sample betas change everywhere when any period changes: pass 1 recomputed in full"
    if spec.csr != "ols":
        return "a GLS/WLS cross-sectional regression on mean returns changes with every period"
    if elsewhere:
        return "the results are stored in another database than the inputs"
    return None


def _incremental(spec: Any, engine: Any, old: Any, changes: Any, now: Any, schema: str, options: dict[str, Any],
                 say: Progress) -> Any:
    from fmduck.designs import twopass_update

    store.check_writable(engine, spec.schema, replace=True)
    with Run(spec, engine, progress=say) as run:
        cat = designs.get(spec.design).catalog(spec, engine)
        out, recomputed = twopass_update.fit(run, cat, old, changes, schema, now)
        replace_ends = recomputed.pop("replace_window_ends")
        results = fitting.assemble(run, out, spec)
        say(f"writing version {options['version']} of run {spec.name!r}")
        keep = {"from": old.name, "replace": replace_ends} if spec.beta_based else None
        store.write(engine, spec.schema, results, replace=True, first_pass=out.first_pass, keep_windows=keep,
                    recomputed=recomputed, **options)
    results.run.update(recomputed=recomputed, **options)
    return fitting.as_written(results, engine, spec.schema, out)
