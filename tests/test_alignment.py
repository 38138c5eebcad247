"""Period alignment diagnosis (fmduck/alignment.py) on DuckDB and PostgreSQL (Spark: test_periods_spark.py).

A CRSP-like panel dated on last trading days against factors dated on month-ends, first-of-month
(``fmduck load`` of YYYYMM) or the same days; counts checked against pandas Periods
(tests/period_cases.py::oracle_alignment).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
import pytest

from fmduck import alignment as al
from fmduck import templates
from fmduck.engine import DuckDBEngine
from fmduck.errors import InputError
from fmduck.periods import FREQS, period_end_date
from period_cases import crsp_like_panel, factor_table, last_trading_days, oracle_alignment

MONTHS = 240
TRADING = last_trading_days("2000-01", MONTHS)
MONTH_ENDS = [period_end_date(d, "month") for d in TRADING]
FIRSTS = [d.replace(day=1) for d in TRADING]


@pytest.fixture(params=["duckdb", "postgres"])
def engine(request):
    if request.param == "duckdb":
        e = DuckDBEngine()
        yield e
        e.close()
    else:
        yield request.getfixturevalue("pg")


def _tables(engine, panel: pl.DataFrame, factors: pl.DataFrame):
    engine.create_table(templates.table("crsp"), panel, replace=True)
    engine.create_table(templates.table("ff"), factors, replace=True)
    return engine.relation("crsp", "returns"), engine.relation("ff", "factors")


def _check_counts(a: al.Alignment, panel: pl.DataFrame, factors: pl.DataFrame, period: str = "date") -> dict:
    want = oracle_alignment(panel.to_pandas(), period, factors.to_pandas(), "date")
    assert (a.n_rows, a.exact_rows) == (want["n_rows"], want["exact_rows"])
    for m in a.calendars:
        assert (m.rows, m.panel_duplicates, m.factor_duplicates) == (
            want[f"rows_{m.freq}"], want[f"panel_dups_{m.freq}"], want[f"factor_dups_{m.freq}"]), m.freq
    return want


@pytest.mark.parametrize("factor_dates, exact_is_zero", [(MONTH_ENDS, False), (FIRSTS, True)])
def test_last_trading_days_against_month_ends_or_firsts_is_refused_with_freq_month(engine, factor_dates, exact_is_zero):
    panel, factors = crsp_like_panel(TRADING), factor_table(factor_dates)
    p, f = _tables(engine, panel, factors)
    a = al.diagnose(engine, p, "date", "permno", f, "date")
    want = _check_counts(a, panel, factors)
    assert [m.freq for m in a.calendars] == list(FREQS)
    assert (a.exact_rows == 0) == exact_is_zero and a.share() < 0.9
    assert a.share("month") == 1.0 and a.suggestion.freq == "month" and a.misaligned
    with pytest.raises(InputError) as info:
        al.diagnose_and_refuse(engine, p, "date", "permno", f, "date")
    msg = str(info.value)
    share = f"{100 * want['exact_rows'] / want['n_rows']:.1f} %"
    assert msg.startswith(f"table crsp.date and table ff.date match on {share} of panel rows "
                          f"({want['exact_rows']:,} of {want['n_rows']:,}; e.g. crsp ")
    assert msg.endswith("mapped to months they match on 100.0 %: add --freq month "
                        "(each period is then dated by its last day)")
    pairs = al.examples(engine, p, "date", f, "date", "month")
    assert len(pairs) == 3
    for panel_day, factor_day in pairs:
        assert panel_day in TRADING and panel_day not in factor_dates
        assert factor_day == factor_dates[TRADING.index(panel_day)]  # the same month
        assert f"crsp {panel_day} vs ff {factor_day}" in msg


def test_coverage_alone_is_not_a_calendar_question(engine):
    """Factors from 2009 on, without 2012: fewer than 90 % of the rows meet, no calendar does better; the
    examples are the panel periods inside the factors' range (2012), not those before it."""
    kept = [d for d in TRADING if d.year >= 2009 and d.year != 2012]
    panel, factors = crsp_like_panel(TRADING), factor_table(kept)
    p, f = _tables(engine, panel, factors)
    a = al.diagnose(engine, p, "date", "permno", f, "date")
    _check_counts(a, panel, factors)
    assert a.share() < 0.9 and a.suggestion is None and not a.misaligned
    assert al.diagnose_and_refuse(engine, p, "date", "permno", f, "date") == a
    pairs = al.examples(engine, p, "date", f, "date")
    assert pairs == [(d, date(2013, 1, 31)) for d in TRADING if d.year == 2012][:3]
    msg = al.alignment_message(a, p.label, "date", f.label, "date", pairs)
    assert msg.endswith("no calendar (--freq) aligns them better: check the periods of both inputs")
    assert "e.g. crsp 2012-01-31 vs ff 2013-01-31, crsp 2012-02-29 vs ff 2013-01-31" in msg


def test_daily_panel_is_not_mapped_to_the_monthly_factors(engine):
    days = [date(2019, 1, 1) + timedelta(days=i) for i in range(400)]
    panel = pl.DataFrame({"permno": [1] * len(days), "date": days, "ret": 0.0})
    factors = factor_table(sorted({period_end_date(d, "month") for d in days}))
    p, f = _tables(engine, panel, factors)
    a = al.diagnose(engine, p, "date", "permno", f, "date")
    _check_counts(a, panel, factors)
    assert a.calendar("month").rows == len(days) and a.calendar("month").panel_duplicates == len(days) - 14
    assert a.suggestion is None and not a.misaligned


def test_weekly_fridays_against_week_ending_sundays_suggest_week(engine):
    fridays = [date(2020, 1, 3) + timedelta(weeks=i) for i in range(80)]
    panel = crsp_like_panel(fridays, n_assets=4)
    factors = factor_table([d + timedelta(days=2) for d in fridays])
    p, f = _tables(engine, panel, factors)
    a = al.diagnose(engine, p, "date", "permno", f, "date")
    _check_counts(a, panel, factors)
    assert a.exact_rows == 0 and a.suggestion.freq == "week"
    assert not a.eligible(a.calendar("month"))


def test_timestamps_against_dates_suggest_day(engine):
    days = [date(2020, 1, 1) + timedelta(days=i) for i in range(60)]
    panel = pl.DataFrame({"permno": [1] * 60, "date": [datetime(d.year, d.month, d.day, 16) for d in days], "ret": 0.0})
    p, f = _tables(engine, panel, factor_table(days))
    a = al.diagnose(engine, p, "date", "permno", f, "date")
    assert a.exact_rows == 0 and a.suggestion.freq == "day" and a.share("day") == 1.0


def test_a_stray_mid_month_row_does_not_hide_the_suggestion(engine):
    panel = crsp_like_panel(TRADING)
    one = panel.row(5, named=True)
    stray = pl.DataFrame({"permno": [one["permno"]], "date": [one["date"] - timedelta(days=10)], "ret": [0.0]})
    panel = pl.concat([panel, stray])
    p, f = _tables(engine, panel, factor_table(MONTH_ENDS))
    a = al.diagnose(engine, p, "date", "permno", f, "date")
    _check_counts(a, panel, factor_table(MONTH_ENDS))
    assert a.calendar("month").panel_duplicates == 1 and a.suggestion.freq == "month"


def test_integer_periods_get_no_calendars(engine):
    panel = pl.DataFrame({"permno": [1, 1, 2, 2], "date": [1, 2, 3, 4], "ret": 0.0})
    p, f = _tables(engine, panel, pl.DataFrame({"date": [2, 3, 5], "mkt": 0.0}))
    a = al.diagnose(engine, p, "date", "permno", f, "date")
    assert a.calendars == () and (a.n_rows, a.exact_rows, a.n_periods, a.n_factor_periods) == (4, 2, 4, 3)
    assert a.suggestion is None and not a.misaligned
    pairs = al.examples(engine, p, "date", f, "date")
    assert pairs == [(1, 2), (4, 5)]  # unmatched panel periods with the next factor period
