"""Test-only oracles: independent re-computations of what fmduck estimates.

Nothing here imports fmduck. Every oracle works from the raw long panel (polars frames turned
into Python dicts / numpy arrays) with plain numpy ``lstsq`` loops or statsmodels, so an engine
bug (SQL join, window frame, lag, moment formula, solver) cannot cancel out in the comparison.

Also here: seeded synthetic panels, ``assert_close`` (assert_allclose that records the worst
relative error per oracle, printed at the end of the run by ``tests/conftest.py``) and
``compare_frames`` (same keys on both sides, then every value column).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
import polars as pl
import statsmodels.api as sm
from scipy import stats

RTOL = 1e-9
ATOL = 1e-12

# oracle label -> worst relative error seen (reported by conftest's terminal summary)
MAX_REL_ERR: dict[str, float] = defaultdict(float)


# ====================================================================== comparisons
def assert_close(actual, expected, *, label: str, rtol: float = RTOL, atol: float = ATOL, what: str = "") -> None:
    """``np.testing.assert_allclose`` that also records the worst relative error under ``label``."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"{label}: {what}")
    finite = np.isfinite(e) & (np.abs(e) > atol)
    if finite.any():
        rel = float(np.max(np.abs(a[finite] - e[finite]) / np.abs(e[finite])))
        MAX_REL_ERR[label] = max(MAX_REL_ERR[label], rel)


def compare_frames(actual: pl.DataFrame, expected: pl.DataFrame, keys: Sequence[str], cols: Iterable[str], *,
                   label: str, rtol: float = RTOL, atol: float = ATOL) -> None:
    """Same set of keys on both sides (nothing missing, nothing extra), then each column compared."""
    a_keys = set(actual.select(keys).iter_rows())
    e_keys = set(expected.select(keys).iter_rows())
    assert len(a_keys) == actual.height, f"{label}: duplicate keys in fmduck output"
    missing, extra = sorted(e_keys - a_keys, key=str)[:5], sorted(a_keys - e_keys, key=str)[:5]
    assert a_keys == e_keys, f"{label}: keys differ; missing in fmduck {missing}, extra in fmduck {extra}"
    joined = expected.join(actual, on=list(keys), how="left", suffix="_fmduck")
    for col in cols:
        assert_close(joined[f"{col}_fmduck"].to_numpy(), joined[col].to_numpy(), label=label, rtol=rtol, atol=atol,
                     what=col)


# ====================================================================== OLS oracles
def ols_numpy(y: np.ndarray, x: np.ndarray, intercept: bool = True) -> dict[str, np.ndarray | float]:
    """OLS by ``np.linalg.lstsq``; SEs from s²(X'X)⁻¹; R² centred with an intercept, uncentred without."""
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64).reshape(len(y), -1)
    if intercept:
        x = np.column_stack([np.ones(len(y)), x])
    n, p = x.shape
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    ssr = float(resid @ resid)
    s2 = ssr / (n - p)
    _, r = np.linalg.qr(x)
    rinv = np.linalg.inv(r)
    se = np.sqrt(s2 * np.sum(rinv * rinv, axis=1))
    tss = float(((y - y.mean()) ** 2).sum()) if intercept else float(y @ y)
    r2 = 1.0 - ssr / tss
    adj = 1.0 - (1.0 - r2) * (n - int(intercept)) / (n - p)
    return {"params": beta, "se": se, "r2": r2, "adj_r2": adj, "rmse": math.sqrt(s2), "nobs": n}


def ols_statsmodels(y: np.ndarray, x: np.ndarray, intercept: bool = True) -> dict[str, np.ndarray | float]:
    """The same quantities from statsmodels OLS (which reports uncentred R² without a constant)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(y), -1)
    exog = sm.add_constant(x, has_constant="add") if intercept else x
    res = sm.OLS(np.asarray(y, dtype=np.float64), exog).fit()
    return {"params": np.asarray(res.params), "se": np.asarray(res.bse), "r2": float(res.rsquared),
            "adj_r2": float(res.rsquared_adj), "rmse": math.sqrt(res.scale), "nobs": int(res.nobs)}


# ====================================================================== panel plumbing
def calendar(factors: pl.DataFrame, period: str = "period") -> dict:
    """period -> dense index 1..T over the distinct non-NULL periods of the factors table."""
    periods = sorted(factors[period].drop_nulls().unique().to_list())
    return {p: i + 1 for i, p in enumerate(periods)}


def _rows(frame: pl.DataFrame) -> list[dict]:
    return frame.to_dicts()


def _complete(values: Iterable) -> bool:
    return all(v is not None and not (isinstance(v, float) and math.isnan(v)) for v in values)


def time_series_obs(panel: pl.DataFrame, factors: pl.DataFrame, factor_cols: Sequence[str], *, asset="asset",
                    period="period", ret="ret", rf: str | None = None) -> dict:
    """asset -> list of (pidx, y, x[K]) with every value non-NULL, periods restricted to the calendar."""
    cal = calendar(factors, period)
    fac = {r[period]: [r[c] for c in factor_cols] for r in _rows(factors) if r[period] is not None}
    rf_of = _rf_lookup(panel, factors, rf, asset, period)
    out: dict = defaultdict(list)
    for r in _rows(panel):
        p = r[period]
        if p not in cal or p not in fac:
            continue
        rf_val = rf_of(r)
        vals = [r[ret], rf_val, *fac[p]]
        if not _complete(vals):
            continue
        out[r[asset]].append((cal[p], r[ret] - rf_val, np.array(fac[p], dtype=np.float64)))
    return {a: sorted(v, key=lambda t: t[0]) for a, v in out.items()}


def _rf_lookup(panel, factors, rf, asset, period):
    """row -> risk-free rate: 0 without rf, the panel column if the panel has it, else the factors'."""
    if rf is None:
        return lambda r: 0.0
    if rf in panel.columns:
        return lambda r: r[rf]
    by_period = {r[period]: r[rf] for r in _rows(factors)}
    return lambda r: by_period.get(r[period])


def pass1_full(panel, factors, factor_cols, *, min_obs=None, ols=ols_statsmodels, **cols) -> dict:
    """asset -> OLS of the (excess) return on the factors over all its usable periods."""
    min_obs = min_obs if min_obs is not None else len(factor_cols) + 2
    out = {}
    for a, obs in time_series_obs(panel, factors, factor_cols, **cols).items():
        if len(obs) < min_obs:
            continue
        y = np.array([o[1] for o in obs])
        x = np.array([o[2] for o in obs])
        out[a] = ols(y, x)
    return out


def pass1_rolling(panel, factors, factor_cols, window, *, min_obs=None, ols=ols_numpy, **cols) -> dict:
    """(asset, t) -> OLS over the asset's observations with pidx in [t − W + 1, t], for every t at which
    the asset has an observation, when the window holds at least ``min_obs`` of them."""
    min_obs = min_obs if min_obs is not None else len(factor_cols) + 2
    out = {}
    for a, obs in time_series_obs(panel, factors, factor_cols, **cols).items():
        for t, _, _ in obs:
            win = [o for o in obs if t - window < o[0] <= t]
            if len(win) < min_obs:
                continue
            out[(a, t)] = ols(np.array([o[1] for o in win]), np.array([o[2] for o in win]))
    return out


def first_pass_frame(fits: dict, factor_cols: Sequence[str], rolling: bool) -> pl.DataFrame:
    """Oracle pass-1 fits in fmduck's long layout (asset, period_index, term, ...)."""
    rows = []
    for key, f in fits.items():
        a, t = key if rolling else (key, None)
        for j, term in enumerate(["const", *factor_cols]):
            rows.append({"asset": str(a), "period_index": t, "term": term, "estimate": f["params"][j],
                         "std_error": f["se"][j], "t_stat": f["params"][j] / f["se"][j], "r2": f["r2"],
                         "adj_r2": f["adj_r2"], "rmse": f["rmse"], "nobs": float(f["nobs"])})
    return pl.DataFrame(rows, schema_overrides={"period_index": pl.Int64})


def pass2(panel, factors, *, betas: dict | None = None, factor_cols: Sequence[str] = (), rolling: bool = False,
          beta_lag: int = 1, chars: Sequence[str] = (), char_lag: int = 0, intercept: bool = True,
          asset="asset", period="period", ret="ret", rf: str | None = None, ols=ols_numpy,
          calendar_source: pl.DataFrame | None = None, _keep_assets: bool = False) -> dict:
    """pidx -> (period, OLS of the cross-section of returns on betas and characteristics).

    ``betas``: asset -> beta vector (full sample) or (asset, pidx) -> beta vector (rolling; the
    beta used at t is the one from the window ending at t − beta_lag). Characteristics are read
    at t − char_lag (calendar periods) for the same asset. Rows with any NULL are dropped; a
    period needs more observations than parameters and a full-rank design.
    """
    cal = calendar(calendar_source if calendar_source is not None else factors, period)
    rf_of = _rf_lookup(panel, factors, rf, asset, period)
    panel_at = {}
    for r in _rows(panel):
        if r[period] in cal:
            panel_at[(r[asset], cal[r[period]])] = r
    by_t: dict = defaultdict(list)
    for (a, t), r in panel_at.items():
        rf_val = rf_of(r)
        y = None if r[ret] is None or rf_val is None else r[ret] - rf_val
        x: list = []
        if betas is not None:
            b = betas.get((a, t - beta_lag)) if rolling else betas.get(a)
            if b is None:
                continue
            x += list(b)
        if chars:
            src = panel_at.get((a, t - char_lag))
            if src is None:
                continue
            x += [src[c] for c in chars]
        if not _complete([y, *x]):
            continue
        by_t[t].append((y, x, a))
    inv_cal = {v: k for k, v in cal.items()}
    p = (len(factor_cols) if betas is not None else 0) + len(chars) + int(intercept)
    out = {}
    for t, rows in sorted(by_t.items()):
        if len(rows) < p + 1:
            continue
        y = np.array([r[0] for r in rows])
        x = np.array([r[1] for r in rows], dtype=np.float64)
        design = np.column_stack([np.ones(len(y)), x]) if intercept else x
        if np.linalg.matrix_rank(design) < design.shape[1]:
            continue
        fitted = ols(y, x, intercept=intercept)
        if _keep_assets:
            fitted["assets"] = [r[2] for r in rows]
        out[t] = (inv_cal[t], fitted)
    return out


def winsorize(panel: pl.DataFrame, chars: Sequence[str], level: float, period: str = "period") -> pl.DataFrame:
    """Each of ``chars`` clipped at its ``level`` and 1 − ``level`` quantiles within each period
    (``np.quantile``, linear interpolation), over the period's non-NULL values; NULLs stay NULL."""
    out = {c: panel[c].to_numpy().astype(np.float64) for c in chars}
    periods = panel[period].to_numpy()
    for p in np.unique(periods):
        rows = periods == p
        for c in chars:
            x = out[c][rows]
            ok = ~np.isnan(x)
            if ok.any():
                lo, hi = np.quantile(x[ok], [level, 1.0 - level])
                out[c][rows] = np.where(ok, np.clip(x, lo, hi), np.nan)
    return panel.with_columns([pl.Series(c, out[c]).fill_nan(None) for c in chars])


def betas_from(fits: dict) -> dict:
    """key -> slope vector (without the intercept) from pass-1 oracle fits."""
    return {k: np.asarray(f["params"])[1:] for k, f in fits.items()}


def lambdas_frame(fits: dict, terms: Sequence[str]) -> pl.DataFrame:
    rows = []
    for t, (per, f) in fits.items():
        row = {"period_index": t, "period": str(per), "r2": f["r2"], "adj_r2": f["adj_r2"], "n": float(f["nobs"])}
        row.update({term: float(f["params"][j]) for j, term in enumerate(terms)})
        rows.append(row)
    return pl.DataFrame(rows).sort("period_index")


# ====================================================================== pass-3 oracles
def fm_se(lam: np.ndarray) -> np.ndarray:
    """Fama-MacBeth: sd(λ_t, ddof=1)/√T, column by column."""
    lam = np.asarray(lam, dtype=np.float64)
    return lam.std(axis=0, ddof=1) / math.sqrt(lam.shape[0])


def nw_se(lam: np.ndarray, lags: int, divisor: str) -> np.ndarray:
    """Newey-West by explicit loops: Γ = Σ_t e_t² + 2 Σ_l (1 − l/(L+1)) Σ_{t>l} e_t e_{t−l}, per term;
    Var = Γ/T² (divisor "T") or Γ/(T(T−1)) (divisor "T-1")."""
    lam = np.asarray(lam, dtype=np.float64)
    t_count, k = lam.shape
    out = np.empty(k)
    for j in range(k):
        e = [v - sum(lam[:, j]) / t_count for v in lam[:, j]]
        gamma = sum(v * v for v in e)
        for lag in range(1, lags + 1):
            w = 1.0 - lag / (lags + 1.0)
            gamma += 2.0 * w * sum(e[t] * e[t - lag] for t in range(lag, t_count))
        scale = t_count * t_count if divisor == "T" else t_count * (t_count - 1)
        out[j] = math.sqrt(gamma / scale)
    return out


def nw_auto_lag(t: int) -> int:
    """Newey-West (1994) rule of thumb ⌊4(T/100)^(2/9)⌋."""
    return int(np.floor(4 * (t / 100) ** (2 / 9)))


def shanken_se(lam: np.ndarray, f: np.ndarray, factor_positions: Sequence[int]) -> np.ndarray:
    """Shanken (1992): V = (1+c)(V_FM − Σ̃_f/T) + Σ̃_f/T, c = λ_f'Σ_f⁻¹λ_f, Σ_f = cov(f, ddof=1)."""
    lam = np.asarray(lam, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64).reshape(lam.shape[0], -1)
    t_count, k = lam.shape
    dev = lam - lam.mean(axis=0)
    v_fm = np.einsum("ti,tj->ij", dev, dev) / (t_count - 1) / t_count
    fd = f - f.mean(axis=0)
    sigma_f = fd.T @ fd / (t_count - 1)
    lam_f = lam.mean(axis=0)[list(factor_positions)]
    c = float(lam_f @ np.linalg.inv(sigma_f) @ lam_f)
    bordered = np.zeros((k, k))
    for a, ia in enumerate(factor_positions):
        for b, ib in enumerate(factor_positions):
            bordered[ia, ib] = sigma_f[a, b] / t_count
    v = (1 + c) * (v_fm - bordered) + bordered
    return np.sqrt(np.diag(v))


def t_inference(estimate: np.ndarray, se: np.ndarray, df: int, level: float = 0.95) -> dict[str, np.ndarray]:
    t = np.asarray(estimate) / np.asarray(se)
    q = stats.t.ppf(0.5 + level / 2, df)
    return {"t_stat": t, "p_value": 2 * stats.t.sf(np.abs(t), df), "ci_lower": estimate - q * se,
            "ci_upper": estimate + q * se}


# ====================================================================== synthetic data
def synthetic_panel(seed: int = 0, n_assets: int = 12, n_periods: int = 48, factor_cols: Sequence[str] = ("mkt", "smb"),
                    chars: Sequence[str] = (), premia: Sequence[float] | None = None, char_premia: Sequence[float] = (),
                    missing: float = 0.0, null_ret: float = 0.0, noise: float = 2.0,
                    factor_sd: float = 4.0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A seeded linear factor model: r_it = a_i + β_i'f_t + γ'c_it + e_it, f_t ~ N(premia, sd²).

    ``missing`` drops that share of (asset, period) rows (gaps); ``null_ret`` sets that share of
    the remaining returns to NULL. Returns (panel, factors) with integer periods 1..T.
    """
    rng = np.random.default_rng(seed)
    k = len(factor_cols)
    premia = np.asarray(premia if premia is not None else np.linspace(0.5, 0.2, k), dtype=np.float64)
    f = premia + factor_sd * rng.standard_normal((n_periods, k))
    factors = pl.DataFrame({"period": np.arange(1, n_periods + 1), **{c: f[:, j] for j, c in enumerate(factor_cols)}})
    beta = 1.0 + 0.5 * rng.standard_normal((n_assets, k))
    alpha = 0.1 * rng.standard_normal(n_assets)
    gamma = np.asarray(char_premia if len(char_premia) else np.full(len(chars), 0.3), dtype=np.float64)
    rows = []
    for i in range(n_assets):
        for t in range(n_periods):
            if missing and rng.random() < missing:
                continue
            c = rng.standard_normal(len(chars))
            r = alpha[i] + beta[i] @ f[t] + gamma @ c + noise * rng.standard_normal()
            ret = None if (null_ret and rng.random() < null_ret) else float(r)
            rows.append({"asset": f"A{i:03d}", "period": t + 1, "ret": ret,
                         **{ch: float(c[j]) for j, ch in enumerate(chars)}})
    schema = {"asset": pl.Utf8, "period": pl.Int64, "ret": pl.Float64, **{ch: pl.Float64 for ch in chars}}
    return pl.DataFrame(rows, schema=schema), factors


def ols_exact(y, x, intercept: bool = True) -> dict[str, np.ndarray | float]:
    """Extended-precision oracle: the normal equations solved in exact rational arithmetic
    (``fractions.Fraction`` of the float64 inputs), rounded to float64 only at the end."""
    from fractions import Fraction

    y = [Fraction(float(v)) for v in np.asarray(y, dtype=np.float64)]
    rows = np.asarray(x, dtype=np.float64).reshape(len(y), -1)
    xs = [([Fraction(1)] if intercept else []) + [Fraction(float(v)) for v in r] for r in rows]
    n, p = len(xs), len(xs[0])
    xtx = [[sum(r[i] * r[j] for r in xs) for j in range(p)] for i in range(p)]
    xty = [sum(r[i] * v for r, v in zip(xs, y)) for i in range(p)]
    # Gauss-Jordan on [X'X | I | X'y]
    aug = [xtx[i] + [Fraction(int(i == j)) for j in range(p)] + [xty[i]] for i in range(p)]
    for c in range(p):
        piv = next(r for r in range(c, p) if aug[r][c] != 0)
        aug[c], aug[piv] = aug[piv], aug[c]
        aug[c] = [v / aug[c][c] for v in aug[c]]
        for r in range(p):
            if r != c and aug[r][c] != 0:
                aug[r] = [a - aug[r][c] * b for a, b in zip(aug[r], aug[c])]
    beta = [aug[i][-1] for i in range(p)]
    inv = [[aug[i][p + j] for j in range(p)] for i in range(p)]
    resid = [v - sum(b * xi for b, xi in zip(beta, r)) for r, v in zip(xs, y)]
    ssr = sum(e * e for e in resid)
    s2 = ssr / (n - p)
    ybar = sum(y) / n
    tss = sum((v - ybar) ** 2 for v in y) if intercept else sum(v * v for v in y)
    r2 = 1 - ssr / tss
    return {"params": np.array([float(b) for b in beta]),
            "se": np.array([math.sqrt(float(s2 * inv[i][i])) for i in range(p)]),
            "r2": float(r2), "adj_r2": float(1 - (1 - r2) * Fraction(n - int(intercept), n - p)),
            "rmse": math.sqrt(float(s2)), "nobs": n}


def naive_slope(y, x) -> float:
    """The textbook raw-moment slope (Σxy − ΣxΣy/n)/(Σx² − (Σx)²/n) in float64 — loses precision when
    the mean of x dwarfs its spread (catastrophic cancellation)."""
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    n = len(y)
    sxx = float(np.sum(x * x)) - float(np.sum(x)) ** 2 / n
    sxy = float(np.sum(x * y)) - float(np.sum(x)) * float(np.sum(y)) / n
    return sxy / sxx


def pricing_errors(panel, factors, lambdas: dict, **pass2_options) -> pl.DataFrame:
    """α_i = mean over the asset's pass-2 periods of r_it − x_it'λ_t; SE = sd(ddof=1)/√n."""
    captured: dict = defaultdict(list)

    def capture(y, x, intercept=True):
        return {"y": y, "x": x}

    rows = pass2(panel, factors, ols=capture, **pass2_options, _keep_assets=True)
    for t, (_, cs) in rows.items():
        if t not in lambdas:
            continue
        lam = np.asarray(lambdas[t])
        x = cs["x"]
        design = np.column_stack([np.ones(len(cs["y"])), x]) if pass2_options.get("intercept", True) else x
        for a, e in zip(cs["assets"], cs["y"] - design @ lam):
            captured[a].append(e)
    out = []
    for a, e in sorted(captured.items()):
        e = np.asarray(e)
        se = e.std(ddof=1) / math.sqrt(len(e)) if len(e) > 1 else float("nan")
        out.append({"asset": str(a), "alpha": e.mean(), "std_error": se, "t_stat": e.mean() / se,
                    "n_periods": float(len(e))})
    return pl.DataFrame(out)
