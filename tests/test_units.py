"""Unit-scale check (fmduck/units.py): the statistics query on DuckDB and PostgreSQL (Spark:
test_periods_spark.py) against numpy, and the warning on every percent/decimal combination of the
bundled Ken French returns, factors and risk-free rate."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from fmduck import templates
from fmduck.engine import DuckDBEngine
from fmduck.units import ColumnScale, scale_stats, scale_warning

FACTORS = ["MktRF", "SMB", "HML"]


@pytest.fixture(params=["duckdb", "postgres"])
def engine(request):
    if request.param == "duckdb":
        e = DuckDBEngine()
        yield e
        e.close()
    else:
        yield request.getfixturevalue("pg")


def ken_french(data_dir, ret_scale: float, factor_scale: float, rf_scale: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The bundled files (percent) divided by the given scales (1: percent, 100: decimal)."""
    wide = pl.read_csv(data_dir / "ff_portfolios_monthly.csv").rename({"": "period"})
    panel = wide.unpivot(index="period", variable_name="asset", value_name="ret").with_columns(
        pl.col("ret") / ret_scale)
    factors = pl.read_csv(data_dir / "ff_factors_monthly.csv").rename({"": "period"}).with_columns(
        pl.col(FACTORS) / factor_scale, pl.col("RF") / rf_scale)
    return panel, factors


def stats_of(engine, panel: pl.DataFrame, factors: pl.DataFrame) -> list[ColumnScale]:
    engine.create_table(templates.table("ports"), panel, replace=True)
    engine.create_table(templates.table("facs"), factors, replace=True)
    return (scale_stats(engine, engine.relation("ports", "returns"), {"ret": "return"})
            + scale_stats(engine, engine.relation("facs", "factors"), {**dict.fromkeys(FACTORS, "factor"), "RF": "rf"}))


def numpy_stats(values: np.ndarray) -> tuple[int, float, int]:
    x = values[~np.isnan(values)]
    return len(x), float(np.median(np.abs(x))), int((np.abs(x) > 1).sum())


def test_statistics_match_numpy(engine, data_dir):
    panel, factors = ken_french(data_dir, 1, 100, 1)
    panel = panel.with_columns(pl.when(pl.col("asset") == "S1V1").then(None).otherwise(pl.col("ret")).alias("ret"))
    got = {s.column: s for s in stats_of(engine, panel, factors)}
    for name, values in [("ret", panel["ret"]), *((c, factors[c]) for c in [*FACTORS, "RF"])]:
        n, median, above = numpy_stats(values.cast(pl.Float64).fill_null(np.nan).to_numpy())
        s = got[name]
        assert (s.n, s.above_one) == (n, above)
        assert s.median_abs == pytest.approx(median, rel=1e-12)
    assert got["ret"].role == "return" and got["RF"].role == "rf" and got["SMB"].role == "factor"


COMBOS = {  # (returns, factors, rf) in percent? -> the columns the warning says to divide by 100
    (True, True, True): None,
    (False, False, False): None,
    (True, True, False): "ret,MktRF,SMB,HML",
    (True, False, True): "ret",
    (True, False, False): "ret",
    (False, True, True): "MktRF,SMB,HML,RF",
    (False, True, False): "MktRF,SMB,HML",
    (False, False, True): "RF",
}


@pytest.mark.parametrize("combo", list(itertools.product([True, False], repeat=3)))
def test_every_mixed_combination_warns_and_names_the_percent_columns(engine, data_dir, combo):
    scales = [1 if percent else 100 for percent in combo]
    warning = scale_warning(stats_of(engine, *ken_french(data_dir, *scales)), "month")
    cols = COMBOS[combo]
    if cols is None:
        assert warning is None
        return
    assert warning.startswith("returns, factors and risk-free rate look like different units: typical |x| (median): ")
    assert f"--percent-cols {cols}, or a view with {cols.split(',')[0]} / 100 AS {cols.split(',')[0]}" in warning
    ret = "3.21" if combo[0] else "0.0321"
    assert f"returns ret {ret}; factors MktRF {'2.8' if combo[1] else '0.028'}" in warning


def _col(name: str, role: str, median: float, share: float = 0.0, n: int = 1000) -> ColumnScale:
    return ColumnScale(name, role, n, median, round(share * n))


@pytest.mark.parametrize("factor_median, warns", [
    (0.0015, False),   # daily decimal stock returns vs an RMW-like factor: about 8x, same unit
    (0.15, True),      # the same factor in percent: 12.5x
    (0.12, True),      # the factor 10x the returns' size: the threshold, either way
    (0.119, False),
    (0.0012, True),
    (0.00121, False),
])
def test_returns_versus_factor_threshold(factor_median, warns):
    stats = [_col("ret", "return", 0.012), _col("RMW", "factor", factor_median)]
    assert (scale_warning(stats, "day") is not None) == warns


def test_risk_free_rate_rules():
    ret = _col("ret", "return", 0.04, share=0.0)
    assert scale_warning([ret, _col("rf", "rf", 0.0)]) is None                # zero rates say nothing
    assert scale_warning([ret, _col("rf", "rf", 0.0001)]) is None             # 400x at zero rates, decimal
    assert scale_warning([ret, _col("rf", "rf", 0.012)]) is None              # 1981: a third of the returns
    assert "'rf' is typically larger" in scale_warning([ret, _col("rf", "rf", 0.3)])
    pct = _col("ret", "return", 4.0, share=0.8)
    assert "the returns look like percent and are 1,333× the risk-free rate 'rf'" in scale_warning(
        [pct, _col("rf", "rf", 0.003)])
    daily_pct = _col("ret", "return", 0.9, share=0.4)                         # |r| > 1 on a minority
    assert scale_warning([daily_pct, _col("rf", "rf", 0.0002)]) is None       # frequency unknown
    assert "--percent-cols ret" in scale_warning([daily_pct, _col("rf", "rf", 0.0002)], "day")


def test_no_returns_or_no_sizes_say_nothing():
    assert scale_warning([]) is None
    assert scale_warning([_col("MktRF", "factor", 2.8)]) is None
    assert scale_warning([_col("ret", "return", None), _col("MktRF", "factor", 2.8)]) is None
