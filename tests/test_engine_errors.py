"""Bad inputs: each raises the documented error type with a message naming the table/column/rows.

The table in DEVELOPERS.md ("bad input → error and message") lists each case with its test here.
"""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

import oracles
from fmduck import EstimationError, FamaMacBeth, InputError, RunExistsError, Spec, SpecError

FACTORS = ["mkt", "smb"]
RESULT_TABLES = ["runs", "first_pass", "lambdas", "estimates", "pricing_errors", "skipped"]


@pytest.fixture
def tables(con):
    """A clean panel and factors table stored in DuckDB as `panel` and `facs`; returns a loader
    that (re)creates them from polars frames."""
    panel, factors = oracles.synthetic_panel(seed=61, n_assets=8, n_periods=24, chars=["size"])

    def load(p: pl.DataFrame = panel, f: pl.DataFrame = factors) -> None:
        con.register("p_src", p.to_arrow())
        con.register("f_src", f.to_arrow())
        con.execute("CREATE OR REPLACE TABLE panel AS SELECT * FROM p_src")
        con.execute("CREATE OR REPLACE TABLE facs AS SELECT * FROM f_src")
        con.unregister("p_src")
        con.unregister("f_src")

    load()
    load.panel, load.factors = panel, factors
    return load


def _run(con, **options):
    options = {"name": "bad", "returns": "panel", "factors": "facs", "factor_cols": FACTORS, **options}
    return FamaMacBeth(Spec(**options), con).fit()


def _raises(con, error, fragments, **options):
    with pytest.raises(error) as info:
        _run(con, **options)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def _result_rows(con, name: str) -> int:
    try:
        return sum(con.execute(f"SELECT COUNT(*) FROM fmduck.{t} WHERE run_name = '{name}'").fetchall()[0][0]
                   for t in RESULT_TABLES)
    except Exception:  # noqa: BLE001 - no results schema yet: no rows
        return 0


# ------------------------------------------------------------------------------------ columns & tables
@pytest.mark.parametrize(("options", "fragments"), [
    ({"ret": "retx"}, ["table panel", "missing column", "'retx'"]),
    ({"asset": "permno"}, ["table panel", "missing column", "'permno'"]),
    ({"chars": ["beme"]}, ["table panel", "missing column", "'beme'"]),
    ({"factor_cols": ["mkt", "hml"]}, ["table facs", "missing column", "'hml'"]),
    ({"rf": "tbill"}, ["'tbill'", "table panel", "table facs"]),
], ids=["ret", "asset", "char", "factor", "rf"])
def test_missing_column(con, tables, options, fragments):
    _raises(con, InputError, fragments, **options)


@pytest.mark.parametrize("role", ["returns", "factors"])
def test_unknown_table(con, tables, role):
    _raises(con, InputError, ["table nosuch", "does not exist"], **{role: "nosuch"})


def test_duplicate_asset_period_rows(con, tables):
    dup = pl.concat([tables.panel, tables.panel.filter((pl.col("asset") == "A003") & (pl.col("period") == 7))])
    tables(p=dup)
    message = _raises(con, InputError, [])
    assert message == ("table panel: duplicate (asset, period) rows, e.g. asset=A003, period=7 (2 rows); "
                       "each key must appear once")


def _dated(frame: pl.DataFrame) -> pl.DataFrame:
    """Integer periods 1..T as month-end dates from 2000-01-31."""
    month_end = pl.date(2000, 1, 1).dt.offset_by(pl.format("{}mo", pl.col("period"))).dt.offset_by("-1d")
    return frame.with_columns(month_end.alias("period"))


@pytest.mark.parametrize("day", [21, 31])
def test_duplicate_rows_after_freq_mapping_print_dates(con, tables, day):
    """Dates print as text; rows whose source dates differ and meet only in a --freq period say so."""
    panel, factors = _dated(tables.panel), _dated(tables.factors)
    extra = panel.filter((pl.col("asset") == "A003") & (pl.col("period") == pl.date(2000, 7, 31)))
    tables(p=pl.concat([panel, extra.with_columns(pl.lit(date(2000, 7, day)).alias("period"))]), f=factors)
    message = _raises(con, InputError, [], freq="month")
    if day == 31:  # the same date twice: a plain repeated key
        assert message == ("table panel: duplicate (asset, period) rows, e.g. asset=A003, period=2000-07-31 (2 rows); "
                           "each key must appear once")
    else:
        assert message == ("table panel: duplicate (asset, period) rows, e.g. asset=A003: 2 rows in the month of "
                           "2000-07-31 after --freq month (source dates 2000-07-21, 2000-07-31); each (asset, period) "
                           "must appear once per month")


def test_duplicate_factor_periods(con, tables):
    tables(f=pl.concat([tables.factors, tables.factors.filter(pl.col("period") == 5)]))
    _raises(con, InputError, ["table facs", "duplicate", "period=5"])


def test_non_numeric_return(con, tables):
    """The message's view casts the columns, runs as printed, and the run on it gives the numeric run's λ."""
    tables(p=tables.panel.with_columns(pl.col("ret", "size").cast(pl.Utf8)).rename({"size": "log size"}))
    message = _raises(con, InputError, ["table panel", "must be numeric", "'ret' is VARCHAR; 'log size' is VARCHAR"],
                      chars=["log size"])
    view = message.split("(cast them in a view: ", 1)[1][:-1]
    assert view == ('CREATE VIEW v AS SELECT * REPLACE (CAST("ret" AS DOUBLE) AS "ret", CAST("log size" AS DOUBLE) '
                    'AS "log size") FROM "panel"')
    con.execute(view)
    cast = _run(con, name="cast", returns="v", chars=["log size"])
    tables()
    numeric = _run(con, name="numeric", chars=["size"])
    oracles.assert_close(cast.lambdas.select(cast.terms).to_numpy(), numeric.lambdas.select(numeric.terms).to_numpy(),
                         label="the suggested cast view", rtol=1e-12)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("where", ["ret", "size", "mkt"])
def test_nan_inf_values(con, tables, value, where):
    if where == "mkt":
        tables(f=tables.factors.with_columns(pl.when(pl.col("period").is_in([3, 4])).then(value)
                                             .otherwise(pl.col("mkt")).alias("mkt")))
        fragments = ["table facs", "NaN or infinite", "'mkt' (2 rows)"]
    else:
        tables(p=tables.panel.with_columns(pl.when(pl.col("period") == 3).then(value)
                                           .otherwise(pl.col(where)).alias(where)))
        fragments = ["table panel", "NaN or infinite", f"'{where}' (8 rows)"]
    _raises(con, InputError, fragments, chars=["size"])


@pytest.mark.parametrize("role", ["returns", "factors"])
def test_empty_table(con, tables, role):
    if role == "returns":
        tables(p=tables.panel.clear())
        _raises(con, InputError, ["table panel", "empty"])
    else:
        tables(f=tables.factors.clear())
        _raises(con, InputError, ["table facs", "empty"])


@pytest.mark.parametrize("column", ["ret", "size"])
def test_column_all_null(con, tables, column):
    tables(p=tables.panel.with_columns(pl.lit(None, pl.Float64).alias(column)))
    _raises(con, InputError, ["table panel", f"'{column}'", "only NULL"], chars=["size"])


def test_period_type_mismatch(con, tables):
    tables(f=tables.factors.with_columns(pl.col("period").cast(pl.Utf8)))
    _raises(con, InputError, ["period columns do not match", "table panel.period", "table facs.period", "VARCHAR"])


# ------------------------------------------------------------------------------------ estimability
def test_too_few_observations_full_sample(con, tables):
    _raises(con, EstimationError, ["pass 1", "table panel", "ret on mkt, smb", "8 too few observations"], min_obs=30)


def test_too_few_observations_rolling(con, tables):
    tables(p=tables.panel.filter(pl.col("period") % 3 == 0))  # 8 obs per asset, at most 4 in any 12-window
    _raises(con, InputError, ["table panel", "window", "at least 6 observations"], window=12, min_obs=6)


@pytest.mark.parametrize("case", ["constant_factor", "identical_factors"])
def test_singular_pass1(con, tables, case):
    f = tables.factors
    f = f.with_columns(pl.lit(1.5).alias("smb")) if case == "constant_factor" else f.with_columns(pl.col("mkt")
                                                                                                  .alias("smb"))
    tables(f=f)
    _raises(con, EstimationError, ["pass 1", "table panel", "ret on mkt, smb", "8 singular or collinear"])
    assert _result_rows(con, "bad") == 0


def test_characteristic_constant_in_some_cross_sections(con, tables):
    """Periods where a characteristic does not vary across assets are skipped and reported, not fatal."""
    flat = [4, 9, 10]
    tables(p=tables.panel.with_columns(pl.when(pl.col("period").is_in(flat)).then(2.0).otherwise(pl.col("size"))
                                       .alias("size")))
    res = _run(con, chars=["size"])
    assert sorted(res.lambdas["period_index"]) == [t for t in range(1, 25) if t not in flat]
    for frame in (res.skipped, con.sql("SELECT * FROM fmduck.skipped WHERE run_name = 'bad'").pl()):
        cs = frame.filter(pl.col("pass") == "cross_section").sort(pl.col("period").cast(pl.Int64))
        assert cs["period"].to_list() == [str(t) for t in flat]
        assert set(cs["reason"]) == {"singular or collinear regressors"}
        assert cs["nobs"].to_list() == [8, 8, 8]
    # T counts only the estimated periods
    assert set(res.estimates["n_periods"]) == {24 - len(flat)}


def test_characteristic_constant_in_every_cross_section(con, tables):
    tables(p=tables.panel.with_columns((pl.col("period") * 0.5).alias("size")))
    _raises(con, EstimationError, ["pass 2", "fewer than 2 periods", "on const, mkt, smb, size", "0 of 24",
                                   "24 singular or collinear"], chars=["size"])
    assert _result_rows(con, "bad") == 0


# ------------------------------------------------------------------------------------ spec errors
@pytest.mark.parametrize(("options", "fragment"), [
    ({"window": 2}, "window 2 is too short"),
    ({"min_obs": 3}, "min_obs 3"),
    ({"window": 12, "beta_lag": 0}, "beta_lag"),
    ({"nw_divisor": "N"}, "nw_divisor"),
    ({"nw_lags": -1}, "nw_lags"),
    ({"factor_cols": [], "chars": []}, "nothing to estimate"),
])
def test_spec_errors(options, fragment):
    base = {"name": "bad", "returns": "panel", "factors": "facs", "factor_cols": FACTORS}
    with pytest.raises(SpecError, match=fragment):
        Spec(**{**base, **options})


# ------------------------------------------------------------------------------------ runs
@pytest.mark.slow
def test_run_exists_and_replace(con, tables):
    first = _run(con)
    rows = _result_rows(con, "bad")
    assert rows > 0
    with pytest.raises(RunExistsError, match="'bad' already exists"):
        _run(con)
    assert _result_rows(con, "bad") == rows
    stored_id = con.sql("SELECT DISTINCT run_id FROM fmduck.estimates WHERE run_name = 'bad'").fetchall()
    assert stored_id == [(first.run["run_id"],)]
    second = _run(con, replace=True)
    assert _result_rows(con, "bad") == rows
    ids = {t: con.sql(f"SELECT DISTINCT run_id FROM fmduck.{t} WHERE run_name = 'bad'").fetchall()
           for t in RESULT_TABLES if t != "skipped"}
    assert all(v == [(second.run["run_id"],)] for v in ids.values()), ids


@pytest.mark.slow
def test_failed_write_leaves_no_partial_rows(con, tables, monkeypatch):
    """A failure while writing the tables (simulated on the 4th insert) rolls the whole run back,
    including the delete of the run it was replacing."""
    first = _run(con)
    before = {t: con.execute(f"SELECT COUNT(*) FROM fmduck.{t}").fetchall()[0][0] for t in RESULT_TABLES}
    from fmduck.engine import DuckDBEngine

    real_insert = DuckDBEngine.insert
    calls = {"n": 0}

    def flaky_insert(self, table_sql, frame):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("disk full (simulated)")
        return real_insert(self, table_sql, frame)

    monkeypatch.setattr(DuckDBEngine, "insert", flaky_insert)
    with pytest.raises(RuntimeError, match="simulated"):
        _run(con, name="other")
    calls["n"] = 0
    with pytest.raises(RuntimeError, match="simulated"):
        _run(con, replace=True)
    monkeypatch.undo()
    after = {t: con.execute(f"SELECT COUNT(*) FROM fmduck.{t}").fetchall()[0][0] for t in RESULT_TABLES}
    assert after == before
    assert _result_rows(con, "other") == 0
    assert con.sql("SELECT DISTINCT run_id FROM fmduck.runs WHERE run_name = 'bad'").fetchall() == [
        (first.run["run_id"],)]
    assert calls["n"] >= 4  # the failure really happened mid-write


def test_newey_west_lag_not_below_t(con, tables):
    _raises(con, EstimationError, ["Newey-West lag 30", "T = 24"], nw_lags=30)
    assert _result_rows(con, "bad") == 0


@pytest.mark.parametrize("where", ["ret", "size", "mkt"])
def test_overflowing_values_are_named_not_reported_as_collinear(con, tables, where):
    """A 1e308 value (squared: inf) is refused as an overflow naming the column and its size, before any
    regression could call the design singular."""
    if where == "mkt":
        tables(f=tables.factors.with_columns(pl.when(pl.col("period") == 3).then(1e308).otherwise(pl.col("mkt"))
                                             .alias("mkt")))
        fragments = ["table facs", "overflow", "'mkt' (|x| up to 1e+308)"]
    else:
        tables(p=tables.panel.with_columns(pl.when(pl.col("period") == 3).then(-1e308).otherwise(pl.col(where))
                                           .alias(where)))
        fragments = ["table panel", "overflow", f"'{where}' (|x| up to 1e+308)", "units"]
    _raises(con, InputError, fragments, chars=["size"])
