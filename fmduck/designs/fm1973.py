"""The original Fama-MacBeth (1973) design: beta-sorted portfolios, formation / estimation / testing.

    spec = Spec(name="fm73", design="fm1973", returns="crsp", factors="market", market="vwretd",
                rf="rf", formation=84, estimation=60, testing=48, n_portfolios=20)
    results = FM1973(spec, "crsp.duckdb").fit()
    print(table3(results))

The procedure (Fama and MacBeth 1973, JPE 81(3), section III), with every length in calendar
periods of the market table and rolled forward by the testing length:

1. Formation (``formation`` periods): a market-model regression r_it = a_i + b_i r_mt + e_it per
   stock. Stocks with at least ``min_obs`` formation observations (default: all), a return in each
   of the ``estimation`` periods and a return in the first testing period are ranked on b_i and cut
   into ``n_portfolios`` portfolios (equal sizes, the left-over stocks to the extreme portfolios).
   The assignment is stored in ``fmduck.portfolios``.
2. Estimation (the next ``estimation`` periods): b_i and s(e_i) (the residual standard deviation,
   √(SSR/(n−2))) re-estimated per stock.
3. Testing (the next ``testing`` periods): in period t the cross-section of equally weighted
   portfolio returns r_pt is regressed on β_{p,t-1}, β²_{p,t-1} and s_p(e)_{t-1}, the averages
   of the member stocks' b_i (squared after averaging) and s(e_i) over the members with a return
   in t. Updating rule (the paper's): the stock b_i and s(e_i) are re-estimated every
   ``beta_update`` periods (12 = yearly; 1 = monthly) over an expanding window from the start of
   the estimation period to the period before the update. Each period's γ_0t..γ_3t go to
   ``fmduck.lambdas``, the portfolio rows to ``fmduck.fm1973_portfolio_months``.
4. Inference over all testing periods (Fama-MacBeth and Newey-West) and per sub-period in
   ``fmduck.fm1973_periods`` with the paper's tests (:mod:`fmduck.designs.fm1973_table3`).

Every regression is solved in the engine; the statements are in :mod:`fmduck.designs.fm1973_plan`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from fmduck import covariance
from fmduck.covariance import InferenceOptions
from fmduck.designs import Design, RunOutput
from fmduck.designs.fm1973_plan import (
    REGRESSORS,
    build,
    catalog,
    first_pass_copy,
    schedule,
    terms,
)
from fmduck.designs.fm1973_table3 import (
    LEVEL,
    PERIODS,
    SQL_TYPES,
    periods,
    summary,
    table3,
    table3_text,
)
from fmduck.errors import InputError, SpecError
from fmduck.model import FamaMacBeth
from fmduck.options import Option
from fmduck.passes import pass3
from fmduck.plan import State
from fmduck.results import FamaMacBethResults

__all__ = ["DESIGN", "FM1973", "FM1973Results", "schedule", "table3", "table3_text"]

GROUP = "design fm1973 (Fama-MacBeth 1973 beta-sorted portfolios; lengths in periods)"
OPTIONS = (
    Option("market", "str", None, "market return column of the --factors table", GROUP, metavar="COL"),
    Option("formation", "int", 48, "portfolio formation period length (default 48)", GROUP, metavar="N",
           nullable=False),
    Option("estimation", "int", 60, "estimation period length (default 60)", GROUP, metavar="N", nullable=False),
    Option("testing", "int", 48, "testing period length, also the roll-forward step (default 48)", GROUP,
           metavar="N", nullable=False),
    Option("n_portfolios", "int", 20, "number of beta-sorted portfolios (default 20)", GROUP, metavar="P",
           nullable=False),
    Option("fm_regressors", "names", list(REGRESSORS), "comma-separated subset of beta,beta2,se (default all "
           "three)", GROUP, metavar="A,B", nullable=False),
    Option("beta_update", "int", 12, "re-estimate stock betas and s(e) every N testing periods (default 12, the "
           "paper's yearly)", GROUP, metavar="N", nullable=False),
    Option("subperiods", "int", None, "report N equal sub-periods of the testing months (default: one per "
           "testing period)", GROUP, metavar="N"),
)
# two-pass options this design has no use for: refused rather than ignored (option -> its default)
UNUSED = {"weights": None, "absorb": None, "winsorize": None, "standardize": False, "rank": False, "grid": None,
          "csr": "ols", "min_assets": None, "beta_max_age": None, "beta_lag": 1, "char_lag": 0,
          "conventions": "fmduck"}


class FM1973Results(FamaMacBethResults):
    """The results of an fm1973 run (computed or read back): the common tables, plus ``portfolios`` and
    ``periods`` (the rows of ``fmduck.portfolios`` and ``fmduck.fm1973_periods``)."""

    @property
    def portfolios(self) -> pl.DataFrame:
        return self.extra["portfolios"]

    @property
    def periods(self) -> pl.DataFrame:
        return self.extra["fm1973_periods"]


class FM1973(FamaMacBeth):
    """Fama-MacBeth (1973) on a stock panel: formation, estimation and testing periods rolled forward."""

    def __init__(self, spec: Any, database: Any = ":memory:", *, results: Any = None) -> None:
        if spec.design != "fm1973":
            raise SpecError(f"FM1973 runs design fm1973, the spec has design {spec.design!r}")
        super().__init__(spec, database, results=results)



# ====================================================================== validation
def validate_spec(spec: Any) -> None:
    """Options of the Fama-MacBeth (1973) portfolio design (pure)."""
    if spec.factors is None or not spec.market:
        raise SpecError("design fm1973 needs a factors table (--factors) and its market return column (--market)")
    for label, value in (("--factor-cols", spec.factor_cols), ("--chars", spec.chars), ("--window", spec.window)):
        if value:
            raise SpecError(f"design fm1973 does not use {label}: betas are on --market, over the formation and "
                            "estimation periods (--formation, --estimation)")
    if not spec.intercept:
        raise SpecError("design fm1973 always fits the intercept gamma_0 (drop --no-intercept)")
    unused = [f"--{k.replace('_', '-')}" for k, default in UNUSED.items() if not _off(getattr(spec, k), default)]
    if unused:
        raise SpecError(f"design fm1973 does not use {', '.join(unused)}: its cross-sections are the equally "
                        "weighted beta-sorted portfolios with the paper's regressors (--fm-regressors), betas dated "
                        "t-1, and fmduck's Newey-West convention")
    if spec.first_pass == "summary":
        raise SpecError("--first-pass summary averages rolling betas per asset; design fm1973 stores the "
                        "estimation-window betas (full) or none")
    for name in ("formation", "estimation", "testing", "n_portfolios", "beta_update"):
        value = getattr(spec, name)
        if value < 1:
            raise SpecError(f"{name} must be a positive integer, got {value!r}")
    for name in ("formation", "estimation"):
        if getattr(spec, name) < 3:
            raise SpecError(f"{name} must be at least 3 periods (a market-model regression needs a residual df)")
    if spec.min_obs is not None and not 3 <= spec.min_obs <= spec.formation:
        raise SpecError(f"min_obs (formation-period observations per stock) must be between 3 and "
                        f"formation = {spec.formation}, got {spec.min_obs}")
    regs = spec.fm_regressors
    if any(r not in REGRESSORS for r in regs) or "beta" not in regs or len(set(regs)) != len(regs):
        raise SpecError(f"fm_regressors must list 'beta' and optionally 'beta2', 'se' once each, got "
                        f"{', '.join(regs) or 'none'}")
    if spec.n_portfolios < len(regs) + 2:
        raise SpecError(f"n_portfolios {spec.n_portfolios} is too few for gamma_0 and {len(regs)} "
                        f"regressor(s): the monthly cross-section needs at least {len(regs) + 2}")
    if spec.subperiods is not None and spec.subperiods < 1:
        raise SpecError(f"subperiods must be a positive integer, got {spec.subperiods!r}")


def _off(value: Any, default: Any) -> bool:
    """An option left at its default or switched off (None, False, an empty list or table)."""
    return value is None or value is False or (isinstance(value, (list, dict)) and not value) or (
        type(value) is type(default) and value == default)


# ====================================================================== finish
def finish(run: Any, spec: Any, cat: Any, state: State) -> RunOutput:
    """Inference, the paper's tests and the stored tables from what the plan left in ``state``."""
    names = terms(spec)
    lambdas = state["lambdas"]
    rf = _rf(state, lambdas, cat.factors.label, spec.rf) if spec.rf else None
    run.say("Fama-MacBeth and Newey-West inference, tests per sub-period")
    options = InferenceOptions.of(spec)
    lags = covariance.nw_lag(lambdas.height, options, periods="testing periods")
    estimates, notes, _ = pass3.infer(lambdas, names, [], None, options, se_types=("fm", "nw"))
    cohorts = state["cohorts"]
    table = periods(lambdas, names, rf, cohorts["test_start"].to_numpy(), lags, spec.subperiods, spec.nw_divisor)
    months = state["months"]
    portfolios = state["portfolios"]
    conventions = "\n".join([
        notes,
        (f"fm1973: formation {spec.formation}, estimation {spec.estimation}, testing {spec.testing} periods; "
         f"{spec.n_portfolios} portfolios; betas re-estimated every {spec.beta_update} period(s) over an "
         "expanding window from the estimation start (Fama-MacBeth 1973)"),
        "Tests per sub-period (fmduck.fm1973_periods): C1 E(gamma_2)=0, C2 E(gamma_3)=0, C3 E(gamma_1)>0 "
        "(one-sided)" + (", S-L E(gamma_0 - r_f)=0" if spec.rf else "") + f"; reject at {LEVEL:g}",
    ])
    skipped = pl.concat([_skipped_cohorts(cohorts, spec.n_portfolios), state["cross_section_skipped"]],
                        how="vertical_relaxed")
    span = lambdas["period"]
    first_pass = first_pass_copy(run, spec, cat) if spec.first_pass != "none" else None
    return RunOutput(
        lambdas=lambdas, estimates=estimates, pricing_errors=pricing_errors(months, lambdas, names),
        skipped=skipped, conventions=conventions,
        fingerprint={
            "returns": cat.returns.label, "returns_rows": state.get("returns_rows"), "factors": cat.factors.label,
            "pass2_rows": int(lambdas["n"].sum()), "n_assets": int(portfolios["asset"].n_unique()),
            "n_cohorts": int(cohorts.height), "first_period": span.min(), "last_period": span.max(),
        },
        n_periods=lambdas.height, avg_n=float(lambdas["n"].mean()), avg_r2=float(lambdas["r2"].mean()),
        extra={"portfolios": portfolios, "fm1973_portfolio_months": months, "fm1973_periods": table},
        first_pass=first_pass, first_pass_terms=["const", spec.market] if first_pass is not None else [],
        first_pass_layout="full" if first_pass is not None else "none",
    )


def _rf(state: State, lambdas: pl.DataFrame, label: str, rf: str) -> np.ndarray:
    series = lambdas.select("period_index").join(state["rf_series"], left_on="period_index", right_on="pidx",
                                                 how="left")["rf"]
    if series.null_count():
        raise InputError(f"{label}: risk-free column {rf!r} is NULL in {series.null_count()} testing period(s)")
    return series.to_numpy().astype(np.float64)


def _skipped_cohorts(cohorts: pl.DataFrame, n_portfolios: int) -> pl.DataFrame:
    """The cohorts without portfolios (period: their first testing period)."""
    missing = cohorts.filter(pl.col("n_members") == 0)
    return missing.select(
        pl.lit("portfolio_formation").alias("pass"), pl.lit(None, pl.Utf8).alias("asset"),
        pl.lit(None, pl.Int64).alias("asset_int"), "period", "period_date", "period_ts", "period_int",
        pl.format("cohort {}: fewer than {} eligible stocks", pl.col("cohort"), pl.lit(n_portfolios)).alias("reason"),
        pl.lit(None, pl.Int64).alias("nobs"))


def pricing_errors(months: pl.DataFrame, lambdas: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """α_p: each beta-rank portfolio's average testing-period residual r_pt − x_pt'γ_t, with s/√n."""
    gam = lambdas.select("period_index", *[pl.col(t).alias(f"g_{t}") for t in names])
    x = {"const": pl.lit(1.0), "beta": pl.col("beta"), "beta2": pl.col("beta") ** 2, "se": pl.col("se")}
    fitted = sum((pl.col(f"g_{t}") * x[t] for t in names), pl.lit(0.0))
    res = months.join(gam, on="period_index", how="inner").with_columns((pl.col("ret") - fitted).alias("resid"))
    return res.group_by("portfolio").agg(
        pl.col("resid").mean().alias("alpha"),
        (pl.col("resid").std(ddof=1) / pl.len().sqrt()).alias("std_error"),
        pl.len().cast(pl.Int64).alias("n_periods"),
    ).with_columns((pl.col("alpha") / pl.col("std_error")).alias("t_stat")).sort("portfolio").select(
        pl.format("P{}", pl.col("portfolio").cast(pl.Utf8).str.zfill(2)).alias("asset"),
        pl.lit(None, pl.Int64).alias("asset_int"), "alpha", "std_error", "t_stat", "n_periods")


# ====================================================================== the design
_PERIOD_KEYS = [("period", "VARCHAR NOT NULL"), ("period_date", "DATE"), ("period_ts", "TIMESTAMP"),
                ("period_int", "BIGINT"), ("period_index", "BIGINT NOT NULL")]
TABLES = {
    # who was in which beta-sorted portfolio when (one row per cohort and stock)
    "portfolios": [
        ("cohort", "BIGINT NOT NULL"), ("asset", "VARCHAR NOT NULL"), ("asset_int", "BIGINT"),
        ("portfolio", "BIGINT NOT NULL"), ("formation_rank", "BIGINT"), ("n_stocks", "BIGINT"),
        ("formation_beta", "DOUBLE"), ("formation_nobs", "BIGINT"), ("estimation_beta", "DOUBLE"),
        ("estimation_se", "DOUBLE"), *[(f"{p}_{b}", "VARCHAR") for p in ("formation", "estimation", "testing")
                                       for b in ("start", "end")]],
    # portfolio return and regressors (beta_{p,t-1}, s_p(e)_{t-1}) per testing period
    "fm1973_portfolio_months": [
        ("cohort", "BIGINT NOT NULL"), *_PERIOD_KEYS, ("portfolio", "BIGINT NOT NULL"), ("n_stocks", "BIGINT"),
        ("ret", "DOUBLE"), ("beta", "DOUBLE"), ("se", "DOUBLE")],
    # the paper's Table 3 per sub-period (subperiod 0 = overall) and its tests C1-C3, S-L
    "fm1973_periods": [(c, SQL_TYPES[t] + (" NOT NULL" if c in ("subperiod", "label", "term") else ""))
                       for c, t in PERIODS.items()],
}


class FM1973Design(Design):
    name = "fm1973"
    help = "Fama-MacBeth (1973): beta-sorted portfolios, formation/estimation/testing periods rolled forward"
    title = "Fama-MacBeth (1973) beta-sorted portfolios"
    options = OPTIONS
    tables = TABLES
    update = ("design fm1973 is full-sample by nature (its cohorts roll over the whole calendar of the market "
              "table): recomputed in full")
    results_class = FM1973Results

    def validate(self, spec: Any) -> None:
        validate_spec(spec)

    def catalog(self, spec: Any, engine: Any) -> Any:
        return catalog(spec, engine)

    def plan(self, run: Any, catalog: Any) -> Any:
        return build(run, catalog)

    def fit(self, run: Any) -> RunOutput:
        run.say("checking inputs")
        cat = self.catalog(run.spec, run.engine)
        state = build(run, cat).execute(run)
        return finish(run, run.spec, cat, state)

    def summary(self, results: Any, text: str) -> str:
        return summary(results, text)


DESIGN = FM1973Design()
