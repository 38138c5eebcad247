"""The benchmarked tools. Each ``run_<tool>(size, repeat, out)`` times one step on one panel and
returns {"times": [...], "extra": {...}}; outputs needed for agreement checks go to ``out``/<tool>.*.

Every tool runs in its own subprocess (``bench.worker``) so that its peak RSS is its own.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench.data import CHARS, DATA_DIR, FACTORS, Size

SAMPLE_ASSETS = {"S": 100, "M": 100, "L": 10}


def database(size: Size) -> Path:
    """The DuckDB file holding ``returns`` and ``factors`` of ``size`` (built from the Parquet once)."""
    import duckdb

    path = DATA_DIR / f"{size.name}.duckdb"
    if not path.exists():
        tmp = path.with_suffix(".tmp.duckdb")
        tmp.unlink(missing_ok=True)
        con = duckdb.connect(str(tmp))
        con.execute("SET memory_limit = '4GB'")
        con.execute(f"CREATE TABLE returns AS SELECT * FROM read_parquet('{size.returns_path}')")
        con.execute(f"CREATE TABLE factors AS SELECT * FROM read_parquet('{size.factors_path}')")
        con.close()
        tmp.rename(path)
    return path


def _connect(size: Size):
    import duckdb

    path = database(size)
    con = duckdb.connect(str(path))
    con.execute("SET threads = 2")
    if size.name == "L":
        con.execute("SET memory_limit = '4GB'")
    return con


def _spec_rolling(size: Size, name: str = "bench_rolling"):
    from fmduck.spec import Spec

    return Spec(name=name, returns="returns", factors="factors", factor_cols=FACTORS, window=size.window,
                min_obs=size.min_obs, beta_lag=1, nw_lags=size.nw_lags, nw_divisor="T-1", replace=True)


def _spec_chars(size: Size):
    from fmduck.spec import Spec

    return Spec(name="bench_chars", returns="returns", chars=CHARS, nw_lags=size.nw_lags, nw_divisor="T-1",
                replace=True)


PEAK: dict[str, float] = {}


def _peak_mb() -> float:
    """This process's peak resident set (VmHWM: reset by exec, unlike ru_maxrss, which a child
    inherits from the parent that forked it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(fn, repeat: int) -> tuple[list[float], Any]:
    """Run ``fn`` ``repeat`` times (the previous result is released first, so runs do not overlap in
    memory); record the process's peak RSS right after the timed runs, before any output handling."""
    import gc

    times, result = [], None
    for _ in range(repeat):
        result = None
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    PEAK.setdefault("timed_peak_rss_mb", _peak_mb())
    return times, result


def _estimates(results) -> dict[str, dict[str, list[float]]]:
    est = results.estimates
    out: dict[str, dict[str, list[float]]] = {}
    for se in ("fm", "nw"):
        part = est.filter(pl.col("se_type") == se)
        out[se] = {"estimate": part["estimate"].to_list(), "se": part["std_error"].to_list()}
    return out


# --------------------------------------------------------------------------- fmduck
def run_fmduck_rolling(size: Size, repeat: int, out: Path, write: bool = False) -> dict[str, Any]:
    from dataclasses import replace

    from fmduck.model import FamaMacBeth

    con = _connect(size)
    spec = _spec_rolling(size, "bench_rolling_write" if write else "bench_rolling")
    phases: list[dict[str, float]] = []
    # writing: each timed run stores a new run (its own results schema in the panel's file, dropped after
    # the timings), as a user's next run does; replacing a stored run also deletes its rows
    schemas = [f"bench_write_{i}" for i in range(repeat)]
    for schema in schemas:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    def once():
        marks: list[tuple[str, float]] = [("start", time.perf_counter())]
        run_spec = replace(spec, schema=schemas[len(phases)]) if write else spec
        res = FamaMacBeth(run_spec, con).fit(
            write=write, progress=lambda m: marks.append((m.split(":")[0], time.perf_counter())))
        marks.append(("end", time.perf_counter()))
        phases.append({marks[i][0]: marks[i + 1][1] - marks[i][1] for i in range(len(marks) - 1)})
        return res

    times, res = _timed(once, repeat)
    for schema in schemas if write else []:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    if not write:
        # betas read piece by piece (on L: 47M windows; only the statsmodels sample's assets are kept)
        sample = pl.Series(sample_assets(size).astype(str).tolist()).implode() if size.name == "L" else None
        parts = [piece.filter(pl.col("asset").is_in(sample)) if sample is not None else piece
                 for piece in res.first_pass_pieces()]
        pl.concat(parts).select(pl.col("asset").cast(pl.Int32), pl.col("period_index").alias("pidx"),
                                *[pl.col(f).alias(b) for f, b in zip(FACTORS, ["b0", "b1", "b2"])]
                                ).write_parquet(out / "fmduck_betas.parquet")
        res.lambdas.select(pl.col("period_index").alias("pidx"), "n", "const", *FACTORS).rename(
            dict(zip(FACTORS, ["b0", "b1", "b2"]))).write_parquet(out / "fmduck_lambdas.parquet")
        (out / "fmduck_rolling_estimates.json").write_text(json.dumps(_estimates(res)))
    return {"times": times, "extra": {"phases": phases[-1], **({"memory_limit": "4GB"} if size.name == "L" else {})}}


def run_fmduck_rolling_write(size: Size, repeat: int, out: Path) -> dict[str, Any]:
    return run_fmduck_rolling(size, repeat, out, write=True)


def run_fmduck_chars(size: Size, repeat: int, out: Path) -> dict[str, Any]:
    from fmduck.model import FamaMacBeth

    con = _connect(size)
    spec = _spec_chars(size)
    times, res = _timed(lambda: FamaMacBeth(spec, con).fit(write=False), repeat)
    res.lambdas.select(pl.col("period_index").alias("pidx"), "n", "const", *CHARS).write_parquet(
        out / "fmduck_chars_lambdas.parquet")
    (out / "fmduck_chars_estimates.json").write_text(json.dumps(_estimates(res)))
    return {"times": times, "extra": {}}


# --------------------------------------------------------------------------- polars yardstick
def _load_polars(size: Size) -> tuple[pl.DataFrame, pl.DataFrame, float]:
    t0 = time.perf_counter()
    r = pl.read_parquet(size.returns_path)
    f = pl.read_parquet(size.factors_path)
    return r, f, time.perf_counter() - t0


def run_polars_rolling(size: Size, repeat: int, out: Path) -> dict[str, Any]:
    from bench import reference

    r, f, load = _load_polars(size)
    times, (betas, lam, inf) = _timed(
        lambda: reference.rolling_fm(r, f, FACTORS, size.window, size.min_obs, 1, size.nw_lags), repeat)
    betas.select(pl.col("asset").cast(pl.Int32), "pidx", "b0", "b1", "b2").write_parquet(out / "polars_betas.parquet")
    lam.write_parquet(out / "polars_lambdas.parquet")
    (out / "polars_rolling_estimates.json").write_text(json.dumps({k: v.tolist() for k, v in inf.items()}))
    return {"times": times, "extra": {"load_parquet_s": load}}


def run_polars_chars(size: Size, repeat: int, out: Path) -> dict[str, Any]:
    from bench import reference

    r, _f, load = _load_polars(size)
    times, (lam, inf) = _timed(lambda: reference.chars_fm(r, CHARS, size.nw_lags), repeat)
    lam.write_parquet(out / "polars_chars_lambdas.parquet")
    return {"times": times, "extra": {"load_parquet_s": load}}


# --------------------------------------------------------------------------- statsmodels (pass 1, sampled)
def sample_assets(size: Size) -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.sort(rng.choice(size.assets, SAMPLE_ASSETS[size.name], replace=False)).astype(np.int32)


def run_statsmodels_pass1(size: Size, repeat: int, out: Path) -> dict[str, Any]:
    from statsmodels.regression.rolling import RollingOLS

    r, f, _load = _load_polars(size)
    sample = sample_assets(size)
    panel = r.filter(pl.col("asset").is_in(sample.tolist())).select("asset", "period", "ret")
    fac = f.sort("period")
    periods = fac["period"].to_numpy()
    fx = fac.select(FACTORS).to_numpy()
    groups = {a: g for (a,), g in panel.partition_by("asset", as_dict=True).items()}
    rows_total = r.height
    rows_sample = panel.height

    def once():
        parts = []
        for a in sample:
            g = groups[int(a)]
            per = g["period"].to_numpy()
            lo, hi = np.searchsorted(periods, per.min()), np.searchsorted(periods, per.max())
            y = np.full(hi - lo + 1, np.nan)
            y[np.searchsorted(periods, per) - lo] = g["ret"].to_numpy()
            x = np.column_stack([np.ones(hi - lo + 1), fx[lo:hi + 1]])
            res = RollingOLS(y, x, window=size.window, min_nobs=size.min_obs, missing="drop", expanding=True).fit(
                params_only=True)
            params = res.params
            keep = ~np.isnan(y) & ~np.isnan(params[:, 1])
            idx = np.arange(lo, hi + 1)[keep] + 1
            parts.append(pl.DataFrame({"asset": np.full(keep.sum(), a, dtype=np.int32), "pidx": idx.astype(np.int64),
                                       "b0": params[keep, 1], "b1": params[keep, 2], "b2": params[keep, 3]}))
        return pl.concat(parts)

    times, betas = _timed(once, repeat)
    betas.write_parquet(out / "statsmodels_betas.parquet")
    scale = rows_total / rows_sample
    return {"times": [t * scale for t in times],
            "extra": {"sample_assets": len(sample), "sample_rows": rows_sample, "rows": rows_total,
                      "measured_s": times, "extrapolation": scale}}


# --------------------------------------------------------------------------- linearmodels (passes 2-3)
def _lm_fit(frame: pl.DataFrame, y: str, xs: list[str], lags: int):
    from linearmodels import FamaMacBeth as LMFamaMacBeth

    pdf = frame.to_pandas().set_index(["asset", "pidx"])
    exog = pdf[xs].copy()
    exog.insert(0, "const", 1.0)
    dep = pdf[y]

    def once():
        model = LMFamaMacBeth(dep, exog)
        return model.fit(cov_type="kernel", kernel="bartlett", bandwidth=lags), model.fit()

    return once


def run_linearmodels_rolling(size: Size, repeat: int, out: Path) -> dict[str, Any]:
    r, f, _ = _load_polars(size)
    betas = pl.read_parquet(out / "polars_betas.parquet")
    panel = r.select("asset", "period", "ret").join(
        f.select("period").sort("period").with_row_index("pidx", offset=1).with_columns(pl.col("pidx").cast(pl.Int64)),
        on="period").with_columns((pl.col("pidx") - 1).alias("bpidx")).join(
        betas.select("asset", pl.col("pidx").alias("bpidx"), "b0", "b1", "b2"), on=["asset", "bpidx"]).select(
        "asset", "pidx", "ret", "b0", "b1", "b2")
    once = _lm_fit(panel, "ret", ["b0", "b1", "b2"], size.nw_lags)
    times, (kern, unadj) = _timed(once, repeat)
    (out / "linearmodels_rolling_estimates.json").write_text(json.dumps({
        "estimate": kern.params.tolist(), "nw": kern.std_errors.tolist(), "fm": unadj.std_errors.tolist()}))
    return {"times": times, "extra": {"rows": panel.height, "note": "times two fits (kernel and unadjusted)"}}


def run_linearmodels_chars(size: Size, repeat: int, out: Path) -> dict[str, Any]:
    r, _f, _ = _load_polars(size)
    panel = r.drop_nulls(["ret", *CHARS]).select(pl.col("asset"), pl.col("period").cast(pl.Int64).alias("pidx"),
                                                   "ret", *CHARS)
    once = _lm_fit(panel, "ret", CHARS, size.nw_lags)
    times, (kern, unadj) = _timed(once, repeat)
    (out / "linearmodels_chars_estimates.json").write_text(json.dumps({
        "estimate": kern.params.tolist(), "nw": kern.std_errors.tolist(), "fm": unadj.std_errors.tolist()}))
    return {"times": times, "extra": {"rows": panel.height, "note": "times two fits (kernel and unadjusted)"}}


# --------------------------------------------------------------------------- batched solves
def _pass1_moments(size: Size) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pass-1 rolling moments of ``size`` (via polars), as fmduck's solver takes them."""
    r, f, _ = _load_polars(size)
    from bench import reference

    cal = f.select("period").sort("period").with_row_index("pidx", offset=1).with_columns(pl.col("pidx").cast(pl.Int64))
    xs = [f"x{j}" for j in range(3)]
    panel = r.select("asset", "period", "ret").join(
        f.join(cal, on="period").select("period", "pidx", *[pl.col(c).alias(x) for c, x in zip(FACTORS, xs)]),
        on="period")
    means = panel.select(pl.col(xs + ["ret"]).mean()).row(0)
    panel = panel.select("asset", "pidx", *[(pl.col(c) - m).alias(c) for c, m in zip(xs + ["ret"], means)]).sort(
        "asset", "pidx")
    mom = panel.rolling(index_column="pidx", period=f"{size.window}i", group_by="asset").agg(
        reference._sums(xs, "ret")).filter(pl.col("n") >= size.min_obs)
    cols = xs + ["ret"]
    n = mom["n"].to_numpy().astype(np.float64)
    sums = mom.select([f"s_{c}" for c in cols]).to_numpy()
    cross = np.empty((len(n), 4, 4))
    for i, a in enumerate(cols):
        for j in range(i, 4):
            cross[:, i, j] = cross[:, j, i] = mom[f"p_{a}_{cols[j]}"].to_numpy()
    return n, sums, cross, np.asarray(means, dtype=np.float64)


def run_solve(size: Size, repeat: int, out: Path) -> dict[str, Any]:
    """fmduck's batched OLS (params, SEs, R²) vs numpy.linalg.solve (params only) on the same G 4x4 systems."""
    from fmduck.solve import MomentArrays, ols, ols_from_moments, spd_inverse

    n, sums, cross, shift = _pass1_moments(size)
    g = len(n)
    # the raw (uncentred, with intercept) 4x4 normal equations X'X b = X'y that numpy solves
    raw_sum = sums + n[:, None] * shift[None, :]
    raw = (cross + shift[None, :, None] * sums[:, None, :] + sums[:, :, None] * shift[None, None, :]
           + n[:, None, None] * np.outer(shift, shift)[None])
    xtx = np.empty((g, 4, 4))
    xtx[:, 0, 0] = n
    xtx[:, 0, 1:] = xtx[:, 1:, 0] = raw_sum[:, :3]
    xtx[:, 1:, 1:] = raw[:, :3, :3]
    xty = np.column_stack([raw_sum[:, 3], raw[:, :3, 3]])

    # as fit() hands them over: one contiguous column per moment (the query's columns), no G x m x m stack
    columns = MomentArrays(n.copy(), tuple(np.ascontiguousarray(sums[:, i]) for i in range(4)),
                           {(i, j): np.ascontiguousarray(cross[:, i, j]) for i in range(4) for j in range(i, 4)})
    t_fm, fit = _timed(lambda: ols(columns, shift, intercept=True), repeat)
    t_stacked, _ = _timed(lambda: ols_from_moments(n, sums, cross, shift, intercept=True), repeat)
    centred = cross[:, :3, :3] - sums[:, :3, None] * sums[:, None, :3] / n[:, None, None]
    t_inv, _ = _timed(lambda: spd_inverse(centred), repeat)
    t_np, beta_np = _timed(lambda: np.linalg.solve(xtx, xty[:, :, None])[:, :, 0], repeat)
    diff = np.abs(fit.params - beta_np) / np.maximum(1.0, np.abs(beta_np))
    (out / "solve.json").write_text(json.dumps({"max_rel_diff": float(diff.max()), "systems": g}))
    return {"times": t_fm, "extra": {"systems": g, "spd_inverse_s": t_inv, "numpy_solve_s": t_np,
                                     "stacked_input_s": t_stacked,
                                     "max_rel_diff_vs_numpy": float(diff.max())}}


TOOLS = {
    "fmduck_rolling": run_fmduck_rolling,
    "fmduck_rolling_write": run_fmduck_rolling_write,
    "polars_rolling": run_polars_rolling,
    "statsmodels_pass1": run_statsmodels_pass1,
    "linearmodels_rolling": run_linearmodels_rolling,
    "fmduck_chars": run_fmduck_chars,
    "polars_chars": run_polars_chars,
    "linearmodels_chars": run_linearmodels_chars,
    "solve": run_solve,
}
