"""The original Fama-MacBeth (1973) design: beta-sorted portfolios, formation / estimation / testing.

    spec = Spec(name="fm73", design="fm1973", returns="crsp", factors="market", market="vwretd",
                rf="rf", formation=84, estimation=60, testing=48, n_portfolios=20)
    results = FM1973(spec, "crsp.duckdb").fit()
    print(table3(results))

The procedure (Fama and MacBeth 1973, JPE 81(3), section III; the seed's section one), with every
length in calendar periods of the market table and rolled forward by the testing length:

1. Formation (``formation`` periods): a market-model regression r_it = a_i + b_i r_mt + e_it per
   stock (the shared moments template, GROUP BY asset and period range). Stocks with at least
   ``min_obs`` formation observations (default: all), a return in each of the ``estimation``
   periods and a return in the first testing period are ranked on b_i and cut into
   ``n_portfolios`` portfolios in SQL (``sql/fm1973_portfolios.sql.j2``: equal sizes, the left-over
   stocks to the extreme portfolios). The assignment is stored in ``fmduck.portfolios``.
2. Estimation (the next ``estimation`` periods): b_i and s(e_i) (the residual standard deviation,
   SSR/(n-2)) re-estimated per stock.
3. Testing (the next ``testing`` periods): in period t the cross-section of equally weighted
   portfolio returns r_pt is regressed on β_{p,t-1}, β²_{p,t-1} and s_p(e)_{t-1}, the averages
   of the member stocks' b_i (squared after averaging) and s(e_i) over the members with a return
   in t. Updating rule (the paper's): the stock b_i and s(e_i) are re-estimated every
   ``beta_update`` periods (12 = yearly, as in the paper; 1 = monthly) over an expanding window
   from the start of the estimation period to the period before the update; portfolio averages
   change every period as members drop out. Each period's γ_0t..γ_3t go to ``fmduck.lambdas``.
4. Inference over all testing periods (Fama-MacBeth and Newey-West, ``fmduck.inference``) and per
   sub-period in ``fmduck.fm1973_periods``: C1 linearity E(γ_2) = 0, C2 no non-beta risk
   E(γ_3) = 0, C3 positive trade-off E(γ_1) > 0 (one-sided), and with a risk-free column
   Sharpe-Lintner E(γ_0 - r_f) = 0. ``table3(results)`` lays them out like the paper's Table 3.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy import stats
from sqlglot import exp

from fmduck import templates, validate
from fmduck.engine import Engine, Relation, connect
from fmduck.errors import EstimationError, InputError
from fmduck.designs.common import estimates_frame, nw_lags, nw_note
from fmduck.inference import fm_covariance, inference, newey_west_covariance
from fmduck.moments import Variable, compute_moments
from fmduck.results import FamaMacBethResults, assemble, run_record, write_run
from fmduck.spec import Spec

TESTS = {
    # term: (test, null hypothesis, alternative)
    "const_minus_rf": ("S-L", "E(gamma_0 - r_f) = 0", "two-sided"),
    "beta": ("C3", "E(gamma_1) = 0 vs > 0", "greater"),
    "beta2": ("C1", "E(gamma_2) = 0", "two-sided"),
    "se": ("C2", "E(gamma_3) = 0", "two-sided"),
}
GAMMA = {"const": "gamma_0", "beta": "gamma_1", "beta2": "gamma_2", "se": "gamma_3", "const_minus_rf": "g0-rf"}
TIE_DIGITS = 10  # formation betas equal to this many decimals are ties (broken by asset id)
LEVEL = 0.05  # the test size behind the reject_* columns of fmduck.fm1973_periods


@dataclass(frozen=True)
class FM1973Results(FamaMacBethResults):
    """Results of the fm1973 design: the common tables plus ``extra`` (portfolios, per-period tests)."""

    @property
    def portfolios(self) -> pl.DataFrame:
        return self.extra["portfolios"]

    @property
    def periods(self) -> pl.DataFrame:
        return self.extra["fm1973_periods"]


class FM1973:
    """Fama-MacBeth (1973) on a stock panel: formation, estimation and testing periods rolled forward."""

    def __init__(self, spec: Spec, database: Any = ":memory:") -> None:
        spec.validate()
        self.spec = spec
        self.engine: Engine = connect(database)
        self.statements: list[tuple[str, str]] = []

    # ================================================================== public
    def fit(self, *, write: bool = True, progress: Any = None) -> FM1973Results:
        say = progress or (lambda _msg: None)
        started = time.perf_counter()
        spec = self.spec
        run_id = uuid.uuid4().hex
        names = ("calendar", "cohorts", "ranges", "fbetas", "ecounts", "members", "sbetas", "pmonths")
        self._t = {k: f"fmduck_fm73_{k}_{run_id[:8]}" for k in names}
        self.statements = []
        try:
            say("checking inputs")
            returns, factors, shifts, n_rows = self._inputs()
            calendar = self._calendar(factors)
            cohorts, ranges = self._schedule(calendar)
            say(f"market-model regressions per stock over {ranges.height} formation/estimation windows "
                f"({cohorts.height} cohorts)")
            fits = self._stock_betas(returns, factors, shifts)
            say(f"ranking stocks into {spec.n_portfolios} portfolios per cohort (SQL)")
            members = self._portfolios(returns, cohorts, ranges, fits)
            say("testing periods: portfolio returns and regressors per period (SQL)")
            pmonths = self._portfolio_months(returns, members)
            say("cross-sectional regressions per testing period")
            lambdas, skipped_cs = self._cross_sections(pmonths, calendar)
            rf = self._rf_series(factors, lambdas) if spec.rf else None
            estimates, conventions, lags = self._inference(lambdas)
            periods = self._periods(lambdas, rf, cohorts, lags)
        finally:
            for name in self._t.values():
                self.engine.drop_upload(name)
        pricing = _pricing_errors(pmonths, lambdas, self.terms)
        first_pass = self._first_pass(fits, ranges, calendar)
        skipped = pl.concat([self._skipped_cohorts(cohorts, members, calendar), skipped_cs], how="vertical")
        portfolios = self._portfolio_table(members, fits, cohorts, calendar)
        labels = calendar.select(pl.col("pidx"), pl.col("period").cast(pl.Utf8))
        months = pmonths.join(labels, on="pidx", how="left", suffix="_label").select(
            "cohort", pl.col("period_label").alias("period"), pl.col("pidx").alias("period_index"),
            "portfolio", "n_stocks", "ret", "beta", "se",
        )
        per = lambdas["period"]
        run = run_record(
            spec, run_id=run_id, dialect=self.engine.dialect, conventions=conventions, statements=self.statements,
            fingerprint={
                "returns": returns.label, "returns_rows": n_rows, "factors": factors.label,
                "pass2_rows": int(lambdas["n"].sum()), "n_assets": int(members["asset"].n_unique()),
                "n_cohorts": int(cohorts.height), "first_period": per.min(), "last_period": per.max(),
            },
            n_periods=lambdas.height, avg_n=lambdas["n"].mean(), avg_r2=lambdas["r2"].mean(), started=started,
        )
        results = assemble(
            run, cls=FM1973Results, first_pass=first_pass, lambdas=lambdas, estimates=estimates,
            pricing_errors=pricing, skipped=skipped,
            extra={"portfolios": portfolios, "fm1973_portfolio_months": months, "fm1973_periods": periods},
        )
        if write:
            say(f"writing run {spec.name!r} to schema {spec.schema!r}")
            write_run(self.engine, spec.schema, results, replace=spec.replace)
        return results

    def sql(self) -> list[tuple[str, str]]:
        self.fit(write=False)
        return list(self.statements)

    @property
    def terms(self) -> list[str]:
        return ["const", *self.spec.fm_regressors]

    # ================================================================== inputs and schedule
    def _inputs(self) -> tuple[Relation, Relation, dict[str, float], int]:
        spec, eng = self.spec, self.engine
        returns = eng.relation(spec.returns, "returns")
        factors = eng.relation(spec.factors, "factors")
        fperiod = spec.factor_period or spec.period
        validate.require_columns(returns, {"--asset": spec.asset, "--period": spec.period, "--ret": spec.ret},
                                 [spec.ret])
        validate.require_unique(eng, returns, [spec.asset, spec.period])
        prof = validate.profile(eng, returns, [spec.ret])
        fneeded = {"--factor-period": fperiod, "--market": spec.market}
        fnumeric = [spec.market]
        if spec.rf:
            if spec.rf not in factors.columns:
                raise InputError(f"risk-free column --rf {spec.rf!r} must be in {factors.label} (design fm1973 "
                                 "uses it for the Sharpe-Lintner test E(gamma_0 - r_f) = 0, per period)")
            fneeded["--rf"] = spec.rf
            fnumeric.append(spec.rf)
        validate.require_columns(factors, fneeded, fnumeric)
        validate.require_same_period_type(returns, spec.period, factors, fperiod)
        validate.require_unique(eng, factors, [fperiod])
        fprof = validate.profile(eng, factors, fnumeric)
        return returns, factors, {"ret": prof.shift(spec.ret), "market": fprof.shift(spec.market)}, prof.n_rows

    def _calendar(self, factors: Relation) -> pl.DataFrame:
        spec = self.spec
        sql = templates.render("calendar", self.engine.dialect, relation=factors.sql,
                               period=templates.ident(spec.factor_period or spec.period))
        self._record("calendar", sql)
        calendar = self.engine.query(sql).with_row_index("pidx", offset=1).with_columns(pl.col("pidx").cast(pl.Int64))
        self.engine.upload(self._t["calendar"], calendar)
        return calendar

    def _schedule(self, calendar: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Cohorts (formation, estimation, testing ranges) and the regression windows, in calendar pidx."""
        spec = self.spec
        frame = schedule(calendar.height, spec.formation, spec.estimation, spec.testing, spec.beta_update)
        if frame[0].height == 0:
            need = spec.formation + spec.estimation + 1
            raise InputError(f"the market table has {calendar.height} periods; design fm1973 needs at least "
                             f"formation + estimation + 1 = {need}")
        cohorts, ranges = frame
        self.engine.upload(self._t["cohorts"], cohorts)
        self.engine.upload(self._t["ranges"], ranges)
        return cohorts, ranges

    # ================================================================== SQL passes
    def _context(self, returns: Relation) -> dict[str, Any]:
        spec = self.spec
        t = {k: templates.ident(v) for k, v in self._t.items()}
        return {
            "returns": returns.sql, "asset": templates.ident(spec.asset), "period": templates.ident(spec.period),
            "ret": templates.ident(spec.ret), "calendar": t["calendar"], "cohorts": t["cohorts"],
            "ranges": t["ranges"], "formation_betas": t["fbetas"], "estimation_counts": t["ecounts"],
            "members": t["members"], "stock_betas": t["sbetas"],
        }

    def _stock_betas(self, returns: Relation, factors: Relation, shifts: dict[str, float]) -> pl.DataFrame:
        """Market-model OLS per (stock, window) for every formation and estimation window: one moments query."""
        spec = self.spec
        context = {
            **self._context(returns),
            "factors": factors.sql, "factor_period": templates.ident(spec.factor_period or spec.period),
            "betas": None, "betas_table": None, "char_lag": False, "lambdas_table": None,
        }
        variables = [Variable(spec.market, templates.column(spec.market, "f"), shifts["market"]),
                     Variable("ret", templates.column(spec.ret, "p"), shifts["ret"])]
        mom = compute_moments(self.engine, ["asset", "range_id"], variables, context, {},
                              record=lambda sql: self._record("market-model moments per stock and window", sql))
        if mom.frame.height == 0:
            raise InputError(f"{returns.label}: no stock has a return in a formation or estimation period "
                             f"with a non-NULL market return")
        fit = mom.ols(intercept=True, min_df=1)
        return mom.frame.with_columns(
            pl.Series("alpha", fit.params[:, 0]), pl.Series("beta", fit.params[:, 1]),
            pl.Series("alpha_se", fit.std_errors[:, 0]), pl.Series("beta_se", fit.std_errors[:, 1]),
            pl.Series("se", fit.rmse), pl.Series("r2", fit.r2), pl.Series("adj_r2", fit.adj_r2),
            pl.Series("nobs", fit.nobs), pl.Series("ok", fit.ok),
        )

    def _portfolios(self, returns: Relation, cohorts: pl.DataFrame, ranges: pl.DataFrame,
                    fits: pl.DataFrame) -> pl.DataFrame:
        spec = self.spec
        kinds = ranges.select("range_id", "cohort", "kind", "k")
        fits = fits.join(kinds, on="range_id", how="left")
        formation = fits.filter(pl.col("kind") == "formation").select(
            "cohort", "asset", pl.when(pl.col("ok")).then(pl.col("beta")).alias("beta"), "nobs")
        estimation = fits.filter((pl.col("kind") == "estimation") & (pl.col("k") == 0)).select(
            "cohort", "asset", "beta", "nobs")
        self.engine.upload(self._t["fbetas"], formation)
        self.engine.upload(self._t["ecounts"], estimation)
        sbetas = fits.filter((pl.col("kind") == "estimation") & pl.col("ok")).select("range_id", "asset", "beta", "se")
        self.engine.upload(self._t["sbetas"], sbetas)
        sql = templates.render("fm1973_portfolios", self.engine.dialect, **self._context(returns))
        self._record("portfolio formation", sql)
        members = self.engine.query(sql, {
            "min_formation": spec.min_obs or spec.formation, "estimation": spec.estimation,
            "n_portfolios": spec.n_portfolios, "tie_scale": 10.0**TIE_DIGITS,
        })
        if members.height == 0:
            raise EstimationError(
                f"no cohort has {spec.n_portfolios} stocks with {spec.min_obs or spec.formation} formation "
                f"periods, all {spec.estimation} estimation periods and a return in the first testing period"
            )
        self.engine.upload(self._t["members"], members)
        return members

    def _portfolio_months(self, returns: Relation, members: pl.DataFrame) -> pl.DataFrame:
        sql = templates.render("fm1973_portfolio_months", self.engine.dialect, **self._context(returns))
        self._record("portfolio returns and regressors per testing period", sql)
        return self.engine.query(sql)

    def _cross_sections(self, pmonths: pl.DataFrame, calendar: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """γ_t: the moments template GROUP BY period over the portfolio rows, one batched solve."""
        spec = self.spec
        if pmonths.height == 0:
            raise EstimationError("no testing period has a portfolio with a return")
        self.engine.upload(self._t["pmonths"], pmonths)
        col = {c: exp.column(c, table="p") for c in ("ret", "beta", "se")}
        exprs = {"beta": col["beta"], "beta2": exp.Mul(this=col["beta"], expression=col["beta"]), "se": col["se"]}
        variables = [Variable(r, exprs[r], float(pmonths.select(_expr_pl(r)).mean().item()))
                     for r in spec.fm_regressors]
        variables.append(Variable("ret", col["ret"], float(pmonths["ret"].mean())))
        context = {
            "returns": templates.ident(self._t["pmonths"]), "asset": "portfolio", "period": "period",
            "calendar": templates.ident(self._t["calendar"]), "factors": None, "factor_period": None,
            "betas": None, "betas_table": None, "char_lag": False, "lambdas_table": None,
        }
        mom = compute_moments(self.engine, ["pidx"], variables, context, {},
                              record=lambda sql: self._record("cross-section moments per testing period", sql))
        fit = mom.ols(intercept=True, min_df=1)
        keys = mom.frame.join(calendar, on="pidx", how="left").select(
            pl.col("period").cast(pl.Utf8), pl.col("pidx").alias("period_index"))
        ok = fit.ok
        if ok.sum() < 2:
            raise EstimationError(f"fewer than 2 testing periods have a usable cross-section ({int(ok.sum())})")
        lambdas = keys.filter(pl.Series(ok)).with_columns(
            *[pl.Series(t, fit.params[ok, j]) for j, t in enumerate(self.terms)],
            pl.Series("r2", fit.r2[ok]), pl.Series("adj_r2", fit.adj_r2[ok]), pl.Series("n", fit.nobs[ok]),
        ).sort("period_index")
        bad = keys.filter(pl.Series(~ok))
        skipped = pl.DataFrame({
            "pass": ["cross_section"] * bad.height, "asset": [None] * bad.height, "period": bad["period"],
            "reason": [str(r) for r in fit.reason[~ok]], "nobs": fit.nobs[~ok].astype(np.int64),
        }, schema=_SKIPPED)
        return lambdas, skipped

    def _rf_series(self, factors: Relation, lambdas: pl.DataFrame) -> np.ndarray:
        spec = self.spec
        fperiod = spec.factor_period or spec.period
        sql = templates.render(
            "factor_series", self.engine.dialect, relation=factors.sql, calendar=templates.ident(self._t["calendar"]),
            factor_period=templates.ident(fperiod), factors=[{"ident": templates.ident(spec.rf), "alias": "rf"}])
        self._record("risk-free series (Sharpe-Lintner test)", sql)
        series = lambdas.select("period_index").join(self.engine.query(sql), left_on="period_index",
                                                     right_on="pidx", how="left")["rf"]
        if series.null_count():
            raise InputError(f"{factors.label}: risk-free column {spec.rf!r} is NULL in {series.null_count()} "
                             "testing period(s)")
        return series.to_numpy().astype(np.float64)

    # ================================================================== inference
    def _inference(self, lambdas: pl.DataFrame) -> tuple[pl.DataFrame, str, int]:
        spec = self.spec
        lam = lambdas.select(self.terms).to_numpy().astype(np.float64)
        t = lam.shape[0]
        df = t - 1
        lags = nw_lags(spec, t, periods="testing periods")
        est = lam.mean(axis=0)
        results = [
            (inference("fm", est, fm_covariance(lam), df),
             f"Fama-MacBeth: sd(gamma_t, ddof=1)/sqrt(T); t with T-1 = {df} df"),
            (inference("nw", est, newey_west_covariance(lam, lags, spec.nw_divisor), df),
             "Newey-West: " + nw_note(spec, lags, df)),
        ]
        estimates = estimates_frame(results, self.terms, n_periods=t, avg_n=lambdas["n"].mean(),
                                    avg_r2=lambdas["r2"].mean(), lags=lags)
        conventions = "\n".join([
            *(note for _, note in results),
            (f"fm1973: formation {spec.formation}, estimation {spec.estimation}, testing {spec.testing} periods; "
             f"{spec.n_portfolios} portfolios; betas re-estimated every {spec.beta_update} period(s) over an "
             "expanding window from the estimation start (Fama-MacBeth 1973)"),
            "Tests per sub-period (fmduck.fm1973_periods): C1 E(gamma_2)=0, C2 E(gamma_3)=0, C3 E(gamma_1)>0 "
            "(one-sided)" + (", S-L E(gamma_0 - r_f)=0" if spec.rf else "") + f"; reject at {LEVEL:g}",
        ])
        return estimates, conventions, lags

    def _periods(self, lambdas: pl.DataFrame, rf: np.ndarray | None, cohorts: pl.DataFrame,
                 lags: int) -> pl.DataFrame:
        """Sub-period and overall statistics and tests (the rows of the paper's Table 3)."""
        spec = self.spec
        series = {t: lambdas[t].to_numpy().astype(np.float64) for t in self.terms}
        if rf is not None:
            series["const_minus_rf"] = series["const"] - rf
        pidx = lambdas["period_index"].to_numpy()
        labels = lambdas["period"].to_list()
        if spec.subperiods is None:
            cohort_of = np.searchsorted(cohorts["test_start"].to_numpy(), pidx, side="right") - 1
            blocks = [np.flatnonzero(cohort_of == c) for c in np.unique(cohort_of)]
        else:
            blocks = [b for b in np.array_split(np.arange(len(pidx)), spec.subperiods) if len(b)]
        blocks = ([] if len(blocks) == 1 else blocks) + [np.arange(len(pidx))]
        r2 = lambdas["r2"].to_numpy()
        rows = []
        for b, idx in enumerate(blocks):
            overall = b == len(blocks) - 1
            for term, values in series.items():
                rows.append({
                    "subperiod": 0 if overall else b + 1,
                    "label": "overall" if overall else f"{labels[idx[0]]} - {labels[idx[-1]]}",
                    "first_period": labels[idx[0]], "last_period": labels[idx[-1]], "n_periods": len(idx),
                    "term": term, **_period_stats(term, values[idx], lags, spec.nw_divisor),
                    "avg_r2": float(r2[idx].mean()),
                    "sd_r2": float(r2[idx].std(ddof=1)) if len(idx) > 1 else None,
                })
        return pl.DataFrame(rows, schema=_PERIODS)

    # ================================================================== result frames
    def _first_pass(self, fits: pl.DataFrame, ranges: pl.DataFrame, calendar: pl.DataFrame) -> pl.DataFrame:
        """Estimation-window market-model fits per stock (period = the window's last period)."""
        est = fits.join(ranges.filter(pl.col("kind") == "estimation").select("range_id", "range_end"),
                        on="range_id", how="inner").filter(pl.col("ok"))
        est = est.join(calendar.select(pl.col("pidx").alias("range_end"), pl.col("period").cast(pl.Utf8)),
                       on="range_end", how="left")
        common = [pl.col("asset").cast(pl.Utf8), "period", pl.col("range_end").alias("period_index")]
        stats_ = ["r2", "adj_r2", pl.col("se").alias("rmse"), "nobs"]
        parts = [
            est.select(*common, pl.lit(term).alias("term"), pl.col(p).alias("estimate"), pl.col(s).alias("std_error"),
                       (pl.col(p) / pl.col(s)).alias("t_stat"), *stats_)
            for term, p, s in (("const", "alpha", "alpha_se"), (self.spec.market, "beta", "beta_se"))
        ]
        return pl.concat(parts).sort("asset", "period_index", "term")

    def _portfolio_table(self, members: pl.DataFrame, fits: pl.DataFrame, cohorts: pl.DataFrame,
                         calendar: pl.DataFrame) -> pl.DataFrame:
        est0 = fits.join(cohorts.select("cohort", pl.col("est_range").alias("range_id")), on="range_id").select(
            "cohort", "asset", pl.col("beta").alias("estimation_beta"), pl.col("se").alias("estimation_se"))
        label = dict(zip(calendar["pidx"].to_list(), [str(p) for p in calendar["period"].to_list()]))
        bounds = cohorts.select(
            "cohort",
            *[pl.col(c).replace_strict(label, return_dtype=pl.Utf8).alias(name) for c, name in (
                ("form_start", "formation_start"), ("form_end", "formation_end"), ("est_start", "estimation_start"),
                ("est_end", "estimation_end"), ("test_start", "testing_start"), ("test_end", "testing_end"))])
        return members.join(est0, on=["cohort", "asset"], how="left").join(bounds, on="cohort", how="left").select(
            "cohort", pl.col("asset").cast(pl.Utf8), "portfolio", "formation_rank", "n_stocks", "formation_beta",
            "formation_nobs", "estimation_beta", "estimation_se", "formation_start", "formation_end",
            "estimation_start", "estimation_end", "testing_start", "testing_end",
        ).sort("cohort", "formation_rank")

    def _skipped_cohorts(self, cohorts: pl.DataFrame, members: pl.DataFrame, calendar: pl.DataFrame) -> pl.DataFrame:
        missing = cohorts.join(members.select("cohort").unique(), on="cohort", how="anti")
        label = dict(zip(calendar["pidx"].to_list(), [str(p) for p in calendar["period"].to_list()]))
        return pl.DataFrame({
            "pass": ["portfolio_formation"] * missing.height, "asset": [None] * missing.height,
            "period": [label[p] for p in missing["test_start"].to_list()],
            "reason": [f"cohort {c}: fewer than {self.spec.n_portfolios} eligible stocks" for c in missing["cohort"]],
            "nobs": [None] * missing.height,
        }, schema=_SKIPPED)

    def _record(self, label: str, sql: str) -> None:
        self.statements.append((label, sql))


# ====================================================================== pure helpers
def schedule(n_periods: int, formation: int, estimation: int, testing: int,
             update: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cohorts and regression windows over calendar positions 1..n_periods (both tiny frames).

    Cohort c (from 0) forms portfolios on [1 + c·testing, formation + c·testing], estimates on the
    next ``estimation`` periods and tests on the ``testing`` periods after that (the last cohort's
    testing period may be cut short by the end of the calendar). Its windows: the formation period
    (kind 'formation'), and for k = 0, 1, ... the estimation window [estimation start,
    u_k - 1] applied to the testing periods [u_k, u_k + update - 1], u_k = test start + k·update
    (kind 'estimation'; k = 0 is the estimation period itself).
    """
    cohorts, ranges = [], []
    c = 0
    while True:
        f0 = 1 + c * testing
        t0 = f0 + formation + estimation
        if t0 > n_periods:
            break
        t1 = min(t0 + testing - 1, n_periods)
        form_id = len(ranges) + 1
        ranges.append((form_id, c, "formation", None, f0, f0 + formation - 1, None, None))
        est_id = len(ranges) + 1
        k = 0
        while t0 + k * update <= t1:
            u = t0 + k * update
            ranges.append((len(ranges) + 1, c, "estimation", k, f0 + formation, u - 1, u, min(u + update - 1, t1)))
            k += 1
        cohorts.append((c, f0, f0 + formation - 1, f0 + formation, t0 - 1, t0, t1, form_id, est_id))
        c += 1
    cohort_frame = pl.DataFrame(cohorts, orient="row", schema={
        "cohort": pl.Int64, "form_start": pl.Int64, "form_end": pl.Int64, "est_start": pl.Int64,
        "est_end": pl.Int64, "test_start": pl.Int64, "test_end": pl.Int64, "form_range": pl.Int64,
        "est_range": pl.Int64})
    range_frame = pl.DataFrame(ranges, orient="row", schema={
        "range_id": pl.Int64, "cohort": pl.Int64, "kind": pl.Utf8, "k": pl.Int64, "range_start": pl.Int64,
        "range_end": pl.Int64, "apply_start": pl.Int64, "apply_end": pl.Int64})
    return cohort_frame, range_frame


def _period_stats(term: str, values: np.ndarray, lags: int, divisor: str) -> dict[str, Any]:
    """Mean, s(γ), first-order autocorrelation, FM and NW t of one γ series, and the paper's test."""
    n = len(values)
    test, null, alternative = TESTS.get(term, (None, None, None))
    out: dict[str, Any] = {"test": test, "null_hypothesis": null, "alternative": alternative,
                           "mean": float(values.mean())}
    lam = values[:, None]
    fm = inference("fm", lam.mean(axis=0), fm_covariance(lam), n - 1) if n > 1 else None
    lag = min(lags, n - 1)
    nw = inference("nw", lam.mean(axis=0), newey_west_covariance(lam, lag, divisor), n - 1) if n > 1 else None
    dev = values - values.mean()
    out["std_dev"] = float(values.std(ddof=1)) if n > 1 else None
    out["rho1"] = float(dev[1:] @ dev[:-1] / (dev @ dev)) if n > 2 and dev @ dev > 0 else None
    for label, inf in (("fm", fm), ("nw", nw)):
        if inf is None:
            out.update({f"{label}_std_error": None, f"{label}_t": None, f"{label}_p": None, f"reject_{label}": None})
            continue
        t_stat = float(inf.t_stat[0])
        p = float(stats.t.sf(t_stat, n - 1)) if alternative == "greater" else float(inf.p_value[0])
        out.update({f"{label}_std_error": float(inf.std_error[0]), f"{label}_t": t_stat,
                    f"{label}_p": p if test else None, f"reject_{label}": bool(p < LEVEL) if test else None})
    out["nw_lags"] = lag if n > 1 else None
    return out


def _expr_pl(regressor: str) -> pl.Expr:
    return (pl.col("beta") * pl.col("beta")).alias("beta2") if regressor == "beta2" else pl.col(regressor)


def _pricing_errors(pmonths: pl.DataFrame, lambdas: pl.DataFrame, terms: list[str]) -> pl.DataFrame:
    """α_p: each beta-rank portfolio's average testing-period residual r_pt − x_pt'γ_t, with s/√n."""
    gam = lambdas.select(pl.col("period_index").alias("pidx"), *[pl.col(t).alias(f"g_{t}") for t in terms])
    x = {"const": pl.lit(1.0), "beta": pl.col("beta"), "beta2": pl.col("beta") ** 2, "se": pl.col("se")}
    fitted = sum((pl.col(f"g_{t}") * x[t] for t in terms), pl.lit(0.0))
    res = pmonths.join(gam, on="pidx", how="inner").with_columns((pl.col("ret") - fitted).alias("resid"))
    return res.group_by("portfolio").agg(
        pl.col("resid").mean().alias("alpha"),
        (pl.col("resid").std(ddof=1) / pl.len().sqrt()).alias("std_error"),
        pl.len().cast(pl.Int64).alias("n_periods"),
    ).with_columns((pl.col("alpha") / pl.col("std_error")).alias("t_stat")).sort("portfolio").select(
        pl.format("P{}", pl.col("portfolio").cast(pl.Utf8).str.zfill(2)).alias("asset"),
        "alpha", "std_error", "t_stat", "n_periods")


_SKIPPED = {"pass": pl.Utf8, "asset": pl.Utf8, "period": pl.Utf8, "reason": pl.Utf8, "nobs": pl.Int64}
_PERIODS = {
    "subperiod": pl.Int64, "label": pl.Utf8, "first_period": pl.Utf8, "last_period": pl.Utf8,
    "n_periods": pl.Int64, "term": pl.Utf8, "test": pl.Utf8, "null_hypothesis": pl.Utf8, "alternative": pl.Utf8,
    "mean": pl.Float64, "std_dev": pl.Float64, "rho1": pl.Float64, "fm_std_error": pl.Float64,
    "fm_t": pl.Float64, "fm_p": pl.Float64, "reject_fm": pl.Boolean, "nw_std_error": pl.Float64,
    "nw_t": pl.Float64, "nw_p": pl.Float64, "reject_nw": pl.Boolean, "nw_lags": pl.Int64,
    "avg_r2": pl.Float64, "sd_r2": pl.Float64,
}


# ====================================================================== Table 3
def design_summary(results: FamaMacBethResults, text: str) -> str:
    """The summary of an fm1973 run (``fmduck.summary.DESIGN_SUMMARIES``): the xtfmb-style blocks with
    this design's header, then Table 3."""
    lines = text.splitlines()
    spec = results.spec
    # the generic header describes a two-pass run; say what this design did instead
    left = ["Fama-MacBeth (1973) beta-sorted portfolios",
            f"Run: {results.name}  (fm1973, {results.run['engine']})",
            (f"{spec['n_portfolios']} portfolios; {spec['formation']}/{spec['estimation']}/{spec['testing']} "
             "form/est/test"),
            f"Dependent: portfolio mean {spec['ret']} (raw)"]
    for i, head in enumerate(left):
        lines[i] = f"{head[:45]:<46}{lines[i][46:]}"
    if "fm1973_periods" not in results.extra:
        return "\n".join(lines)
    return "\n".join(lines) + "\n\n" + table3_text(results)


def table3(results: FamaMacBethResults) -> pl.DataFrame:
    """The paper's Table 3 layout: one row per sub-period (then 'overall'); per γ_j its mean, s(γ_j)
    (the standard deviation of the monthly γ_jt) and t(γ̄_j) = γ̄_j / (s(γ_j)/√n); NW t beside it;
    then the mean and standard deviation of the periods' R²."""
    periods = results.extra.get("fm1973_periods")
    if periods is None:
        raise InputError(f"run {results.name!r} has no fm1973_periods table (is it a design fm1973 run?)")
    periods = periods.sort(pl.when(pl.col("subperiod") == 0).then(10**9).otherwise(pl.col("subperiod")))
    order = list(dict.fromkeys(periods["term"].to_list()))
    base = periods.select("subperiod", pl.col("label").alias("period"), pl.col("n_periods").alias("n"),
                          pl.col("avg_r2").alias("r2_mean"), pl.col("sd_r2").alias("r2_sd")).unique(
        "subperiod", keep="first", maintain_order=True)
    for term in order:
        g = GAMMA.get(term, term)
        part = periods.filter(pl.col("term") == term).select(
            "subperiod", pl.col("mean").alias(f"{g}"), pl.col("std_dev").alias(f"s({g})"),
            pl.col("fm_t").alias(f"t({g})"), pl.col("nw_t").alias(f"t_nw({g})"))
        base = base.join(part, on="subperiod", how="left", maintain_order="left")
    cols = [c for c in base.columns if c not in ("r2_mean", "r2_sd")] + ["r2_mean", "r2_sd"]
    return base.select(cols).drop("subperiod")


def table3_text(results: FamaMacBethResults) -> str:
    """Table 3 as text: blocks of γ̄, s(γ), t(γ̄) FM and NW, periods as rows, γ_j as columns."""
    from fmduck.summary import number

    tab = table3(results)
    gammas = [c for c in tab.columns if c not in ("period", "n", "r2_mean", "r2_sd") and "(" not in c]
    width = 30
    lines = ["Fama-MacBeth (1973) Table 3 layout: portfolio cross-sections per period, by sub-period"]
    blocks = (("mean of gamma_t", "{}"), ("s(gamma): std. dev. of gamma_t", "s({})"),
              ("t(mean) = mean / (s/sqrt(n))", "t({})"), ("Newey-West t(mean)", "t_nw({})"))
    for title, pattern in blocks:
        lines.append("-" * 78)
        r2_head = f"{'r2':>8}" if pattern == "{}" else ""
        lines.append(f"{title:<{width}}" + "".join(f"{g:>10}" for g in gammas) + r2_head)
        for row in tab.iter_rows(named=True):
            head = f"{row['period'][:24]:<24}{row['n']:>6}"
            cells = "".join(" " + number(row[pattern.format(g)], 9, 4) for g in gammas)
            lines.append(head + cells + (" " + number(row["r2_mean"], 7, 3) if pattern == "{}" else ""))
    lines.append("-" * 78)
    lines.append("Tests of the overall mean (Student t with n-1 df; C3 one-sided, the others two-sided):")
    overall = results.extra["fm1973_periods"].filter((pl.col("subperiod") == 0) & pl.col("test").is_not_null())
    for row in overall.iter_rows(named=True):
        verdict = "rejected" if row["reject_fm"] else "not rejected"
        lines.append(f"  {row['test']:<4} {row['null_hypothesis']:<24} t = {row['fm_t']:7.2f} (NW {row['nw_t']:6.2f})"
                     f"  p = {row['fm_p']:.3f}  {verdict} at {LEVEL:g}")
    return "\n".join(lines)
