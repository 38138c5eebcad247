"""Compare two stored models by their CSR R² (Kan, Robotti and Shanken 2013): ``fmduck compare DB A B``.

Both runs must be full-sample beta runs (two-pass design, no characteristics) on the same test assets
and periods, with the same CSR weighting and intercept. Their inputs are read again from the source
tables named in the stored specs (the same database): the balanced block of excess returns R and
each model's factors. :func:`fmduck.krs_compare.compare` gives the tests (nested: r2_diff, r2_equal,
wald_extra; non-nested: r2_diff, sdf_equal, r2_equal_sdf, both_correct, r2_equal_both_correct,
r2_equal_normal), stored in ``fmduck.comparisons`` (one row per test, keyed by the two runs' names
and ids) and printed as a small table.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from fmduck import store, templates
from fmduck.engines import connect
from fmduck.errors import FmduckError, SpecError
from fmduck.inference import automatic_lag
from fmduck.run import Run

SCHEMA = {"run_a": pl.Utf8, "run_b": pl.Utf8, "run_id_a": pl.Utf8, "run_id_b": pl.Utf8, "created_at": pl.Datetime("us"),
          "weighting": pl.Utf8, "test": pl.Utf8, "statistic": pl.Float64, "std_error": pl.Float64, "df1": pl.Int64,
          "df2": pl.Int64, "p_value": pl.Float64, "note": pl.Utf8}
SAME = ("returns", "asset", "period", "ret", "rf", "freq", "csr", "intercept", "min_obs")


def _spec(run: Any) -> Any:
    from fmduck.spec import Spec

    data = dict(run.spec)
    if run.run.get("design") != "twopass" or data.get("window") or data.get("chars") or not data.get("factor_cols"):
        raise SpecError(f"run {run.name!r} is not a full-sample beta run without characteristics; the KRS comparison "
                        "needs constant betas")
    if str(data.get("returns", "")).startswith("<"):
        raise SpecError(f"run {run.name!r} was fitted on a DataFrame; compare reads the inputs again from tables")
    return Spec.from_dict({**data, "replace": False, "grid": None})


def _block(engine: Any, spec: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(pidx, R T×N, F T×K, assets) of a spec's balanced block, read through its own plan."""
    from fmduck import designs
    from fmduck.designs import twopass
    from fmduck.passes import csr

    with Run(spec, engine) as run:
        cat = designs.get("twopass").catalog(spec, engine)
        plan, setup = twopass.build_shared(run, cat, spec)
        factors = [{"ident": templates.ident(c), "alias": f"f{j}"} for j, c in enumerate(spec.factor_cols)]
        plan.add("factor_series", "factor series", templates.source(
            "factor_series", plan.dialect, relation=cat.factors.sql, key=cat.factor_key.sql("f"),
            calendar=plan.name("calendar"), factors=factors),
            then=lambda state, frame: state.__setitem__("factor_series", frame))
        csr.add(plan, spec, setup)
        state = plan.execute(run)
        reason = csr.block_reason(state)
        if reason:
            raise FmduckError(f"run {spec.name!r}: {reason}")
        wide = state["csr_block"].pivot(on="asset", index="pidx", values="y").sort("pidx")
        assets = sorted(c for c in wide.columns if c != "pidx")
        F = (wide.select("pidx").join(state["factor_series"], on="pidx", how="left")
             .select([f"f{j}" for j in range(len(spec.factor_cols))]).to_numpy().astype(np.float64))
        return wide["pidx"].to_numpy(), wide.select(assets).to_numpy().astype(np.float64), F, assets


def compare(database: Any, run_a: str, run_b: str, *, schema: str = "fmduck", write: bool = True) -> pl.DataFrame:
    """The KRS comparison of two stored runs (see the module docstring); stored unless ``write=False``."""
    from fmduck import krs_compare

    engine = connect(database)
    a, b = store.load_run(engine, run_a, schema), store.load_run(engine, run_b, schema)
    spec_a, spec_b = _spec(a), _spec(b)
    differ = [k for k in SAME if getattr(spec_a, k) != getattr(spec_b, k)]
    if differ:
        raise SpecError(f"runs {run_a!r} and {run_b!r} differ in {', '.join(differ)}: the comparison needs the same "
                        "test assets, periods, weighting and intercept")
    pidx_a, R_a, F_a, assets_a = _block(engine, spec_a)
    pidx_b, R_b, F_b, assets_b = _block(engine, spec_b)
    if assets_a != assets_b or not np.array_equal(pidx_a, pidx_b) or not np.array_equal(R_a, R_b):
        raise FmduckError(f"runs {run_a!r} and {run_b!r} do not price the same block of test assets and periods "
                          f"(N = {len(assets_a)} vs {len(assets_b)}, T = {len(pidx_a)} vs {len(pidx_b)})")
    t = R_a.shape[0]
    lags = automatic_lag(t, spec_a.lag_rule) if spec_a.nw_lags == "auto" else int(spec_a.nw_lags)
    rows = krs_compare.compare(R_a, F_a, spec_a.factor_cols, F_b, spec_b.factor_cols, weighting=spec_a.csr,
                               intercept=spec_a.intercept, lags=min(lags, t - 1))
    now = datetime.now(UTC).replace(tzinfo=None)
    frame = pl.DataFrame([{"run_a": run_a, "run_b": run_b, "run_id_a": a.run["run_id"], "run_id_b": b.run["run_id"],
                           "created_at": now, "weighting": spec_a.csr, **{k: r.get(k) for k in
                           ("test", "statistic", "std_error", "df1", "df2", "p_value", "note")}} for r in rows],
                         schema=SCHEMA)
    if write:
        with engine.transaction():
            store.ensure_schema(engine, schema)
            engine.execute(templates.render("results/delete_comparison", engine.dialect,
                                            schema=templates.ident(schema)),
                           {"run_a": run_a, "run_b": run_b})
            engine.insert(f"{templates.ident(schema)}.{templates.ident('comparisons')}", frame)
    return frame


def format_table(frame: pl.DataFrame) -> str:
    """The comparison as a small text table (one line per test, its note below)."""
    from fmduck.formatting import fmt

    head = frame.row(0, named=True)
    lines = [f"Kan-Robotti-Shanken (2013) model comparison: {head['run_a']} vs {head['run_b']} "
             f"({head['weighting'].upper()} CSR)",
             f"{'test':<24}{'statistic':>12}{'std. err.':>12}{'df':>8}{'p-value':>10}", "-" * 66]
    for r in frame.iter_rows(named=True):
        df = "" if r["df1"] is None else str(r["df1"]) + (f", {r['df2']}" if r["df2"] is not None else "")
        lines.append(f"{r['test']:<24}{fmt(r['statistic'], 4, missing='.'):>12}{fmt(r['std_error'], 4, missing=''):>12}"
                     f"{df:>8}{fmt(r['p_value'], 4, missing='.'):>10}")
    lines.append("-" * 66)
    lines += [f"{r['test']}: {r['note']}" for r in frame.iter_rows(named=True)]
    return "\n".join(lines)


def cmd_compare(args: argparse.Namespace) -> str:
    return format_table(compare(args.database, args.run_a, args.run_b, schema=args.schema, write=not args.no_write))
