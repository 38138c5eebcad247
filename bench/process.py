"""The user's wait: whole processes, side by side in one run.

    python -m bench.process [--sizes M] [--repeat 3] [--peer-repeat 1] [--only a,b] [--no-results]

Every command is timed as a process, from fork to exit (interpreter start, imports, checks, passes,
writing, summary), with the peak RSS of that process (``wait4``):

- ``fmduck --version`` and ``fmduck --help``;
- ``fmduck run`` with rolling betas, storing the full first pass (also ``--first-pass summary`` and
  ``none``), each on a fresh copy of the panel's DuckDB file, whose growth is recorded;
- ``fmduck run`` with characteristics;
- ``fmduck update`` after one more month is appended, beside the full run on the same data;
- the peers as processes reading the same panel (``bench.peers``): statsmodels RollingOLS on every
  asset + linearmodels FamaMacBeth; linearmodels and finance-byu for characteristics;
- ``fit(write=False)`` in a warm process (``bench.worker``), for the ratio process / fit;
- memory (``--sizes D15`` / ``L``): ``fmduck run --memory-limit 1GB`` on a daily panel of >= 15M rows
  (the first 1,600 assets of L), and L with ``--memory-limit 4GB``.

The stored estimates are checked against the peers' (1e-8) before any ratio is reported.
Results: bench/out/process.json (every run) and bench/PROCESS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from bench.data import CHARS, FACTORS, SIZES, Size, ensure

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
TOL = 1e-8
FMDUCK = str(Path(sys.executable).parent / "fmduck")
# the daily panel for the memory target: the first 1,600 assets of L (~15.6M rows)
DAILY_ASSETS = 1_600


# ------------------------------------------------------------------------------- processes
def timed(cmd: list[str], cwd: Path | None = None) -> dict:
    """Run ``cmd``; its wall time (fork to exit), peak RSS (MB) and exit status. Output goes to files
    (a pipe left unread could block the child)."""
    env = dict(os.environ)
    env.setdefault("POLARS_MAX_THREADS", "2")
    env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd or HERE.parent)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{stderr[-3000:]}")
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024.0, "cpu_s": usage.ru_utime + usage.ru_stime,
            "loadavg_1min": os.getloadavg()[0]}


def repeated(fn, repeat: int) -> dict:
    """``repeat`` runs of ``fn`` (each returns a :func:`timed` dict): every run, and the median."""
    runs = [fn(i) for i in range(repeat)]
    return {"runs": runs, "median_s": statistics.median(r["wall_s"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}


def database(size: Size) -> Path:
    from bench.tools import database as build

    return build(size)


def daily_database() -> Path:
    """The >= 15M-row daily panel: the first DAILY_ASSETS assets of L, built once."""
    import duckdb

    path = OUT.parent / "data" / "D15.duckdb"
    if not path.exists():
        ensure(SIZES["L"])
        tmp = path.with_suffix(".tmp.duckdb")
        tmp.unlink(missing_ok=True)
        con = duckdb.connect(str(tmp))
        con.execute("SET memory_limit = '4GB'")
        con.execute(f"CREATE TABLE returns AS SELECT * FROM read_parquet('{SIZES['L'].returns_path}') "
                    f"WHERE asset < {DAILY_ASSETS}")
        con.execute(f"CREATE TABLE factors AS SELECT * FROM read_parquet('{SIZES['L'].factors_path}')")
        con.close()
        tmp.rename(path)
    return path


def rolling_args(size: Size) -> list[str]:
    return ["--returns", "returns", "--factors", "factors", "--factor-cols", ",".join(FACTORS),
            "--window", str(size.window), "--min-obs", str(size.min_obs), "--beta-lag", "1",
            "--nw-lags", str(size.nw_lags), "--nw-divisor", "T-1"]


def chars_args(size: Size) -> list[str]:
    return ["--returns", "returns", "--chars", ",".join(CHARS), "--nw-lags", str(size.nw_lags), "--nw-divisor", "T-1"]


def fresh_copy(source: Path, work: Path) -> Path:
    target = work / "panel.duckdb"
    for p in (target, target.with_suffix(".duckdb.wal")):
        p.unlink(missing_ok=True)
    shutil.copyfile(source, target)
    return target


def stored_estimates(db: Path, run: str) -> dict[str, dict[str, list[float]]]:
    """The stored run's estimates by SE type, terms in the peers' order (const, then the columns)."""
    import duckdb

    rank = {t: i for i, t in enumerate(["const", *FACTORS, *CHARS])}

    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT e.se_type, e.term, e.estimate, e.std_error FROM fmduck.estimates e "
                           "JOIN fmduck.runs r ON r.run_id = e.run_id WHERE r.run_name = ? "
                           "ORDER BY e.se_type", [run]).fetchall()
    finally:
        con.close()
    out: dict[str, dict[str, list[float]]] = {}
    for se, _term, est, std in sorted(rows, key=lambda r: (r[0], rank.get(r[1], len(rank)))):
        out.setdefault(se, {"estimate": [], "se": []})
        out[se]["estimate"].append(est)
        out[se]["se"].append(std)
    return out


# ------------------------------------------------------------------------------- the measurements
def startup(repeat: int) -> dict:
    return {flag: repeated(lambda _i, f=flag: timed([FMDUCK, f]), max(repeat, 5)) for flag in ("--version", "--help")}


def cli_run(size: Size, source: Path, work: Path, repeat: int, args: list[str], name: str) -> dict:
    """``fmduck run`` on a fresh copy of ``source`` each time; the file's growth is recorded."""
    def once(_i: int) -> dict:
        db = fresh_copy(source, work)
        before = db.stat().st_size
        res = timed([FMDUCK, "run", str(db), *args, "--name", name, "-q"])
        res["file_growth_mb"] = (db.stat().st_size - before) / 2**20
        return res

    result = repeated(once, repeat)
    result["estimates"] = stored_estimates(work / "panel.duckdb", name)
    result["file_growth_mb"] = statistics.median(r["file_growth_mb"] for r in result["runs"])
    return result


def cli_update(size: Size, source: Path, work: Path, repeat: int) -> dict:
    """A run stored on T - 1 periods, the last period appended, then ``fmduck update``; the updated
    estimates must equal a full run's on all T periods."""
    import duckdb

    last = size.periods

    def once(_i: int) -> dict:
        db = fresh_copy(source, work)
        con = duckdb.connect(str(db))
        con.execute("CREATE TABLE held_r AS SELECT * FROM returns WHERE period = ?", [last])
        con.execute("CREATE TABLE held_f AS SELECT * FROM factors WHERE period = ?", [last])
        con.execute("DELETE FROM returns WHERE period = ?", [last])
        con.execute("DELETE FROM factors WHERE period = ?", [last])
        con.close()
        timed([FMDUCK, "run", str(db), *rolling_args(size), "--name", "upd", "-q"])
        con = duckdb.connect(str(db))
        con.execute("INSERT INTO returns SELECT * FROM held_r")
        con.execute("INSERT INTO factors SELECT * FROM held_f")
        con.close()
        return timed([FMDUCK, "update", str(db), "upd", "-q"])

    result = repeated(once, repeat)
    result["estimates"] = stored_estimates(work / "panel.duckdb", "upd")
    return result


def fit_in_process(tool: str, size: Size, repeat: int) -> dict:
    from bench.__main__ import run_tool

    return run_tool(tool, size.name, repeat)


def peer(name: str, size: Size, work: Path, repeat: int) -> dict:
    out = work / f"{name}.json"
    result = repeated(lambda _i: timed([sys.executable, "-m", "bench.peers", name, size.name, str(out)]), repeat)
    result["estimates"] = json.loads(out.read_text())
    return result


# ------------------------------------------------------------------------------- agreement
def _rel(a: list[float], b: list[float]) -> float:
    if len(a) != len(b) or not a:
        return float("inf")
    return max(abs(x - y) for x, y in zip(a, b)) / max(max(abs(y) for y in b), 1e-300)


def agreement(res: dict) -> list[tuple[str, float]]:
    rows = []

    def versus(mine: str, theirs: str, label: str, ses: tuple[str, ...] = ("fm", "nw")) -> None:
        if mine not in res or theirs not in res:
            return
        fm, pe = res[mine]["estimates"], res[theirs]["estimates"]
        d = max([_rel(fm["fm"]["estimate"], pe["estimate"])] + [_rel(fm[s]["se"], pe[s]) for s in ses])
        rows.append((label, d))

    versus("run_rolling_full", "peer_rolling", "rolling: stored mean λ, FM and NW SE vs statsmodels + linearmodels")
    versus("run_chars", "peer_chars_linearmodels", "chars: stored mean λ, FM and NW SE vs linearmodels")
    versus("run_chars", "peer_chars_byu", "chars: stored mean λ and FM SE vs finance-byu", ("fm",))
    for other in ("run_rolling_summary", "run_rolling_none", "update"):
        if other in res and "run_rolling_full" in res:
            a, b = res[other]["estimates"], res["run_rolling_full"]["estimates"]
            rows.append((f"{other}: stored estimates vs the full run's",
                         max(_rel(a[s][k], b[s][k]) for s in ("fm", "nw") for k in ("estimate", "se"))))
    return rows


# ------------------------------------------------------------------------------- the report
def render(results: dict, repeat: int, peer_repeat: int) -> str:
    from bench.__main__ import machine

    def s(x: float | None) -> str:
        return "—" if x is None else f"{x:.2f}" if x < 10 else f"{x:.1f}"

    def ratio(a: float | None, b: float | None) -> str:
        return "—" if a is None or b is None else f"{a / b:.2f}×"

    lines = ["# The user's wait: whole processes", "",
             f"`python -m bench.process` — medians of {repeat} (peers: {peer_repeat}); every figure of a table "
             "comes from one invocation. Machine: " + machine(), ""]
    for size, res in results.items():
        if size.startswith("_"):
            continue

        def m(key: str, res: dict = res) -> float | None:
            return res[key]["median_s"] if key in res else None

        def rss(key: str, res: dict = res) -> str:
            return f"{res[key]['peak_rss_mb']:.0f}" if key in res else "—"

        lines += [f"## {size}", ""]
        if "startup" in res:
            st = res["startup"]
            lines += [f"`fmduck --version`: {st['--version']['median_s']:.3f} s; `fmduck --help`: "
                      f"{st['--help']['median_s']:.3f} s (target ≤ 0.3 s).", ""]
        lines += ["| what | seconds | peak RSS MB | file growth MB | against | ratio |", "|---|---|---|---|---|---|"]
        fit = m("fit_rolling")
        sm = m("peer_rolling")
        for key, label in (("run_rolling_full", "`fmduck run`, rolling betas, full first pass stored"),
                           ("run_rolling_summary", "`fmduck run`, rolling betas, `--first-pass summary`"),
                           ("run_rolling_none", "`fmduck run`, rolling betas, `--first-pass none`")):
            if key in res:
                lines.append(f"| {label} | {s(m(key))} | {rss(key)} | {res[key]['file_growth_mb']:.0f} | "
                             f"fit(write=False), warm: {s(fit)} s | {ratio(m(key), fit)} |")
        if "run_rolling_full" in res and sm is not None:
            lines.append(f"| statsmodels RollingOLS + linearmodels FamaMacBeth, as a process | {s(sm)} | "
                         f"{rss('peer_rolling')} | | `fmduck run` (full) | {ratio(sm, m('run_rolling_full'))} faster |")
        if "update" in res and "run_rolling_full" in res:
            lines.append(f"| `fmduck update` after one more period | {s(m('update'))} | {rss('update')} | | "
                         f"the full `fmduck run` | {ratio(m('update'), m('run_rolling_full'))} |")
        fc = m("run_chars")
        if fc is not None:
            lines.append(f"| `fmduck run`, 3 characteristics | {s(fc)} | {rss('run_chars')} | "
                         f"{res['run_chars']['file_growth_mb']:.0f} | fit(write=False), warm: {s(m('fit_chars'))} s | "
                         f"{ratio(fc, m('fit_chars'))} |")
            for key, label in (("peer_chars_linearmodels", "linearmodels FamaMacBeth"),
                               ("peer_chars_byu", "finance-byu fama_macbeth_numba")):
                if key in res:
                    inner = statistics.median(r.get("in_process_s", float("nan")) for r in [res[key]["estimates"]])
                    lines.append(f"| {label}, as a process (estimation alone {s(inner)} s) | {s(m(key))} | "
                                 f"{rss(key)} | | `fmduck run` (chars) | {ratio(m(key), fc)} faster |")
        for key, label in (("memory_1gb", f"`fmduck run --memory-limit 1GB`, daily, {DAILY_ASSETS:,} assets of L "
                                          "(target ≤ 2,560 MB)"),
                           ("memory_4gb", "`fmduck run --memory-limit 4GB`, L (target ≤ 5,120 MB)")):
            if key in res:
                lines.append(f"| {label} | {s(m(key))} | {rss(key)} | {res[key]['file_growth_mb']:.0f} | | |")
        lines.append("")
        if res.get("_agree"):
            lines += ["Agreement (max relative difference, tolerance 1e-8):", ""]
            lines += [f"- {'ok' if d <= TOL else 'FAIL'} {name}: {d:.1e}" for name, d in res["_agree"]]
            lines.append("")
    return "\n".join(lines) + "\n"


ALL = ["startup", "fit_rolling", "run_rolling_full", "run_rolling_summary", "run_rolling_none", "update",
       "peer_rolling", "fit_chars", "run_chars", "peer_chars_linearmodels", "peer_chars_byu"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.process", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="M", help="S, M (panels of bench.data); D15, L: the memory runs")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each fmduck measurement (median)")
    ap.add_argument("--peer-repeat", type=int, default=1, help="runs of each peer process (median)")
    ap.add_argument("--only", default=None, help="comma-separated subset of " + ",".join(ALL))
    ap.add_argument("--no-results", action="store_true", help="do not rewrite bench/PROCESS.md")
    args = ap.parse_args(argv)
    only = set(args.only.split(",")) if args.only else set(ALL)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "process.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    failed = False
    for size_name in [s.strip().upper() for s in args.sizes.split(",") if s.strip()]:
        res: dict = {}
        with tempfile.TemporaryDirectory(prefix="fmduck-bench-", dir=OUT) as tmp:
            work = Path(tmp)
            if size_name in ("D15", "L"):
                size = SIZES["L"]
                source = daily_database() if size_name == "D15" else database(size)
                limit = "1GB" if size_name == "D15" else "4GB"
                key = "memory_1gb" if size_name == "D15" else "memory_4gb"
                print(f"[{size_name}] fmduck run --memory-limit {limit} ...", flush=True)
                res[key] = cli_run(size, source, work, 1, [*rolling_args(size), "--memory-limit", limit], "mem")
            else:
                size = SIZES[size_name]
                ensure(size)
                source = database(size)
                steps = {
                    "startup": partial(startup, args.repeat),
                    "fit_rolling": partial(fit_in_process, "fmduck_rolling", size, args.repeat),
                    "run_rolling_full": partial(cli_run, size, source, work, args.repeat, rolling_args(size), "roll"),
                    "run_rolling_summary": partial(cli_run, size, source, work, args.repeat,
                                                   [*rolling_args(size), "--first-pass", "summary"], "roll"),
                    "run_rolling_none": partial(cli_run, size, source, work, args.repeat,
                                                [*rolling_args(size), "--first-pass", "none"], "roll"),
                    "update": partial(cli_update, size, source, work, args.repeat),
                    "peer_rolling": partial(peer, "rolling", size, work, args.peer_repeat),
                    "fit_chars": partial(fit_in_process, "fmduck_chars", size, args.repeat),
                    "run_chars": partial(cli_run, size, source, work, args.repeat, chars_args(size), "chars"),
                    "peer_chars_linearmodels": partial(peer, "chars-linearmodels", size, work, args.peer_repeat),
                    "peer_chars_byu": partial(peer, "chars-byu", size, work, args.peer_repeat),
                }
                for key in ALL:
                    if key in only:
                        print(f"[{size_name}] {key} ...", flush=True)
                        res[key] = steps[key]()
                        if "median_s" in res[key]:
                            print(f"[{size_name}] {key}: {res[key]['median_s']:.2f} s, "
                                  f"peak RSS {res[key]['peak_rss_mb']:.0f} MB", flush=True)
        res["_agree"] = agreement(res)
        for name, d in res["_agree"]:
            print(f"  {'ok  ' if d <= TOL else 'FAIL'} {name}: {d:.2e}")
            failed |= d > TOL
        if args.only:  # a partial rerun keeps the other measurements of the earlier invocation
            res = {**results.get(size_name, {}), **res}
        results[size_name] = res
    path.write_text(json.dumps(results, indent=1, default=str))
    if not args.no_results and not failed:
        (HERE / "PROCESS.md").write_text(render(results, args.repeat, args.peer_repeat))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
