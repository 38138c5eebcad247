"""The period, alignment and unit SQL executed on Spark (one local[1] session for the module): the
same results as the oracles the DuckDB/PostgreSQL tests use (tests/period_cases.py)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from period_cases import (
    calendar_frame,
    calendar_sql,
    crsp_like_panel,
    expected_calendar,
    factor_table,
    invalid_date_sql,
    last_trading_days,
    oracle_alignment,
    text_frame,
    text_sql,
)

pytest.importorskip("pyspark")

from fmduck import alignment as al  # noqa: E402
from fmduck.engines.spark import SparkEngine, session  # noqa: E402
from fmduck.periods import FREQS, period_end_date  # noqa: E402
from fmduck.units import scale_stats  # noqa: E402

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    s = session("local[1]", None, **{"spark.sql.shuffle.partitions": "1", "spark.ui.showConsoleProgress": "false",
                                     "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("spark-warehouse"))})
    s.sparkContext.setLogLevel("ERROR")
    yield SparkEngine(s)
    s.stop()


def test_calendar_sql(engine):
    frame = calendar_frame()
    engine.upload("cal", frame)
    assert_frame_equal(engine.query(calendar_sql("cal", "spark")), expected_calendar(frame))


def test_text_sql(engine):
    frame, expected = text_frame()
    engine.upload("txt", frame)
    assert_frame_equal(engine.query(text_sql("txt", "spark")), expected)


def test_text_sql_refuses_a_day_that_does_not_exist(engine):
    with pytest.raises(Exception, match=r"2001-02-30"):
        engine.query(invalid_date_sql("spark"))


def test_alignment(engine):
    trading = last_trading_days("2000-01", 120)
    month_ends = [period_end_date(d, "month") for d in trading]
    panel, factors = crsp_like_panel(trading), factor_table(month_ends)
    engine.upload("crsp", panel)
    engine.upload("ff", factors)
    p, f = engine.relation("crsp", "returns"), engine.relation("ff", "factors")
    a = al.diagnose(engine, p, "date", "permno", f, "date")
    want = oracle_alignment(panel.to_pandas(), "date", factors.to_pandas(), "date")
    assert (a.n_rows, a.exact_rows) == (want["n_rows"], want["exact_rows"])
    for m in a.calendars:
        assert (m.rows, m.panel_duplicates, m.factor_duplicates) == (
            want[f"rows_{m.freq}"], want[f"panel_dups_{m.freq}"], want[f"factor_dups_{m.freq}"])
    assert [m.freq for m in a.calendars] == list(FREQS) and a.suggestion.freq == "month"
    for panel_day, factor_day in al.examples(engine, p, "date", f, "date", "month"):
        assert factor_day == month_ends[trading.index(panel_day)] != panel_day


def test_scale_statistics(engine):
    rng = np.random.default_rng(3)
    frame = pl.DataFrame({"ret": rng.normal(0.5, 3.0, 1001), "RF": rng.uniform(0, 0.01, 1001)}).with_columns(
        pl.when(pl.int_range(pl.len()) % 10 == 0).then(None).otherwise(pl.col("ret")).alias("ret"))
    engine.upload("panel", frame)
    got = scale_stats(engine, engine.relation("panel", "returns"), {"ret": "return", "RF": "rf"})
    for s in got:
        x = frame[s.column].drop_nulls().to_numpy()
        assert (s.n, s.above_one) == (len(x), int((np.abs(x) > 1).sum()))
        assert s.median_abs == pytest.approx(float(np.median(np.abs(x))), rel=1e-12)
