"""The two-pass design (the default): pass 1 betas, pass 2 cross sections, pass 3 inference.

:func:`build` renders the whole run before any data is read — input checks, profile tables (whose
means shift the moments), the calendar, pass 1, pass 2, pricing errors — as a :class:`fmduck.plan.Plan`;
:meth:`TwoPass.fit` executes it and finishes in Python with what is small: λ_t (pass 3), the tests of
the model, the run record. A specification grid (``grid``) shares the same checks, calendar and pass 1
(:mod:`fmduck.designs.grid`). The design object itself is in :mod:`fmduck.designs.twopass_design`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import polars as pl

from fmduck import checks, fingerprints, inputs, pass2_options, prepare, templates
from fmduck.covariance import InferenceOptions
from fmduck.designs import RunOutput
from fmduck.errors import EstimationError, SpecError
from fmduck.inference import LAG_RULES, NW_DIVISORS, factor_covariance
from fmduck.moments import RowSource, Variable
from fmduck.passes import coverage, csr, pass1, pass2, pass3, pricing
from fmduck.plan import Plan, State
from fmduck.store import TableCopy


@dataclass
class Setup:
    """The rendered pieces of a two-pass run that its finish needs."""

    catalog: inputs.Catalog
    variables: inputs.Variables
    src: RowSource
    first_pass: str | None = None
    pass2: pass2.Pass2 | None = None
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)  # the values ``src`` binds (a plan's ``params``)


# ====================================================================== validation
def validate_spec(spec: Any) -> None:
    """The two-pass options that cannot work together (pure)."""
    if not spec.factor_cols and not spec.chars:
        raise SpecError("nothing to estimate: give factor columns (beta-based FM) and/or characteristics")
    overlap = set(spec.factor_cols) & set(spec.chars)
    if overlap:
        raise SpecError(f"a name cannot be both a factor and a characteristic: {', '.join(sorted(overlap))}")
    if "const" in spec.factor_cols + spec.chars:
        raise SpecError("'const' is reserved for the intercept term; rename that column")
    k = len(spec.factor_cols)
    if spec.window is not None:
        if not spec.factor_cols:
            raise SpecError("a rolling window (--window) needs factor columns: it is a first-pass option")
        if spec.window < k + 2:
            raise SpecError(f"window {spec.window} is too short for {k} factors and an intercept "
                            f"(needs at least {k + 2} periods)")
    if spec.min_obs is not None:
        if spec.min_obs < k + 2:
            raise SpecError(f"min_obs {spec.min_obs} leaves no residual degree of freedom for {k} factors and an "
                            f"intercept (needs >= {k + 2})")
        if spec.window is not None and spec.min_obs > spec.window:
            raise SpecError(f"min_obs {spec.min_obs} exceeds the window length {spec.window}")
    if spec.window is not None and spec.beta_lag < 1:
        raise SpecError("beta_lag must be at least 1 with rolling betas, or pass 2 would look ahead")
    if spec.beta_max_age is not None:
        if spec.window is None:
            raise SpecError("--beta-max-age applies to rolling betas (--window)")
        if spec.beta_max_age < spec.beta_lag:
            raise SpecError(f"beta_max_age {spec.beta_max_age} is below beta_lag {spec.beta_lag}: the most recent "
                            "beta must be at least beta_lag periods old")
    if spec.nw_divisor not in NW_DIVISORS:
        raise SpecError(f"nw_divisor must be one of {', '.join(NW_DIVISORS)}, got {spec.nw_divisor!r}")
    if spec.lag_rule not in LAG_RULES:
        raise SpecError(f"lag_rule must be one of {', '.join(LAG_RULES)}, got {spec.lag_rule!r}")
    if spec.first_pass == "summary" and not spec.rolling:
        raise SpecError("--first-pass summary averages rolling betas per asset; with full-sample betas use full")
    prepare.validate_spec_options(spec)


# ====================================================================== plan
def base_source(plan: Plan, spec: Any, cat: inputs.Catalog) -> tuple[RowSource, dict[str, Any], list[str]]:
    """The row source every query of the run reads (the prepared panel when characteristics are prepared),
    its bound values (set on ``plan``: every step added after binds them) and the notes."""
    returns_sql, params, notes = cat.returns.sql, {}, []
    built = prepare.build(spec, cat.returns, plan.dialect)
    if built is not None:
        returns_sql, params, steps = f"({built[0]})", built[1], built[2]
        notes.append(prepare.note(steps))
    plan.params.update(params)
    src = RowSource(
        dialect=plan.dialect, returns=returns_sql, asset=templates.ident(spec.asset),
        panel_key=cat.panel_key.sql("r"), calendar=plan.name("calendar"),
        factors=cat.factors.sql if cat.factors is not None else None,
        factor_key=cat.factor_key.sql("f") if cat.factor_key is not None else None,
    )
    return src, params, notes


def build_shared(run: Any, cat: inputs.Catalog, spec: Any) -> tuple[Plan, Setup]:
    """Checks, profiles, calendar and pass 1: the part of a plan that a grid's members share."""
    plan = Plan(run.dialect, run.name)
    plan.calendar_kind = cat.calendar_key.kind
    checks.add(plan, run, spec, cat)
    plan.add("calendar", "calendar", templates.source("calendar", plan.dialect, relation=cat.calendar_relation.sql,
                                                      key=cat.calendar_key.sql("r")), kind="create")
    checks.alignment(plan, run, spec, cat)
    fingerprints.add(plan, cat)
    src, prep_params, notes = base_source(plan, spec, cat)
    variables = inputs.variables(spec, cat, plan.name("profile_returns"),
                                 plan.name("profile_factors") if cat.factors is not None else None)
    scaled = {s["name"] for s in prepare.plan(spec) if s["scale"]}
    if scaled:  # standardized and ranked values are centred already
        variables = inputs.Variables(variables.y, variables.factors,
                                     [Variable(v.name, v.expr, 0.0 if v.name in scaled else v.shift)
                                      for v in variables.chars])
    setup = Setup(cat, variables, src, notes=notes, params=prep_params)
    if spec.beta_based:
        setup.first_pass = pass1.add(plan, spec, src, variables, cat.returns.label)
    return plan, setup


def regressors_of(spec: Any, setup: Setup) -> list[Variable]:
    """The pass-2 regressors: the betas of pass 1, then the characteristics of ``spec``."""
    betas = pass2.betas(spec, setup.first_pass) if setup.first_pass else []
    return betas + [v for v in setup.variables.chars if v.name in spec.chars]


def asset_cols(spec: Any, cat: inputs.Catalog) -> Any:
    """``asset_cols(expr)``: the stored asset columns of an asset value (text, and asset_int for integer ids)."""
    return partial(inputs.asset_columns, cat.returns, spec.asset)


def build_tail(plan: Plan, spec: Any, setup: Setup, *, pricing_errors: bool = True) -> None:
    """The factor series (Shanken), the pricing errors (unless an update merges its own) and the pass-1
    failures."""
    cat = setup.catalog
    if spec.beta_based:
        factors = [{"ident": templates.ident(c), "alias": f"f{j}"} for j, c in enumerate(spec.factor_cols)]
        plan.add("factor_series", "factor series (Shanken)",
                 templates.source("factor_series", plan.dialect, relation=cat.factors.sql, key=cat.factor_key.sql("f"),
                                  calendar=plan.name("calendar"), factors=factors),
                 then=lambda state, frame: state.__setitem__("factor_series", frame))
    assets = asset_cols(spec, cat)
    if pricing_errors:
        src2 = pass2.source(spec, setup.src, cat, setup.first_pass)
        pricing.add(plan, spec, src2, setup.pass2.regressors, setup.variables.y, setup.pass2.table, assets,
                    pass2.params(spec))
    if setup.first_pass:
        plan.add("first_pass_failures", "pass 1: regressions without an estimate",
                 templates.source("read_failures", plan.dialect, table=setup.first_pass,
                                  calendar=plan.name("calendar") if spec.rolling else None,
                                  asset=assets("t.asset"),
                                  period=inputs.period_columns(plan.calendar_kind, "c.period") if spec.rolling
                                  else inputs.period_columns("text", "CAST(NULL AS VARCHAR)")),
                 then=lambda state, frame: state.__setitem__("first_pass_failures", frame))


def build(run: Any, cat: inputs.Catalog, spec: Any | None = None) -> tuple[Plan, Setup]:
    """The plan of a two-pass run and what its finish needs (nothing is executed)."""
    spec = spec or run.spec
    plan, setup = build_shared(run, cat, spec)
    label = cat.returns.label
    regressors = regressors_of(spec, setup)
    options = options_check(plan, spec, setup, regressors)
    y = options.variables[-1]
    setup.pass2 = pass2.add(plan, spec, options.src, options.variables[:-1], y, label)
    setup.pass2 = pass2.Pass2(options.src, regressors, setup.pass2.table)
    build_tail(plan, spec, setup)
    coverage.add(plan, spec, setup)
    if csr.not_applicable(spec) is None:
        csr.add(plan, spec, setup)
    return plan, setup


def options_check(plan: Plan, spec: Any, setup: Setup, regressors: list[Variable] | None = None
                  ) -> pass2_options.Pass2Options:
    """The pass-2 rows and variables under --weights / --absorb, and the check of their rows."""
    cat = setup.catalog
    regressors = regressors if regressors is not None else regressors_of(spec, setup)
    src2 = pass2.source(spec, setup.src, cat, setup.first_pass)
    options = pass2_options.apply(spec, cat, src2, [*regressors, setup.variables.y], plan.dialect)
    if options.check is not None:
        label = cat.returns.label
        plan.add("pass2_check", "check: --weights / --absorb rows", options.check,
                 then=lambda state, frame: _options_check(state, frame, spec, label))
    setup.notes += options.notes
    return options


def build_member(run: Any, cat: inputs.Catalog, member: Any, shared: Setup, lambdas_table: str) -> tuple[Plan, Setup]:
    """The plan of one grid member after the shared scan: its λ_t (solved in Python, uploaded as
    ``lambdas_table``) read back, then the tail (pricing errors) for its regressors."""
    plan = Plan(run.dialect, run.name, shared.params)
    plan.calendar_kind = cat.calendar_key.kind
    setup = Setup(cat, shared.variables, shared.src, shared.first_pass, notes=list(shared.notes), params=shared.params)
    regressors = regressors_of(member, setup)
    setup.pass2 = pass2.Pass2(pass2.source(member, setup.src, cat, setup.first_pass), regressors, lambdas_table)
    pass2.add_read(plan, member, lambdas_table, len(member.terms), cat.returns.label, regressors)
    build_tail(plan, member, setup)
    coverage.add(plan, member, setup)
    return plan, setup


def _options_check(state: State, frame: pl.DataFrame, spec: Any, label: str) -> None:
    skipped, notes = pass2_options.read_check(spec, label, frame)
    state["options_skipped"], state["options_notes"] = skipped, notes


# ====================================================================== finish
def finish(run: Any, spec: Any, setup: Setup, state: State) -> RunOutput:
    """Pass 3, tests and the run record from what the plan left in ``state`` and the engine."""
    from fmduck import modeltests

    lambdas = state["lambdas"]
    sigma_f = None
    if spec.beta_based:
        series = state["factor_series"]
        aligned = lambdas.select("period_index").join(series, left_on="period_index", right_on="pidx", how="left")
        f = aligned.select([f"f{j}" for j in range(len(spec.factor_cols))]).drop_nulls().to_numpy().astype(np.float64)
        if f.shape[0] < 2:
            raise EstimationError("Shanken correction: fewer than 2 periods of factor values")
        sigma_f = factor_covariance(f)
    run.say("pass 3: Fama-MacBeth, Newey-West" + (" and Shanken" if spec.beta_based else "") + " inference")
    estimates, conventions, covs = pass3.infer(lambdas, spec.terms, spec.factor_cols, sigma_f,
                                               InferenceOptions.of(spec))
    pricing_errors = state["pricing_errors"]
    run.say("tests of the model")
    tests = modeltests.model_tests(run, spec, setup, state, covs)
    extra = {"tests": tests}
    reason = csr.not_applicable(spec)
    if reason is None:
        try:
            res = state.get("csr_result") or csr.fit(spec, state)
        except EstimationError as exc:
            tests = pl.concat([tests, pl.DataFrame(csr.skipped_rows(str(exc).split(": ", 1)[-1]), schema=tests.schema)])
        else:
            n_obs = state["lambdas"]
            estimates = pl.concat([estimates, csr.estimate_rows(res, spec.terms, n_obs.height, float(n_obs["n"].mean()),
                                                                float(n_obs["r2"].mean()))], how="vertical_relaxed")
            tests = pl.concat([tests, pl.DataFrame(csr.test_rows(res), schema=tests.schema)])
            extra["covariance_prices"] = csr.prices(res, spec.terms)
            conventions += "\n" + res.conventions.splitlines()[0] + " See fmduck.krs.CONVENTIONS."
    else:
        tests = pl.concat([tests, pl.DataFrame(csr.skipped_rows(reason), schema=tests.schema)])
    extra["tests"] = tests
    notes = [conventions, *setup.notes, *state.get("options_notes", [])]
    covered, coverage_skipped, coverage_warnings = coverage.summarize(spec, state)
    skipped = [state.get("first_pass_failures"), state.get("options_skipped"), state.get("cross_section_skipped"),
               _coverage_frame(coverage_skipped)]
    skipped = [_skipped_frame(s, "first_pass") if s is not None and "pass" not in s.columns else s
               for s in skipped if s is not None and s.height]
    pass2_rows = int(lambdas["n"].sum())
    first_pass, layout = None, "none"
    if setup.first_pass and spec.first_pass != "none":
        layout = spec.first_pass
        first_pass = first_pass_copy(run, spec, setup, summary=layout == "summary")
    return RunOutput(
        lambdas=lambdas, estimates=estimates, pricing_errors=pricing_errors,
        skipped=pl.concat(skipped, how="vertical_relaxed") if skipped else empty_skipped(),
        conventions="\n".join(n for n in notes if n),
        fingerprint=fingerprint(setup.catalog, state, lambdas, pass2_rows=pass2_rows,
                                n_assets=int(pricing_errors.height)),
        n_periods=lambdas.height, avg_n=float(lambdas["n"].mean()), avg_r2=float(lambdas["r2"].mean()),
        extra=extra, first_pass=first_pass, first_pass_layout=layout,
        first_pass_terms=["const", *spec.factor_cols] if setup.first_pass else [],
        inference_inputs={"sigma_f": sigma_f.tolist() if sigma_f is not None else None},
        coverage=covered, warnings=[*state.get("warnings", []), *coverage_warnings],
        fingerprints=fingerprints.frame(state),
    )


def first_pass_copy(run: Any, spec: Any, setup: Setup, *, summary: bool = False) -> TableCopy:
    """The usable first-pass regressions as flat rows (typed keys), for the store or the results object."""
    cat = setup.catalog
    kind = cat.calendar_key.kind
    rolling = spec.rolling and not summary
    source = templates.render(
        "read_first_pass", run.dialect, table=setup.first_pass, calendar=run.name("calendar") if spec.rolling else None,
        asset=inputs.asset_columns(cat.returns, spec.asset, "t.asset"),
        period=inputs.period_columns(kind, "c.period" if rolling else "NULL"),
        n_terms=len(spec.factor_cols) + 1, summary=summary)
    return TableCopy(run.engine, source, {}, len(spec.factor_cols) + 1)


def fingerprint(cat: inputs.Catalog, state: State, lambdas: pl.DataFrame, **counts: Any) -> dict[str, Any]:
    """The input fingerprint stored with a run: sources, row counts, period range."""
    periods = lambdas["period"]
    return {
        "returns": cat.returns.label, "returns_rows": state.get("returns_rows"),
        "factors": cat.factors.label if cat.factors is not None else None, **counts,
        "first_period": periods.min(), "last_period": periods.max(),
    }


SKIPPED_SCHEMA = {"pass": pl.Utf8, "asset": pl.Utf8, "asset_int": pl.Int64, "period": pl.Utf8, "period_date": pl.Date,
                  "period_ts": pl.Datetime("us"), "period_int": pl.Int64, "reason": pl.Utf8, "nobs": pl.Int64}


def empty_skipped() -> pl.DataFrame:
    return pl.DataFrame(schema=SKIPPED_SCHEMA)


def _coverage_frame(frame: pl.DataFrame) -> pl.DataFrame | None:
    if frame.height == 0:
        return None
    return frame.select("pass", *[pl.lit(None, SKIPPED_SCHEMA[c]).alias(c) for c in
                                  ("asset", "asset_int", "period", "period_date", "period_ts", "period_int")],
                        "reason", "nobs")


def _skipped_frame(frame: pl.DataFrame, pass_name: str) -> pl.DataFrame:
    return frame.select(pl.lit(pass_name).alias("pass"), *[c for c in frame.columns])
