"""Benchmarks: fmduck against statsmodels, linearmodels and a polars in-memory yardstick.

    python -m bench [--sizes S,M,L] [--repeat 3] [--tools a,b] [--no-results] [--report-only]

Generates the seeded panels (bench/data/, reused), runs every tool in its own subprocess (so the
peak RSS is the tool's own), checks that the outputs agree to 1e-8, then prints the timings
(medians), the ratios fmduck/peer and the peak RSS, and writes bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl

from bench.data import SIZES, ensure

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
TOL = 1e-8
DEFAULT_TOOLS = ["solve", "fmduck_rolling", "fmduck_rolling_write", "polars_rolling", "statsmodels_pass1",
                 "linearmodels_rolling", "fmduck_chars", "polars_chars", "linearmodels_chars"]
# on L (one run each): fit() under memory_limit='4GB', the polars yardstick, statsmodels on a sample;
# no linearmodels (a 45M-row pandas panel) and no characteristic run
L_TOOLS = ["fmduck_rolling", "polars_rolling", "statsmodels_pass1"]


def run_tool(tool: str, size: str, repeat: int) -> dict:
    outdir = OUT / size
    env = dict(os.environ)
    env.setdefault("POLARS_MAX_THREADS", "2")
    env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "bench.worker", tool, size, str(repeat), str(outdir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=HERE.parent)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            res = json.loads(line[len("BENCH-RESULT "):])
            res["median_s"] = statistics.median(res["times"])
            return res
    raise RuntimeError(f"{tool} on {size} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")


# ------------------------------------------------------------------------------- agreement checks
def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        return float("inf")
    if not a.size:
        return 0.0
    # normwise relative difference (columns of tiny SEs are compared to their own scale)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


def _frame_diff(left: Path, right: Path, keys: list[str], cols: list[str]) -> tuple[float, str]:
    a, b = pl.read_parquet(left), pl.read_parquet(right)
    joined = a.join(b, on=keys, how="full", suffix="_r", coalesce=True)
    missing = joined.filter(pl.any_horizontal(pl.col(c).is_null() | pl.col(f"{c}_r").is_null() for c in cols)).height
    joined = joined.drop_nulls()
    d = max(_rel(joined[c].to_numpy(), joined[f"{c}_r"].to_numpy()) for c in cols)
    note = f"{joined.height} rows" + (f", {missing} rows in one only" if missing else "")
    return (d if not missing else float("inf")), note


def checks(size: str, ran: set[str]) -> list[tuple[str, float, str]]:
    out = OUT / size
    rows: list[tuple[str, float, str]] = []
    b = ["b0", "b1", "b2"]
    if {"fmduck_rolling", "polars_rolling"} <= ran:
        if size == "L":  # fmduck's output keeps the betas of statsmodels' sample of assets only
            rows.append(("pass-1 betas fmduck vs polars (statsmodels' sample of assets)",
                         *_frame_diff_subset(out / "fmduck_betas.parquet", out / "polars_betas.parquet", b)))
        else:
            rows.append(("pass-1 betas fmduck vs polars", *_frame_diff(
                out / "fmduck_betas.parquet", out / "polars_betas.parquet", ["asset", "pidx"], b)))
        rows.append(("lambda_t fmduck vs polars", *_frame_diff(out / "fmduck_lambdas.parquet",
                                                               out / "polars_lambdas.parquet", ["pidx"],
                                                               ["n", "const", *b])))
        fe = json.loads((out / "fmduck_rolling_estimates.json").read_text())
        pe = json.loads((out / "polars_rolling_estimates.json").read_text())
        d = max(_rel(fe["fm"]["estimate"], pe["estimate"]), _rel(fe["fm"]["se"], pe["fm"]),
                _rel(fe["nw"]["se"], pe["nw"]))
        rows.append(("mean lambda, FM and NW SE fmduck vs polars", d, "4 terms"))
    if {"fmduck_rolling", "statsmodels_pass1"} <= ran:
        rows.append(("pass-1 betas fmduck vs statsmodels RollingOLS (sample)",
                     *_frame_diff_subset(out / "statsmodels_betas.parquet", out / "fmduck_betas.parquet", b)))
    if {"fmduck_rolling", "linearmodels_rolling"} <= ran:
        fe = json.loads((out / "fmduck_rolling_estimates.json").read_text())
        le = json.loads((out / "linearmodels_rolling_estimates.json").read_text())
        d = max(_rel(fe["fm"]["estimate"], le["estimate"]), _rel(fe["fm"]["se"], le["fm"]),
                _rel(fe["nw"]["se"], le["nw"]))
        rows.append(("mean lambda, FM and NW SE fmduck vs linearmodels (passes 2-3)", d, "4 terms"))
    if {"fmduck_chars", "polars_chars"} <= ran:
        rows.append(("chars lambda_t fmduck vs polars", *_frame_diff(
            out / "fmduck_chars_lambdas.parquet", out / "polars_chars_lambdas.parquet", ["pidx"],
            ["n", "const", "c1", "c2", "c3"])))
    if {"fmduck_chars", "linearmodels_chars"} <= ran:
        fe = json.loads((out / "fmduck_chars_estimates.json").read_text())
        le = json.loads((out / "linearmodels_chars_estimates.json").read_text())
        d = max(_rel(fe["fm"]["estimate"], le["estimate"]), _rel(fe["fm"]["se"], le["fm"]),
                _rel(fe["nw"]["se"], le["nw"]))
        rows.append(("chars mean lambda, FM and NW SE fmduck vs linearmodels", d, "4 terms"))
    if "solve" in ran:
        s = json.loads((out / "solve.json").read_text())
        rows.append(("batched OLS params vs numpy.linalg.solve", s["max_rel_diff"], f"{s['systems']} systems"))
    return rows


def _frame_diff_subset(sample: Path, full: Path, cols: list[str]) -> tuple[float, str]:
    a = pl.read_parquet(sample)
    b = pl.read_parquet(full).filter(pl.col("asset").is_in(a["asset"].unique().implode()))
    tmp = OUT / "_subset.parquet"
    b.write_parquet(tmp)
    return _frame_diff(sample, tmp, ["asset", "pidx"], cols)


# ------------------------------------------------------------------------------- report
def machine() -> str:
    import duckdb
    import linearmodels
    import numpy
    import statsmodels

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem:.1f} GiB RAM, {platform.platform()}, "
            f"Python {platform.python_version()}; "
            f"duckdb {duckdb.__version__}, polars {pl.__version__}, numpy {numpy.__version__}, "
            f"statsmodels {statsmodels.__version__}, linearmodels {linearmodels.__version__}")


def table(size: str, res: dict[str, dict]) -> list[str]:
    def t(name: str) -> float | None:
        return res[name]["median_s"] if name in res else None

    def fmt(x: float | None) -> str:
        return "—" if x is None else (f"{x:.3f}" if x < 10 else f"{x:.1f}")

    def ratio(a: float | None, b: float | None) -> str:
        return "—" if a is None or b is None else f"{a / b:.3f}" if a / b < 1 else f"{a / b:.2f}"

    def rss(name: str) -> str:
        return f"{res[name]['peak_rss_mb']:.0f}" if name in res else "—"

    lines = [f"### {size}", "",
             "| step | fmduck s | peer | peer s | fmduck/peer | fmduck peak RSS MB | peer peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    fr, fw = t("fmduck_rolling"), t("fmduck_rolling_write")
    sm, lm = t("statsmodels_pass1"), t("linearmodels_rolling")
    both = sm + lm if sm is not None and lm is not None else None
    lines.append(f"| rolling-beta FM, fit(write=False) | {fmt(fr)} | polars yardstick | {fmt(t('polars_rolling'))} | "
                 f"{ratio(fr, t('polars_rolling'))} | {rss('fmduck_rolling')} | {rss('polars_rolling')} |")
    lines.append(f"| rolling-beta FM, fit(write=False) | {fmt(fr)} | "
                 "statsmodels RollingOLS (extrapolated) + linearmodels | "
                 f"{fmt(both)} | {ratio(fr, both)} | {rss('fmduck_rolling')} | "
                 f"{rss('statsmodels_pass1')} / {rss('linearmodels_rolling')} |")
    lines.append(f"| rolling-beta FM, fit(write=True) | {fmt(fw)} | polars yardstick | {fmt(t('polars_rolling'))} | "
                 f"{ratio(fw, t('polars_rolling'))} | {rss('fmduck_rolling_write')} | {rss('polars_rolling')} |")
    lines.append(f"| pass 1 only (rolling OLS) | {fmt(_phase(res, 'pass 1'))} | "
                 "statsmodels RollingOLS (extrapolated) | "
                 f"{fmt(sm)} | {ratio(_phase(res, 'pass 1'), sm)} | | {rss('statsmodels_pass1')} |")
    p23 = None if fr is None else sum(v for k, v in res["fmduck_rolling"]["extra"]["phases"].items()
                                      if k.startswith("pass 2") or k.startswith("pass 3"))
    lines.append(f"| passes 2-3 given betas | {fmt(p23)} | linearmodels FamaMacBeth (kernel + unadjusted fits) | "
                 f"{fmt(lm)} | {ratio(p23, lm)} | | {rss('linearmodels_rolling')} |")
    fc = t("fmduck_chars")
    lines.append(f"| characteristic FM (3 chars) | {fmt(fc)} | linearmodels FamaMacBeth (kernel + unadjusted fits) | "
                 f"{fmt(t('linearmodels_chars'))} | {ratio(fc, t('linearmodels_chars'))} | {rss('fmduck_chars')} | "
                 f"{rss('linearmodels_chars')} |")
    lines.append(f"| characteristic FM (3 chars) | {fmt(fc)} | polars yardstick | {fmt(t('polars_chars'))} | "
                 f"{ratio(fc, t('polars_chars'))} | {rss('fmduck_chars')} | {rss('polars_chars')} |")
    if "solve" in res:
        s = res["solve"]
        npt = statistics.median(s["extra"]["numpy_solve_s"])
        inv = statistics.median(s["extra"]["spd_inverse_s"])
        lines.append(f"| batched OLS on {s['extra']['systems']:,} 4x4 systems (params, SE, R²) | "
                     f"{fmt(s['median_s'])} | numpy.linalg.solve (params only) | {fmt(npt)} | "
                     f"{ratio(s['median_s'], npt)} | | |")
        lines.append(f"| batched SPD inverse alone (3x3 centred) | {fmt(inv)} | numpy.linalg.solve | {fmt(npt)} | "
                     f"{ratio(inv, npt)} | | |")
    # drop rows with no measurement on either side (e.g. on L: no linearmodels, no chars)
    return lines[:4] + [ln for ln in lines[4:]
                        if not (ln.split("|")[2].strip() == "—" and ln.split("|")[4].strip() == "—")]


def _phase(res: dict, name: str) -> float | None:
    if "fmduck_rolling" not in res:
        return None
    return res["fmduck_rolling"]["extra"]["phases"].get(name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="S,M")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tools", default=None, help="comma-separated subset of " + ",".join(DEFAULT_TOOLS))
    ap.add_argument("--no-results", action="store_true", help="do not rewrite bench/RESULTS.md")
    ap.add_argument("--report-only", action="store_true",
                    help="run nothing: check agreement again from bench/out and rewrite bench/RESULTS.md")
    args = ap.parse_args(argv)
    sizes = [s.strip().upper() for s in args.sizes.split(",") if s.strip()]
    all_results: dict[str, dict[str, dict]] = {}
    failed: list[str] = []
    previous = _previous()
    for size in sizes:
        ensure(SIZES[size])
        tools = args.tools.split(",") if args.tools else (L_TOOLS if size == "L" else DEFAULT_TOOLS)
        res: dict[str, dict] = {}
        for tool in [] if args.report_only else tools:
            print(f"[{size}] {tool} ...", flush=True)
            res[tool] = run_tool(tool, size, 1 if size == "L" else args.repeat)
            print(f"[{size}] {tool}: median {res[tool]['median_s']:.3f} s, peak RSS {res[tool]['peak_rss_mb']:.0f} MB",
                  flush=True)
        # tools of this size measured by an earlier invocation (`--tools` reruns a subset) are kept
        if args.tools or args.report_only:
            for tool, value in previous.get(size, {}).items():
                if not tool.startswith("_"):
                    res.setdefault(tool, value)
        agree = checks(size, set(res))
        print(f"\n[{size}] agreement (max relative difference, tolerance {TOL:g}):")
        for name, d, note in agree:
            ok = d <= TOL
            print(f"  {'ok  ' if ok else 'FAIL'} {name}: {d:.2e} ({note})")
            if not ok:
                failed.append(f"{size}: {name}")
        res["_agree"] = agree  # type: ignore[assignment]
        all_results[size] = res
        if not any(f.startswith(size) for f in failed):
            print("\n" + "\n".join(table(size, res)) + "\n")
    # sizes measured by an earlier invocation (e.g. `--sizes L` run separately) stay in the report
    for size, res in previous.items():
        all_results.setdefault(size, res)
    all_results = {s: all_results[s] for s in ("S", "M", "L") if s in all_results}
    (OUT / "results.json").write_text(json.dumps(all_results, indent=1, default=str))
    if failed:
        print("outputs disagree; timings withheld for: " + "; ".join(failed), file=sys.stderr)
    if not args.no_results:
        write_results(all_results, args.repeat, failed)
    return 1 if failed else 0


def _previous() -> dict[str, dict[str, dict]]:
    """bench/out/results.json of an earlier invocation ({} if there is none or it cannot be read)."""
    try:
        return json.loads((OUT / "results.json").read_text())
    except (ValueError, OSError):
        return {}


def write_results(all_results: dict, repeat: int, failed: list[str]) -> None:
    from bench.report import render

    (HERE / "RESULTS.md").write_text(render(all_results, repeat, failed, machine()))


if __name__ == "__main__":
    raise SystemExit(main())
