"""Pass 1 on Spark three ways: the moments alone, moments + the SQL solve (what fmduck runs), and
moments + the numpy solve in Python workers (``mapInArrow``, the alternative of issue 20).

    python -m bench.spark_solve [--size S] [--master local[2]]

Each variant is materialized on the executors (``localCheckpoint``) and timed after a warm-up run of
the SQL solve (JVM and query compilation warm). The two solves must agree to 1e-12. Prints one JSON
line: seconds per variant and windows. The Python workers use this interpreter (PYSPARK_PYTHON).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.spark_solve")
    p.add_argument("--size", default="S")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--window", type=int, help="window length (default: the size's)")
    args = p.parse_args(argv)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    import numpy as np
    import polars as pl
    import pyarrow as pa

    from bench.data import FACTORS, SIZES, ensure
    from fmduck import Spec, designs
    from fmduck.designs import twopass
    from fmduck.engine import bind
    from fmduck.engines.spark import SparkEngine, session
    from fmduck.moments import unpack
    from fmduck.plan import State, run_step
    from fmduck.run import Run

    size = SIZES[args.size]
    ensure(size)
    spark = session(args.master, None, **{"spark.sql.warehouse.dir": tempfile.mkdtemp(prefix="fmduck-wh-"),
                                          "spark.sql.shuffle.partitions": "4", "spark.driver.memory": "4g",
                                          "spark.ui.showConsoleProgress": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    engine = SparkEngine(spark)
    spec = Spec(name="solve", returns=str(size.returns_path), factors=str(size.factors_path), factor_cols=FACTORS,
                window=args.window or size.window, min_obs=size.min_obs)
    run = Run(spec, engine)
    plan, _ = twopass.build(run, designs.get("twopass").catalog(spec, engine))
    state = State()
    for step in plan.steps:
        if step.key == "first_pass":
            break
        run_step(run, step, state)
    solve_sql = step.sql("spark")
    values = bind(solve_sql, step.params, "spark") or None
    moments_sql = solve_sql[: solve_sql.index("fmduck_l1 AS (")].rstrip().rstrip(",") + "\nSELECT * FROM fmduck_l0"
    keys, m = ["asset", "pidx"], len(FACTORS) + 1
    out_schema = ("asset string, pidx int, nobs bigint, ok boolean, "
                  + ", ".join(f"e{j} double, s{j} double" for j in range(m))
                  + ", r2 double, adj_r2 double, rmse double")

    def solve(batches):  # runs in the Python workers: the numpy backend of fmduck/ols.py
        for batch in batches:
            frame = pl.from_arrow(pa.Table.from_batches([batch]))
            res = unpack(frame, keys, m).ols(intercept=True, min_df=1)
            cols = {"asset": frame["asset"].cast(pl.Utf8), "pidx": frame["pidx"].cast(pl.Int32),
                    "nobs": pl.Series(res.nobs).cast(pl.Int64), "ok": pl.Series(res.ok)}
            for j in range(m):
                cols[f"e{j}"], cols[f"s{j}"] = res.params[:, j], res.std_errors[:, j]
            cols.update(r2=res.r2, adj_r2=res.adj_r2, rmse=res.rmse)
            yield from pl.DataFrame(cols).to_arrow().to_batches()

    def timed(frame):
        started = time.perf_counter()
        stored = frame.localCheckpoint(eager=True)
        return time.perf_counter() - started, stored

    timed(spark.sql(solve_sql, args=values))  # warm-up
    t_moments, _ = timed(spark.sql(moments_sql, args=values))
    t_sql, by_sql = timed(spark.sql(solve_sql, args=values))
    t_arrow, by_arrow = timed(spark.sql(moments_sql, args=values).mapInArrow(solve, out_schema))
    keyed = [pl.from_arrow(f.select("asset", "pidx", "e1").toArrow()).with_columns(pl.col("asset").cast(pl.Utf8),
                                                                                    pl.col("pidx").cast(pl.Int64))
             for f in (by_sql, by_arrow)]
    a = keyed[0].join(keyed[1], on=["asset", "pidx"], how="full", suffix="_arrow")
    assert a.height == keyed[0].height == keyed[1].height
    diff = float(np.nanmax(np.abs(a["e1"].to_numpy() - a["e1_arrow"].to_numpy()) / np.abs(a["e1_arrow"].to_numpy())))
    print(json.dumps({"size": args.size, "master": args.master, "window": spec.window, "windows": a.height,
                      "moments_s": round(t_moments, 2), "moments_sql_solve_s": round(t_sql, 2),
                      "moments_mapinarrow_solve_s": round(t_arrow, 2), "max_rel_diff_e1": diff}), flush=True)
    spark.stop()
    return 0 if diff < 1e-12 else 1


if __name__ == "__main__":
    raise SystemExit(main())
