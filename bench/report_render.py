"""Render time of a report of a big rolling run: first-pass aggregates in SQL (what `fmduck report` does)
against polars on the long first pass read into Python (the earlier way).

    python -m bench.report_render [--assets 5000] [--months 240] [--window 60] [--min-obs 36] [--repeat 2]

Builds a seeded synthetic panel (factor model, 3 factors) into bench/out/report_<N>x<T>.duckdb (kept
between invocations), fits the rolling run once, then renders HTML and LaTeX in a fresh subprocess per
measurement (imports included, as a user's `fmduck report` pays them) and prints wall time, peak RSS
and file sizes. ``--mode`` sql|memory runs one measurement in this process (what the subprocesses call).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUN = "stocks"


def build(path: Path, assets: int, months: int, window: int, min_obs: int) -> float:
    import duckdb
    import numpy as np
    import polars as pl

    from fmduck import FamaMacBeth, Spec

    rng = np.random.default_rng(20240601)
    f = rng.normal(0.005, 0.04, size=(months, 3))
    beta = rng.normal(1.0, 0.4, size=(assets, 3))
    alpha = rng.normal(0.0, 0.002, size=assets)
    r = alpha[:, None] + beta @ f.T + rng.normal(0.0, 0.08, size=(assets, months))
    names = [f"P{i:05d}" for i in range(assets)]
    panel = pl.DataFrame({"asset": np.repeat(names, months), "period": np.tile(np.arange(months), assets),
                          "ret": r.ravel()})
    factors = pl.DataFrame({"period": np.arange(months), "mkt": f[:, 0], "smb": f[:, 1], "hml": f[:, 2]})
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.register("panel_frame", panel.to_arrow())
    con.register("factor_frame", factors.to_arrow())
    con.execute("CREATE TABLE panel AS SELECT * FROM panel_frame")
    con.execute("CREATE TABLE factors AS SELECT * FROM factor_frame")
    start = time.perf_counter()
    FamaMacBeth(Spec(name=RUN, returns="panel", factors="factors", factor_cols=["mkt", "smb", "hml"], window=window,
                     min_obs=min_obs), con).fit()
    seconds = time.perf_counter() - start
    con.close()
    return seconds


def measure(db: Path, mode: str, fmt_name: str, out: Path) -> dict:
    """One rendering in this process: ``sql`` = fmduck.report.report; ``memory`` = the same runs rendered
    with the first pass aggregated by polars after reading it whole."""
    start = time.perf_counter()
    from fmduck.report import ReportOptions, load_runs, render, report
    from fmduck.report.assets import FirstPass
    from fmduck.report.loading import load_for_report

    imported = time.perf_counter()
    if mode == "sql":
        result = report(db, [RUN], fmt_name, out, se_type="nw")
    else:
        runs = load_runs(db, [RUN])
        runs[0].first_pass  # noqa: B018 - read the long first pass, as the report did before
        result = render(runs, fmt_name, out, ReportOptions(se_type="nw"))
    seconds = time.perf_counter() - start
    # the first-pass aggregates alone (per asset, per period), after the imports
    tic = time.perf_counter()
    if mode == "sql":
        runs, sources = load_for_report(db, [RUN])
        fp = sources[0]
    else:
        runs = load_runs(db, [RUN])
        fp = FirstPass(runs[0])
    fp.per_asset  # noqa: B018
    fp.period_quantiles(fp.terms)
    aggregates = time.perf_counter() - tic
    return {"mode": mode, "format": fmt_name, "seconds": round(seconds, 2),
            "imports_s": round(imported - start, 2), "first_pass_aggregates_s": round(aggregates, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "bytes": result.output.stat().st_size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=5000)
    ap.add_argument("--months", type=int, default=240)
    ap.add_argument("--window", type=int, default=60)
    ap.add_argument("--min-obs", type=int, default=36)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--modes", default="sql,memory")
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--format", dest="fmt", default="html", help=argparse.SUPPRESS)
    args = ap.parse_args()
    db = HERE / "out" / f"report_{args.assets}x{args.months}.duckdb"
    out = HERE / "out" / f"report_{args.assets}x{args.months}"
    if args.mode:
        print(json.dumps(measure(db, args.mode, args.fmt, out / f"{args.mode}.{args.fmt}")))
        return
    if not db.exists():
        print(f"building {db.name}: fit {build(db, args.assets, args.months, args.window, args.min_obs):.1f} s")
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    windows = con.execute(f"SELECT COUNT(*) FROM fmduck.first_pass_windows WHERE run_name = '{RUN}'").fetchone()[0]
    con.close()
    print(f"{args.assets:,} assets x {args.months} months, window {args.window}: {windows:,} first-pass windows")
    for fmt_name in ("html", "tex"):
        for mode in args.modes.split(","):
            for _ in range(args.repeat):
                done = subprocess.run([sys.executable, "-m", "bench.report_render", "--assets", str(args.assets),
                                       "--months", str(args.months), "--mode", mode, "--format", fmt_name],
                                      capture_output=True, text=True, cwd=HERE.parent, check=True)
                print(done.stdout.strip())


if __name__ == "__main__":
    main()
