"""Seeded synthetic panels for the benchmarks, written to Parquet under bench/data/ once and reused.

S = 2,000 assets x 600 months, M = 10,000 x 600 (listing spans like CRSP, ~5% of the remaining
rows missing), L = 5,000 x 10,000 days (~45M rows). Columns: returns(asset, period, ret, c1, c2, c3),
factors(period, mkt, smb, hml). ``period`` is an integer 1..T. Returns follow a 3-factor model with
slowly drifting betas plus a small characteristic premium, so every regression is well conditioned.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DATA_DIR = Path(os.environ.get("FMDUCK_BENCH_DATA", Path(__file__).resolve().parent / "data"))
FACTORS = ["mkt", "smb", "hml"]
CHARS = ["c1", "c2", "c3"]


@dataclass(frozen=True)
class Size:
    name: str
    assets: int
    periods: int
    window: int
    min_obs: int
    missing: float
    min_life: int          # shortest listing span (periods)
    full_life: bool        # L: every asset listed (almost) throughout
    seed: int
    nw_lags: int

    @property
    def returns_path(self) -> Path:
        return DATA_DIR / f"{self.name}_returns.parquet"

    @property
    def factors_path(self) -> Path:
        return DATA_DIR / f"{self.name}_factors.parquet"


SIZES = {
    "S": Size("S", 2_000, 600, 60, 36, 0.05, 40, False, 20260101, 6),
    "M": Size("M", 10_000, 600, 60, 36, 0.05, 40, False, 20260102, 6),
    "L": Size("L", 5_000, 10_000, 252, 126, 0.02, 2_000, True, 20260103, 20),
}


def ensure(size: Size) -> None:
    """Write the panel of ``size`` to Parquet unless it is already there."""
    if size.returns_path.exists() and size.factors_path.exists():
        return
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(size.seed)
    t = size.periods
    scale = 1.0 if size.name != "L" else 0.25          # daily-like volatility
    f = rng.standard_normal((t, 3)) * np.array([0.045, 0.03, 0.03]) * scale + np.array([0.006, 0.002, 0.003]) * scale
    periods = np.arange(1, t + 1, dtype=np.int32)
    factors = pa.table({"period": periods, **{name: f[:, j] for j, name in enumerate(FACTORS)}})
    tmp = size.factors_path.with_suffix(".tmp")
    pq.write_table(factors, tmp)
    tmp.rename(size.factors_path)

    tmp = size.returns_path.with_suffix(".tmp")
    writer = None
    chunk = 500
    try:
        for first in range(0, size.assets, chunk):
            ids = np.arange(first, min(first + chunk, size.assets))
            table = _asset_block(rng, size, ids, f)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=1 << 20)
    finally:
        if writer is not None:
            writer.close()
    tmp.rename(size.returns_path)


def _asset_block(rng: np.random.Generator, size: Size, ids: np.ndarray, f: np.ndarray) -> pa.Table:
    t = size.periods
    a = len(ids)
    if size.full_life:
        start = rng.integers(1, t // 20 + 1, a)
        end = np.full(a, t)
    else:
        life = rng.integers(size.min_life, t + 1, a)
        start = rng.integers(1, t - life + 2)
        end = start + life - 1
    # listing mask and 5% missing rows inside the span
    grid = np.arange(1, t + 1)
    listed = (grid[None, :] >= start[:, None]) & (grid[None, :] <= end[:, None])
    present = listed & (rng.random((a, t)) >= size.missing)
    # betas: asset level + slow drift (random walk scaled down)
    base = rng.normal([1.0, 0.5, 0.3], [0.3, 0.4, 0.4], (a, 3))
    drift = np.cumsum(rng.standard_normal((a, t, 3)), axis=1) * (0.01 if size.name != "L" else 0.002)
    betas = base[:, None, :] + drift
    sigma = rng.uniform(0.04, 0.12, a) * (1.0 if size.name != "L" else 0.25)
    chars = rng.standard_normal((a, t, 3))
    ret = (
        np.einsum("atk,tk->at", betas, f)
        + 0.002 * chars[:, :, 0] - 0.001 * chars[:, :, 1]
        + sigma[:, None] * rng.standard_normal((a, t))
    )
    ai, ti = np.nonzero(present)
    return pa.table({
        "asset": pa.array(ids[ai].astype(np.int32)),
        "period": pa.array(grid[ti].astype(np.int32)),
        "ret": pa.array(ret[ai, ti]),
        **{c: pa.array(chars[ai, ti, j]) for j, c in enumerate(CHARS)},
    })
