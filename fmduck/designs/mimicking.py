"""Mimicking portfolios (design ``mimicking``): the premium of a factor, traded or not, as the mean
excess return of its maximum-correlation portfolio of basis assets, beside the two-pass premium.

For each factor g (a column of the factors table) the projection of g_t on the basis assets' excess
returns r̃_t with a constant gives the weights w = Var(r̃)⁻¹ Cov(r̃, g); the mimicking return is
r^g_t = w'r̃_t and the premium its mean, with Fama-MacBeth (sd/√T) and Newey-West standard errors
(``fmduck.covariance``). The study (seed, section 五): the two-pass premium of g is biased when a
correlated factor is omitted; the mimicking premium is not when the basis is diversified and spans
every priced factor, and is biased when the basis leaves out assets needed to span them.

One plan on one run: the basis (``--basis``, default every asset of the panel) restricts the returns
relation (``sql/mimicking_basis.sql.j2``); the two-pass checks, profiles, calendar and pass 1 run on
it; then the mimicking moments (``sql/mimicking.sql.j2``): per basis asset Σ r̃ and Σ r̃·g, per pair
of assets Σ r̃_i r̃_j (a self-join aggregated per pair: N(N+1)/2 rows), the factor values per period;
the weights are solved in Python (N × N) and uploaded, and the mimicking returns Σ_i w_i r̃_it per
period come from SQL; finally pass 2 and the pricing errors of the two-pass premium of the same
factors on the same assets (:mod:`fmduck.designs.twopass`). The sample of the mimicking premium is
the periods in which every basis asset has a return and every factor a value.

Results: ``estimates`` (term = factor; se_type ``fm``, ``nw`` for the mimicking premium and
``twopass_fm``, ``twopass_nw``, ``twopass_shanken`` for the two-pass premium), ``lambdas`` (r^g_t,
term = factor), ``mimicking_weights`` (factor, asset, asset_int, weight), the two-pass run's first
pass and pricing errors. avg_r2: per factor the R² of its projection on the basis (the run's: their mean).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl

from fmduck import inputs, templates
from fmduck.covariance import InferenceOptions, lambda_covariances
from fmduck.designs import Design, RunOutput, twopass
from fmduck.designs.common import reject_unsupported
from fmduck.engine import Relation
from fmduck.errors import EstimationError, InputError, SpecError
from fmduck.model import FamaMacBeth
from fmduck.options import Option
from fmduck.passes import pass2, pass3
from fmduck.plan import Plan, State
from fmduck.solve import spd_inverse
from fmduck.spec import Spec

WEIGHTS = "mimicking_weights"  # the scratch key of the uploaded weights, and the result table
WEIGHT_COLUMNS = [("factor", "VARCHAR"), ("asset", "VARCHAR"), ("asset_int", "BIGINT"), ("weight", "DOUBLE")]
TWOPASS_SE_TYPES = {"twopass_fm": ("Two-pass, Fama-MacBeth", "Two-pass FM"),
                    "twopass_nw": ("Two-pass, Newey-West", "Two-pass NW"),
                    "twopass_shanken": ("Two-pass, Shanken (1992)", "Two-pass, Shanken")}


def validate_spec(spec: Any) -> None:
    """Factors to mimic, no characteristics, full-sample weights; the two-pass checks besides (pure)."""
    if not spec.factor_cols:
        raise SpecError("design mimicking needs the factors to mimic (--factor-cols) from a factors table")
    if spec.chars:
        raise SpecError(f"design mimicking projects factors on returns; it takes no characteristics "
                        f"(got --chars {', '.join(spec.chars)})")
    if spec.window is not None:
        raise SpecError("design mimicking uses full-sample weights; drop --window")
    reject_unsupported(spec)
    twopass.validate_spec(spec)


def twopass_spec(spec: Any) -> Spec:
    """The two-pass run beside the mimicking one: the same options, without the basis."""
    values = {k: getattr(spec, k) for k in spec.options if k != "basis"}
    return Spec(**{**values, "design": "twopass", "replace": False})


def basis_catalog(spec: Any, cat: inputs.Catalog) -> inputs.Catalog:
    """The catalog with the returns restricted to the basis assets (all of them without ``--basis``)."""
    if not spec.basis:
        return cat
    sql = templates.source("mimicking_basis", returns=cat.returns.sql, asset=templates.ident(spec.asset),
                           basis=[templates.literal(a) for a in spec.basis])
    relation = Relation(sql=sql.strip(), label=f"{cat.returns.label} (basis assets)", columns=cat.returns.columns)
    return replace(cat, returns=relation)


# ====================================================================== plan
def build(run: Any, cat: inputs.Catalog) -> tuple[Plan, twopass.Setup]:
    """Checks, calendar and pass 1 on the basis; the mimicking moments, weights and returns; then pass 2
    and the tail of the two-pass premium (nothing is executed)."""
    spec, tp = run.spec, twopass_spec(run.spec)
    plan, setup = twopass.build_shared(run, basis_catalog(spec, cat), tp)
    _mimicking_steps(plan, run, spec, cat, setup)
    regressors = twopass.regressors_of(tp, setup)
    options = twopass.options_check(plan, tp, setup, regressors)
    added = pass2.add(plan, tp, options.src, options.variables[:-1], options.variables[-1], cat.returns.label)
    setup.pass2 = pass2.Pass2(options.src, regressors, added.table)
    twopass.build_tail(plan, tp, setup)
    return plan, setup


def _mimicking_steps(plan: Plan, run: Any, spec: Any, cat: inputs.Catalog, setup: twopass.Setup) -> None:
    k = len(spec.factor_cols)
    variables = [setup.variables.y, *setup.variables.factors]
    factor_aliases = [f"v{j + 1}" for j in range(k)]
    context = {
        "src": setup.src,
        "variables": [{"expr": templates.sql(v.expr), "alias": f"v{i}", "shift": v.shift_sql()}
                      for i, v in enumerate(variables)],
        "factor_aliases": factor_aliases,
        "asset": inputs.asset_columns(cat.returns, spec.asset, "asset"),
        "period": inputs.period_columns(plan.calendar_kind, "c.period"),
        "weights": plan.name(WEIGHTS),
        "weight_cols": [{"name": templates.ident(f"w{j}"), "alias": f"m{j}"} for j in range(k)],
    }
    label = cat.returns.label

    def part(name: str) -> str:
        return templates.source("mimicking", plan.dialect, **context, part=name)

    plan.add("mimicking_assets", "mimicking: moments per basis asset", part("assets"),
             then=lambda state, frame: _check_assets(state, frame, spec, label))
    plan.add("mimicking_periods", "mimicking: factor values per complete period", part("periods"),
             then=lambda state, frame: _check_periods(state, frame, spec, label))
    plan.add("mimicking_pairs", "mimicking: cross-products per pair of basis assets", part("pairs"),
             then=lambda state, frame: _weights(run, state, frame, spec))
    plan.add("mimicking_returns", "mimicking: returns of the mimicking portfolios per period", part("returns"),
             then=lambda state, frame: state.__setitem__("mimicking_returns", frame),
             note="reads the weights solved in Python from the steps above")


def _check_assets(state: State, assets: pl.DataFrame, spec: Any, label: str) -> None:
    if spec.basis:
        missing = sorted(set(spec.basis) - set(assets["asset"].to_list()))
        if missing:
            raise InputError(f"{label}: basis asset(s) {', '.join(missing[:10])} have no period with a non-NULL "
                             f"return and factor values in column {spec.asset!r}")
    state["mimicking_assets"] = assets


def _check_periods(state: State, periods: pl.DataFrame, spec: Any, label: str) -> None:
    assets = state["mimicking_assets"]
    n_assets, t = assets.height, periods.height
    if n_assets == 0 or t == 0:
        raise InputError(f"{label}: no period in which every basis asset has a return and the factors "
                         f"({', '.join(spec.factor_cols)}) have values")
    if t < n_assets + 2:
        raise EstimationError(
            f"mimicking portfolios: a basis of N = {n_assets} assets needs at least N + 2 = {n_assets + 2} "
            f"complete periods (every basis asset with a return), but there are T = {t}; "
            "use fewer basis assets (--basis) or more periods")
    short = assets.filter(pl.col("n") != t)
    if short.height:  # cannot happen: kept periods are complete
        raise EstimationError(f"mimicking portfolios: unbalanced basis block for {short['asset'].to_list()[:5]}")
    state["mimicking_periods"] = periods


def _weights(run: Any, state: State, pairs: pl.DataFrame, spec: Any) -> None:
    """w = Var(r̃)⁻¹ Cov(r̃, g) from the centred cross-products; uploaded for the returns step."""
    k = len(spec.factor_cols)
    assets, periods = state["mimicking_assets"], state["mimicking_periods"]
    names = assets["asset"].to_list()
    n_assets, t = len(names), periods.height
    index = {a: i for i, a in enumerate(names)}
    ii = pairs["asset_i"].replace_strict(index, return_dtype=pl.Int64).to_numpy()
    jj = pairs["asset_j"].replace_strict(index, return_dtype=pl.Int64).to_numpy()
    prr = np.zeros((n_assets, n_assets))
    prr[ii, jj] = pairs["p_rr"].to_numpy()
    prr[jj, ii] = pairs["p_rr"].to_numpy()
    factor_aliases = [f"v{j + 1}" for j in range(k)]
    s_r = assets["s_r"].to_numpy().astype(np.float64)
    g = periods.select(factor_aliases).to_numpy().astype(np.float64)  # shifted factor values, T x K
    s_g = g.sum(axis=0)
    p_rg = assets.select([f"p_r_{f}" for f in factor_aliases]).to_numpy().astype(np.float64)
    s_rr = prr - np.outer(s_r, s_r) / t  # centred cross-products (T × covariance)
    s_rg = p_rg - np.outer(s_r, s_g) / t
    inverse, singular = spd_inverse(s_rr[None])
    if singular[0]:
        raise EstimationError(
            f"mimicking portfolios: the covariance matrix of the {n_assets} basis assets is singular "
            "(an asset is a combination of the others or has constant returns); drop redundant assets (--basis)")
    weights = inverse[0] @ s_rg  # N x K
    s_gg = ((g - g.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.einsum("nk,nk->k", s_rg, weights) / s_gg  # R² of the projection of g on the basis
    run.upload(WEIGHTS, pl.DataFrame({"asset": names, **{f"w{j}": weights[:, j] for j in range(k)}}))
    state["mimicking_weights"] = pl.concat([
        assets.select("asset", "asset_int").with_columns(pl.lit(f).alias("factor"), pl.Series("weight", weights[:, j]))
        .select("factor", "asset", "asset_int", "weight") for j, f in enumerate(spec.factor_cols)])
    state["mimicking_r2"] = r2


# ====================================================================== finish
def finish(run: Any, spec: Any, setup: twopass.Setup, state: State) -> RunOutput:
    """The mimicking premia and their inference, beside the two-pass run's rows."""
    tp = twopass.finish(run, twopass_spec(spec), setup, state)
    factors = spec.factor_cols
    returns = state["mimicking_returns"]
    n_assets, t = state["mimicking_assets"].height, returns.height
    r2 = state["mimicking_r2"]
    lambdas = returns.select(*inputs.PERIOD_COLUMNS, "period_index",
                             *[pl.col(f"m{j}").alias(f) for j, f in enumerate(factors)]).with_columns(
        pl.lit(None, pl.Float64).alias("r2"), pl.lit(None, pl.Float64).alias("adj_r2"),
        pl.lit(n_assets, pl.Int64).alias("n"))
    options = InferenceOptions.of(spec)
    series = pass3.series(lambdas, factors, [], None)
    covs = lambda_covariances(series, options, ("fm", "nw"))
    covs[0] = replace(covs[0], note=(
        f"mimicking premium: mean of r^g_t = w'r_t, w = Var(r)^-1 Cov(r, g) over N = {n_assets} basis assets and "
        f"T = {t} complete periods; Fama-MacBeth SE sd(r^g_t, ddof=1)/sqrt(T); t with T-1 = {t - 1} df"))
    covs[1] = replace(covs[1], note="mimicking premium, " + covs[1].note)
    estimates = pass3.estimates(covs, series.lam.mean(axis=0), factors, n_periods=t, avg_n=n_assets, avg_r2=r2)
    beside = tp.estimates.filter(pl.col("term").is_in(factors)).with_columns(
        ("twopass_" + pl.col("se_type")).alias("se_type"),
        ("two-pass on the same assets: " + pl.col("convention")).alias("convention"))
    estimates = pl.concat([estimates, beside], how="vertical_relaxed")
    conventions = [*(c.note for c in covs),
                   ("mimicking R-squared (avg_r2): of the projection of each factor on the basis assets "
                    "(the run's avg R-squared: their mean)"), *beside_notes(estimates, factors)]
    return RunOutput(
        lambdas=lambdas, estimates=estimates, pricing_errors=tp.pricing_errors, skipped=twopass.empty_skipped(),
        conventions="\n".join(conventions),
        fingerprint=twopass.fingerprint(setup.catalog, state, lambdas, pass2_rows=n_assets * t, n_assets=n_assets,
                                        basis=spec.basis or "all assets"),
        n_periods=t, avg_n=float(n_assets), avg_r2=float(np.mean(r2)),
        extra={WEIGHTS: state["mimicking_weights"]},
        first_pass=tp.first_pass, first_pass_terms=tp.first_pass_terms, first_pass_layout=tp.first_pass_layout,
        inference_inputs=tp.inference_inputs,
    )


def beside_notes(estimates: pl.DataFrame, factors: list[str]) -> list[str]:
    """Summary notes: the mimicking and the two-pass premium of each factor side by side."""
    lines = []
    for f in factors:
        rows = {r["se_type"]: r for r in estimates.filter(pl.col("term") == f).iter_rows(named=True)}
        m, tp = rows.get("fm"), rows.get("twopass_fm")
        if m and tp:
            lines.append(f"{f}: mimicking premium {m['estimate']:.6g} (FM SE {m['std_error']:.4g}) vs two-pass "
                         f"premium {tp['estimate']:.6g} (FM SE {tp['std_error']:.4g}"
                         + (f", Shanken {rows['twopass_shanken']['std_error']:.4g}" if "twopass_shanken" in rows
                            else "") + ")")
    return lines


# ====================================================================== the design
class MimickingDesign(Design):
    name = "mimicking"
    help = "mimicking-portfolio premia of --factor-cols on --basis assets beside the two-pass premium"
    title = "Mimicking portfolios beside two-pass"
    options = (Option("basis", "names", [], "comma-separated basis asset ids (default: every asset of the panel)",
                      "design mimicking", metavar="A,B"),)
    tables = {WEIGHTS: WEIGHT_COLUMNS}
    se_types = TWOPASS_SE_TYPES
    update = "design mimicking is full-sample by nature (weights from the whole sample): recomputed in full"

    def validate(self, spec: Any) -> None:
        validate_spec(spec)

    def plan(self, run: Any, catalog: Any) -> Plan:
        return build(run, catalog)[0]

    def fit(self, run: Any) -> RunOutput:
        run.say("checking inputs")
        plan, setup = build(run, self.catalog(run.spec, run.engine))
        state = plan.execute(run)
        return finish(run, run.spec, setup, state)


DESIGN = MimickingDesign()


class Mimicking(FamaMacBeth):
    """Mimicking-portfolio premia of ``spec.factor_cols`` on the basis ``spec.basis`` (default: all assets),
    beside the two-pass premium (a run of design ``mimicking``)."""

    def __init__(self, spec: Any, database: Any = ":memory:", **options: Any) -> None:
        if spec.design != "mimicking":
            raise SpecError(f"Mimicking runs design mimicking; the spec has design={spec.design!r} "
                            "(set design='mimicking')")
        super().__init__(spec, database, **options)
