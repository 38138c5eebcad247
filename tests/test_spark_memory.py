"""The driver stays small on Spark: a rolling run of ~5M windows through the CLI, then ~10M.

`fmduck run WAREHOUSE --engine spark` runs in a subprocess (its own JVM, local[2]) on a generated
Parquet panel; the CLI process reports its own peak resident set (VmHWM from /proc/self/status: the
Python driver only; the JVM and the Python workers are other processes). Pass 1 is solved and written
by the executors, so the peak stays under 600 MB and does not grow when the windows double. The first
run's estimates equal DuckDB's on the same files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

import oracles

pytest.importorskip("pyspark")

pytestmark = [pytest.mark.spark, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
PERIODS, WINDOW, MIN_OBS = 500, 12, 6
LIMIT_MB = 600.0
RUNNER = """
import sys
from fmduck.cli import main
code = main(sys.argv[1:])
status = open("/proc/self/status").read()
print("VMHWM_KB", next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")))
sys.exit(code)
"""


def _panel(folder: Path, assets: int) -> tuple[Path, Path]:
    """A balanced panel (every asset listed throughout): ret = a + b·mkt + noise, in row groups."""
    rng = np.random.default_rng(assets)
    mkt = rng.standard_normal(PERIODS) * 0.04
    factors = pl.DataFrame({"period": np.arange(1, PERIODS + 1, dtype=np.int64), "mkt": mkt})
    factors_path = folder / f"factors_{assets}.parquet"
    factors.write_parquet(factors_path)
    beta = 0.5 + rng.random(assets)
    asset = np.repeat(np.arange(assets, dtype=np.int64), PERIODS)
    period = np.tile(np.arange(1, PERIODS + 1, dtype=np.int64), assets)
    ret = 0.001 + beta[asset] * mkt[period - 1] + rng.standard_normal(assets * PERIODS) * 0.05
    returns_path = folder / f"returns_{assets}.parquet"
    pl.DataFrame({"asset": asset, "period": period, "ret": ret}).write_parquet(returns_path, row_group_size=1 << 20)
    return returns_path, factors_path


def _run(folder: Path, assets: int) -> tuple[float, Path]:
    import time

    returns, factors = _panel(folder, assets)
    started = time.perf_counter()
    warehouse = folder / f"wh_{assets}"
    args = ["run", str(warehouse), "--engine", "spark", "--returns", str(returns), "--factors", str(factors),
            "--factor-cols", "mkt", "--window", str(WINDOW), "--min-obs", str(MIN_OBS), "--name", "big", "-q",
            "--spark-conf", "spark.sql.shuffle.partitions=8,spark.driver.memory=4g,spark.ui.showConsoleProgress=false"]
    env = {**os.environ, "FMDUCK_SPARK_MASTER": "local[2]",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", RUNNER, *args], check=False, capture_output=True, text=True, cwd=folder,
                         env=env, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    peak_kb = next(int(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("VMHWM_KB"))
    windows = pl.scan_parquet(warehouse / "fmduck.db" / "first_pass_windows" / "*.parquet").select(pl.len()).collect()
    assert windows.item() == assets * (PERIODS - MIN_OBS + 1)
    print(f"spark CLI: {windows.item()} windows, driver peak RSS {peak_kb / 1024:.0f} MB, "
          f"{time.perf_counter() - started:.0f} s")
    return peak_kb / 1024.0, warehouse


def test_driver_peak_rss_is_small_and_flat_when_windows_double(tmp_path):
    small, warehouse = _run(tmp_path, 10_000)   # 4.95M windows
    estimates = pl.read_parquet(warehouse / "fmduck.db" / "estimates" / "*.parquet")
    con = duckdb.connect()
    from fmduck import FamaMacBeth, Spec

    want = FamaMacBeth(Spec(name="big", returns=str(tmp_path / "returns_10000.parquet"),
                            factors=str(tmp_path / "factors_10000.parquet"), factor_cols=["mkt"], window=WINDOW,
                            min_obs=MIN_OBS), con).fit(write=False)
    oracles.compare_frames(estimates, want.estimates, ["term", "se_type"], ["estimate", "std_error", "t_stat"],
                           label="spark CLI vs duckdb, 4.95M windows", rtol=1e-12, atol=1e-12)
    large, _ = _run(tmp_path, 20_000)           # 9.9M windows
    assert small < LIMIT_MB and large < LIMIT_MB, (small, large)
    assert large < small * 1.1 + 20, f"driver peak grew with the windows: {small:.0f} MB -> {large:.0f} MB"
