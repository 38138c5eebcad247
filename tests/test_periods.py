"""Calendars and text periods (fmduck/periods.py): the SQL executed on DuckDB and PostgreSQL 15 (Spark:
tests/test_periods_spark.py), its Python twin, and the text-period classifier.

Oracles: pandas ``Period.end_time`` for period ends; text written from known dates for text periods
(tests/period_cases.py).
"""

from __future__ import annotations

import re
from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from fmduck import templates
from fmduck.engine import DuckDBEngine
from fmduck.errors import SpecError
from fmduck.periods import (
    FORMATS,
    FREQS,
    TEXT_FORMATS,
    classify_text_periods,
    parse_text_period,
    parse_text_value,
    period_end,
    period_end_date,
    text_format,
)
from period_cases import (
    calendar_dates,
    calendar_frame,
    calendar_sql,
    expected_calendar,
    invalid_date_sql,
    oracle_end,
    text_cases,
    text_frame,
    text_sql,
)


@pytest.fixture(params=["duckdb", "postgres"])
def engine(request):
    if request.param == "duckdb":
        e = DuckDBEngine()
        yield e
        e.close()
    else:
        yield request.getfixturevalue("pg")


# ------------------------------------------------------------------ calendars
@pytest.mark.parametrize("freq", FREQS)
def test_python_twin_matches_pandas(freq):
    for d in calendar_dates():
        assert period_end_date(d, freq) == oracle_end(d, freq), (d, freq)


def test_week_ends_on_sunday_and_holds_its_monday_to_sunday():
    for d in calendar_dates():
        end = period_end_date(d, "week")
        assert end.isoweekday() == 7 and 0 <= (end - d).days <= 6
        assert end.isocalendar()[:2] == d.isocalendar()[:2]


def test_calendar_sql_on_engine(engine):
    """Dates and timestamps (any time of day) to every calendar's period end; NULL stays NULL."""
    frame = calendar_frame()
    engine.upload("cal", frame)
    got = engine.query(calendar_sql("cal", engine.dialect))
    assert_frame_equal(got, expected_calendar(frame))


def test_calendar_sql_is_plain_duckdb_text():
    """Written once in DuckDB SQL: the expression renders as text a template can hold, for any input."""
    text = templates.sql(period_end(templates.column("date", "p"), "quarter"))
    assert 'p."date"' in text and "LAST_DAY" in text
    with pytest.raises(SpecError, match="--freq must be one of day, week, month, quarter, year"):
        period_end("x", "decade")


def test_postgres_calendar_ignores_the_session_time_zone(pg):
    """date_trunc turns a PostgreSQL DATE into a timestamptz: the period must not move with the zone."""
    frame = calendar_frame()
    pg.upload("cal", frame)
    for zone in ("Pacific/Kiritimati", "America/Sao_Paulo", "Pacific/Pago_Pago"):
        pg.execute(f"SET TIME ZONE '{zone}'")
        assert_frame_equal(pg.query(calendar_sql("cal", "postgres")), expected_calendar(frame))


# ------------------------------------------------------------------ text periods: SQL
def test_text_sql_on_engine(engine):
    """Every format, every variant (separators, padding, case, month names) to the date it names;
    other shapes and NULL to NULL; integers read as their digits."""
    frame, expected = text_frame()
    engine.upload("txt", frame)
    assert_frame_equal(engine.query(text_sql("txt", engine.dialect)), expected)


def test_text_sql_refuses_a_day_that_does_not_exist(engine):
    with pytest.raises(Exception, match=r"(?i)2001-02-30|out of range|malformed"):
        engine.query(invalid_date_sql(engine.dialect))


# ------------------------------------------------------------------ text periods: Python
@pytest.mark.parametrize("fmt", list(text_cases()))
def test_python_twin_reads_every_variant(fmt):
    for _, pairs in text_cases()[fmt]:
        for text, expected in pairs:
            assert parse_text_value(text, fmt) == expected, text


@pytest.mark.parametrize("fmt", list(text_cases()))
def test_classifier_names_the_format(fmt):
    """Each variant's values alone: ordered (kept as text) exactly when one shape runs year-first,
    else parse; and text order is time order for every ordered variant."""
    for ordered, pairs in text_cases()[fmt]:
        texts = [t for t, _ in pairs]
        result = classify_text_periods(texts, "period", "table t.period")
        assert (result.kind, result.format) == ("ordered" if ordered else "parse", fmt), texts
        assert result.accepted and result.message.startswith("table t.period: text periods like")
        if ordered:
            assert sorted(texts) == [t for t, _ in sorted(pairs, key=lambda p: p[1])]


@pytest.mark.parametrize("values", [
    ["2001/2", "2001/10"], ["2001/2/1", "2001/10/1"], ["2001m2", "2001m10"], ["2001 Feb", "2001 Apr"],
    ["2001-Feb-01", "2001-Apr-01"], ["2/15/2001", "1/15/2002"], ["Feb 2001", "Apr 2001"], ["Q2 2001", "Q1 2002"],
])
def test_parse_variants_are_those_whose_text_order_is_not_time_order(values):
    """Why they are read into DATE rather than kept: sorted as text they scramble the calendar."""
    result = classify_text_periods(values)
    assert result.kind == "parse"
    assert sorted(values) != sorted(values, key=lambda v: parse_text_value(v, result.format))


def test_day_month_order_is_decided_by_a_day_above_12():
    assert classify_text_periods(["01/31/2001", "02/01/2001"]).format == "MM/DD/YYYY"
    assert classify_text_periods(["31/01/2001", "01/02/2001"]).format == "DD/MM/YYYY"
    amb = classify_text_periods(["01/02/2001", "03/04/2001", None], "date", "table crsp.date")
    assert amb.kind == "ambiguous" and amb.formats == ("MM/DD/YYYY", "DD/MM/YYYY") and not amb.accepted
    assert "--period-format MM/DD/YYYY or --period-format DD/MM/YYYY" in amb.message
    assert "strptime(\"date\", '%m/%d/%Y')" in amb.message and amb.message.startswith("table crsp.date:")
    assert "'%m.%d.%Y'" in classify_text_periods(["01.02.2001"]).message  # the data's separator


@pytest.mark.parametrize("values, says", [
    (["1", "2", "10"], "cast them to integers"),
    (["01/02/01", "12/31/99"], "two-digit years"),
    (["Jan 01", "Feb 01"], "two-digit years"),
    (["2001-01", "2001-02", "2001-03-15"],
     "1 of 3 distinct text periods are not YYYY-MM like the rest, e.g. '2001-03-15'"),
    (["2001-W52", "2001-W53"], "not YYYY-Www"),          # 2001 has 52 ISO weeks
    (["13/13/2001"], "no format fmduck reads"),
    (["FY2001", "FY2002"], "no format fmduck reads"),
    (["2001-01-31 10:00:00"], "no format fmduck reads"),
    ([None, " "], "no non-empty text periods"),
])
def test_unknown_text_is_refused_with_the_fix(values, says):
    result = classify_text_periods(values)
    assert result.kind == "unknown" and not result.accepted and result.format is None
    assert says in result.message


def test_format_names_are_found_whatever_the_case_and_separators():
    assert text_format("mm-dd-yyyy").name == "MM/DD/YYYY"
    assert text_format("M/D/YYYY").name == "MM/DD/YYYY"
    assert text_format("d.m.yyyy").name == "DD/MM/YYYY"
    assert text_format("yyyymm").name == "YYYYMM" and text_format("YYYYmM").name == "YYYYmM"
    assert text_format("YYYY-Qn").name == "YYYYQn" and text_format("DD-MON-YYYY").name == "DD Mon YYYY"
    assert [text_format(n).name for n in TEXT_FORMATS] == list(TEXT_FORMATS)
    with pytest.raises(SpecError, match="unknown period format 'YY/MM'"):
        text_format("YY/MM")


def test_every_format_pattern_is_portable_regex():
    """Only [..] classes, counts, anchors, alternation: the same on RE2, PostgreSQL ARE and Java."""
    for f in FORMATS:
        assert "\\" not in f.pattern and re.fullmatch(r"[\^$\[\]0-9A-Za-z{},?|() -]+", f.pattern), f.name


def test_units_of_the_formats():
    units = {f.name: f.unit for f in FORMATS}
    assert units["YYYYQn"] == units["Qn YYYY"] == "quarter" and units["YYYY-Www"] == "week"
    assert units["YYYY"] == "year" and units["MM/YYYY"] == units["Mon YYYY"] == units["YYYYmM"] == "month"
    assert parse_text_value("2004-W53", "YYYY-Www") == date(2004, 12, 27)


# ------------------------------------------------------------------ text periods in a run
@pytest.mark.parametrize("fmt, write", [
    ("MM/YYYY", lambda t: f"{t}/2001"),                 # parsed: text order 1/2001, 10/2001, 2/2001 ...
    ("Mon YYYY", lambda t: f"{['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct'][t - 1]} 2001"),
    ("DD/MM/YYYY", lambda t: f"{t + 12}/{t}/2001"),
    ("YYYYQn", lambda t: f"{1999 + (t + 1) // 4}Q{(t + 1) % 4 + 1}"),  # ordered: kept as text
])
def test_text_periods_give_the_estimates_of_integer_periods(con, data_dir, fmt, write):
    """Petersen's panel with year t written as text: read as the classifier says (DATE via
    parse_text_period, or the text itself when ordered), Fama-MacBeth and Newey-West equal those on
    the integer periods; the text order itself would scramble the Newey-West neighbours."""
    from fmduck import FamaMacBeth, Spec

    panel = pl.read_csv(data_dir / "petersen_test_data.csv")
    texts = {t: write(t) for t in range(1, 11)}
    kind = classify_text_periods(list(texts.values()))
    assert (kind.kind, kind.format) == ("ordered" if fmt == "YYYYQn" else "parse", fmt)
    con.register("raw", panel.with_columns(pl.col("year").replace_strict(texts).alias("label")).to_arrow())
    period = templates.sql(parse_text_period(templates.ident("label"), fmt)) if kind.kind == "parse" else "label"
    con.execute(f"CREATE VIEW pet AS SELECT firm, y, x, {period} AS period FROM raw")
    common = dict(returns="pet", asset="firm", ret="y", chars=["x"], nw_lags=2)
    got = FamaMacBeth(Spec(name=f"t_{kind.kind}", period="period", **common), con).fit(write=False)
    con.execute("CREATE VIEW pet_int AS SELECT firm, y, x, year AS period FROM raw")
    want = FamaMacBeth(Spec(name="t_int", period="period", **{**common, "returns": "pet_int"}), con).fit(write=False)
    for se in ("fm", "nw"):
        a, b = got.table(se), want.table(se)
        assert a["estimate"].to_list() == pytest.approx(b["estimate"].to_list(), rel=1e-12)
        assert a["std_error"].to_list() == pytest.approx(b["std_error"].to_list(), rel=1e-12)
    if sorted(texts.values()) != list(texts.values()):
        # the text as it is, given to fmduck: read as the classifier says (it would scramble the Newey-West
        # neighbours in text order: the old silent error), so the same estimates as integer periods
        raw = FamaMacBeth(Spec(name="t_raw", period="label", **{**common, "returns": "raw"}), con).fit(write=False)
        assert raw.table("nw")["std_error"].to_list() == pytest.approx(want.table("nw")["std_error"].to_list(),
                                                                        rel=1e-12)
