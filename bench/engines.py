"""The same panel in DuckDB, PostgreSQL and Spark: wall time and peak memory of one rolling-beta FM run.

    python -m bench.engines [--size XS|S|M] [--engines duckdb,postgres,spark@local[2]] [--repeat 1]

Each engine runs in its own subprocess (``--worker``), reading the seeded panel of bench/data.py:
DuckDB and Spark straight from its Parquet files, PostgreSQL from tables loaded beforehand (loading
is not timed) in a throwaway server started like the tests' (tests/conftest_pg.py). Timed: one
``FamaMacBeth(spec, engine).fit()`` with rolling betas (the size's window and min_obs), results
written by the engine. Peak RSS (VmHWM from /proc): the Python process, and the engine's own
process: the PostgreSQL backend serving the run (not the rest of the server), the Spark JVM. The λ
estimates of every engine must agree with DuckDB's to 1e-8.
Writes bench/out/engines.json and prints a table. Separate from ``python -m bench`` (bench/__main__.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
ENGINES = ["duckdb", "postgres", "spark"]
TOL = 1e-8


def _size(name: str):
    from bench.data import SIZES, Size

    if name == "XS":  # a quick smoke size for this comparison: 300 assets x 240 months
        return Size("XS", 300, 240, 60, 36, 0.05, 40, False, 20260109, 4)
    return SIZES[name]


def _spec(size, returns, factors, name: str):
    from bench.data import FACTORS
    from fmduck import Spec

    return Spec(name=name, returns=returns, factors=factors, factor_cols=FACTORS, window=size.window,
                min_obs=size.min_obs, nw_lags=size.nw_lags, replace=True)


def worker(engine_name: str, size_name: str, repeat: int, url: str | None) -> dict:
    from bench.data import ensure
    from fmduck import FamaMacBeth

    size = _size(size_name)
    ensure(size)
    returns, factors = str(size.returns_path), str(size.factors_path)
    stop = None
    if engine_name == "duckdb":
        tmp = Path(tempfile.mkdtemp(prefix="fmduck-bench-"))
        engine = str(tmp / "bench.duckdb")
    elif engine_name == "postgres":
        from fmduck.engines.postgres import PostgresEngine

        engine = PostgresEngine(url)
        returns, factors = "bench.returns", "bench.factors"
    else:  # spark or spark@MASTER (default local[2])
        from fmduck.engines.spark import SparkEngine, session

        master = engine_name.partition("@")[2] or "local[2]"
        spark = session(master, None, **{"spark.sql.warehouse.dir": tempfile.mkdtemp(prefix="fmduck-wh-"),
                                         "spark.sql.shuffle.partitions": "4",
                                         "spark.driver.memory": os.environ.get("FMDUCK_BENCH_SPARK_MEMORY", "4g"),
                                         "spark.ui.showConsoleProgress": "false"})
        spark.sparkContext.setLogLevel("ERROR")
        engine = SparkEngine(spark)
        stop = spark.stop
    times, results, steps = [], None, []
    for _ in range(repeat):
        started = time.perf_counter()
        marks: list[tuple[float, str]] = []
        results = FamaMacBeth(_spec(size, returns, factors, "bench"), engine).fit(
            progress=lambda message, marks=marks, started=started: marks.append((time.perf_counter() - started,
                                                                                 message)))
        times.append(time.perf_counter() - started)
        ends = [t for t, _ in marks[1:]] + [times[-1]]
        steps = [{"step": m, "seconds": round(end - t, 3)} for (t, m), end in zip(marks, ends)]
    if engine_name == "postgres":
        server_pids = [int(engine.query("SELECT pg_backend_pid() AS pid")["pid"][0])]
    elif engine_name.startswith("spark"):
        server_pids = _descendants(spark.sparkContext._gateway.proc.pid)
    else:
        server_pids = []
    engine_rss = max((_peak_rss_mb(pid) for pid in server_pids), default=0.0)
    windows = _windows(engine)
    if stop is not None:
        stop()
    assert results is not None
    lam = results.lambdas.select(["period_index", *results.terms]).sort("period_index")
    return {
        "engine": engine_name, "size": size_name, "times": times,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "engine_peak_rss_mb": engine_rss,
        "lambdas": lam.to_dict(as_series=False), "steps": steps,
        "windows": windows,
    }


def _windows(engine) -> int:
    """First-pass windows stored by the run (the unit of pass-1 throughput)."""
    from fmduck.engines import connect

    return int(connect(engine).query("SELECT COUNT(*) AS n FROM fmduck.first_pass_windows")["n"][0])


def _peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a process, from /proc (Linux); 0 if unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (the Spark launcher script and its JVM)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _load_postgres(size_name: str):
    """A throwaway server with the panel loaded as bench.returns / bench.factors."""
    sys.path.insert(0, str(ROOT / "tests"))
    import polars as pl

    from bench.data import ensure
    from conftest_pg import start_server
    from fmduck import templates
    from fmduck.engines.postgres import PostgresEngine

    size = _size(size_name)
    ensure(size)
    server = start_server()
    engine = PostgresEngine(server.url())
    engine.execute("CREATE SCHEMA IF NOT EXISTS bench")
    engine.create_table(templates.table("bench.returns"), pl.read_parquet(size.returns_path), replace=True)
    engine.create_table(templates.table("bench.factors"), pl.read_parquet(size.factors_path), replace=True)
    engine.execute("ANALYZE bench.returns; ANALYZE bench.factors")
    engine.close()
    return server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.engines", description=__doc__.splitlines()[0])
    p.add_argument("--size", default="S", help="XS, S or M (default S)")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print("BENCH-RESULT " + json.dumps(worker(args.worker, args.size, args.repeat, args.url)), flush=True)
        return 0
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    server = _load_postgres(args.size) if "postgres" in engines else None
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    rows = []
    try:
        for name in engines:
            cmd = [sys.executable, "-m", "bench.engines", "--worker", name, "--size", args.size,
                   "--repeat", str(args.repeat)]
            if server is not None:
                cmd += ["--url", server.url()]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH-RESULT ")), None)
            if line is None:
                raise RuntimeError(f"{name} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
            rows.append(json.loads(line[len("BENCH-RESULT "):]))
    finally:
        if server is not None:
            server.stop()
    import numpy as np

    ref = next((r for r in rows if r["engine"] == "duckdb"), rows[0])
    terms = [k for k in ref["lambdas"] if k != "period_index"]
    base = np.array([ref["lambdas"][t] for t in terms], dtype=float)
    print(f"rolling-beta FM, size {args.size}: median wall time; peak RSS of the Python process and of the "
          "engine's own process (PostgreSQL backend / Spark JVM)")
    print(f"{'engine':<10}{'seconds':>10}{'py MB':>10}{'engine MB':>11}{'max rel diff vs duckdb':>24}")
    for r in rows:
        got = np.array([r["lambdas"][t] for t in terms], dtype=float)
        diff = float(np.max(np.abs(got - base)) / np.max(np.abs(base))) if got.shape == base.shape else float("inf")
        r["max_rel_diff_vs_duckdb"] = diff
        r["median_s"] = statistics.median(r["times"])
        print(f"{r['engine']:<10}{r['median_s']:>10.2f}{r['peak_rss_mb']:>10.0f}{r['engine_peak_rss_mb']:>11.0f}"
              f"{diff:>24.2e}")
        if diff > TOL:
            raise SystemExit(f"{r['engine']}: λ differ from DuckDB's by {diff:.2e} > {TOL}")
    OUT.mkdir(exist_ok=True)
    for r in rows:
        r.pop("lambdas")
    (OUT / f"engines_{args.size}.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
