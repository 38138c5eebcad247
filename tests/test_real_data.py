"""A CRSP-style stock file with Ken French factors, as a user has them (issue 13).

Three parts: (1) the fixture itself (tests/crsp_realistic.py: NYSE last trading days, listings,
delistings, gaps, NULL returns, a Ken French factors CSV in percent); (2) its oracle
(tests/oracle_crsp.py: pandas/numpy on hand-aligned data) against statsmodels and linearmodels, and
against today's fmduck on data the user aligned to first-of-month dates by hand; (3) issue 13's
acceptance tests: ``--freq month`` on the raw dates, ``--beta-max-age``, the refusal without
``--freq``, coverage counts in ``fmduck.skipped`` and the summary, and unit warnings.

Coverage reasons are matched by keyword (``COVERAGE_KEYWORDS``): their wording is not fixed yet.
"""

from __future__ import annotations

import re
from datetime import date
from types import SimpleNamespace

import duckdb
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from linearmodels import FamaMacBeth as LMFamaMacBeth
from statsmodels.regression.rolling import RollingOLS

import oracle_crsp
from crsp_checks import WINDOWS_REASON, cli, close, compare_run, months, skipped_count
from crsp_realistic import FACTOR_COLS, last_trading_day, make_crsp, month_end, nyse_holidays

FACTORS = list(FACTOR_COLS)
NW_LAGS = 4


# run name -> (CLI options besides the common ones, oracle options)
RUNS = {
    "full": (["--factor-cols", ",".join(FACTORS), "--min-obs", "24"], {"min_obs": 24}),
    "roll": (["--factor-cols", ",".join(FACTORS), "--window", "60", "--min-obs", "36", "--beta-lag", "1"],
             {"window": 60, "min_obs": 36, "beta_lag": 1}),
    "roll_age3": (["--factor-cols", ",".join(FACTORS), "--window", "60", "--min-obs", "36", "--beta-lag", "1",
                   "--beta-max-age", "3"], {"window": 60, "min_obs": 36, "beta_lag": 1, "max_age": 3}),
    "chars": (["--chars", "size,bm", "--char-lag", "1"], {"chars": ["size", "bm"], "char_lag": 1}),
}
# oracle coverage key -> a keyword its fmduck.skipped reason is assumed to contain (case-insensitive)
COVERAGE_KEYWORDS = {"no_factor_row": "factor", "null_return": "null", "no_beta": "beta"}


# ====================================================================== fixtures
@pytest.fixture(scope="module")
def fx():
    return make_crsp()


@pytest.fixture(scope="module")
def db(fx, tmp_path_factory):
    """A DuckDB file: ``crsp`` (the stock file, written with duckdb), ``crsp_m`` (the same with a
    hand-aligned ``period`` = first of the month) and ``ff`` (``fmduck load ... --unit percent``)."""
    folder = tmp_path_factory.mktemp("crsp")
    path = folder / "crsp.duckdb"
    csv = fx.write_factors_csv(folder / "F-F_Research_Data_Factors.csv")
    con = duckdb.connect(str(path))
    fx.write_stocks(con, "crsp")
    con.execute("CREATE TABLE crsp_m AS SELECT *, CAST(date_trunc('month', \"date\") AS DATE) AS period FROM crsp")
    con.close()
    loaded = cli("load", path, csv, "--table", "ff", "--unit", "percent")
    assert loaded.code == 0, loaded.err
    return SimpleNamespace(path=path, csv=csv)


@pytest.fixture(scope="module")
def truth(fx, db):
    """The oracle of every run in RUNS, on the hand-aligned data."""
    factors = oracle_crsp.read_ken_french(db.csv)
    panel = oracle_crsp.align(fx.stocks, factors)
    rolling = oracle_crsp.pass1(panel, FACTORS, min_obs=36, window=60)
    out = {}
    for name, (_, options) in RUNS.items():
        if "chars" in options:
            out[name] = oracle_crsp.char_fm(panel, factors, nw_lags=NW_LAGS, **options)
        else:
            out[name] = oracle_crsp.beta_fm(panel, factors, FACTORS, nw_lags=NW_LAGS,
                                            first_pass=rolling if "window" in options else None, **options)
    return SimpleNamespace(runs=out, panel=panel, factors=factors)


def run_fmduck(db, name: str, *extra: str, returns: str = "crsp", period: str = "date", freq: bool = True,
               factors: str = "ff") -> SimpleNamespace:
    args = ["run", db.path, "--returns", returns, "--asset", "permno", "--period", period, "--ret", "ret",
            "--factors", factors, "--factor-period", "period", "--rf", "RF", "--nw-lags", str(NW_LAGS),
            *RUNS[name.split(":")[0]][0], *extra, "--name", name, "--replace", "-q"]
    return cli(*args, *(["--freq", "month"] if freq else []))


def stored(db, name: str):
    import fmduck

    con = duckdb.connect(str(db.path))
    try:
        return fmduck.load_run(con, name)
    finally:
        con.close()


@pytest.fixture(scope="module")
def freq_runs(db):
    """name -> CLI result of the ``--freq month`` run on the raw CRSP dates (run once, on first use)."""
    done: dict = {}

    def get(name: str) -> SimpleNamespace:
        if name not in done:
            done[name] = run_fmduck(db, name)
        return done[name]

    return get


# ====================================================================== 1. the fixture
def test_nyse_calendar_matches_published_schedules():
    """NYSE's published holiday schedules (nyse.com, 2019 and 2022) and known CRSP month-end dates."""
    assert sorted(nyse_holidays(2019)) == [date(2019, 1, 1), date(2019, 1, 21), date(2019, 2, 18), date(2019, 4, 19),
                                           date(2019, 5, 27), date(2019, 7, 4), date(2019, 9, 2), date(2019, 11, 28),
                                           date(2019, 12, 25)]
    assert sorted(nyse_holidays(2022)) == [date(2022, 1, 17), date(2022, 2, 21), date(2022, 4, 15), date(2022, 5, 30),
                                           date(2022, 6, 20), date(2022, 7, 4), date(2022, 9, 5), date(2022, 11, 24),
                                           date(2022, 12, 26)]  # New Year's Day 2022 (Saturday) not observed
    known = {(2002, 3): date(2002, 3, 28), (2013, 3): date(2013, 3, 28), (2018, 3): date(2018, 3, 29),  # Good Friday
             (2004, 5): date(2004, 5, 28), (2010, 5): date(2010, 5, 28),  # Memorial Day on May 31
             (2010, 12): date(2010, 12, 31), (2000, 12): date(2000, 12, 29), (2019, 8): date(2019, 8, 30)}
    assert {k: last_trading_day(*k) for k in known} == known


def test_dates_are_last_trading_days(fx):
    s = fx.stocks
    assert not s.duplicated(["permno", "date"]).any() and s["permno"].dtype == np.int64
    dates = sorted({d.date() for d in s["date"]})
    assert len(dates) == 240
    for d in dates:
        assert d == last_trading_day(d.year, d.month) and d.weekday() < 5 and d not in nyse_holidays(d.year)
    differ = [d for d in dates if d != month_end(d.year, d.month)]
    # weekends alone move ~2/7 of month ends; a first-of-month factor date never matches
    assert 0.25 < len(differ) / len(dates) < 0.4 and all(d.day > 1 for d in dates)
    assert {date(2002, 3, 28), date(2004, 5, 28), date(2013, 3, 28), date(2018, 3, 29)} <= set(differ)


def test_listings_delistings_gaps_and_nulls(fx):
    s, ev = fx.stocks, fx.events
    first = s.groupby("permno")["date"].min()
    last = s.groupby("permno")["date"].max()
    assert len(ev["listed_before_panel"]) == 300 and first.dt.to_period("M").nunique() > 100  # staggered
    delisted = last[last < s["date"].max()]
    assert sorted(delisted.index) == ev["delisted"] and len(delisted) > 100
    last_rows = s.loc[s.groupby("permno")["date"].idxmax()].set_index("permno")
    assert last_rows["ret"].notna().all()  # a delisting month has its return; then the stock is gone
    assert ev["performance_delistings"]
    lengths = {}
    for permno, (start, length) in ev["gaps"].items():
        m = set(s.loc[s["permno"] == permno, "date"].dt.to_period("M"))
        gap = pd.Period(start, "M")
        assert gap - 1 in m and gap + length in m and not any(gap + j in m for j in range(length))
        assert sum(p < gap for p in m) >= 40  # the stock has a rolling beta before its gap
        lengths[length] = lengths.get(length, 0) + 1
    assert set(lengths) == {1, 2, 3, 5} and lengths[1] >= 8
    assert s["ret"].isna().sum() == ev["null_ret_rows"] > 100
    factor_end = pd.Period(str(fx.factors_pct["yyyymm"].max()), "M")
    only_late = first[first.dt.to_period("M") > factor_end]
    assert sorted(only_late.index) == ev["only_without_factors"] and len(only_late) == 2


def test_factors_file_round_trips(fx, db):
    text = db.csv.read_text().splitlines()
    reference = (oracles_data_dir() / "ff_factors_monthly.csv").read_text().splitlines()[0]
    assert text[0] == ",Mkt-RF,SMB,HML,RF" and reference.startswith(",")  # Ken French's header layout
    back = pd.read_csv(db.csv)
    assert (back.iloc[:, 0].to_numpy() == fx.factors_pct["yyyymm"].to_numpy()).all()
    assert (back[FACTORS + ["RF"]].to_numpy() == fx.factors_pct[FACTORS + ["RF"]].to_numpy()).all()
    con = duckdb.connect(str(db.path))
    ff = con.sql("SELECT * FROM ff ORDER BY period").df()
    nulls = con.execute("SELECT count(*) - count(ret), count(*) FILTER (WHERE isnan(ret)) FROM crsp").fetchone()
    con.close()
    assert list(months(ff["period"])) == [pd.Period(str(v), "M") for v in fx.factors_pct["yyyymm"]]
    np.testing.assert_allclose(ff[FACTORS + ["RF"]].to_numpy(), fx.factors_pct[FACTORS + ["RF"]].to_numpy() / 100,
                               rtol=1e-15)
    assert nulls == (fx.events["null_ret_rows"], 0)  # NULL, not NaN, in the DuckDB table


def oracles_data_dir():
    from conftest import DATA

    return DATA


# ====================================================================== 2. the oracle, checked
def test_oracle_full_sample_betas_vs_statsmodels(truth):
    fp = truth.runs["full"].first_pass.set_index("permno")
    usable = truth.panel[truth.panel["y"].notna()]
    for permno, g in usable.groupby("permno"):
        if permno not in fp.index:
            assert len(g) < 24
            continue
        res = sm.OLS(g["y"].to_numpy(), sm.add_constant(g[FACTORS].to_numpy())).fit()
        close(fp.loc[permno, ["const", *FACTORS]].to_numpy(np.float64), res.params,
                             label="crsp oracle vs statsmodels OLS", what=f"beta {permno}")
        close(fp.loc[permno, [f"se_{t}" for t in ["const", *FACTORS]]].to_numpy(np.float64), res.bse,
                             label="crsp oracle vs statsmodels OLS", what=f"se {permno}")


def test_oracle_rolling_betas_vs_statsmodels_rolling_ols(fx, truth):
    """RollingOLS over the calendar (a gap is a NaN row, ``missing='drop'``, ``min_nobs=36``) at every
    usable month of the stocks with gaps and of 40 others."""
    fp = truth.runs["roll"].first_pass.dropna(subset=["const"]).set_index(["permno", "month"])
    calendar = truth.factors.index
    chosen = sorted(fx.events["gaps"])[:30] + sorted(fx.stocks["permno"].unique())[::12]
    for permno in chosen:
        g = truth.panel[(truth.panel["permno"] == permno) & truth.panel["y"].notna()].set_index("month")
        frame = g[["y", *FACTORS]].reindex(calendar)
        res = RollingOLS(frame["y"], sm.add_constant(frame[FACTORS]), window=60, min_nobs=36).fit(
            params_only=True, reset=1)
        params = res.params.loc[g.index].dropna()
        windows = fp.loc[permno].index if permno in fp.index.get_level_values(0) else []
        assert set(params.index) == set(windows), f"rolling windows of {permno}"
        if not len(windows):
            continue
        close(fp.loc[permno].loc[params.index, ["const", *FACTORS]].to_numpy(np.float64),
                             params.to_numpy(), label="crsp oracle vs statsmodels RollingOLS", rtol=1e-9,
                             what=str(permno))


def _lm_compare(frame: pd.DataFrame, regressors: list[str], oracle: oracle_crsp.OracleFM, label: str) -> None:
    data = frame.assign(t=frame["month"].dt.to_timestamp()).set_index(["permno", "t"]).sort_index()
    model = LMFamaMacBeth(data["y"], sm.add_constant(data[regressors]))
    want = oracle.estimates.set_index(["se_type", "term"])
    for se_type, res in (("fm", model.fit(cov_type="unadjusted")),
                         ("nw", model.fit(cov_type="kernel", kernel="bartlett", bandwidth=NW_LAGS, debiased=False))):
        close(res.params[oracle.terms].to_numpy(), want.loc[se_type].loc[oracle.terms, "estimate"],
                             label=label, what=f"{se_type} estimate")
        close(res.std_errors[oracle.terms].to_numpy(), want.loc[se_type].loc[oracle.terms, "std_error"],
                             label=label, what=f"{se_type} se")
    lm_lam = res.all_params[oracle.terms]
    close(lm_lam.to_numpy(), oracle.lambdas[oracle.terms].to_numpy(), label=label, what="lambda_t")


def _usable(truth) -> pd.DataFrame:
    return truth.panel[truth.panel["y"].notna() & truth.panel["cal"].notna()]


def test_oracle_characteristic_fm_vs_linearmodels(truth):
    """Lagged characteristics built another way (shift on a calendar-complete frame), then linearmodels."""
    p = truth.panel.set_index(["permno", "month"])[["size", "bm"]]
    full_index = pd.MultiIndex.from_product([p.index.levels[0], truth.factors.index], names=["permno", "month"])
    lagged = p.reindex(full_index).groupby(level="permno").shift(1)
    frame = _usable(truth).join(lagged.add_suffix("_lag"), on=["permno", "month"]).dropna(subset=["size_lag", "bm_lag"])
    frame = frame.drop(columns=["size", "bm"]).rename(columns={"size_lag": "size", "bm_lag": "bm"})
    _lm_compare(frame, ["size", "bm"], truth.runs["chars"], "crsp oracle vs linearmodels (chars)")


@pytest.mark.parametrize("name", ["full", "roll", "roll_age3"])
def test_oracle_beta_fm_vs_linearmodels(truth, name):
    """Betas attached another way (a join for full-sample betas, ``merge_asof`` with a tolerance for
    the lag rules), then linearmodels' Fama-MacBeth on them."""
    oracle, options = truth.runs[name], RUNS[name][1]
    fp = oracle.first_pass.dropna(subset=["const"])[["permno", *(["cal"] if "window" in options else []), *FACTORS]]
    rows = _usable(truth).drop(columns=FACTORS)
    if "window" not in options:
        frame = rows.merge(fp, on="permno")
    else:
        lag, age = options["beta_lag"], options.get("max_age", options["beta_lag"])
        left = rows.assign(target=rows["cal"].astype(np.int64) - lag).sort_values("target")
        right = fp.assign(end=fp["cal"].astype(np.int64)).drop(columns="cal").sort_values("end")
        frame = pd.merge_asof(left, right, left_on="target", right_on="end", by="permno", direction="backward",
                              tolerance=age - lag).dropna(subset=FACTORS)
    _lm_compare(frame, FACTORS, oracle, f"crsp oracle vs linearmodels ({name})")


@pytest.mark.parametrize("name", list(RUNS))
def test_oracle_newey_west_vs_statsmodels_hac_and_coverage_adds_up(truth, name):
    oracle = truth.runs[name]
    nw = oracle.estimates[oracle.estimates["se_type"] == "nw"].set_index("term")["std_error"]
    for term in oracle.terms:
        lam = oracle.lambdas[term].to_numpy()
        hac = sm.OLS(lam, np.ones(len(lam))).fit(cov_type="HAC", cov_kwds={"maxlags": NW_LAGS, "use_correction": False})
        close(nw[term], hac.bse[0], label="crsp oracle NW vs statsmodels HAC", what=term)
    cov = oracle.coverage
    row_keys = ["no_factor_row", "null_return", "no_lagged_row", "null_lagged_char", "no_beta_yet", "no_beta_lag",
                "used"]
    assert sum(cov.get(k, 0) for k in row_keys) == cov["panel_rows"] == len(truth.panel)
    assert cov["used"] == oracle.lambdas["n"].sum()


def test_oracle_beta_max_age_recovers_rows_after_short_gaps(fx, truth):
    """The month after a gap of g months has no beta lagged one month; with --beta-max-age 3 it uses
    the beta of g + 1 months before when g <= 2 and stays out when g >= 3."""
    lag1, age3 = truth.runs["roll"], truth.runs["roll_age3"]
    used1 = set(zip(lag1.used_rows["permno"], lag1.used_rows["month"]))
    age_of = dict(zip(zip(age3.used_rows["permno"], age3.used_rows["month"]), age3.used_rows["age"]))
    for permno, (start, length) in fx.events["gaps"].items():
        after = pd.Period(start, "M") + length
        assert (permno, after) not in used1
        assert age_of.get((permno, after)) == (length + 1 if length <= 2 else None), (permno, start, length)
    assert set(lag1.beta_ages) == {1} and set(age3.beta_ages) == {1, 2, 3}
    recovered = age3.beta_ages[2] + age3.beta_ages[3]
    assert lag1.coverage["no_beta_lag"] - age3.coverage["no_beta_lag"] == recovered
    assert age3.coverage["used"] - lag1.coverage["used"] == recovered
    assert age3.coverage["no_beta_lag"] > 0  # 3- and 5-month gaps stay out


def test_oracle_recovers_the_true_premia(fx, truth):
    """Characteristic premia within 3 FM SE of (g_size, g_bm); factor premia within 3 Shanken SE of the
    factors' mean over the months with a λ_t (traded factors, zero alphas; EIV shrinks the slopes)."""
    chars = truth.runs["chars"].estimates.query("se_type == 'fm'").set_index("term")
    for term, g in (("size", fx.truth["g_size"]), ("bm", fx.truth["g_bm"])):
        assert abs(chars.loc[term, "estimate"] - g) < 3 * chars.loc[term, "std_error"], term
    for name in ("full", "roll"):
        oracle = truth.runs[name]
        est = oracle.estimates.query("se_type == 'shanken'").set_index("term")
        f_mean = truth.factors.loc[oracle.lambdas.index, FACTORS].mean()
        for term in FACTORS:
            assert abs(est.loc[term, "estimate"] - f_mean[term]) < 3 * est.loc[term, "std_error"], (name, term)


@pytest.mark.parametrize("name", ["full", "roll", "chars"])
def test_oracle_equals_fmduck_on_hand_aligned_periods(db, truth, name):
    """Today's fmduck on the same data aligned by hand (period = first of the month on both sides)."""
    out = run_fmduck(db, f"{name}:hand", returns="crsp_m", period="period", freq=False)
    assert out.code == 0, out.err
    res = stored(db, f"{name}:hand")
    compare_run(res, truth.runs[name], f"fmduck (hand-aligned) vs crsp oracle ({name})")
    if name == "full":
        assert skipped_count(res, "observations", first_pass=True) == truth.runs[name].coverage["assets_below_min_obs"]


# ====================================================================== 3. issue 13 acceptance

@pytest.mark.parametrize("name", list(RUNS))
def test_freq_month_matches_the_oracle(db, truth, freq_runs, name):
    out = freq_runs(name)
    assert out.code == 0, out.err
    res = stored(db, name)
    compare_run(res, truth.runs[name], f"fmduck --freq month vs crsp oracle ({name})")
    days = set(pd.to_datetime(pd.Series(res.lambdas["period"].to_list()).astype(str)).dt.day)
    assert days == {1} or days <= {28, 29, 30, 31}, "one stored-period convention (first of month or month-end)"



@pytest.mark.parametrize("name", list(RUNS))
def test_coverage_counts_are_stored_and_summarised(db, truth, freq_runs, name):
    out = freq_runs(name)
    assert out.code == 0, out.err
    res, cov = stored(db, name), truth.runs[name].coverage
    assert f"{cov['used']:,} of {cov['panel_rows']:,}" in out.out  # "used 46,067 of 62,968 panel rows; ..."
    left_out = res.skipped.to_pandas()
    left_out = left_out[~left_out["pass"].isin(["first_pass", "cross_section"])
                        & ~left_out["reason"].str.startswith(WINDOWS_REASON)]  # panel rows, not windows
    assert int(left_out["nobs"].fillna(1).sum()) == cov["panel_rows"] - cov["used"]
    assert skipped_count(res, COVERAGE_KEYWORDS["no_factor_row"]) == cov["no_factor_row"]
    if name == "chars":
        return
    assert skipped_count(res, COVERAGE_KEYWORDS["null_return"]) == cov["null_return"]
    assert skipped_count(res, COVERAGE_KEYWORDS["no_beta"]) == cov["no_beta_yet"] + cov["no_beta_lag"]
    below = cov.get("windows_below_min_obs", cov.get("assets_below_min_obs"))
    assert skipped_count(res, "observations", first_pass=True) == below



def test_without_freq_is_refused_with_examples_of_both_sides(fx, db):
    out = run_fmduck(db, "full:nofreq", freq=False)
    assert out.code == 2 and "--freq month" in out.err, out.err
    shown = set(re.findall(r"\d{4}-\d{2}-\d{2}", out.err))
    panel_dates = {d.strftime("%Y-%m-%d") for d in fx.stocks["date"]}
    factor_dates = {f"{v // 100}-{v % 100:02d}-01" for v in fx.factors_pct["yyyymm"]}
    assert shown & panel_dates and shown & factor_dates, out.err



def test_month_end_factor_dates_align_too(db, truth):
    """Factors keyed by month-end dates match CRSP dates on ~70 % of months: refused without --freq,
    the oracle's numbers with it."""
    con = duckdb.connect(str(db.path))
    con.execute('CREATE OR REPLACE TABLE ff_me AS SELECT last_day(period) AS period, * EXCLUDE (period) FROM ff')
    con.close()
    refused = run_fmduck(db, "full:me_nofreq", freq=False, factors="ff_me")
    assert refused.code == 2 and "--freq month" in refused.err, refused.err
    out = run_fmduck(db, "full:me", factors="ff_me")
    assert out.code == 0, out.err
    compare_run(stored(db, "full:me"), truth.runs["full"], "fmduck --freq month, month-end factors")



def test_two_rows_in_one_month_after_mapping_name_both_dates(fx, db):
    permno = int(fx.stocks["permno"].iloc[0])
    con = duckdb.connect(str(db.path))
    con.execute("CREATE OR REPLACE TABLE crsp_dup AS SELECT * FROM crsp UNION ALL SELECT permno, DATE '2005-06-15', "
                "ret, prc, shrout, size, bm FROM crsp WHERE permno = ? AND \"date\" = DATE '2005-06-30'", [permno])
    con.close()
    out = run_fmduck(db, "full:dup", returns="crsp_dup")
    assert out.code == 2 and "2005-06-15" in out.err and "2005-06-30" in out.err, out.err



def test_percent_factors_with_decimal_returns_warn(db):
    """Factors loaded without --unit percent: returns ~0.1, factors ~4; a warning naming the columns,
    and a refusal under --strict."""
    loaded = cli("load", db.path, db.csv, "--table", "ff_pct", "--replace")
    assert loaded.code == 0, loaded.err
    out = run_fmduck(db, "full:pct", factors="ff_pct")
    assert out.code == 0 and "ret" in out.err and ("Mkt-RF" in out.err or "RF" in out.err), out.err
    (warning,) = [line.removeprefix("fmduck: warning: ") for line in out.err.splitlines() if "Mkt-RF" in line]
    # stored with the run, in the summary of `run` and of `show`, not on stderr alone
    again = stored(db, "full:pct")
    assert again.warnings == [warning] and f"Warning: {warning}" in again.summary
    assert f"Warning: {warning}" in out.out and f"Warning: {warning}" in cli("show", db.path, "full:pct").out
    # in Python, a FmduckWarning at the caller's line
    import fmduck
    from fmduck.errors import FmduckWarning

    con = duckdb.connect(str(db.path))
    spec = fmduck.Spec.from_dict({**again.spec, "name": "full:pct_py", "replace": True})
    with pytest.warns(FmduckWarning, match="Mkt-RF") as caught:
        res = fmduck.FamaMacBeth(spec, con).fit(write=False)
    con.close()
    assert res.warnings == [warning] and caught[0].filename == __file__
    strict = run_fmduck(db, "full:pct_strict", "--strict", factors="ff_pct")
    assert strict.code == 2 and "Mkt-RF" in strict.err, strict.err
