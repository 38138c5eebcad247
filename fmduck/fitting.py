"""The fit skeleton every design runs in: engines, write checks, the run, the store.

1. the results engine is checked for writing (privileges, a foreign table, a read-only file) before
   anything is computed;
2. the design fits inside a :class:`fmduck.run.Run` (its scratch tables dropped however it ends);
3. the run record is assembled (identity, spec, conventions, input fingerprint, the SQL that ran);
4. the run is stored in one transaction — or, with ``write=False``, its first pass is fetched so the
   results object stands alone.

``--results`` (another database for the results) lives here, so every design has it.
"""

from __future__ import annotations

import time
import warnings
from datetime import UTC, datetime
from typing import Any

from fmduck import designs, store
from fmduck.designs import RunOutput
from fmduck.engines import connect, require_database
from fmduck.errors import FmduckWarning
from fmduck.results import FamaMacBethResults
from fmduck.run import Progress, Run

SCHEMA_VERSION = store.SCHEMA_VERSION


def record(run: Run, out: RunOutput, spec: Any) -> dict[str, Any]:
    """The ``fmduck.runs`` row of a run."""
    from fmduck import __version__

    return {
        "run_name": spec.name, "run_id": run.run_id, "spec": spec.to_dict(),
        "created_at": datetime.now(UTC).replace(tzinfo=None), "schema_version": SCHEMA_VERSION,
        "fmduck_version": __version__, "engine": run.dialect, "design": spec.design,
        "conventions": out.conventions, "input_fingerprint": out.fingerprint,
        "sql_text": ";\n\n".join(f"-- {label}\n{sql}" for label, sql in
                                 (out.statements if out.statements is not None else run.statements)),
        "n_periods": int(out.n_periods), "avg_n": float(out.avg_n), "avg_r2": float(out.avg_r2),
        "elapsed_seconds": run.elapsed(), "first_pass_layout": out.first_pass_layout,
        "inference_inputs": out.inference_inputs, "coverage": out.coverage, "warnings": list(out.warnings),
        "first_pass_terms": list(out.first_pass_terms),
    }


def assemble(run: Run, out: RunOutput, spec: Any, first_pass: Any = None) -> FamaMacBethResults:
    extra = dict(out.extra)
    if out.fingerprints is not None:
        extra["input_fingerprints"] = out.fingerprints
    cls = designs.results_class(spec.design) or FamaMacBethResults
    res = cls(record(run, out, spec), lambdas=out.lambdas, estimates=out.estimates,
              pricing_errors=out.pricing_errors, skipped=out.skipped, extra=extra, first_pass=first_pass)
    for warning in out.warnings:  # also stored with the run and printed in its summary
        run.say(f"warning: {warning}")
        warnings.warn(warning, FmduckWarning, stacklevel=5)  # at the caller of fit()
    return res


def fit(spec: Any, database: Any, *, results: Any = None, write: bool = True, progress: Progress | None = None,
        log: list | None = None, **store_options: Any) -> Any:
    """Fit ``spec`` on ``database`` with its design; store it (unless ``write=False``) in ``results``
    (default: the same database). A design may return several runs (a grid): a list of results then.
    ``log``: a list that receives the (label, SQL) of every statement the run sent."""
    design = designs.get(spec.design)
    require_database(database, inputs={"returns": spec.returns, "factors": spec.factors})  # not a new empty file
    engine = connect(database)
    results_engine = engine if results is None else connect(results)
    if write:
        store.check_writable(results_engine, spec.schema, design.run_names(spec), spec.replace)
    with Run(spec, engine, results=results_engine, progress=progress) as run:
        outputs = design.fit(run)
        members = outputs if isinstance(outputs, list) else [(spec, outputs)]
        done = []
        for member, out in members:
            done.append(_finish(run, member, out, results_engine, write, store_options))
        if log is not None:
            log.extend(run.statements)
    return done if isinstance(outputs, list) else done[0]


def _finish(run: Run, spec: Any, out: RunOutput, results_engine: Any, write: bool,
            store_options: dict[str, Any]) -> FamaMacBethResults:
    copy = out.first_pass if isinstance(out.first_pass, store.TableCopy) else None
    if not write:
        held = _fetch(copy) if copy is not None else out.first_pass
        return assemble(run, out, spec, held)
    results = assemble(run, out, spec)
    results.run.update(version=store_options.get("version", 1), parent_run_id=store_options.get("parent_run_id"),
                       recomputed=store_options.get("recomputed"))
    run.say(f"writing run {spec.name!r} to schema {spec.schema!r}")
    started = time.perf_counter()
    store.write(results_engine, spec.schema, results, replace=spec.replace, first_pass=copy,
                frame_first_pass=out.first_pass if copy is None else None, **store_options)
    run.say(f"written in {time.perf_counter() - started:.2f}s")
    return as_written(results, results_engine, spec.schema, out)


def as_written(results: FamaMacBethResults, engine: Any, schema: str, out: RunOutput) -> FamaMacBethResults:
    """The results of a run just stored, without reading them back: the first pass (if the run has one)
    read from the store when it is used."""
    windows = (store.windows_reader(engine, schema, results.name, len(out.first_pass_terms))
               if out.first_pass is not None else None)
    return type(results)(results.run, lambdas=results.lambdas, estimates=results.estimates,
                         pricing_errors=results.pricing_errors, skipped=results.skipped, extra=results.extra,
                         first_pass=windows)


def _fetch(copy: store.TableCopy) -> Any:
    import polars as pl

    frames = list(copy.frames())
    return pl.concat(frames, how="vertical_relaxed") if frames else None
