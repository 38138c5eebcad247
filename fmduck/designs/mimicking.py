"""Mimicking portfolios (design ``mimicking``): the premium of a factor, traded or not, as the mean
excess return of its maximum-correlation portfolio of basis assets, beside the two-pass premium.

For each factor g (a column of the factors table) the projection of g_t on the basis assets' excess
returns r̃_t with a constant gives the weights w = Var(r̃)⁻¹ Cov(r̃, g); the mimicking return is
r^g_t = w'r̃_t and the premium its mean, with Fama-MacBeth (sd/√T) and Newey-West standard errors
(``fmduck.inference``). The study (seed, section 五): the two-pass premium of g is biased when a
correlated factor is omitted; the mimicking premium is not when the basis is diversified and spans
every priced factor, and is biased when the basis leaves out assets needed to span them.

All moments come from SQL (``sql/mimicking.sql.j2``): per basis asset Σ r̃ and Σ r̃·g, per pair of
assets Σ r̃_i r̃_j (a self-join aggregated per pair: N(N+1)/2 rows), the factor values per period, and
finally the mimicking returns Σ_i w_i r̃_it per period. The sample is the periods in which every
basis asset has a return and every factor a value.

Results: ``estimates`` (term = factor; se_type ``fm``, ``nw`` for the mimicking premium and
``twopass_fm``, ``twopass_nw``, ``twopass_shanken`` for the two-pass premium of the same factors on
the same assets), ``lambdas`` (r^g_t, term = factor), ``mimicking_weights`` (factor, asset, weight).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from fmduck import templates
from fmduck.designs.common import estimates_frame, nw_lags, nw_note, reject_unsupported
from fmduck.errors import EstimationError, InputError, SpecError
from fmduck.inference import fm_covariance, inference, newey_west_covariance
from fmduck.model import FamaMacBeth, Progress, _empty_skipped, _fingerprint, _Inputs
from fmduck.results import FamaMacBethResults, assemble, run_record
from fmduck.solve import spd_inverse
from fmduck.spec import Spec


class Mimicking(FamaMacBeth):
    """Mimicking-portfolio premia of ``spec.factor_cols`` on the basis ``spec.basis`` (default: all assets)."""

    def __init__(self, spec: Spec, database: Any = ":memory:") -> None:
        if not spec.factor_cols:
            raise SpecError("design mimicking needs the factors to mimic (--factor-cols) from a factors table")
        if spec.chars:
            raise SpecError(f"design mimicking projects factors on returns; it takes no characteristics "
                            f"(got --chars {', '.join(spec.chars)})")
        if spec.window is not None:
            raise SpecError("design mimicking uses full-sample weights; drop --window")
        reject_unsupported(spec)
        super().__init__(spec, database)

    def fit(self, *, write: bool = True, progress: Progress | None = None) -> FamaMacBethResults:
        say = progress or (lambda _msg: None)
        spec = self.spec
        run_id = self._begin("basis", "weights")
        view = None
        try:
            say("checking inputs")
            inputs = self._inputs()
            self._inputs_cache = inputs
            calendar = self._calendar(inputs)
            if spec.basis:
                self.engine.upload(self._tables["basis"], pl.DataFrame({"asset": spec.basis}, schema={"asset": pl.Utf8}))
            say("mimicking portfolios: moments of the basis assets and the factors")
            mim = self._mimic(inputs, calendar)
            say("two-pass Fama-MacBeth premium of the same factors on the same assets")
            view = self._basis_view(inputs) if spec.basis else None
            twopass = FamaMacBeth(spec.replace_with(design="twopass", returns=view or spec.returns,
                                                    basis=[], replace=False), self.engine).fit(write=False)
        finally:
            if view is not None:
                self.engine.execute(templates.render("mimicking_view", self.engine.dialect, view=templates.ident(view),
                                                     drop=True))
            self._drop_scratch()
        tp = twopass.estimates.filter(pl.col("term").is_in(spec.factor_cols)).with_columns(
            ("twopass_" + pl.col("se_type")).alias("se_type"),
            ("two-pass on the same assets: " + pl.col("convention")).alias("convention"),
        ).drop("run_name", "run_id")
        estimates = pl.concat([mim["estimates"], tp], how="vertical_relaxed")
        conventions = "\n".join([mim["conventions"], *_beside(estimates, spec.factor_cols)])
        lambdas = mim["lambdas"]
        run = run_record(
            spec, run_id=run_id, dialect=self.engine.dialect, conventions=conventions, statements=self.statements,
            fingerprint=_fingerprint(inputs, lambdas["period"], pass2_rows=mim["n_assets"] * lambdas.height,
                                     n_assets=mim["n_assets"], basis=spec.basis or "all assets"),
            n_periods=lambdas.height, avg_n=mim["n_assets"], avg_r2=mim["r2"], started=self._started,
        )
        results = assemble(
            run,
            first_pass=twopass.first_pass.drop("run_name", "run_id"),
            lambdas=lambdas,
            estimates=estimates,
            pricing_errors=twopass.pricing_errors.drop("run_name", "run_id"),
            skipped=_empty_skipped(),
            extra={"mimicking_weights": mim["weights"]},
        )
        return self._store(results, write=write, say=say)

    # ------------------------------------------------------------------ the projection
    def _mimic(self, inputs: _Inputs, calendar: pl.DataFrame) -> dict[str, Any]:
        spec = self.spec
        k = len(spec.factor_cols)
        variables = [inputs.y, *inputs.factors_vars]
        factor_aliases = [f"v{j + 1}" for j in range(k)]
        context = {
            **self._row_source(factors=inputs.factors.sql)[0],
            "variables": [{"expr": templates.sql(v.expr), "alias": f"v{i}", "shift": f"shift_{i}"}
                          for i, v in enumerate(variables)],
            "basis": templates.ident(self._tables["basis"]) if spec.basis else None,
            "factor_aliases": factor_aliases,
            "weights": templates.ident(self._tables["weights"]),
            "weight_cols": [{"name": templates.ident(f"w{j}"), "alias": f"m{j}"} for j in range(k)],
        }
        shifts = np.array([v.shift for v in variables])
        bound = {f"shift_{i}": float(s) for i, s in enumerate(shifts)}

        def query(part: str) -> pl.DataFrame:
            sql = templates.render("mimicking", self.engine.dialect, **context, part=part)
            self._record(f"mimicking: {part}", sql)
            return self.engine.query(sql, bound)

        assets = query("assets")
        assets_list = assets["asset"].to_list()
        if spec.basis:
            missing = sorted(set(spec.basis) - set(assets_list))
            if missing:
                raise InputError(
                    f"{inputs.returns.label}: basis asset(s) {', '.join(missing[:10])} have no period with a "
                    f"non-NULL return and factor values in column {spec.asset!r}"
                )
        n_assets = len(assets_list)
        periods = query("periods")
        t = periods.height
        if n_assets == 0 or t == 0:
            raise InputError(f"{inputs.returns.label}: no period in which every basis asset has a return "
                             f"and the factors ({', '.join(spec.factor_cols)}) have values")
        if t < n_assets + 2:
            raise EstimationError(
                f"mimicking portfolios: a basis of N = {n_assets} assets needs at least N + 2 = {n_assets + 2} "
                f"complete periods (every basis asset with a return), but there are T = {t}; "
                "use fewer basis assets (--basis) or more periods"
            )
        short = assets.filter(pl.col("n") != t)
        if short.height:  # cannot happen: kept periods are complete
            raise EstimationError(f"mimicking portfolios: unbalanced basis block for {short['asset'].to_list()[:5]}")
        pairs = query("pairs")
        index = {a: i for i, a in enumerate(assets_list)}
        ii = pairs["asset_i"].replace_strict(index, return_dtype=pl.Int64).to_numpy()
        jj = pairs["asset_j"].replace_strict(index, return_dtype=pl.Int64).to_numpy()
        prr = np.zeros((n_assets, n_assets))
        prr[ii, jj] = pairs["p_rr"].to_numpy()
        prr[jj, ii] = pairs["p_rr"].to_numpy()
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
                "(an asset is a combination of the others or has constant returns); drop redundant assets (--basis)"
            )
        weights = inverse[0] @ s_rg  # N x K: Var(r̃)⁻¹ Cov(r̃, g)
        s_gg = ((g - g.mean(axis=0)) ** 2).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.einsum("nk,nk->k", s_rg, weights) / s_gg  # R² of the projection of g on the basis
        wframe = pl.DataFrame({"asset": assets_list, **{f"w{j}": weights[:, j] for j in range(k)}})
        self.engine.upload(self._tables["weights"], wframe)
        returns = query("returns")
        mimic = returns.select([f"m{j}" for j in range(k)]).to_numpy().astype(np.float64)
        df = t - 1
        estimate = mimic.mean(axis=0)
        lags = nw_lags(spec, t)
        results = [
            (inference("fm", estimate, fm_covariance(mimic), df),
             (f"mimicking premium: mean of r^g_t = w'r_t, w = Var(r)^-1 Cov(r, g) over N = {n_assets} basis assets "
             f"and T = {t} complete periods; Fama-MacBeth SE sd(r^g_t, ddof=1)/sqrt(T); t with T-1 = {df} df")),
            (inference("nw", estimate, newey_west_covariance(mimic, lags, spec.nw_divisor), df),
             "mimicking premium, Newey-West: " + nw_note(spec, lags, df)),
        ]
        estimates = estimates_frame(results, spec.factor_cols, n_periods=t, avg_n=n_assets, avg_r2=r2, lags=lags)
        lambdas = (
            returns.select(pl.col("pidx").alias("period_index"), *[pl.col(f"m{j}").alias(f) for j, f in
                                                                    enumerate(spec.factor_cols)])
            .join(calendar.rename({"pidx": "period_index"}), on="period_index", how="left")
            .select(pl.col("period").cast(pl.Utf8), "period_index", *spec.factor_cols)
            .with_columns(pl.lit(None, pl.Float64).alias("r2"), pl.lit(None, pl.Float64).alias("adj_r2"),
                          pl.lit(n_assets, pl.Int64).alias("n"))
            .sort("period_index")
        )
        long_weights = pl.concat([
            pl.DataFrame({"factor": [f] * n_assets, "asset": assets_list, "weight": weights[:, j]})
            for j, f in enumerate(spec.factor_cols)
        ])
        conventions = "\n".join(note for _, note in results)
        conventions += "\nmimicking R-squared (avg_r2): of the projection of each factor on the basis assets"
        return {"estimates": estimates, "lambdas": lambdas, "weights": long_weights, "conventions": conventions,
                "n_assets": n_assets, "r2": float(np.mean(r2))}

    def _basis_view(self, inputs: _Inputs) -> str:
        """A temporary view of the returns panel restricted to the basis assets (for the two-pass run)."""
        view = f"fmduck_basis_view_{self._tables['basis'][-8:]}"
        sql = templates.render("mimicking_view", self.engine.dialect, view=templates.ident(view), drop=False,
                               returns=inputs.returns.sql, asset=templates.ident(self.spec.asset),
                               basis=templates.ident(self._tables["basis"]))
        self._record("basis view for the two-pass run", sql)
        self.engine.execute(sql)
        return view


def _beside(estimates: pl.DataFrame, factors: list[str]) -> list[str]:
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
