"""The two-pass design object (``--design twopass``, the default): one run (:mod:`fmduck.designs.twopass`),
a specification grid (:mod:`fmduck.designs.grid`) or a GLS/WLS cross-sectional regression on mean returns
(``--csr gls|wls``, :mod:`fmduck.passes.csr`)."""

from __future__ import annotations

from typing import Any

from fmduck import grid_spec, inputs, templates
from fmduck.designs import Design, RunOutput, grid
from fmduck.designs.twopass import build, build_member, build_shared, finish, validate_spec
from fmduck.errors import SpecError
from fmduck.passes import csr
from fmduck.plan import Plan, State


def fit_weighted_csr(run: Any, cat: inputs.Catalog) -> RunOutput:
    """``csr = gls | wls``: pass 1 in the engine, the CSR of the balanced block in Python (its γ_t are
    the run's λ_t), then the pricing errors and pass 3 on them as usual."""
    spec = run.spec
    reason = csr.not_applicable(spec)
    if reason:
        raise SpecError(f"--csr {spec.csr}: {reason}")
    plan, setup = build_shared(run, cat, spec)
    factors = [{"ident": templates.ident(c), "alias": f"f{j}"} for j, c in enumerate(spec.factor_cols)]
    plan.add("factor_series", "factor series", templates.source(
        "factor_series", plan.dialect, relation=cat.factors.sql, key=cat.factor_key.sql("f"),
        calendar=plan.name("calendar"), factors=factors),
        then=lambda state, frame: state.__setitem__("factor_series", frame))
    csr.add(plan, spec, setup)
    state = plan.execute(run)
    run.say(f"pass 2: one {spec.csr.upper()} cross-sectional regression on mean returns (Kan-Robotti-Shanken)")
    res = csr.fit(spec, state)
    table = run.upload("lambdas", csr.gamma_table(res, spec, state["csr_pidx"], state["csr_R"]))
    mplan, msetup = build_member(run, cat, spec, setup, table)
    mstate = mplan.execute(run, State(dict(state.values)))
    mstate["csr_result"] = res
    return finish(run, spec, msetup, mstate)


# ====================================================================== the design
class TwoPass(Design):
    name = "twopass"
    help = "two-pass Fama-MacBeth: betas (full or rolling) and/or characteristics, per-period cross sections"
    update = None
    tables = {"covariance_prices": csr.PRICES_TABLE}

    def validate(self, spec: Any) -> None:
        validate_spec(spec)

    def plan(self, run: Any, catalog: Any) -> Plan:
        if run.spec.grid:
            return grid.build(run, catalog)[0]
        return build(run, catalog)[0]

    def run_names(self, spec: Any) -> list[str]:
        """One run per grid member (``name:member``), else the run."""
        return [m.name for m in grid_spec.member_specs(spec)] if spec.grid else [spec.name]

    def fit(self, run: Any) -> RunOutput | list:
        spec = run.spec
        run.say("checking inputs")
        cat = self.catalog(spec, run.engine)
        if spec.grid:
            return grid.fit(run, cat)
        if spec.csr != "ols":
            return fit_weighted_csr(run, cat)
        plan, setup = build(run, cat)
        state = plan.execute(run)
        return finish(run, spec, setup, state)


DESIGN = TwoPass()
