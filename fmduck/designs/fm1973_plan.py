"""The statements of a Fama-MacBeth (1973) run (design ``fm1973``): inputs, schedule, regressions, portfolios.

:func:`catalog` checks the inputs (catalog only); :func:`build` renders every statement of the run
before any data is read (``fmduck sql --design fm1973`` prints them; with ``--inline`` they run as
printed), each reading the scratch tables of the steps before it:

1. the checks and profiles of the panel and the market table (their means shift the moments), the
   calendar (the market table's periods, ``pidx`` = 1..T);
2. the schedule in calendar positions — ``cohorts`` and their regression windows ``ranges``
   (``sql/fm1973_cohorts.sql.j2``, ``sql/fm1973_ranges.sql.j2``; :func:`schedule` is the same in
   Python, the tests' oracle);
3. ``fits``: the market model r_it = a_i + b_i r_mt + e_it solved in the engine per (stock, window)
   for every formation and estimation window (``fmduck.moments.solve_source`` over the rows joined
   to ``ranges``): e0 = a_i, e1 = b_i, rmse = s(e_i) = √(SSR/(n − 2));
4. ``members``: the beta-sorted portfolios of each cohort (``sql/fm1973_portfolios.sql.j2``);
5. ``months``: per testing period and portfolio the mean return, β_{p,t−1} and s_p(e)_{t−1};
6. ``cross_sections``: per testing period the regression of the portfolio returns on the regressors
   (solved in the engine), read back as γ_t; the risk-free series and the stored tables' rows.

Callbacks only check what a step found (refusing empty schedules, samples, cross-sections) and keep
the small frames a run stores; nothing is uploaded.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlglot import exp

from fmduck import checks, inputs, templates, validate
from fmduck.errors import EstimationError, InputError
from fmduck.moments import RowSource, Variable, solve_source
from fmduck.plan import Plan, State
from fmduck.store import TableCopy

REGRESSORS = ("beta", "beta2", "se")  # β_p, β_p², s_p(e) in Fama-MacBeth (1973), in this order
TIE_DIGITS = 10  # formation betas equal to this many decimals are ties (broken by asset id)


def regressors(spec: Any) -> list[str]:
    """The cross-section regressors of ``spec`` in the paper's order (whatever order they were given in)."""
    return [r for r in REGRESSORS if r in spec.fm_regressors]


def terms(spec: Any) -> list[str]:
    """γ_0 (``const``) and the regressors: the columns of λ_t."""
    return ["const", *regressors(spec)]


# ====================================================================== inputs
def catalog(spec: Any, engine: Any) -> inputs.Catalog:
    """The panel (asset, period, ret) and the market table (period, market, rf) as the catalog has them."""
    returns = engine.relation(spec.returns, "returns")
    factors = engine.relation(spec.factors, "factors")
    fperiod = spec.factor_period or spec.period
    validate.require_columns(returns, {"--asset": spec.asset, "--period": spec.period, "--ret": spec.ret}, [spec.ret],
                              engine.dialect)
    needed, numeric = {"--factor-period": fperiod, "--market": spec.market}, [spec.market]
    if spec.rf:
        if spec.rf not in factors.columns:
            raise InputError(f"risk-free column --rf {spec.rf!r} must be in {factors.label} (design fm1973 "
                             "uses it for the Sharpe-Lintner test E(gamma_0 - r_f) = 0, per period)")
        needed["--rf"] = spec.rf
        numeric.append(spec.rf)
    validate.require_columns(factors, needed, numeric, engine.dialect)
    validate.require_same_period_type(engine, returns, spec.period, factors, fperiod)
    return inputs.Catalog(
        returns, factors, bool(spec.rf), inputs.period_key(engine, returns, spec.period, spec.freq),
        inputs.period_key(engine, factors, fperiod, spec.freq), [spec.ret], numeric)


# ====================================================================== the plan
def build(run: Any, cat: inputs.Catalog) -> Plan:
    """Every statement of the run, in order (see the module docstring)."""
    spec = run.spec
    plan = Plan(run.dialect, run.name)
    plan.calendar_kind = cat.calendar_key.kind
    t = {key: plan.name(key) for key in ("calendar", "cohorts", "ranges", "fits", "members", "months",
                                         "cross_sections", "profile_returns", "profile_factors")}
    panel = {"returns": cat.returns.sql, "asset": templates.ident(spec.asset), "ret": templates.ident(spec.ret),
             "panel_key": cat.panel_key.sql("r"), **{k: t[k] for k in ("calendar", "cohorts", "ranges", "fits")}}
    checks.add(plan, run, spec, cat)
    plan.add("calendar", "calendar", templates.source(
        "calendar", plan.dialect, relation=cat.factors.sql, key=cat.factor_key.sql("r")), kind="create")
    _schedule(plan, spec, t)
    _fits(plan, spec, cat, t)
    plan.add("members", "portfolio formation", templates.source("fm1973_portfolios", plan.dialect, **panel),
             kind="create", params={"min_formation": spec.min_obs or spec.formation, "estimation": spec.estimation,
                                    "n_portfolios": spec.n_portfolios, "tie_scale": 10.0**TIE_DIGITS})
    plan.add("cohorts_read", "portfolio formation: members per cohort", templates.source(
        "fm1973_read_cohorts", plan.dialect, cohorts=t["cohorts"], members=t["members"], calendar=t["calendar"],
        period=inputs.period_columns(plan.calendar_kind, "cal.period")), then=_cohorts(spec))
    plan.add("months", "portfolio returns and regressors per testing period", templates.source(
        "fm1973_portfolio_months", plan.dialect, members=t["members"], **panel), kind="create")
    plan.add("months_read", "portfolio rows of the testing periods", templates.source(
        "fm1973_read_months", plan.dialect, months=t["months"],
        period=inputs.period_columns(plan.calendar_kind, "m.period")), then=_months)
    _cross_sections(plan, spec, t)
    if spec.rf:
        plan.add("rf_series", "risk-free series (Sharpe-Lintner test)", templates.source(
            "factor_series", plan.dialect, relation=cat.factors.sql, key=cat.factor_key.sql("f"),
            calendar=t["calendar"], factors=[{"ident": templates.ident(spec.rf), "alias": "rf"}]),
                 then=lambda state, frame: state.__setitem__("rf_series", frame))
    plan.add("portfolios_read", "portfolio members with their formation and estimation fits", templates.source(
        "fm1973_read_portfolios", plan.dialect, members=t["members"], cohorts=t["cohorts"], ranges=t["ranges"],
        fits=t["fits"], calendar=t["calendar"], asset=inputs.asset_columns(cat.returns, spec.asset, "m.asset")),
             then=lambda state, frame: state.__setitem__("portfolios", frame))
    return plan


def _schedule(plan: Plan, spec: Any, t: dict[str, str]) -> None:
    plan.add("cohorts", "schedule: cohorts", templates.source("fm1973_cohorts", plan.dialect, calendar=t["calendar"]),
             kind="create",
             params={"formation": spec.formation, "estimation": spec.estimation, "testing": spec.testing})
    plan.add("ranges", "schedule: formation and estimation windows", templates.source(
        "fm1973_ranges", plan.dialect, cohorts=t["cohorts"], calendar=t["calendar"]), kind="create",
             params={"beta_update": spec.beta_update})
    need = spec.formation + spec.estimation + 1

    def then(state: State, frame: pl.DataFrame) -> None:
        row = frame.row(0, named=True)
        if not int(row["n_cohorts"] or 0):
            raise InputError(f"the market table has {int(row['n_periods'] or 0)} periods; design fm1973 needs at "
                             f"least formation + estimation + 1 = {need}")
    plan.add("schedule_check", "check: the calendar holds a cohort",
             f"SELECT (SELECT COUNT(*) FROM {t['calendar']}) AS n_periods, "
             f"(SELECT COUNT(*) FROM {t['cohorts']}) AS n_cohorts", then=then)


def _fits(plan: Plan, spec: Any, cat: inputs.Catalog, t: dict[str, str]) -> None:
    """The market model per (stock, window), solved in the engine; refused when no stock has a window."""
    src = RowSource(dialect=plan.dialect, returns=cat.returns.sql, asset=templates.ident(spec.asset),
                    panel_key=cat.panel_key.sql("r"), calendar=t["calendar"], factors=cat.factors.sql,
                    factor_key=cat.factor_key.sql("f"), ranges=t["ranges"])
    variables = [Variable(spec.market, templates.column(spec.market, "f"), _mean(t["profile_factors"], 0)),
                 Variable("ret", templates.column(spec.ret, "p"), _mean(t["profile_returns"], 0))]
    plan.add("fits", "market-model regressions per stock and window",
             solve_source(plan.dialect, ["asset", "range_id"], variables, src, intercept=True, min_df=1), kind="create")
    label = cat.returns.label

    def then(state: State, frame: pl.DataFrame) -> None:
        if not int(frame["n"][0] or 0):
            raise InputError(f"{label}: no stock has a return in a formation or estimation period with a "
                             "non-NULL market return")
    plan.add("fits_check", "check: market-model regressions", f"SELECT COUNT(*) AS n FROM {t['fits']}", then=then)


def _mean(profile: str, i: int) -> str:
    """The profile mean of column ``c<i>`` (a scalar subquery): the shift of a moments variable."""
    return f"COALESCE((SELECT c{i}_mean FROM {profile}), 0)"


def _cohorts(spec: Any) -> Any:
    def then(state: State, frame: pl.DataFrame) -> None:
        if not int(frame["n_members"].sum() or 0):
            raise EstimationError(
                f"no cohort has {spec.n_portfolios} stocks with {spec.min_obs or spec.formation} formation "
                f"periods, all {spec.estimation} estimation periods and a return in the first testing period")
        state["cohorts"] = frame
    return then


def _months(state: State, frame: pl.DataFrame) -> None:
    if frame.height == 0:
        raise EstimationError("no testing period has a portfolio with a return")
    state["months"] = frame


def _cross_sections(plan: Plan, spec: Any, t: dict[str, str]) -> None:
    """γ_t: per testing period, the portfolio returns on the regressors (solved in the engine), read back."""
    months = t["months"]
    col = {c: templates.column(c, "p") for c in ("ret", "beta", "se")}
    exprs = {"beta": col["beta"], "beta2": exp.Mul(this=col["beta"].copy(), expression=col["beta"].copy()),
             "se": col["se"]}
    exprs["ret"] = col["ret"]
    # shifts: the means over every portfolio row (each period is re-centred on its own means too)
    variables = [Variable(r, exprs[r], f"COALESCE((SELECT AVG({templates.sql(exprs[r])}) FROM {months} AS p), 0)")
                 for r in [*regressors(spec), "ret"]]
    src = RowSource(dialect=plan.dialect, returns=months, asset=templates.ident("portfolio"),
                    panel_key=templates.sql(templates.column("period", "r")), calendar=t["calendar"])
    plan.add("cross_sections", "cross-sectional regressions per testing period",
             solve_source(plan.dialect, ["pidx"], variables, src, intercept=True, min_df=1), kind="create")
    names = terms(spec)
    sql = templates.source("read_lambdas", plan.dialect, table=t["cross_sections"], calendar=t["calendar"],
                           period=inputs.period_columns(plan.calendar_kind, "c.period"), n_terms=len(names))

    def then(state: State, frame: pl.DataFrame) -> None:
        ok = frame.filter(pl.col("ok"))
        if ok.height < 2:
            raise EstimationError(f"fewer than 2 testing periods have a usable cross-section ({ok.height})")
        gammas = [pl.col(f"e{j}").alias(term) for j, term in enumerate(names)]
        state["lambdas"] = ok.select(*inputs.PERIOD_COLUMNS, "period_index", *gammas, "r2", "adj_r2", "n")
        state["cross_section_skipped"] = frame.filter(~pl.col("ok")).select(
            pl.lit("cross_section").alias("pass"), pl.lit(None, pl.Utf8).alias("asset"),
            pl.lit(None, pl.Int64).alias("asset_int"), *inputs.PERIOD_COLUMNS, "reason", pl.col("n").alias("nobs"))
    plan.add("lambdas_read", "gamma_t of the testing periods", sql, then=then)


def first_pass_copy(run: Any, spec: Any, cat: inputs.Catalog) -> TableCopy:
    """The estimation-window market-model fits (period = the window's last period) as flat first-pass rows."""
    table = templates.source("fm1973_estimation_fits", run.dialect, fits=run.name("fits"), ranges=run.name("ranges"))
    source = templates.render(
        "read_first_pass", run.dialect, table=f"({table})", calendar=run.name("calendar"),
        asset=inputs.asset_columns(cat.returns, spec.asset, "t.asset"),
        period=inputs.period_columns(cat.calendar_key.kind, "c.period"), n_terms=2, summary=False)
    return TableCopy(run.engine, source, {}, 2)


# ====================================================================== the schedule in Python
def schedule(n_periods: int, formation: int, estimation: int, testing: int,
             update: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cohorts and regression windows over calendar positions 1..n_periods (both tiny frames).

    Cohort c (from 0) forms portfolios on [1 + c·testing, formation + c·testing], estimates on the
    next ``estimation`` periods and tests on the ``testing`` periods after that (the last cohort's
    testing period may be cut short by the end of the calendar). Its windows: the formation period
    (kind 'formation'), and for k = 0, 1, ... the estimation window [estimation start,
    u_k - 1] applied to the testing periods [u_k, u_k + update - 1], u_k = test start + k·update
    (kind 'estimation'; k = 0 is the estimation period itself). A run computes the same in SQL
    (``sql/fm1973_cohorts.sql.j2``, ``sql/fm1973_ranges.sql.j2``).
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
