"""Benchmark row for the specification grid: 8 specifications from one pass-2 scan vs 8 separate runs.

    python -m bench.grid [--size M] [--repeat 3]

The 8 specifications are full-sample betas on mkt, smb, hml plus every subset of the
characteristics c1, c2, c3 (including none), on the bench panel (bench/data.py; copied into an
in-memory DuckDB first so both sides read the same table). Both sides write their runs
(``fit(write=True)``). Prints a markdown row with the median times and the ratio, and checks that
every λ̄ of the grid equals the separate run's (max relative difference).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import duckdb
import numpy as np

from bench.data import SIZES, ensure
from fmduck import FamaMacBeth, Spec

CHARS = ["c1", "c2", "c3"]
FACTORS = ["mkt", "smb", "hml"]


def _grid() -> list[dict]:
    subsets = [list(s) for k in range(len(CHARS) + 1) for s in itertools.combinations(CHARS, k)]
    return [{"name": "m" + ("".join(c[1] for c in s) or "0"), "chars": s} for s in subsets]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="M")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    size = SIZES[args.size]
    ensure(size)
    con = duckdb.connect()
    con.execute(f"CREATE TABLE returns AS SELECT * FROM read_parquet('{size.returns_path}')")
    con.execute(f"CREATE TABLE factors AS SELECT * FROM read_parquet('{size.factors_path}')")
    base = dict(returns="returns", factors="factors", factor_cols=FACTORS, chars=CHARS, replace=True)
    grid_times, sep_times = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        grid = FamaMacBeth(Spec(name="grid", grid=_grid(), **base), con).fit()
        grid_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        separate = [FamaMacBeth(Spec(name=f"sep_{g['name']}", **{**base, "chars": g["chars"]}), con).fit()
                    for g in _grid()]
        sep_times.append(time.perf_counter() - t0)
    worst = 0.0
    for a, b in zip(grid.runs, separate):
        x, y = a.estimates["estimate"].to_numpy(), b.estimates["estimate"].to_numpy()
        worst = max(worst, float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-300))))
    g, s = statistics.median(grid_times), statistics.median(sep_times)
    print("| size | 8 specs: grid (one pass-2 scan) | 8 separate runs | ratio | max rel. diff of λ̄ |")
    print("|---|---|---|---|---|")
    print(f"| {args.size} ({size.assets:,} x {size.periods}) | {g:.2f} s | {s:.2f} s | {s / g:.2f}x | {worst:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
