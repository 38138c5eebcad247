"""Independent pandas/numpy Fama-MacBeth on a CRSP-style stock file and a Ken French factors CSV,
aligned by hand. Imports nothing from fmduck (pass 3 reuses tests/oracles.py, which does not either).

Alignment (``align``): a CRSP ``date`` (the last trading day) and a factors ``YYYYMM`` both become a
calendar month (``pandas.Period``, freq M); factor percent values are divided by 100. The calendar is
the months of the factors file (fmduck: "the distinct periods of the factors table"); its dense index
``cal`` numbers them 1..T, so "L periods before t" is ``cal - L``.

Rules (README's conventions table, restated):
- pass 1, full sample: per stock, OLS of ret - RF on [1, factors] over its usable rows (non-NULL
  return, a factor row), kept when it has at least ``min_obs`` of them;
- pass 1, rolling: for each usable row (stock, t), OLS over the stock's usable rows with cal in
  (t - W, t] (the W calendar months ending at t; gaps mean fewer rows), kept with >= ``min_obs``;
- pass 2: per month, OLS with intercept of ret - RF on the regressors: full-sample betas; or the
  beta of the window ending ``beta_lag`` months before t, same stock (``max_age=None``); or, with
  ``max_age=K`` (``--beta-max-age``), the most recent beta of the stock whose window ends in
  [t - K, t - beta_lag]; or characteristics read ``char_lag`` calendar months before t from the same
  stock's row. A month needs more rows than parameters;
- pass 3: means of λ_t; FM SE sd(ddof=1)/√T; Newey-West Bartlett, Var = Γ/T², fixed lag; Shanken
  (1992) as README states it, factors = the decimal factors of the T months with a λ_t.

Coverage (``coverage``): each panel row falls in exactly one category, checked in this order:
``no_factor_row`` (its month is not in the factors file), ``null_return``, then for characteristics
``no_lagged_row`` (no row of the stock ``char_lag`` months before) and ``null_lagged_char``, for
betas ``no_beta_yet`` (no beta of the stock ends at or before t - beta_lag: below ``min_obs`` so far;
full sample: the stock has no beta at all) and ``no_beta_lag`` (an earlier beta exists but none ends
in [t - K, t - beta_lag]: the beta-lag rule dropped the row), else ``used``. Pass-1 counts:
``assets_below_min_obs`` / ``windows_below_min_obs`` (first-pass regressions with at least one
usable row but fewer than ``min_obs``) and ``assets_without_usable_rows``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import oracles

SE_TYPES = ("fm", "nw", "shanken")


@dataclass
class OracleFM:
    terms: list[str]
    lambdas: pd.DataFrame      # index: month (Period); columns: terms, r2, adj_r2, n
    estimates: pd.DataFrame    # term, se_type, estimate, std_error
    first_pass: pd.DataFrame   # permno, month (window end; NaT for full sample), nobs, per term: estimate
                               # (and se_<term> in full)
    coverage: dict[str, int]
    beta_ages: dict[int, int] = field(default_factory=dict)  # rolling: age in months of the betas used -> rows
    used_rows: pd.DataFrame = field(default_factory=pd.DataFrame)  # permno, month (and age) of every pass-2 row


# ====================================================================== alignment
def read_ken_french(path: str | Path) -> pd.DataFrame:
    """A Ken French monthly CSV (first column YYYYMM, values in percent) -> decimal, indexed by month."""
    raw = pd.read_csv(path)
    yyyymm = raw.iloc[:, 0].astype(np.int64)
    months = pd.PeriodIndex([pd.Period(year=int(v) // 100, month=int(v) % 100, freq="M") for v in yyyymm], name="month")
    return pd.DataFrame((raw.iloc[:, 1:] / 100).to_numpy(), index=months, columns=raw.columns[1:])


def align(stocks: pd.DataFrame, factors: pd.DataFrame) -> pd.DataFrame:
    """One row per stock row: permno, month, cal (index in the factors' calendar, NaN without a factor
    row), ret, the characteristics, RF and the factors of that month (NaN without a factor row)."""
    panel = stocks.copy()
    panel["month"] = panel["date"].dt.to_period("M")
    assert not panel.duplicated(["permno", "month"]).any(), "two rows of one stock in one month"
    cal = pd.Series(np.arange(1, len(factors) + 1), index=factors.index.sort_values())
    panel["cal"] = panel["month"].map(cal)
    panel = panel.join(factors, on="month")
    panel["y"] = panel["ret"] - panel["RF"]
    return panel.sort_values(["permno", "month"]).reset_index(drop=True)


# ====================================================================== the three runs
def beta_fm(panel: pd.DataFrame, factors: pd.DataFrame, factor_cols: list[str], *, min_obs: int, nw_lags: int,
            window: int | None = None, beta_lag: int = 1, max_age: int | None = None,
            first_pass: tuple[pd.DataFrame, dict] | None = None) -> OracleFM:
    """Beta-based FM: full-sample betas (``window=None``) or rolling betas lagged as the docstring says.
    ``first_pass``: the result of ``pass1`` with the same options, to reuse it."""
    usable = panel[panel["y"].notna()]
    first_pass, betas = first_pass or pass1(panel, factor_cols, min_obs=min_obs, window=window)
    rows, cov = _rows_with_betas(panel, betas, factor_cols, rolling=window is not None, beta_lag=beta_lag,
                                 max_age=max_age if max_age is not None else beta_lag)
    cov |= _pass1_counts(usable, first_pass, window is not None, min_obs)
    result = _pass2_pass3(rows, factor_cols, factors, factor_cols, nw_lags, cov)
    result.first_pass = first_pass
    result.used_rows = rows[["permno", "month", "age"]].reset_index(drop=True)
    if window is not None:
        result.beta_ages = rows["age"].value_counts().sort_index().to_dict()
    return result


def char_fm(panel: pd.DataFrame, factors: pd.DataFrame, chars: list[str], *, char_lag: int, nw_lags: int) -> OracleFM:
    """Characteristic FM: ret - RF on the stock's characteristics ``char_lag`` calendar months before."""
    lagged = panel[["permno", "cal", *chars]].dropna(subset=["cal"]).copy()
    lagged["cal"] = lagged["cal"] + char_lag
    rows = panel.merge(lagged, on=["permno", "cal"], how="left", suffixes=("_now", ""), indicator=True)
    cov = {"panel_rows": len(panel), "no_factor_row": int(rows["cal"].isna().sum())}
    rows = rows[rows["cal"].notna()]
    cov["null_return"] = int(rows["ret"].isna().sum())
    rows = rows[rows["ret"].notna()]
    cov["no_lagged_row"] = int((rows["_merge"] == "left_only").sum())
    rows = rows[rows["_merge"] == "both"]
    complete = rows[chars].notna().all(axis=1)
    cov["null_lagged_char"] = int((~complete).sum())
    rows = rows[complete]
    result = _pass2_pass3(rows, chars, factors, [], nw_lags, cov)
    result.used_rows = rows[["permno", "month"]].reset_index(drop=True)
    return result


# ====================================================================== pass 1
def pass1(panel: pd.DataFrame, factor_cols: list[str], *, min_obs: int, window: int | None = None
          ) -> tuple[pd.DataFrame, dict]:
    """(first-pass frame, betas): permno -> slopes (full sample) or (permno, cal) -> slopes (rolling)."""
    usable = panel[panel["y"].notna()]
    return (_pass1_full(usable, factor_cols, min_obs) if window is None
            else _pass1_rolling(usable, factor_cols, window, min_obs))


def _ols(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS with intercept by lstsq: (params, standard errors s²(X'X)⁻¹)."""
    design = np.column_stack([np.ones(len(y)), x])
    params, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ params
    s2 = resid @ resid / (len(y) - design.shape[1])
    return params, np.sqrt(s2 * np.diag(np.linalg.inv(design.T @ design)))


def _pass1_full(usable: pd.DataFrame, factor_cols: list[str], min_obs: int) -> tuple[pd.DataFrame, dict]:
    out, betas = [], {}
    for permno, g in usable.groupby("permno", sort=True):
        if len(g) < min_obs:
            continue
        params, se = _ols(g["y"].to_numpy(), g[factor_cols].to_numpy())
        betas[permno] = params[1:]
        out.append({"permno": permno, "month": pd.NaT, "nobs": len(g),
                    **dict(zip(["const", *factor_cols], params)),
                    **{f"se_{t}": s for t, s in zip(["const", *factor_cols], se)}})
    return pd.DataFrame(out), betas


def _pass1_rolling(usable: pd.DataFrame, factor_cols: list[str], window: int,
                   min_obs: int) -> tuple[pd.DataFrame, dict]:
    """One regression per usable row (stock, t) over the stock's usable rows with cal in (t - W, t]."""
    out, betas = [], {}
    for permno, g in usable.groupby("permno", sort=True):
        cal = g["cal"].to_numpy(np.int64)
        y, x, months = g["y"].to_numpy(), g[factor_cols].to_numpy(), g["month"].to_numpy()
        lo = np.searchsorted(cal, cal - window, side="right")
        for j in range(len(cal)):
            nobs = j + 1 - lo[j]
            if nobs < min_obs:
                out.append({"permno": permno, "month": months[j], "cal": cal[j], "nobs": nobs})
                continue
            params, *_ = np.linalg.lstsq(np.column_stack([np.ones(nobs), x[lo[j]:j + 1]]), y[lo[j]:j + 1], rcond=None)
            betas[(permno, int(cal[j]))] = params[1:]
            out.append({"permno": permno, "month": months[j], "cal": cal[j], "nobs": nobs,
                        **dict(zip(["const", *factor_cols], params))})
    return pd.DataFrame(out), betas


def _pass1_counts(usable: pd.DataFrame, first_pass: pd.DataFrame, rolling: bool, min_obs: int) -> dict[str, int]:
    below = int((first_pass["nobs"] < min_obs).sum()) if rolling else int(
        (usable.groupby("permno").size() < min_obs).sum())
    return {("windows_below_min_obs" if rolling else "assets_below_min_obs"): below,
            "assets_with_usable_rows": int(usable["permno"].nunique())}


# ====================================================================== pass 2
def _rows_with_betas(panel: pd.DataFrame, betas: dict, factor_cols: list[str], *, rolling: bool, beta_lag: int,
                     max_age: int) -> tuple[pd.DataFrame, dict]:
    """The pass-2 rows with their betas, and the coverage count of every row left out."""
    cov = {"panel_rows": len(panel), "no_factor_row": int(panel["cal"].isna().sum())}
    rows = panel[panel["cal"].notna()]
    cov["null_return"] = int(rows["ret"].isna().sum())
    rows = rows[rows["ret"].notna()].copy()
    ends: dict = {}
    for key in betas:
        if rolling:
            ends.setdefault(key[0], []).append(key[1])
    ends = {p: np.sort(np.array(v)) for p, v in ends.items()}
    chosen, status = [], []
    for permno, t in zip(rows["permno"].to_numpy(), rows["cal"].to_numpy(np.int64)):
        if not rolling:
            chosen.append(betas.get(permno))
            status.append("used" if permno in betas else "no_beta_yet")
            continue
        e = ends.get(permno)
        k = -1 if e is None else np.searchsorted(e, t - beta_lag, side="right") - 1  # latest end <= t - lag
        if k < 0:
            chosen.append(None), status.append("no_beta_yet")
        elif e[k] < t - max_age:
            chosen.append(None), status.append("no_beta_lag")
        else:
            chosen.append(betas[(permno, int(e[k]))]), status.append(f"age{t - e[k]}")
    status = np.array(status, dtype=object)
    cov["no_beta_yet"] = int((status == "no_beta_yet").sum())
    cov["no_beta_lag"] = int((status == "no_beta_lag").sum())
    keep = np.array([b is not None for b in chosen])
    rows = rows[keep]
    rows[factor_cols] = np.array([b for b in chosen if b is not None])
    rows["age"] = [int(s[3:]) if s.startswith("age") else 0 for s in status[keep]]
    return rows, cov


def _pass2_pass3(rows: pd.DataFrame, regressors: list[str], factors: pd.DataFrame, factor_terms: list[str],
                 nw_lags: int, cov: dict) -> OracleFM:
    terms = ["const", *regressors]
    lam = []
    for month, g in rows.groupby("month", sort=True):
        if len(g) < len(terms) + 1:
            continue
        fit = oracles.ols_numpy(g["y"].to_numpy(), g[regressors].to_numpy(np.float64))
        lam.append({"month": month, **dict(zip(terms, fit["params"])), "r2": fit["r2"], "adj_r2": fit["adj_r2"],
                    "n": len(g)})
    lambdas = pd.DataFrame(lam).set_index("month")
    cov["used"] = int(lambdas["n"].sum())
    values = lambdas[terms].to_numpy()
    est = values.mean(axis=0)
    ses = {"fm": oracles.fm_se(values), "nw": oracles.nw_se(values, nw_lags, "T")}
    if factor_terms:
        f = factors.loc[lambdas.index, factor_terms].to_numpy()
        ses["shanken"] = oracles.shanken_se(values, f, [terms.index(c) for c in factor_terms])
    estimates = pd.DataFrame([{"term": t, "se_type": s, "estimate": est[j], "std_error": se[j]}
                              for s, se in ses.items() for j, t in enumerate(terms)])
    return OracleFM(terms=terms, lambdas=lambdas, estimates=estimates, first_pass=pd.DataFrame(), coverage=cov)
