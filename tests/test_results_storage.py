"""Results storage (issue 16): typed keys that join the source without casts, the `summary` layout of
the first pass on DuckDB and PostgreSQL, and the process's memory bounded by the engine's limit.

Oracles: the run held in memory (``fit(write=False)``) and polars group-bys of it; the source tables
themselves for the joins; the peak resident set of a `fmduck run` subprocess (VmHWM) for memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

import oracles
from fmduck import FamaMacBeth, Spec, load_run

ROOT = Path(__file__).resolve().parent.parent
FACTORS = ["mkt", "smb"]
N_ASSETS, N_PERIODS, WINDOW, MIN_OBS = 8, 40, 12, 8

# asset type, period type: the typed key column that must be filled and how the source's value reads
KEY_TYPES = {
    "bigint-date": ("BIGINT", "DATE"),
    "varchar-timestamp": ("VARCHAR", "TIMESTAMP"),
    "bigint-bigint": ("BIGINT", "BIGINT"),
    "varchar-date": ("VARCHAR", "DATE"),
}
PERIOD_COLUMN = {"DATE": "period_date", "TIMESTAMP": "period_ts", "BIGINT": "period_int"}


def _typed(asset_type: str, period_type: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The synthetic panel with its keys in the given SQL types (month-end dates for DATE periods)."""
    panel, factors = oracles.synthetic_panel(seed=17, n_assets=N_ASSETS, n_periods=N_PERIODS, missing=0.05)
    ids = {a: 10_000 + i for i, a in enumerate(sorted(panel["asset"].unique()))}
    if asset_type == "BIGINT":
        panel = panel.with_columns(pl.col("asset").replace_strict(ids, return_dtype=pl.Int64))

    def when(t: int):
        month_end = (date(2000 + t // 12, t % 12 + 1, 28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        return month_end if period_type == "DATE" else datetime.combine(month_end, datetime.min.time())

    if period_type != "BIGINT":
        periods = {t: when(t) for t in range(N_PERIODS + 1)}
        dtype = pl.Date if period_type == "DATE" else pl.Datetime("us")
        panel = panel.with_columns(pl.col("period").replace_strict(periods, return_dtype=dtype))
        factors = factors.with_columns(pl.col("period").replace_strict(periods, return_dtype=dtype))
    return panel, factors


@pytest.mark.parametrize("types", list(KEY_TYPES))
def test_typed_keys_join_the_source_without_casts(types):
    asset_type, period_type = KEY_TYPES[types]
    panel, factors = _typed(asset_type, period_type)
    con = duckdb.connect()
    con.register("p", panel.to_arrow())
    con.register("f", factors.to_arrow())
    con.execute("CREATE TABLE src AS SELECT * FROM p; CREATE TABLE facs AS SELECT * FROM f")
    assert dict((r[0], r[1]) for r in con.execute("DESCRIBE src").fetchall())["period"] == period_type
    spec = Spec(name="typed", returns="src", factors="facs", factor_cols=FACTORS, window=WINDOW, min_obs=MIN_OBS)
    held = FamaMacBeth(spec, con).fit(write=False)
    FamaMacBeth(spec, con).fit()
    asset_key = "asset_int" if asset_type == "BIGINT" else "asset"
    period_key = PERIOD_COLUMN.get(period_type)
    types_stored = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE "
                                    "table_schema = 'fmduck' AND table_name = 'first_pass'").fetchall())
    assert types_stored[asset_key] == asset_type and types_stored[period_key] == period_type
    # every stored window joins its source row by plain equality of the typed keys; the estimates are the run's
    joined = con.sql(f"""
        SELECT s.asset AS src_asset, s.period AS src_period, fp.term, fp.estimate
        FROM fmduck.first_pass AS fp JOIN src AS s ON s.asset = fp.{asset_key} AND s.period = fp.{period_key}
        WHERE fp.run_name = 'typed'""").pl()
    stored = con.execute("SELECT COUNT(*) FROM fmduck.first_pass WHERE run_name = 'typed'").fetchone()[0]
    # the oracle: windows ending in a period where the asset has a source row, by text asset and calendar position
    calendar = {p: i + 1 for i, p in enumerate(sorted(factors["period"].to_list()))}
    rows = panel.select(pl.col("asset").cast(pl.Utf8),
                        pl.col("period").replace_strict(calendar, return_dtype=pl.Int64).alias("period_index"))
    expected = held.first_pass.join(rows, on=["asset", "period_index"], how="semi")
    assert stored == held.first_pass.height and joined.height == expected.height > 0
    assert set(joined["term"].unique()) == set(held.first_pass["term"].unique())
    assert sorted(joined["estimate"].to_list()) == sorted(expected["estimate"].to_list())
    # λ_t join the factors' rows the same way
    lam = con.execute(f"SELECT COUNT(*) FROM fmduck.lambdas AS l JOIN facs AS f ON f.period = l.{period_key} "
                      "WHERE l.run_name = 'typed'").fetchone()[0]
    assert lam == held.lambdas.height * len(held.terms)
    con.close()


def _summary_of(held) -> pl.DataFrame:
    """The `summary` layout from the run held in memory: per asset and term, the means over its windows."""
    return (held.first_pass.group_by("asset", "term")
            .agg(pl.col("estimate", "std_error", "r2", "adj_r2", "rmse").mean(), pl.len().alias("nobs"))
            .sort("asset", "term"))


def _check_summary(stored, held) -> None:
    got = stored.first_pass.select("asset", "term", "estimate", "std_error", "r2", "adj_r2", "rmse", "nobs")
    want = _summary_of(held)
    assert got.sort("asset", "term").select("asset", "term", "nobs").equals(want.select("asset", "term", "nobs"))
    for col in ("estimate", "std_error", "r2", "adj_r2", "rmse"):
        np.testing.assert_allclose(got.sort("asset", "term")[col].to_numpy(), want[col].to_numpy(), rtol=1e-12,
                                   atol=1e-15, err_msg=col)


def test_summary_layout_is_the_per_asset_means_of_the_windows_on_duckdb():
    panel, factors = oracles.synthetic_panel(seed=23, n_assets=N_ASSETS, n_periods=N_PERIODS, missing=0.1)
    con = duckdb.connect()
    spec = Spec(name="s", returns=panel, factors=factors, factor_cols=FACTORS, window=WINDOW, min_obs=MIN_OBS)
    held = FamaMacBeth(spec, con).fit(write=False)
    FamaMacBeth(spec.replace_with(first_pass="summary"), con).fit()
    stored = load_run(con, "s")
    _check_summary(stored, held)
    _same_estimates(stored, held)
    FamaMacBeth(spec.replace_with(name="n", first_pass="none"), con).fit()
    none = load_run(con, "n")
    assert none.first_pass is None or none.first_pass.height == 0
    _same_estimates(none, held)


def _same_estimates(a, b) -> None:
    oracles.compare_frames(a.estimates, b.estimates, ["term", "se_type"], ["estimate", "std_error", "t_stat"],
                           label="stored vs held", rtol=1e-13, atol=1e-15)


@pytest.mark.postgres
def test_summary_layout_on_postgres(pg):
    from fmduck import templates

    panel, factors = oracles.synthetic_panel(seed=23, n_assets=N_ASSETS, n_periods=N_PERIODS, missing=0.1)
    for name, frame in (("panel_s", panel), ("facs_s", factors)):
        pg.execute(f"DROP TABLE IF EXISTS {name}")
        pg.create_table(templates.table(name), frame)
    spec = Spec(name="pg_s", returns="panel_s", factors="facs_s", factor_cols=FACTORS, window=WINDOW, min_obs=MIN_OBS,
                first_pass="summary", replace=True)
    FamaMacBeth(spec, pg).fit()
    held = FamaMacBeth(spec.replace_with(first_pass="full"), duckdb.connect()).fit(write=False) if False else \
        FamaMacBeth(Spec(name="h", returns=panel, factors=factors, factor_cols=FACTORS, window=WINDOW,
                         min_obs=MIN_OBS), duckdb.connect()).fit(write=False)
    _check_summary(load_run(pg, "pg_s"), held)


# ------------------------------------------------------------------ memory of the whole process
RUNNER = """
import sys
from fmduck.cli import main
code = main(sys.argv[1:])
status = open("/proc/self/status").read()
print("VMHWM_KB", next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")))
sys.exit(code)
"""
MEM_PERIODS, MEM_WINDOW, MEM_MIN_OBS, MEM_LIMIT = 400, 24, 12, "256MB"


def _peak_mb(folder: Path, assets: int) -> tuple[float, int]:
    rng = np.random.default_rng(assets)
    mkt = rng.standard_normal(MEM_PERIODS) * 0.04
    asset = np.repeat(np.arange(assets, dtype=np.int64), MEM_PERIODS)
    period = np.tile(np.arange(1, MEM_PERIODS + 1, dtype=np.int64), assets)
    ret = 0.001 + (0.5 + rng.random(assets))[asset] * mkt[period - 1] + rng.standard_normal(asset.size) * 0.05
    db = folder / f"mem_{assets}.duckdb"
    con = duckdb.connect(str(db))
    con.register("p", pl.DataFrame({"asset": asset, "period": period, "ret": ret}).to_arrow())
    con.register("f", pl.DataFrame({"period": np.arange(1, MEM_PERIODS + 1, dtype=np.int64), "mkt": mkt}).to_arrow())
    con.execute("CREATE TABLE returns AS SELECT * FROM p; CREATE TABLE factors AS SELECT * FROM f")
    con.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", RUNNER, "run", str(db), "--returns", "returns", "--factors", "factors",
                          "--factor-cols", "mkt", "--window", str(MEM_WINDOW), "--min-obs", str(MEM_MIN_OBS),
                          "--memory-limit", MEM_LIMIT, "--threads", "2", "--name", "mem", "-q"],
                         capture_output=True, text=True, env=env, timeout=1800, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    peak_kb = next(int(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("VMHWM_KB"))
    con = duckdb.connect(str(db), read_only=True)
    windows = con.execute("SELECT COUNT(*) FROM fmduck.first_pass_windows").fetchone()[0]
    con.close()
    return peak_kb / 1024.0, windows


@pytest.mark.slow
def test_peak_rss_is_bounded_by_the_memory_limit_not_the_windows(tmp_path):
    """A first pass of ~2.6M and then ~5.2M windows (the long form: ~10 times the 256 MB limit) stored by
    `fmduck run --memory-limit 256MB`: the process's peak stays under the limit plus a constant and does
    not grow with the windows."""
    small, n_small = _peak_mb(tmp_path, 7_000)
    large, n_large = _peak_mb(tmp_path, 14_000)
    assert n_large == 2 * n_small == 2 * 7_000 * (MEM_PERIODS - MEM_MIN_OBS + 1)
    print(f"peak RSS {small:.0f} MB at {n_small:,} windows, {large:.0f} MB at {n_large:,}")
    assert small < 256 + 900 and large < 256 + 900, (small, large)
    assert large < small * 1.25 + 64, (small, large)
