"""The second pass as one cross-sectional regression on mean returns, with Kan-Robotti-Shanken (2013) inference.

For a full-sample beta run on a balanced block of test assets (every asset in every period, N > K + 1),
the balanced T × N block of excess returns comes back from the engine (small: portfolios) and
:func:`fmduck.krs.fit` gives, for γ and for the prices of covariance risk λ, the ``eiv_robust`` and
``misspec_robust`` covariances (the estimates table gets them beside fm, nw and shanken; λ goes to
``fmduck.covariance_prices``), the CSR R² with its standard error and the KRS tests (``fmduck.tests``).
``csr = "gls" | "wls"``: the per-period γ_t of that weighting replace the OLS λ_t (pass 2 then runs in
Python on the block). Where it does not apply — rolling betas, characteristics, WLS/absorb options,
an unbalanced panel, N ≤ K + 1, GLS with T ≤ N + 2 — the run says why in ``fmduck.tests`` and keeps
its other SE types. Conventions: :data:`fmduck.krs.CONVENTIONS`; t statistics against the normal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from fmduck import covariance, templates
from fmduck.errors import EstimationError
from fmduck.inference import automatic_lag, inference
from fmduck.moments import Variable
from fmduck.plan import Plan, State

MAX_CELLS = 20_000_000  # T x N of the block brought to Python
SE_TYPES = ("eiv_robust", "misspec_robust")
covariance.register("eiv_robust", "EIV-robust, correctly specified (Jagannathan-Wang 1998)", "EIV-robust (JW)")
covariance.register("misspec_robust", "Misspecification-robust (Kan-Robotti-Shanken 2013)", "KRS misspec-robust")
PRICES_TABLE = [("term", "VARCHAR NOT NULL"), ("se_type", "VARCHAR NOT NULL"), ("estimate", "DOUBLE"),
                ("std_error", "DOUBLE"), ("t_stat", "DOUBLE"), ("p_value", "DOUBLE"), ("note", "VARCHAR")]


def not_applicable(spec: Any) -> str | None:
    """Why KRS inference does not apply to ``spec`` (None: it may, subject to the data)."""
    if not spec.beta_based:
        return "needs full-sample betas on factors (a characteristics-only run has none)"
    if spec.rolling:
        return "needs full-sample betas; rolling betas vary over time"
    if spec.chars:
        return "characteristics vary over time; the CSR on mean returns needs constant regressors"
    if spec.weights or spec.absorb:
        return "not with --weights / --absorb (the CSR weighting is --csr)"
    return None


def add(plan: Plan, spec: Any, setup: Any) -> None:
    """Steps: the shape of the usable first pass (balanced?), then — when balanced and small enough —
    the T × N block of excess returns over the periods of pass 1."""
    fp = setup.first_pass
    plan.add("csr_shape", "CSR: the test assets of pass 1",
             f"SELECT COUNT(*) AS n, MIN(nobs) AS lo, MAX(nobs) AS hi FROM {fp} WHERE ok",
             then=lambda state, frame: state.__setitem__("csr_shape", frame.row(0, named=True)))
    variables = [Variable(v.name, v.expr, 0.0) for v in (*setup.variables.factors, setup.variables.y)]
    sql = templates.source("read_block", plan.dialect, src=setup.src.with_(betas="full", betas_table=fp),
                           variables=[{"expr": templates.sql(v.expr), "alias": f"v{i}", "shift": v.shift_sql()}
                                      for i, v in enumerate(variables)], y=f"v{len(variables) - 1}")
    plan.add("csr_block", "CSR: the balanced block of excess returns", sql,
             when=lambda state: block_reason(state) is None,
             note=f"only when every test asset has every period and N × T ≤ {MAX_CELLS:,}",
             then=lambda state, frame: state.__setitem__("csr_block", frame))


def block_reason(state: State) -> str | None:
    shape = state.get("csr_shape")
    if shape is None or not shape["n"]:
        return "no usable first-pass regression"
    n, lo, hi = int(shape["n"]), int(shape["lo"]), int(shape["hi"])
    if lo != hi:
        return f"unbalanced test assets: first-pass observations range from {lo} to {hi}"
    if n * hi > MAX_CELLS:
        return f"N = {n} test assets over T = {hi} periods is too large a block ({n * hi:,} cells)"
    return None


def fit(spec: Any, state: State) -> Any:
    """The KRS fit of the run's block (an EstimationError names why it cannot be done)."""
    from fmduck import krs

    reason = not_applicable(spec) or block_reason(state)
    if reason:
        raise EstimationError(f"Kan-Robotti-Shanken inference: {reason}")
    block = state["csr_block"]
    wide = block.pivot(on="asset", index="pidx", values="y").sort("pidx")
    assets = [c for c in wide.columns if c != "pidx"]
    R = wide.select(assets).to_numpy().astype(np.float64)
    if np.isnan(R).any():
        raise EstimationError("Kan-Robotti-Shanken inference: unbalanced test assets (missing returns)")
    series = state["factor_series"]
    F = (wide.select("pidx").join(series, on="pidx", how="left")
         .select([f"f{j}" for j in range(len(spec.factor_cols))]).to_numpy().astype(np.float64))
    t = R.shape[0]
    lags = automatic_lag(t, spec.lag_rule) if spec.nw_lags == "auto" else int(spec.nw_lags)
    res = krs.fit(R, F, weighting=spec.csr, intercept=spec.intercept, lags=min(lags, t - 1))
    state["csr_pidx"] = wide["pidx"].to_numpy()
    state["csr_R"] = R
    return res


def gamma_table(res: Any, spec: Any, pidx: np.ndarray, R: np.ndarray) -> pl.DataFrame:
    """γ_t of a GLS/WLS CSR as a solved cross-section table (pidx, nobs, ok, reason, e<j>, s<j>, r2, adj_r2,
    rmse): R²_t the weighted R² of period t's CSR, no per-period SEs (pass 3 does not use them)."""
    g = res.gamma_t
    p = g.shape[1]
    cols = {"pidx": pidx.astype(np.int64), "nobs": np.full(len(pidx), R.shape[1], dtype=np.int64),
            "ok": np.ones(len(pidx), dtype=bool), "reason": [None] * len(pidx)}
    cols.update({f"e{j}": g[:, j] for j in range(p)})
    cols.update({f"s{j}": np.full(len(pidx), np.nan) for j in range(p)})
    nan = np.full(len(pidx), np.nan)
    return pl.DataFrame({**cols, "r2": nan, "adj_r2": nan, "rmse": nan})


def estimate_rows(res: Any, terms: list[str], n_periods: int, avg_n: float, avg_r2: float) -> pl.DataFrame:
    """The eiv_robust and misspec_robust rows of γ for the estimates table."""
    from fmduck.passes.pass3 import estimates

    notes = {"eiv_robust": "EIV-robust, correctly specified model (Jagannathan-Wang 1998; KRS 2013 without the "
                           "misspecification term)",
             "misspec_robust": "misspecification-robust (Kan-Robotti-Shanken 2013)"}
    covs = [covariance.Covariance(k, res.gamma_cov[k], None,
                                  f"{notes[k]}; {res.weighting.upper()} CSR, Newey-West L = {res.lags} "
                                  "on the influence series (not demeaned), divisor T; t against the standard normal",
                                  res.lags)
            for k in SE_TYPES]
    return estimates(covs, res.gamma, terms, n_periods=n_periods, avg_n=avg_n, avg_r2=avg_r2)


def prices(res: Any, terms: list[str]) -> pl.DataFrame:
    """λ (prices of covariance risk: the CSR of mean returns on [1, V21]) with its four SE types."""
    rows = []
    for se_type in ("fm", "shanken", *SE_TYPES):
        inf = inference(se_type, res.lam, res.lam_cov[se_type], None)
        for j, term in enumerate(terms):
            rows.append({"term": term, "se_type": se_type, "estimate": float(inf.estimate[j]),
                         "std_error": float(inf.std_error[j]), "t_stat": float(inf.t_stat[j]),
                         "p_value": float(inf.p_value[j]),
                         "note": "KRS conventions (moments with divisor T); t against the standard normal"})
    return pl.DataFrame(rows, schema={c: _POLARS[t.split()[0]] for c, t in PRICES_TABLE})


def test_rows(res: Any) -> list[dict[str, Any]]:
    """The KRS tests as fmduck.tests rows."""
    out = []
    for r in res.tests:
        dist = "chi2" if r["test"].startswith("csrt") and "_f" not in r["test"] else (
            "F" if r["test"].startswith("csrt_f") else None)
        out.append({"test": r["test"], "se_type": None, "distribution": dist, "statistic": r["statistic"],
                    "std_error": r["std_error"], "df1": r["df1"], "df2": r["df2"], "p_value": r["p_value"],
                    "note": f"KRS 2013 ({res.weighting.upper()} CSR): {r['note']}"})
    return out


def skipped_rows(reason: str) -> list[dict[str, Any]]:
    return [{"test": "csr_r2", "se_type": None, "distribution": None, "statistic": None, "std_error": None,
             "df1": None, "df2": None, "p_value": None,
             "note": "skipped: Kan-Robotti-Shanken inference (eiv_robust, misspec_robust SEs, CSR R² tests): "
                     f"{reason}"}]


_POLARS = {"VARCHAR": pl.Utf8, "DOUBLE": pl.Float64}
