"""The firm effect (Petersen 2009): pooled OLS with classical, White, clustered and Driscoll-Kraay
standard errors beside the Fama-MacBeth estimate of the same regression (design ``pooled``).

    results = PooledOLS(Spec(name="pet", returns="petersen", asset="firm", period="year", ret="y",
                             chars=["x"], design="pooled"), con).fit()
    comparison_table(con, ["pet"])          # Petersen's table: OLS, White, clustered, FM

The plan (rendered without data; every statement runs where the data is, no row of the panel
reaches Python):
- the two-pass checks, profiles and calendar, and pass 2 of the same y on the same x (λ_t solved in
  SQL, :mod:`fmduck.passes.pass2`): the Fama-MacBeth column;
- X'X, X'y: one scan through the moments template without keys, kept as a one-row table; the
  pooled OLS solved from it in SQL (``sql/pooled_fit.sql.j2``: the coefficients the residuals need);
- the sandwich "meat": the scores u_it = z_it·e_it summed per asset and per period
  (``sql/pooled_scores.sql.j2``, GROUPING SETS asset | pidx | all rows in one scan), and Σ u u'
  over rows (White);
- the firm-effect diagnostic ρ_X, ρ_ε from per-asset sums of period-demeaned x and e
  (``sql/firm_effect.sql.j2``).
The bread (X'X)⁻¹ and the six covariances are computed in Python from the one-row moments and the
per-cluster sums (:class:`fmduck.covariance.Sandwich`).

Conventions (stated in every run's notes and in ``estimates.convention``):
- ``ols``: s²(X'X)⁻¹, s² = SSR/(N − K); t with N − K df.
- ``white`` (HC1): N/(N − K) · (X'X)⁻¹ Σ e²zz' (X'X)⁻¹; t with N − K df.
- ``cluster_asset`` / ``cluster_period``: G/(G − 1)·(N − 1)/(N − K) · (X'X)⁻¹ Σ_g u_g u_g' (X'X)⁻¹
  (Stata ``vce(cluster)``, R sandwich ``vcovCL``, statsmodels ``cov_type='cluster'``); t with G − 1 df.
- ``cluster_both`` (Cameron-Gelbach-Miller 2011, Thompson 2011): V_asset + V_period − V_intersection,
  each with its own G/(G − 1)·(N − 1)/(N − K) factor; (asset, period) is unique, so the intersection
  term is White HC1 (G = N). t with min(G_asset, G_period) − 1 df (statsmodels' two-group rule).
- ``driscoll_kraay``: (X'X)⁻¹ [Σ_t h_t h_t' + Σ_l w_l Σ_t (h_t h_{t−l}' + h_{t−l} h_t')] (X'X)⁻¹,
  h_t = Σ_i u_it, Bartlett w_l = 1 − l/(L + 1), L the run's Newey-West lag, no small-sample factor
  (linearmodels ``cov_type="kernel", debiased=False``); t with T − 1 df.
- ``fm`` / ``nw``: the Fama-MacBeth regression of the same y on the same x (pass 2 + pass 3 of the
  two-pass design; no betas).
- ``avg_r2`` (the run's and every estimates row's): the mean R² of the per-period cross-sectional
  regressions (the Fama-MacBeth column); the pooled OLS R² is stated in the notes.
- Firm effect: ρ_X (each regressor) and ρ_ε (pooled residual) are within-asset correlations across
  periods of the period-demeaned values; inflation = 1 + (T̄ − 1) ρ_X ρ_ε with T̄ = N / (number of
  assets), Petersen (2009) eq. for Var(β̂_FM). The summary warns when inflation > INFLATION_WARNING.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from fmduck import covariance, templates
from fmduck.covariance import InferenceOptions, Sandwich
from fmduck.designs import Design, RunOutput, twopass
from fmduck.designs.common import reject_unsupported
from fmduck.engines import connect
from fmduck.errors import EstimationError, FmduckError, InputError, SpecError
from fmduck.model import FamaMacBeth
from fmduck.moments import moments_source, unpack
from fmduck.passes import pass2, pass3, pricing
from fmduck.plan import Plan, State
from fmduck.solve import MomentColumns, spd_inverse
from fmduck.sqlsolve import solve_layers

POOLED_SE_TYPES = covariance.POOLED_TYPES
# Warn when the firm effect inflates Var(β̂_FM) by more than this factor: the FM standard error is
# then too small by more than √1.5 − 1 ≈ 22%.
INFLATION_WARNING = 1.5

METHODS = {  # comparison-table label per se_type, in Petersen's column order
    "ols": "OLS",
    "white": "White (HC1)",
    "cluster_asset": "Clustered by asset",
    "cluster_period": "Clustered by period",
    "cluster_both": "Clustered by asset and period",
    "driscoll_kraay": "Driscoll-Kraay",
    "fm": "Fama-MacBeth",
    "nw": "Fama-MacBeth, Newey-West",
}

FIRM_EFFECT_COLUMNS = [("term", "VARCHAR"), ("rho_x", "DOUBLE"), ("rho_e", "DOUBLE"), ("avg_periods", "DOUBLE"),
                       ("inflation", "DOUBLE"), ("n_assets", "BIGINT"), ("n_obs", "BIGINT"),
                       ("fm_std_error", "DOUBLE"), ("fm_std_error_adjusted", "DOUBLE")]


def validate_spec(spec: Any) -> None:
    """Design pooled regresses y on characteristics, with the two-pass option checks besides (pure)."""
    if spec.factor_cols:
        raise SpecError("design pooled regresses y on panel characteristics (--chars); it takes no factor "
                        f"betas (got --factor-cols {', '.join(spec.factor_cols)})")
    if not spec.chars:
        raise SpecError("design pooled needs at least one characteristic (--chars)")
    reject_unsupported(spec)
    twopass.validate_spec(spec)


# ====================================================================== plan
def build(run: Any, cat: Any) -> tuple[Plan, twopass.Setup]:
    """The plan of a pooled run: checks, calendar, the FM pass 2, the pooled moments, solve, scores and
    firm-effect scans (nothing is executed)."""
    spec = run.spec
    plan, setup = twopass.build_shared(run, cat, spec)  # no factors: no pass 1
    label = cat.returns.label
    xs, y = setup.variables.chars, setup.variables.y
    src = pass2.source(spec, setup.src, cat, None)
    params = pass2.params(spec)
    setup.pass2 = pass2.add(plan, spec, src, xs, y, label)

    k, m = len(xs), len(xs) + 1
    offset = int(spec.intercept)
    plan.add("pooled_moments", "pooled OLS: X'X and X'y over every row (one scan)",
             moments_source(plan.dialect, [], [*xs, y], src), kind="create", params=params)
    layout = solve_layers(m, [(f"shift_{i}", (f"shift_{i}",)) for i in range(m)], keys=[], intercept=spec.intercept,
                          min_df=1)
    plan.add("pooled_fit", "pooled OLS: solve",
             templates.source("pooled_fit", plan.dialect, sql_dialect=plan.dialect, moments=plan.name("pooled_moments"),
                              layers=layout.layers, carry=layout.carry, outputs=layout.outputs,
                              intercept=spec.intercept, slopes=[f"e{j + offset}" for j in range(k)]),
             kind="create")
    plan.add("pooled_fit_read", "pooled OLS: moments and coefficients",
             f"SELECT m.*, f.* FROM {plan.name('pooled_moments')} AS m CROSS JOIN {plan.name('pooled_fit')} AS f",
             then=lambda state, frame: _check_fit(state, frame, spec, label))

    aliases = MomentColumns(m).aliases
    context = {
        "src": src,
        "variables": [{"expr": templates.sql(v.expr), "alias": a, "shift": v.shift_sql()}
                      for v, a in zip([*xs, y], aliases)],
        "fit": plan.name("pooled_fit"),
        "regressors": [{"alias": aliases[j], "coef": f"e{j + offset}"} for j in range(k)],
        "y": aliases[k],
    }
    names = score_names(spec.intercept, k)
    scores = ([{"name": "z_const", "regressor": None, "shift": None}] if spec.intercept else []) + [
        {"name": f"z_{j}", "regressor": aliases[j], "shift": None if spec.intercept else f"shift_{j}"}
        for j in range(k)]
    products = [{"left": names[i], "right": names[j], "name": f"p_{i}_{j}"}
                for i in range(len(names)) for j in range(i, len(names))]
    plan.add("pooled_scores", "pooled scores: per asset, per period and White (one scan)",
             templates.source("pooled_scores", plan.dialect, **context, scores=scores, products=products),
             params=params, then=lambda state, frame: state.__setitem__("pooled_scores", frame))
    items = [{"source": aliases[j], "name": f"d{j}"} for j in range(k)] + [{"source": "e", "name": "de"}]
    plan.add("firm_effect", "firm-effect diagnostic",
             templates.source("firm_effect", plan.dialect, **context, items=items), params=params,
             then=lambda state, frame: state.__setitem__("firm_effect", frame.row(0, named=True)))
    return plan, setup


def score_names(intercept: bool, k: int) -> list[str]:
    return (["z_const"] if intercept else []) + [f"z_{j}" for j in range(k)]


def _check_fit(state: State, frame: pl.DataFrame, spec: Any, label: str) -> None:
    """Refuse an empty sample or a failed pooled solve before the score scans; keep the fit and the bread."""
    k = len(spec.chars)
    mom = unpack(frame, [], k + 1)
    n = float(mom.n[0]) if frame.height else 0.0
    if n == 0:
        raise InputError(f"{label}: no row has the return and every characteristic ({', '.join(spec.chars)}) "
                         "non-NULL")
    row = frame.row(0, named=True)
    p = k + int(spec.intercept)
    if not row["ok"]:
        raise EstimationError(f"pooled OLS on {label}: {row['reason']} ({int(n)} rows, {p} parameters)")
    shift_x = mom.shift[:k]
    # regressors z of the scores and of the bread: shifted (v = x − shift) with the constant when
    # fitted; raw (z = x) without it, where a shift would add a constant the model does not have.
    s, c = mom.sums[0, :k], mom.cross[0, :k, :k]
    if spec.intercept:
        xx = np.block([[np.array([[n]]), s[None, :]], [s[:, None], c]])
    else:
        xx = c + np.outer(shift_x, s) + np.outer(s, shift_x) + n * np.outer(shift_x, shift_x)
    bread, singular = spd_inverse(xx[None])
    if singular[0]:
        raise EstimationError(f"pooled OLS on {label}: {', '.join(spec.chars)} are collinear")
    transform = np.eye(p)  # θ = A θ*: the intercept in raw units from the intercept in shifted units
    if spec.intercept:
        transform[0, 1:] = -shift_x
    state["pooled"] = {"n": n, "params": np.array([float(row[f"e{j}"]) for j in range(p)]), "r2": row["r2"],
                       "bread": bread[0], "transform": transform}


# ====================================================================== finish
def finish(run: Any, spec: Any, setup: twopass.Setup, state: State) -> RunOutput:
    """Pass 3 of the FM column, the six pooled covariances and the firm effect, from the plan's state."""
    lambdas = state["lambdas"]
    options = InferenceOptions.of(spec)
    run.say("pass 3: Fama-MacBeth and Newey-West inference")
    fm_estimates, fm_conventions, _ = pass3.infer(lambdas, spec.terms, [], None, options)
    avg_r2 = float(lambdas["r2"].mean())  # the FM column's (pass3.infer's): one avg R² for the run and every row
    pooled = state["pooled"]
    sandwich, g_a = _sandwich(spec, pooled, state["pooled_scores"])
    covs = covariance.pooled_covariances(sandwich, options)
    g_t = sandwich.by_period.shape[0]
    n = pooled["n"]
    estimates = pass3.estimates(covs, pooled["params"], spec.terms, n_periods=g_t, avg_n=n / g_t, avg_r2=avg_r2)
    firm = firm_effect(spec, state["firm_effect"], fm_estimates)
    conventions = "\n".join([
        *(f"pooled {c.note}" for c in covs),
        (f"pooled OLS R-squared = {pooled['r2']:.6g}; avg_r2 (header, estimates): the mean R-squared of the "
         "per-period Fama-MacBeth cross sections"),
        fm_conventions, *firm_notes(firm)])
    skipped = state.get("cross_section_skipped")
    return RunOutput(
        lambdas=lambdas, estimates=pl.concat([estimates, fm_estimates], how="vertical_relaxed"),
        pricing_errors=pl.DataFrame(schema=pricing.SCHEMA),
        skipped=skipped if skipped is not None and skipped.height else twopass.empty_skipped(),
        conventions=conventions,
        fingerprint=twopass.fingerprint(setup.catalog, state, lambdas, pass2_rows=int(lambdas["n"].sum()),
                                        pooled_rows=int(n), n_assets=g_a),
        n_periods=lambdas.height, avg_n=float(lambdas["n"].mean()), avg_r2=avg_r2,
        extra={"firm_effect": firm},
    )


def _sandwich(spec: Any, pooled: dict[str, Any], frame: pl.DataFrame) -> tuple[Sandwich, int]:
    """The sandwich pieces from the per-cluster score sums (and the number of assets)."""
    p = len(spec.chars) + int(spec.intercept)
    white_row = frame.filter((pl.col("g_asset") == 1) & (pl.col("g_pidx") == 1)).row(0, named=True)
    meat_white = np.empty((p, p))
    for i in range(p):
        for j in range(i, p):
            meat_white[i, j] = meat_white[j, i] = white_row[f"p_{i}_{j}"]
    sums = [f"s_{name}" for name in score_names(spec.intercept, len(spec.chars))]
    by_asset = frame.filter(pl.col("g_asset") == 0).sort("asset").select(sums).to_numpy()
    by_period = frame.filter(pl.col("g_pidx") == 0).sort("pidx").select(sums).to_numpy()  # time order (DK)
    return Sandwich(bread=pooled["bread"], transform=pooled["transform"], meat_white=meat_white, by_asset=by_asset,
                    by_period=by_period, ssr=float(white_row["ssr"]), n=pooled["n"], p=p), by_asset.shape[0]


def firm_effect(spec: Any, row: dict[str, Any], fm_estimates: pl.DataFrame) -> pl.DataFrame:
    """The ``firm_effect`` rows: ρ_X per characteristic, ρ_ε, T̄, inflation and the adjusted FM SE."""
    k = len(spec.chars)
    n_obs, pairs = float(row["n_obs"]), float(row["n_pairs"])

    def rho(name: str) -> float:
        if pairs <= 0 or not row[f"q_{name}"]:
            return float("nan")
        return (row[f"c_{name}"] / pairs) / (row[f"q_{name}"] / n_obs)

    rho_e = rho("de")
    t_bar = n_obs / float(row["n_assets"])
    rho_x = np.array([rho(f"d{j}") for j in range(k)])
    fm = fm_estimates.filter(pl.col("se_type") == "fm")
    fm_se = dict(zip(fm["term"].to_list(), fm["std_error"].to_list()))
    inflation = 1.0 + (t_bar - 1.0) * rho_x * rho_e
    se = np.array([fm_se[c] for c in spec.chars], dtype=np.float64)
    return pl.DataFrame({
        "term": spec.chars,
        "rho_x": rho_x,
        "rho_e": np.full(k, rho_e),
        "avg_periods": np.full(k, t_bar),
        "inflation": inflation,
        "n_assets": np.full(k, int(row["n_assets"]), dtype=np.int64),
        "n_obs": np.full(k, int(n_obs), dtype=np.int64),
        "fm_std_error": se,
        "fm_std_error_adjusted": se * np.sqrt(inflation),
    })


def firm_notes(firm: pl.DataFrame) -> list[str]:
    lines = [("Firm effect (Petersen 2009): rho = within-asset correlation across periods of period-demeaned "
             "values; inflation = 1 + (Tbar-1) rho_X rho_e = Var(beta_FM) over the independent-periods "
             "formula; the FM SE (independent periods) is too small by at least sqrt(inflation): "
             f"adjusted = FM SE * sqrt(inflation); warning above {INFLATION_WARNING}")]
    for row in firm.iter_rows(named=True):
        lines.append(
            f"Firm effect {row['term']}: rho_X = {row['rho_x']:.4f}, rho_e = {row['rho_e']:.4f}, "
            f"Tbar = {row['avg_periods']:.2f}, inflation = {row['inflation']:.4f}, FM SE {row['fm_std_error']:.6g}"
            f" -> adjusted {row['fm_std_error_adjusted']:.6g}"
        )
        if row["inflation"] > INFLATION_WARNING:
            lines.append(
                f"WARNING: the Fama-MacBeth SE of {row['term']} is too small by a factor of about "
                f"{np.sqrt(row['inflation']):.2f} (firm effect; inflation {row['inflation']:.2f} > "
                f"{INFLATION_WARNING}); prefer the SE clustered by asset"
            )
    return lines


# ====================================================================== Petersen's comparison
def comparison_table(database: Any, runs: list[str] | str, schema: str = "fmduck") -> pl.DataFrame:
    """Petersen's (2009) comparison for stored runs (``database``: any engine, connection, path or URL):
    one row per (run, term, method) with coef, SE, t.

    Methods in his column order: OLS, White, clustered by asset, by period, by both, Driscoll-Kraay,
    Fama-MacBeth (and its Newey-West variant). A ``pooled`` run has them all; another run (e.g. the
    two-pass default) contributes its Fama-MacBeth rows.
    """
    engine = connect(database)
    names = [runs] if isinstance(runs, str) else list(runs)
    if not names:
        raise FmduckError("comparison_table: give at least one run name")
    params = {f"run_{i}": name for i, name in enumerate(names)}
    sql = templates.render("comparison", engine.dialect, schema=templates.ident(schema), runs=list(params))
    frame = engine.query(sql, params)
    found = set(frame["run_name"].unique().to_list())
    missing = [r for r in names if r not in found]
    if missing:
        raise FmduckError(f"comparison_table: no estimates for run(s) {', '.join(missing)} in schema {schema!r}")
    run_order = {r: i for i, r in enumerate(names)}
    method_order = {m: i for i, m in enumerate(METHODS)}
    return (
        frame.filter(pl.col("se_type").is_in(list(METHODS)))
        .with_columns(
            pl.col("se_type").replace_strict(METHODS, return_dtype=pl.Utf8).alias("method"),
            pl.col("run_name").replace_strict(run_order, return_dtype=pl.Int64).alias("_r"),
            pl.col("se_type").replace_strict(method_order, return_dtype=pl.Int64).alias("_m"),
            (pl.col("term") == "const").alias("_c"),
        )
        .sort("_r", "_c", "term", "_m")
        .select("run_name", "term", "method", "se_type", pl.col("estimate").alias("coef"),
                pl.col("std_error").alias("se"), pl.col("t_stat").alias("t"))
    )


def format_comparison(table: pl.DataFrame) -> str:
    """The comparison table as text, laid out like Petersen's web page (one line per method)."""
    lines = [f"{'run':<16}{'term':<10}{'method':<32}{'coef':>12}{'SE':>12}{'t':>9}", "-" * 91]
    for row in table.iter_rows(named=True):
        lines.append(f"{row['run_name'][:15]:<16}{row['term'][:9]:<10}{row['method']:<32}"
                     f"{row['coef']:>12.6f}{row['se']:>12.6f}{row['t']:>9.2f}")
    return "\n".join(lines)


# ====================================================================== the design
class PooledDesign(Design):
    name = "pooled"
    help = "pooled OLS with OLS/White/clustered/Driscoll-Kraay SEs beside Fama-MacBeth (Petersen's firm effect)"
    title = "Pooled OLS beside Fama-MacBeth (firm effect)"
    tables = {"firm_effect": FIRM_EFFECT_COLUMNS}
    update = "design pooled is full-sample by nature (one pooled regression over all rows): recomputed in full"

    def validate(self, spec: Any) -> None:
        validate_spec(spec)

    def plan(self, run: Any, catalog: Any) -> Plan:
        return build(run, catalog)[0]

    def fit(self, run: Any) -> RunOutput:
        run.say("checking inputs")
        plan, setup = build(run, self.catalog(run.spec, run.engine))
        state = plan.execute(run)
        return finish(run, run.spec, setup, state)


DESIGN = PooledDesign()


class PooledOLS(FamaMacBeth):
    """Pooled OLS of y on characteristics with five sandwich SEs and Driscoll-Kraay, the FM regression
    and the firm-effect diagnostic (a run of design ``pooled``)."""

    def __init__(self, spec: Any, database: Any = ":memory:", **options: Any) -> None:
        if spec.design != "pooled":
            raise SpecError(f"PooledOLS runs design pooled; the spec has design={spec.design!r} (set design='pooled')")
        super().__init__(spec, database, **options)
