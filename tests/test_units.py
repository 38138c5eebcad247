"""Unit-scale check (fmduck/units.py): the statistics query on DuckDB and PostgreSQL (Spark:
test_periods_spark.py) against numpy, and the warning on every percent/decimal combination of the
bundled Ken French returns, factors and risk-free rate."""

from __future__ import annotations

import itertools
import re

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


def stats_of(engine, panel: pl.DataFrame | None, factors: pl.DataFrame | None, ports: str = "ports",
             facs: str = "facs") -> list[ColumnScale]:
    """The typical sizes of the panel's ret and the factors and RF (stored as ports and facs; None: read
    the relations ``ports`` and ``facs`` as they are)."""
    if panel is not None:
        engine.create_table(templates.table("ports"), panel, replace=True)
        engine.create_table(templates.table("facs"), factors, replace=True)
    return (scale_stats(engine, engine.relation(ports, "returns"), {"ret": "return"})
            + scale_stats(engine, engine.relation(facs, "factors"), {**dict.fromkeys(FACTORS, "factor"), "RF": "rf"}))


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
    assert f"--percent-cols {cols}, or " in warning
    ret = "3.21" if combo[0] else "0.0321"
    assert f"returns ret {ret}; factors MktRF {'2.8' if combo[1] else '0.028'}" in warning
    first = cols.split(",")[0]
    assert f'"{first}" / 100 AS "{first}"' in warning
    if engine.dialect == "duckdb":  # the suggested views, run as printed, divide exactly those columns by 100
        before = {s.column: s.median_abs for s in stats_of(engine, None, None)}
        views = apply_views(engine, warning)
        assert set(views) <= {'"ports"', '"facs"'}
        after = {s.column: s.median_abs for s in stats_of(engine, None, None, views.get('"ports"', "ports"),
                                                          views.get('"facs"', "facs"))}
        assert after == pytest.approx({c: m / 100 if c in cols.split(",") else m for c, m in before.items()})


def apply_views(engine, warning: str) -> dict[str, str]:
    """Run the CREATE VIEW statements of a unit warning as printed: {the relation each reads: its name}."""
    views = {}
    for statement in re.split(r"; (?=CREATE VIEW )", warning.split(", or in a view: ", 1)[1]):
        engine.execute(statement)
        name, table = re.fullmatch(r"CREATE VIEW (\w+) AS SELECT \* REPLACE \(.*\) FROM (.*)", statement).groups()
        views[table] = name
    return views


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


def test_the_suggested_view_runs_as_printed_and_the_rerun_is_quiet(con):
    """Factors in percent named Mkt-RF beside decimal returns: the warning's view quotes the names, runs in
    DuckDB as printed, and a run on it has no unit warning and the estimates of decimal factors."""
    import oracles
    from fmduck import FamaMacBeth, Spec

    panel, factors = oracles.synthetic_panel(seed=71, n_assets=10, n_periods=36, factor_cols=("Mkt-RF", "SMB"))
    con.register("p_src", panel.with_columns(pl.col("ret") / 100).to_arrow())
    con.register("f_src", factors.to_arrow())
    con.register("d_src", factors.with_columns(pl.col("Mkt-RF", "SMB") / 100).to_arrow())
    con.execute("CREATE TABLE p AS FROM p_src; CREATE TABLE \"my facs\" AS FROM f_src; CREATE TABLE d AS FROM d_src")
    spec = {"returns": "p", "factor_cols": ["Mkt-RF", "SMB"]}
    warned = FamaMacBeth(Spec(name="pct", factors='"my facs"', **spec), con).fit()
    [warning] = [w for w in warned.warnings if "different units" in w]
    assert ('CREATE VIEW v AS SELECT * REPLACE ("Mkt-RF" / 100 AS "Mkt-RF", "SMB" / 100 AS "SMB") FROM "my facs"'
            in warning)
    assert apply_views(con, warning) == {'"my facs"': "v"}
    rerun = FamaMacBeth(Spec(name="view", factors="v", **spec), con).fit()
    assert not [w for w in rerun.warnings if "different units" in w]
    decimal = FamaMacBeth(Spec(name="decimal", factors="d", **spec), con).fit()
    oracles.assert_close(rerun.estimates["estimate"].to_numpy(), decimal.estimates["estimate"].to_numpy(),
                         label="the suggested view vs decimal factors", rtol=1e-12)


def test_the_suggested_division_is_quoted_for_each_dialect():
    stats = [_col("ret", "return", 0.02), _col("Mkt-RF", "factor", 2.5)]
    assert scale_warning(stats, "month", "postgres").endswith(
        'or a view that selects CAST("Mkt-RF" AS DOUBLE PRECISION) / 100 AS "Mkt-RF" in place of that column')
    assert scale_warning(stats, "month", "spark").endswith(
        "or a view that selects `Mkt-RF` / 100 AS `Mkt-RF` in place of that column")
    assert scale_warning(stats, "month").endswith(
        'or in a view: CREATE VIEW v AS SELECT * REPLACE ("Mkt-RF" / 100 AS "Mkt-RF") FROM ...')
