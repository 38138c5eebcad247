"""The firm effect (Petersen 2009): pooled OLS with classical, White, clustered and Driscoll-Kraay
standard errors beside the Fama-MacBeth estimate of the same regression (design ``pooled``).

    results = PooledOLS(Spec(name="pet", returns="petersen", asset="firm", period="year", ret="y",
                             chars=["x"], design="pooled"), con).fit()
    comparison_table(con, ["pet"])          # Petersen's table: OLS, White, clustered, FM

Everything comes from SQL sums; no row of the panel reaches Python:
- X'X, X'y: one scan through the shared moments template (``sql/moments.sql.j2`` with no keys);
- the sandwich "meat": the scores u_it = z_it·e_it summed per asset and per period
  (``sql/pooled_scores.sql.j2``, GROUPING SETS asset | pidx | all rows in one scan: one row per cluster), and
  Σ u u' over rows (White);
- the firm-effect diagnostic ρ_X, ρ_ε from per-asset sums of period-demeaned x and e
  (``sql/firm_effect.sql.j2``).

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
  two-pass engine; no betas).
- Firm effect: ρ_X (each regressor) and ρ_ε (pooled residual) are within-asset correlations across
  periods of the period-demeaned values; inflation = 1 + (T̄ − 1) ρ_X ρ_ε with T̄ = N / (number of
  assets), Petersen (2009) eq. for Var(β̂_FM). The summary warns when inflation > INFLATION_WARNING.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from fmduck import templates
from fmduck.engine import Engine, connect
from fmduck.designs.common import estimates_frame, nw_lags, reject_unsupported
from fmduck.errors import EstimationError, FmduckError, InputError, SpecError
from fmduck.inference import LAG_RULES, inference, newey_west_covariance
from fmduck.model import FamaMacBeth, Progress, _empty_skipped, _fingerprint, _Inputs
from fmduck.results import FamaMacBethResults, assemble, run_record
from fmduck.solve import MomentColumns, spd_inverse
from fmduck.spec import Spec

POOLED_SE_TYPES = ("ols", "white", "cluster_asset", "cluster_period", "cluster_both", "driscoll_kraay")
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


class PooledOLS(FamaMacBeth):
    """Pooled OLS of y on characteristics with five sandwich SEs, the FM regression and the firm-effect diagnostic."""

    def __init__(self, spec: Spec, database: Any = ":memory:") -> None:
        if spec.factor_cols:
            raise SpecError("design pooled regresses y on panel characteristics (--chars); it takes no factor "
                            f"betas (got --factor-cols {', '.join(spec.factor_cols)})")
        if not spec.chars:
            raise SpecError("design pooled needs at least one characteristic (--chars)")
        reject_unsupported(spec)
        super().__init__(spec, database)

    def fit(self, *, write: bool = True, progress: Progress | None = None) -> FamaMacBethResults:
        say = progress or (lambda _msg: None)
        spec = self.spec
        run_id = self._begin()
        try:
            say("checking inputs")
            inputs = self._inputs()
            self._inputs_cache = inputs
            calendar = self._calendar(inputs)
            say("Fama-MacBeth: cross-sectional regressions per period")
            lambdas, _regs, skipped, pass2_rows = self._pass2(inputs, None, calendar)
            fm_estimates, fm_conventions = self._pass3(inputs, lambdas)
            say("pooled OLS: moments, clustered scores and the firm-effect diagnostic")
            pooled = self._pooled(inputs)
        finally:
            self._drop_scratch()
        fm_se = dict(zip(fm_estimates.filter(pl.col("se_type") == "fm")["term"].to_list(),
                         fm_estimates.filter(pl.col("se_type") == "fm")["std_error"].to_list()))
        firm = pooled["firm_effect"].with_columns(
            pl.col("term").replace_strict(fm_se, return_dtype=pl.Float64).alias("fm_std_error"),
        ).with_columns((pl.col("fm_std_error") * pl.col("inflation").sqrt()).alias("fm_std_error_adjusted"))
        conventions = "\n".join([pooled["conventions"], fm_conventions, *_firm_notes(firm)])
        estimates = pl.concat([pooled["estimates"], fm_estimates], how="vertical_relaxed")
        periods = lambdas["period"]
        run = run_record(
            spec, run_id=run_id, dialect=self.engine.dialect, conventions=conventions, statements=self.statements,
            fingerprint=_fingerprint(inputs, periods, pass2_rows=pass2_rows, pooled_rows=pooled["n"],
                                     n_assets=pooled["n_assets"]),
            n_periods=lambdas.height, avg_n=fm_estimates["avg_n"][0], avg_r2=fm_estimates["avg_r2"][0],
            started=self._started,
        )
        results = assemble(
            run,
            first_pass=_empty_first_pass(),
            lambdas=lambdas,
            estimates=estimates,
            pricing_errors=_empty_pricing(),
            skipped=skipped if skipped.height else _empty_skipped(),
            extra={"firm_effect": firm},
        )
        return self._store(results, write=write, say=say)

    # ------------------------------------------------------------------ pooled OLS
    def _pooled(self, inputs: _Inputs) -> dict[str, Any]:
        spec = self.spec
        xs = inputs.chars_vars
        k = len(xs)
        source = self._pass2_source(inputs, None)
        mom = self._moments("pooled moments (X'X, X'y)", [], [*xs, inputs.y], **source)
        n = float(mom.n[0])
        if n == 0:
            raise InputError(f"{inputs.returns.label}: no row has the return and every characteristic "
                             f"({', '.join(spec.chars)}) non-NULL")
        fit = mom.ols(intercept=spec.intercept, min_df=1)
        if not fit.ok[0]:
            raise EstimationError(f"pooled OLS on {inputs.returns.label}: {fit.reason[0]} "
                                  f"({int(n)} rows, {k + int(spec.intercept)} parameters)")
        params = fit.params[0]
        p = params.size
        slopes = params[-k:]
        a = params[0] if spec.intercept else 0.0
        shift_x, shift_y = mom.shift[:k], mom.shift[k]
        # regressors z of the scores and of the bread: shifted (v = x − shift) with the constant when
        # fitted; raw (z = x) without it, where a shift would add a constant the model does not have.
        s, c = mom.sums[0, :k], mom.cross[0, :k, :k]
        if spec.intercept:
            xx = np.block([[np.array([[n]]), s[None, :]], [s[:, None], c]])
            zshift = np.zeros(k)
        else:
            xx = c + np.outer(shift_x, s) + np.outer(s, shift_x) + n * np.outer(shift_x, shift_x)
            zshift = shift_x
        bread, singular = spd_inverse(xx[None])
        if singular[0]:
            raise EstimationError(f"pooled OLS on {inputs.returns.label}: {', '.join(spec.chars)} are collinear")
        bread = bread[0]
        # θ = A θ*: the intercept in raw units from the intercept in shifted units
        transform = np.eye(p)
        if spec.intercept:
            transform[0, 1:] = -shift_x
        coef = {"c0": float(a + slopes @ shift_x - shift_y), **{f"b_{j}": float(slopes[j]) for j in range(k)}}
        names = (["z_const"] if spec.intercept else []) + [f"z_{j}" for j in range(k)]
        score_items = ([{"name": "z_const", "regressor": None, "zshift": None}] if spec.intercept else []) + [
            {"name": f"z_{j}", "regressor": f"v{j}", "zshift": f"zshift_{j}"} for j in range(k)
        ]
        context = self._context(source, xs, inputs)
        bound = {**coef, **{f"zshift_{j}": float(zshift[j]) for j in range(k)},
                 **{f"shift_{i}": float(v) for i, v in enumerate(mom.shift)}}
        products = [{"left": names[i], "right": names[j], "name": f"p_{i}_{j}"} for i in range(p) for j in range(i, p)]

        sql = templates.render("pooled_scores", self.engine.dialect, **context, scores=score_items, products=products)
        self._record("pooled scores: per asset, per period and White (one scan)", sql)
        frame = self.engine.query(sql, bound)
        white_row = frame.filter((pl.col("g_asset") == 1) & (pl.col("g_pidx") == 1)).row(0, named=True)
        meat_white = np.empty((p, p))
        for i in range(p):
            for j in range(i, p):
                meat_white[i, j] = meat_white[j, i] = white_row[f"p_{i}_{j}"]
        sums = [f"s_{nm}" for nm in names]
        by_asset = frame.filter(pl.col("g_asset") == 0).sort("asset").select(sums).to_numpy()
        by_period = frame.filter(pl.col("g_pidx") == 0).sort("pidx").select(sums).to_numpy()  # time order (DK)
        ssr = float(white_row["ssr"])
        g_a, g_t = by_asset.shape[0], by_period.shape[0]
        dof = n - p

        def sandwich(meat: np.ndarray, factor: float) -> np.ndarray:
            v = factor * bread @ meat @ bread
            return transform @ ((v + v.T) / 2) @ transform.T

        def cluster_factor(g: int) -> float:
            return g / (g - 1) * (n - 1) / dof if g > 1 else np.nan

        lags = nw_lags(spec, g_t, label="Driscoll-Kraay")
        v_white = sandwich(meat_white, n / dof)
        v_asset = sandwich(by_asset.T @ by_asset, cluster_factor(g_a))
        v_period = sandwich(by_period.T @ by_period, cluster_factor(g_t))
        v_dk = sandwich(newey_west_covariance(by_period, lags, "T") * g_t * g_t, 1.0)
        covariances = {
            "ols": (transform @ (ssr / dof * bread) @ transform.T, int(dof),
                    f"OLS: s^2 (X'X)^-1, s^2 = SSR/(N-K), N = {int(n)}, K = {p}; t with N-K df"),
            "white": (v_white, int(dof), "White HC1: N/(N-K) (X'X)^-1 sum(e^2 z z') (X'X)^-1; t with N-K df"),
            "cluster_asset": (v_asset, g_a - 1, (f"clustered by asset: G/(G-1)(N-1)/(N-K) sandwich, G = {g_a}; "
                                                 "t with G-1 df")),
            "cluster_period": (v_period, g_t - 1, (f"clustered by period: G/(G-1)(N-1)/(N-K) sandwich, G = {g_t}; "
                                                   "t with G-1 df")),
            "cluster_both": (v_asset + v_period - v_white, min(g_a, g_t) - 1,
                             ("clustered by asset and period (Cameron-Gelbach-Miller / Thompson): V_asset + V_period"
                              " - V_White(HC1), each with its own G/(G-1)(N-1)/(N-K); t with min(G)-1 df")),
            "driscoll_kraay": (v_dk, g_t - 1, (f"Driscoll-Kraay: Bartlett kernel on per-period score sums, L = {lags}"
                               + (f" ({spec.lag_rule}: {LAG_RULES[spec.lag_rule]})" if spec.nw_lags == "auto" else "")
                               + ", no small-sample factor; t with T-1 df")),
        }
        estimates = estimates_frame(
            [(inference(se_type, params, cov, df), note) for se_type, (cov, df, note) in covariances.items()],
            spec.terms, n_periods=g_t, avg_n=n / g_t, avg_r2=fit.r2[0], lags=lags, lag_se_type="driscoll_kraay")
        firm = self._firm_effect(context, bound, k, n, g_a)
        conventions = "\n".join(f"pooled {note}" for _, _, note in covariances.values())
        return {"estimates": estimates, "conventions": conventions, "firm_effect": firm, "n": int(n),
                "n_assets": g_a}

    def _context(self, source: dict[str, Any], xs: list, inputs: _Inputs) -> dict[str, Any]:
        cols = MomentColumns(len(xs) + 1)
        variables = [{"expr": templates.sql(v.expr), "alias": a, "shift": f"shift_{i}"}
                     for i, (v, a) in enumerate(zip([*xs, inputs.y], cols.aliases))]
        return {
            **self._row_source(**source)[0],
            "variables": variables,
            "regressors": [{"alias": cols.aliases[j], "coef": f"b_{j}"} for j in range(len(xs))],
            "y": cols.aliases[len(xs)],
        }

    def _firm_effect(self, context: dict[str, Any], bound: dict[str, Any], k: int, n: float, g_a: int) -> pl.DataFrame:
        spec = self.spec
        items = [{"source": f"v{j}", "name": f"d{j}"} for j in range(k)] + [{"source": "e", "name": "de"}]
        sql = templates.render("firm_effect", self.engine.dialect, **context, items=items)
        self._record("firm-effect diagnostic", sql)
        row = self.engine.query(sql, bound).row(0, named=True)
        n_obs, pairs = float(row["n_obs"]), float(row["n_pairs"])

        def rho(name: str) -> float:
            if pairs <= 0 or not row[f"q_{name}"]:
                return float("nan")
            return (row[f"c_{name}"] / pairs) / (row[f"q_{name}"] / n_obs)

        rho_e = rho("de")
        t_bar = n_obs / float(row["n_assets"])
        rho_x = np.array([rho(f"d{j}") for j in range(k)])
        return pl.DataFrame({
            "term": spec.chars,
            "rho_x": rho_x,
            "rho_e": np.full(k, rho_e),
            "avg_periods": np.full(k, t_bar),
            "inflation": 1.0 + (t_bar - 1.0) * rho_x * rho_e,
            "n_assets": np.full(k, int(row["n_assets"]), dtype=np.int64),
            "n_obs": np.full(k, int(n_obs), dtype=np.int64),
        })


# ====================================================================== helpers
def _firm_notes(firm: pl.DataFrame) -> list[str]:
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


def _empty_first_pass() -> pl.DataFrame:
    return pl.DataFrame(schema={"asset": pl.Utf8, "period": pl.Utf8, "period_index": pl.Int64, "term": pl.Utf8,
                                "estimate": pl.Float64, "std_error": pl.Float64, "t_stat": pl.Float64,
                                "r2": pl.Float64, "adj_r2": pl.Float64, "rmse": pl.Float64, "nobs": pl.Int64})


def _empty_pricing() -> pl.DataFrame:
    return pl.DataFrame(schema={"asset": pl.Utf8, "alpha": pl.Float64, "std_error": pl.Float64,
                                "t_stat": pl.Float64, "n_periods": pl.Int64})


def comparison_table(database: Any, runs: list[str] | str, schema: str = "fmduck") -> pl.DataFrame:
    """Petersen's (2009) comparison for stored runs: one row per (run, term, method) with coef, SE, t.

    Methods in his column order: OLS, White, clustered by asset, by period, by both, Driscoll-Kraay,
    Fama-MacBeth (and its Newey-West variant). A ``pooled`` run has them all; another run (e.g. the
    two-pass default) contributes its Fama-MacBeth rows.
    """
    engine: Engine = connect(database)
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
