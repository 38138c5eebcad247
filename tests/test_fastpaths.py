"""Correctness of the fast paths (speed is measured in bench/, never asserted here).

- the blocked closed-form solver in fmduck/solve.py against the original einsum implementation
  (kept below as the reference) and against numpy, including singular and degenerate groups;
- the rolling moments from cumulative factor sums corrected for gaps (sql/moments/rolling_fast.sql.j2)
  against the plain RANGE-window moments (sql/moments/rolling.sql.j2), on panels with gaps, late
  listings, short histories and periods where a factor is NULL;
- the long first-pass frame that results.FamaMacBethResults builds from the wide windows (e<j>, s<j>)
  against the concat-and-sort construction, and the stored layout (first_pass_windows + the
  first_pass view) against both.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest

from fmduck import moments as moments_mod
from fmduck import solve
from fmduck.model import FamaMacBeth
from fmduck.results import FamaMacBethResults
from fmduck.spec import Spec


# ----------------------------------------------------------------------------- reference solver
def _ref_spd_inverse(a, rcond=1e-10):
    g, k, _ = a.shape
    diag = np.einsum("gii->gi", a)
    singular = ~(diag > 0).all(axis=1) if k else np.zeros(g, dtype=bool)
    d = np.sqrt(np.where(diag > 0, diag, 1.0))
    scaled = a / d[:, :, None] / d[:, None, :]
    lower = np.zeros_like(scaled)
    for j in range(k):
        pivot = scaled[:, j, j] - np.einsum("gm,gm->g", lower[:, j, :j], lower[:, j, :j])
        singular |= ~(pivot > rcond)
        lower[:, j, j] = np.sqrt(np.where(pivot > rcond, pivot, 1.0))
        for i in range(j + 1, k):
            off = scaled[:, i, j] - np.einsum("gm,gm->g", lower[:, i, :j], lower[:, j, :j])
            lower[:, i, j] = off / lower[:, j, j]
    linv = np.zeros_like(lower)
    for i in range(k):
        linv[:, i, i] = 1.0 / lower[:, i, i]
        for j in range(i):
            acc = np.einsum("gm,gm->g", lower[:, i, j:i], linv[:, j:i, j])
            linv[:, i, j] = -acc / lower[:, i, i]
    inverse = np.einsum("gmi,gmj->gij", linv, linv) / d[:, :, None] / d[:, None, :]
    return inverse, singular


def _ref_ols(n, sums, cross, shift, *, intercept=True, min_df=1, rcond=1e-10):
    m = sums.shape[1]
    k = m - 1
    p = k + int(intercept)
    nn = np.asarray(n, dtype=np.float64)
    safe_n = np.where(nn > 0, nn, 1.0)
    if intercept:
        mom = cross - sums[:, :, None] * sums[:, None, :] / safe_n[:, None, None]
    else:
        mom = (cross + shift[None, :, None] * sums[:, None, :] + sums[:, :, None] * shift[None, None, :]
               + nn[:, None, None] * np.outer(shift, shift)[None])
    sxx, sxy, syy = mom[:, :k, :k], mom[:, :k, k], mom[:, k, k]
    inverse, singular = _ref_spd_inverse(sxx, rcond)
    slopes = np.einsum("gij,gj->gi", inverse, sxy)
    ssr = np.maximum(syy - np.einsum("gi,gi->g", slopes, sxy), 0.0)
    df = nn - p
    too_few = df < min_df
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.where(df > 0, ssr / np.where(df > 0, df, 1.0), np.nan)
        var_slopes = s2[:, None] * np.einsum("gii->gi", inverse)
        if intercept:
            xbar = sums[:, :k] / safe_n[:, None] + shift[None, :k]
            ybar = sums[:, k] / safe_n + shift[k]
            alpha = ybar - np.einsum("gi,gi->g", xbar, slopes)
            var_alpha = s2 / safe_n + s2 * np.einsum("gi,gij,gj->g", xbar, inverse, xbar)
            params = np.column_stack([alpha, slopes])
            variances = np.column_stack([var_alpha, var_slopes])
        else:
            params, variances = slopes, var_slopes
        r2 = np.where(syy > 0, 1.0 - ssr / syy, np.nan)
        adj_r2 = 1.0 - (1.0 - r2) * (nn - int(intercept)) / df
        std_errors = np.sqrt(np.maximum(variances, 0.0))
    ok = ~(singular | too_few)
    for arr in (params, std_errors):
        arr[~ok] = np.nan
    r2[~ok] = np.nan
    adj_r2[~ok] = np.nan
    rmse = np.where(ok, np.sqrt(s2), np.nan)
    return params, std_errors, r2, adj_r2, rmse, ok, singular, too_few


def _batch(rng, g, m, *, collinear=0.1, tiny_n=0.05):
    t = 40
    x = rng.standard_normal((g, t, m)) * rng.uniform(0.1, 10.0, m) + rng.uniform(-5, 5, m)
    if m > 2:
        c = int(g * collinear)
        x[:c, :, 1] = 2.0 * x[:c, :, 0] - 1.0                     # exactly collinear regressors
    x[-3:, :, m - 1] = 0.25                                      # no variation in y
    n = np.full(g, float(t))
    n[: int(g * tiny_n)] = rng.integers(0, m + 1, int(g * tiny_n))  # too few observations
    shift = x.mean(axis=(0, 1))
    v = x - shift
    return n, v.sum(axis=1), np.einsum("gti,gtj->gij", v, v), shift


def _close(a, b, tol=1e-10, normwise=False):
    """Same NaN pattern; elementwise relative difference <= tol (normwise for elements near zero)."""
    a, b = np.asarray(a), np.asarray(b)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    fine = ~np.isnan(b)
    if fine.any():
        scale = np.maximum(np.abs(b[fine]), np.max(np.abs(b[fine])) * (1.0 if normwise else 1e-3))
        err = np.max(np.abs(a[fine] - b[fine]) / np.maximum(scale, 1e-300))
        assert err <= tol, err


@pytest.mark.parametrize("m", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("chunk", [1 << 13, 7, 5])
def test_blocked_solver_matches_reference(monkeypatch, m, intercept, chunk):
    monkeypatch.setattr(solve, "_CHUNK", chunk)
    rng = np.random.default_rng(m * 10 + intercept)
    n, sums, cross, shift = _batch(rng, 400, m)
    got = solve.ols_from_moments(n, sums, cross, shift, intercept=intercept, min_df=2)
    params, se, r2, adj, rmse, ok, singular, too_few = _ref_ols(n, sums, cross, shift, intercept=intercept, min_df=2)
    assert np.array_equal(got.ok, ok)
    assert np.array_equal(got.reason == solve.SINGULAR, singular & ~too_few)
    assert np.array_equal(got.reason == solve.TOO_FEW, too_few)
    if m > 2 and intercept:
        assert (got.reason == solve.SINGULAR).sum() >= 15          # the planted collinear groups are caught
    _close(got.params, params)
    # the last 3 groups have a constant y: their SSR is rounding noise, so σ̂ is noise of size √eps
    for a, b in ((got.std_errors, se), (got.rmse, rmse)):
        _close(a[:-3], b[:-3])
        if b.size:
            assert np.allclose(a[-3:], b[-3:], rtol=1e-10, atol=1e-6 * np.nanmax(np.abs(b)), equal_nan=True)
    _close(got.r2, r2, 1e-9)
    _close(got.adj_r2, adj, 1e-9)


def test_outputs_are_column_major():
    rng = np.random.default_rng(3)
    n, sums, cross, shift = _batch(rng, 50, 4)
    fit = solve.ols_from_moments(n, sums, cross, shift)
    for arr in (fit.params, fit.std_errors, fit.tstats):
        assert arr.shape == (50, 4)
        assert all(arr[:, j].flags.c_contiguous for j in range(4))


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_spd_inverse_matches_numpy_and_flags_singular(monkeypatch, k):
    monkeypatch.setattr(solve, "_CHUNK", 16)
    rng = np.random.default_rng(k)
    x = rng.standard_normal((100, 30, k)) * np.array([1e-3, 1.0, 1e4, 1.0, 5.0])[:k]
    a = np.einsum("gti,gtj->gij", x, x)
    if k > 1:
        a[:10, :, 1] = a[:10, :, 0] * 3.0                          # singular: column 1 = 3 × column 0
        a[:10, 1, :] = a[:10, 0, :] * 3.0
    a[10:12] = 0.0                                                 # zero matrices
    inv, singular = solve.spd_inverse(a)
    ref_inv, ref_singular = _ref_spd_inverse(a)
    assert np.array_equal(singular, ref_singular)
    assert np.isnan(inv[singular]).all()
    assert singular[10:12].all() and (not singular[12:].any())
    if k > 1:
        assert singular[:10].all()
    good = ~singular
    expected = np.linalg.inv(a[good])
    rel = np.abs(inv[good] - expected).max(axis=(1, 2)) / np.abs(expected).max(axis=(1, 2))
    assert rel.max() < 1e-10
    assert np.allclose(inv[good], ref_inv[good], rtol=1e-12, atol=0)


def test_moment_columns_arrays_roundtrip():
    cols = solve.MomentColumns(3)
    rng = np.random.default_rng(0)
    data = {"n": rng.integers(1, 9, 5)}
    for s in cols.sums:
        data[s["name"]] = rng.standard_normal(5)
    for p in cols.products:
        data[p["name"]] = rng.standard_normal(5)
    frame = pl.DataFrame(data)
    n, sums, cross = cols.arrays(frame)
    assert n.dtype == np.float64 and np.array_equal(n, data["n"])
    for i, s in enumerate(cols.sums):
        assert np.array_equal(sums[:, i], data[s["name"]])
    for p in cols.products:
        i, j = int(p["left"][1:]), int(p["right"][1:])
        assert np.array_equal(cross[:, i, j], data[p["name"]]) and np.array_equal(cross[:, j, i], data[p["name"]])


# ----------------------------------------------------------------------------- rolling fast path
def _panel(seed: int, assets: int = 60, periods: int = 90):
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((periods, 3)) * [0.04, 0.03, 0.03] + [1e3, 0.002, -5.0]  # one factor with a large level
    rows = []
    for a in range(assets):
        start = int(rng.integers(1, periods // 2))
        end = int(rng.integers(start, periods + 1))
        beta = rng.normal(1.0, 0.3, 3)
        for t in range(start, end + 1):
            if rng.random() < 0.12:                                 # gaps, also several in a row
                continue
            rows.append((f"a{a:03d}", t, float(f[t - 1] @ beta + rng.normal(0, 0.05)), float(rng.normal(0, 1e-3))))
    returns = pl.DataFrame(rows, schema=["asset", "period", "ret", "rf"], orient="row")
    factors = pl.DataFrame({"period": np.arange(1, periods + 1), "mkt": f[:, 0], "smb": f[:, 1], "hml": f[:, 2],
                            "rf": rng.normal(0, 1e-3, periods)})
    # a period with a NULL factor: nobody has an observation there
    factors = factors.with_columns(pl.when(pl.col("period") == 47).then(None).otherwise(pl.col("smb")).alias("smb"))
    return returns, factors


def _fit(returns, factors, fast: bool, monkeypatch, **options):
    monkeypatch.setattr(moments_mod, "FAST_ROLLING", fast)
    con = duckdb.connect()
    spec = Spec(name="fast" if fast else "plain", returns=returns, factors=factors,
                factor_cols=["mkt", "smb", "hml"], **options)
    model = FamaMacBeth(spec, con)
    res = model.fit(write=False)
    sql = "\n".join(s for label, s in model.statements if label.startswith("pass 1"))
    con.close()
    return res, sql


@pytest.mark.parametrize("options", [
    {"window": 24, "min_obs": 10},
    {"window": 12, "min_obs": 5, "rf": "rf"},        # rf from the factors table: y = ret - f.rf is per asset
    {"window": 36, "min_obs": 30, "beta_lag": 2},
    {"window": 8},                                    # default min_obs = K + 2: one residual df
])
def test_rolling_fast_path_matches_plain_windows(monkeypatch, options):
    returns, factors = _panel(11)
    fast, fast_sql = _fit(returns, factors, True, monkeypatch, **options)
    plain, plain_sql = _fit(returns, factors, False, monkeypatch, **options)
    assert "fmduck_gaps" in fast_sql and "fmduck_gaps" not in plain_sql
    same_fits(fast, plain)
    _close(fast.estimates["std_error"].to_numpy(), plain.estimates["std_error"].to_numpy(), 1e-8)


def same_fits(fast, plain) -> None:
    """The fast and the plain rolling path give the same windows, first pass, skipped rows and λ_t
    (also used by tests/test_fastpath_postgres.py)."""
    a, b = fast.first_pass, plain.first_pass
    assert a.select("asset", "period_index", "term", "nobs").equals(b.select("asset", "period_index", "term", "nobs"))
    for col in ("estimate", "std_error", "r2", "rmse"):
        _close(a[col].to_numpy(), b[col].to_numpy(), normwise=True)
    cols = ["pass", "asset", "period", "reason", "nobs"]
    assert fast.skipped.select(cols).sort(cols).equals(plain.skipped.select(cols).sort(cols))
    la, lb = fast.lambdas, plain.lambdas
    assert la["period_index"].equals(lb["period_index"])
    # pass 2 regresses on the pass-1 betas: their ~1e-12 differences (rounding; both paths are equally
    # far, ~1e-8, from a lstsq reference on this deliberately ill-conditioned panel: a factor at level 1e3)
    # are amplified by the cross-sectional conditioning
    for term in ("const", "mkt", "smb", "hml"):
        _close(la[term].to_numpy(), lb[term].to_numpy(), 1e-8, normwise=True)


def pass1_moments(database, spec: Spec) -> pl.DataFrame:
    """The pass-1 moments of ``spec`` as the engine computes them: the plan's checks, profiles and
    calendar are executed, then the moments query of pass 1's variables and rows (the query whose sums
    pass 1 solves in SQL) is run on its own; sorted by asset, pidx (also used by
    tests/test_fastpath_postgres.py)."""
    from fmduck import designs
    from fmduck.designs import twopass
    from fmduck.engines import connect
    from fmduck.passes import pass1
    from fmduck.run import Run

    engine = connect(database)
    with Run(spec, engine) as run:
        plan, setup = twopass.build(run, designs.get("twopass").catalog(spec, engine))
        plan.execute(run, until="calendar")
        sql = moments_mod.render_moments(run.dialect, pass1.keys(spec), [*setup.variables.factors, setup.variables.y],
                                         setup.src.with_(betas=None), rolling=spec.rolling)
        frame = run.query("pass 1 moments", sql, pass1.params(spec))
    return frame.sort("asset", "pidx")


def test_rolling_fast_path_moments_match_plain(monkeypatch):
    returns, factors = _panel(5, assets=30, periods=70)
    spec = Spec(name="m", returns=returns, factors=factors, factor_cols=["mkt", "smb", "hml"], window=20, min_obs=8)
    frames = {}
    for fast in (True, False):
        monkeypatch.setattr(moments_mod, "FAST_ROLLING", fast)
        con = duckdb.connect()
        frames[fast] = pass1_moments(con, spec)
        con.close()
    a, b = frames[True], frames[False]
    assert a.height > 100
    assert a.select("asset", "pidx", "n").equals(b.select("asset", "pidx", "n"))
    assert a.columns == b.columns
    for col in a.columns[3:]:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        assert np.max(np.abs(x - y)) <= 1e-12 * max(1.0, np.max(np.abs(y))), col


def test_fast_path_only_for_duckdb_and_postgres_rolling_factor_columns():
    from sqlglot import exp

    from fmduck.moments import RowSource, Variable, common_aliases, moments_source

    f = Variable("mkt", exp.column("mkt", table="f"), 0.0)
    y = Variable("y", exp.Sub(this=exp.column("ret", table="p"), expression=exp.column("rf", table="f")), 0.0)
    assert common_aliases([f, y], ["v0", "v1"]) == ["v0"]   # y reads the panel: per asset
    src = RowSource(dialect="duckdb", returns='"panel"', asset='"asset"', panel_key='r."period"', calendar='"cal"',
                    factors='"factors"', factor_key='f."period"')

    def fast(dialect: str, rolling: bool = True, **changes) -> bool:
        sql = moments_source(dialect, ["asset", "pidx"] if rolling else ["asset"], [f, y], src.with_(**changes),
                             rolling=rolling)
        return "fmduck_gaps" in sql

    assert fast("duckdb") and fast("postgres")          # tests/test_fastpath_postgres.py
    assert not fast("spark")
    assert not fast("duckdb", rolling=False)
    assert not fast("duckdb", factors=None, factor_key=None)
    assert not fast("duckdb", weight='p."w"')


# ----------------------------------------------------------------------------- long first-pass frame
def _ref_long(keys, terms, fit, ok):
    kept = keys.filter(pl.Series(ok))
    stats = {"r2": fit.r2[ok], "adj_r2": fit.adj_r2[ok], "rmse": fit.rmse[ok], "nobs": fit.nobs[ok]}
    parts = []
    for j, term in enumerate(terms):
        parts.append(kept.with_columns(
            pl.lit(term).alias("term"),
            pl.Series("estimate", fit.params[ok, j]),
            pl.Series("std_error", fit.std_errors[ok, j]),
            pl.Series("t_stat", fit.tstats[ok, j]),
            *[pl.Series(k, v) for k, v in stats.items()],
        ))
    return pl.concat(parts).select(
        "asset", "period", "period_index", "term", "estimate", "std_error", "t_stat", "r2", "adj_r2", "rmse", "nobs"
    ).sort(["asset", "period_index", "term"], nulls_last=False)


def _held(keys: pl.DataFrame, terms: list[str], fit, ok) -> FamaMacBethResults:
    """A results object holding the usable windows wide, as a fit with write=False does."""
    wide = keys.filter(pl.Series(ok)).with_columns(
        *[pl.Series(f"e{j}", fit.params[ok, j]) for j in range(len(terms))],
        *[pl.Series(f"s{j}", fit.std_errors[ok, j]) for j in range(len(terms))],
        pl.Series("nobs", fit.nobs[ok]), pl.Series("r2", fit.r2[ok]), pl.Series("adj_r2", fit.adj_r2[ok]),
        pl.Series("rmse", fit.rmse[ok]))
    run = {"run_name": "held", "run_id": "0" * 32, "first_pass_terms": terms}
    empty = pl.DataFrame()
    return FamaMacBethResults(run, lambdas=empty, estimates=empty, pricing_errors=empty, skipped=empty, first_pass=wide)


@pytest.mark.parametrize("rolling", [True, False])
def test_long_first_pass_matches_concat_and_sort(rolling):
    rng = np.random.default_rng(4)
    g = 3000
    n, sums, cross, shift = _batch(rng, g, 4)
    fit = solve.ols_from_moments(n, sums, cross, shift)
    ok = fit.ok & (rng.random(g) > 0.2)
    if rolling:
        pidx = rng.permutation(g)
        keys = pl.DataFrame({"asset": [f"x{i % 97}" for i in range(g)], "period": [str(p) for p in pidx],
                             "period_index": pidx})
    else:
        keys = pl.DataFrame({"asset": [f"x{i}" for i in rng.permutation(g)]}).with_columns(
            pl.lit(None, pl.Utf8).alias("period"), pl.lit(None, pl.Int64).alias("period_index"))
    terms = ["const", "zeta", "alpha", "mkt"]
    long = _held(keys, terms, fit, ok).first_pass
    assert long.drop("run_name", "run_id").equals(_ref_long(keys, terms, fit, ok))


@pytest.mark.parametrize("window", [20, None])
def test_first_pass_held_wide_matches_long_and_stored(window):
    """results.first_pass (built on first access from the wide windows), the same run held in memory
    (write=False), loaded back (load_run, read in pieces from first_pass_windows) and the rows of the
    first_pass view in SQL are the same long table."""
    from fmduck.store import load_run

    returns, factors = _panel(6, assets=25, periods=60)
    con = duckdb.connect()
    spec = Spec(name="w", returns=returns, factors=factors, factor_cols=["mkt", "smb", "hml"],
                window=window, min_obs=8)
    res = FamaMacBeth(spec, con).fit()
    assert "first_pass" not in res.__dict__  # not built by fit()
    long = res.first_pass
    assert long.height > 0 and long.height % 4 == 0
    drop = ["run_name", "run_id"]
    stored = load_run(con, "w").first_pass
    assert stored.equals(long)
    held = FamaMacBeth(spec.replace_with(name="w_held"), con).fit(write=False).first_pass
    assert held.drop(drop).equals(long.drop(drop))
    view = con.sql("SELECT * FROM fmduck.first_pass WHERE run_name = 'w' ORDER BY asset, period_index, term").pl()
    assert view.drop(drop).equals(long.select(view.columns).drop(drop))
    # the same frame as the reference construction (concat per term + sort)
    ref = long.drop(drop).sort(["asset", "period_index", "term"], nulls_last=False)
    assert ref.equals(long.drop(drop))
    estimate = long.filter(pl.col("term") == "mkt")["estimate"].to_numpy()
    assert np.all(np.isfinite(estimate))


@pytest.mark.slow
def test_first_pass_copied_in_pieces_to_another_results_engine(monkeypatch):
    """A results database other than the run's receives the first-pass windows in pieces (uploaded,
    then turned into first_pass_windows rows by SQL): the same rows as a run held in memory."""
    from fmduck import store
    from fmduck.engine import DuckDBEngine

    returns, factors = _panel(7, assets=20, periods=50)
    spec = Spec(name="b", returns=returns, factors=factors, factor_cols=["mkt", "smb", "hml"], window=20, min_obs=8)
    results = DuckDBEngine(duckdb.connect())
    uploads: list[int] = []
    upload = results.upload

    def counting_upload(name, frame):
        if "e0" in frame.columns:
            uploads.append(frame.height)
        upload(name, frame)

    monkeypatch.setattr(results, "upload", counting_upload)
    frames = store.TableCopy.frames
    monkeypatch.setattr(store.TableCopy, "frames", lambda self, rows=29: frames(self, rows))
    FamaMacBeth(spec, duckdb.connect(), results=results).fit()
    held = FamaMacBeth(spec, duckdb.connect()).fit(write=False)
    assert len(uploads) > 1 and sum(uploads) == held.first_pass.height // 4
    stored = store.load_run(results, "b").first_pass
    drop = ["run_name", "run_id"]
    assert stored.drop(drop).equals(held.first_pass.drop(drop))
