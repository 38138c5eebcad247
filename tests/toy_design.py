"""A toy design, written as a user of fmduck would write one: this module and a call to
``fmduck.designs.register(DESIGN)``, no other file touched (tests/test_toy_design.py).

The toy is the smallest Fama-MacBeth there is: λ_t is the cross-sectional mean of ``ret × toy_scale``
in period t (an intercept-only cross section, solved in the engine by the one OLS algorithm), its
mean and Fama-MacBeth / Newey-West standard errors from fmduck's covariance registry, plus an SE type
of its own (``toy_iid``: var(λ_t) with divisor T, over T; declared in ``se_types``), a
result table of its own (``toy_assets``: each asset's mean scaled return) and a summary hook.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from sqlglot import exp

from fmduck import inputs, templates
from fmduck.covariance import Covariance, InferenceOptions
from fmduck.designs import Design, RunOutput
from fmduck.designs.twopass import empty_skipped
from fmduck.errors import SpecError
from fmduck.moments import RowSource, Variable, solve_source
from fmduck.options import Option
from fmduck.passes import pass3, pricing
from fmduck.plan import Plan, State

HOOK = "Toy design: every return scaled by"


class Toy(Design):
    name = "toy"
    help = "toy: the mean scaled return per period (tests/toy_design.py)"
    title = "Toy design: mean scaled return per period"
    options = (Option("toy_scale", "float", 1.0, "multiply every return by X before averaging", "design toy",
                      metavar="X"),)
    tables = {"toy_assets": [("asset", "VARCHAR"), ("asset_int", "BIGINT"), ("mean_ret", "DOUBLE"),
                             ("n_periods", "BIGINT")]}
    se_types = {"toy_iid": ("Toy: iid standard error of the pooled mean", "toy iid")}
    update = "design toy does not support update: re-run it"

    def validate(self, spec: Any) -> None:
        if spec.toy_scale <= 0:
            raise SpecError(f"--toy-scale must be positive, got {spec.toy_scale}")
        if spec.factor_cols or spec.chars:
            raise SpecError("design toy takes no factors or characteristics")

    def plan(self, run: Any, cat: Any) -> Plan:
        spec = run.spec
        plan = Plan(run.dialect, run.name)
        plan.add("calendar", "calendar", templates.source("calendar", plan.dialect, relation=cat.calendar_relation.sql,
                                                          key=cat.calendar_key.sql("r")), kind="create")
        src = RowSource(dialect=plan.dialect, returns=cat.returns.sql, asset=templates.ident(spec.asset),
                        panel_key=cat.panel_key.sql("r"), calendar=plan.name("calendar"))
        scaled = exp.Mul(this=templates.column(spec.ret, "p"), expression=exp.Placeholder(this="toy_scale"))
        params = {"toy_scale": spec.toy_scale}
        plan.add("toy_means", "toy: mean scaled return per period",
                 solve_source(plan.dialect, ["pidx"], [Variable("y", scaled, 0.0)], src, intercept=True),
                 kind="create", params=params)
        period = ", ".join(f"{sql} AS {name}" for name, sql in inputs.period_columns(cat.calendar_key.kind, "c.period"))
        plan.add("toy_lambdas", "toy: lambda_t",
                 f"SELECT {period}, t.pidx AS period_index, t.e0 AS {templates.ident('const')}, t.r2, t.adj_r2, "
                 "t.nobs AS n "
                 f"FROM {plan.name('toy_means')} AS t JOIN {plan.name('calendar')} AS c ON c.pidx = t.pidx "
                 "WHERE t.ok ORDER BY t.pidx", then=_keep("lambdas"))
        asset = templates.column(spec.asset, "r").sql("duckdb")
        keys = ", ".join(f"{sql} AS {name}" for name, sql in inputs.asset_columns(cat.returns, spec.asset, asset))
        ret = templates.column(spec.ret, "r").sql("duckdb")
        plan.add("toy_assets", "toy: mean scaled return per asset",
                 f"SELECT {keys}, AVG({ret} * $toy_scale) AS mean_ret, COUNT({ret}) AS n_periods "
                 f"FROM {cat.returns.sql} AS r WHERE {ret} IS NOT NULL GROUP BY {asset} ORDER BY {asset}",
                 params=params, then=_keep("toy_assets"))
        return plan

    def fit(self, run: Any) -> RunOutput:
        spec = run.spec
        cat = self.catalog(spec, run.engine)
        state = self.plan(run, cat).execute(run)
        lambdas = state["lambdas"]
        options = InferenceOptions.of(spec)
        estimates, conventions, _ = pass3.infer(lambdas, ["const"], [], None, options, se_types=("fm", "nw"))
        iid = toy_iid(lambdas)
        estimates = pl.concat([estimates, pass3.estimates([iid], lambdas.select("const").to_numpy().mean(axis=0),
                                                          ["const"], n_periods=lambdas.height,
                                                          avg_n=float(lambdas["n"].mean()),
                                                          avg_r2=float(lambdas["r2"].mean()),
                                                          prefix=f"[{options.conventions}] ")])
        return RunOutput(
            lambdas=lambdas, estimates=estimates, pricing_errors=pl.DataFrame(schema=pricing.SCHEMA),
            skipped=empty_skipped(), conventions="\n".join([conventions, iid.note]),
            fingerprint={"returns": cat.returns.label, "toy_scale": spec.toy_scale,
                         "pass2_rows": int(lambdas["n"].sum())},
            n_periods=lambdas.height, avg_n=float(lambdas["n"].mean()), avg_r2=float(lambdas["r2"].mean()),
            extra={"toy_assets": state["toy_assets"]},
        )

    def summary(self, results: Any, text: str) -> str:
        assets = results.extra.get("toy_assets")
        n = assets.height if assets is not None else 0
        return f"{text}\n{HOOK} {results.spec['toy_scale']:g}; {n} assets in fmduck.toy_assets"


def toy_iid(lambdas: pl.DataFrame) -> Covariance:
    """var(λ_t) with divisor T (not T − 1, unlike ``fm``), over T."""
    lam = lambdas["const"].to_numpy()
    t = lam.size
    return Covariance("toy_iid", np.array([[float(np.var(lam, ddof=0)) / t]]), t - 1,
                      f"toy iid: var(lambda_t, divisor T)/T, T = {t}")


def _keep(key: str):
    def then(state: State, frame: pl.DataFrame) -> None:
        state[key] = frame
    return then


DESIGN = Toy()
