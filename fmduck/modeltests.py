"""Tests of the model, stored in ``fmduck.tests`` (one row per test, SE type and distribution).

- ``wald_slopes``: H0 all slopes (every term but ``const``) are zero, W = λ̄_s' V_s⁻¹ λ̄_s with the
  full covariance V of λ̄ of each SE type (fm, nw, shanken). Rows: χ²(k) and an F form —
  Hotelling's T² F = W (T − k)/(k (T − 1)) ~ F(k, T − k) (linearmodels 7.1 ``f_statistic_robust``),
  or under the ``stata`` preset the ``asreg, fmb`` header form F = W/k ~ F(k, T − 1).
  :func:`wald_test` tests any linear restriction R λ = r of a (stored) run.
- ``grs``: Gibbons, Ross and Shanken (1989) on the full-sample first-pass alphas, for a
  full-sample beta-based run on a balanced panel (every asset in the same T periods); the factors
  must be traded excess returns (not checked). GRS = (T/N) (T − N − K)/(T − K − 1) ·
  α' Σ⁻¹ α / (1 + μ' Ω⁻¹ μ) ~ F(N, T − N − K), Σ = ε'ε/(T − K − 1) (residual cross-moments summed in
  SQL, ``sql/resid_cross.sql.j2``), Ω the factor covariance (T − 1), μ the factor means.
  Skipped, with the reason in ``note``, when unbalanced or N ≥ T − K.
- ``pricing_chi2``: α̂' cov(α̂)⁺ α̂ ~ χ²(N − p) for the pricing errors α̂_i = mean_t(r_it − x_i'λ_t) of
  a full-sample beta run without characteristics on a balanced panel (Cochrane, Asset Pricing,
  rev. ed., ch. 12): se_type ``fm`` uses cov(α̂) = Σ_t (α_t − α̂)(α_t − α̂)'/T² (12.2);
  ``ols`` uses (1/T)(I − X(X'X)⁻¹X') Σ (I − X(X'X)⁻¹X')' with Σ = ε'ε/T the first-pass residual
  covariance and X = [1, β] (or β without intercept) (12.1, without Shanken); ``shanken`` multiplies
  that by 1 + λ_f' Σ_f⁻¹ λ_f (Σ_f: factor covariance, T − 1). p = number of pass-2 terms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from sqlglot import exp

from fmduck import templates
from fmduck.errors import FmduckError
from fmduck.inference import chi2_sf, f_sf

COLUMNS = {"test": pl.Utf8, "se_type": pl.Utf8, "distribution": pl.Utf8, "statistic": pl.Float64,
           "std_error": pl.Float64, "df1": pl.Int64, "df2": pl.Int64, "p_value": pl.Float64, "note": pl.Utf8}


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=COLUMNS)


def _row(test: str, se_type: str | None, dist: str | None, stat: float, df1: int | None, df2: int | None,
         p: float, note: str) -> dict[str, Any]:
    return {"test": test, "se_type": se_type, "distribution": dist, "statistic": stat, "std_error": None, "df1": df1,
            "df2": df2, "p_value": p, "note": note}


def _skip(test: str, se_type: str | None, reason: str) -> dict[str, Any]:
    return _row(test, se_type, None, float("nan"), None, None, float("nan"), f"skipped: {reason}")


# ====================================================================== Wald
def wald_rows(estimate: np.ndarray, covariances: dict[str, np.ndarray], terms: list[str], t: int,
              f_form: str = "hotelling", restriction: np.ndarray | None = None, value: np.ndarray | None = None,
              test: str = "wald_slopes") -> list[dict[str, Any]]:
    """χ² and F rows of the Wald test R λ = r for each covariance (default: all slopes zero)."""
    if restriction is None:
        slopes = [j for j, term in enumerate(terms) if term != "const"]
        restriction = np.eye(len(terms))[slopes]
    restriction = np.atleast_2d(np.asarray(restriction, dtype=np.float64))
    if restriction.shape[1] != len(terms):
        raise FmduckError(f"restriction matrix has {restriction.shape[1]} columns; the run has {len(terms)} terms "
                          f"({', '.join(terms)})")
    k = restriction.shape[0]
    value = np.zeros(k) if value is None else np.asarray(value, dtype=np.float64).reshape(k)
    if k == 0:
        return [_skip(test, None, "the model has no slopes to test")]
    rows = []
    diff = restriction @ estimate - value
    for se_type, cov in covariances.items():
        v = restriction @ cov @ restriction.T
        if not np.isfinite(v).all():
            rows.append(_skip(test, se_type, "no joint covariance (the sandwich preset estimates each term "
                                             "separately)"))
            continue
        try:
            w = float(diff @ np.linalg.solve(v, diff))
        except np.linalg.LinAlgError:
            rows.append(_skip(test, se_type, "the covariance of the tested combinations is singular"))
            continue
        rows.append(_row(test, se_type, "chi2", w, k, None, chi2_sf(w, k), f"W ~ chi2({k})"))
        if f_form == "stata":
            f = w / k
            rows.append(_row(test, se_type, "F", f, k, t - 1, f_sf(f, k, t - 1),
                             f"F = W/k ~ F({k}, T-1) (Stata asreg/xtfmb)"))
        elif f_form == "hotelling":
            if t > k:
                f = w * (t - k) / (k * (t - 1))
                rows.append(_row(test, se_type, "F", f, k, t - k, f_sf(f, k, t - k),
                                 f"Hotelling T2: F = W(T-k)/(k(T-1)) ~ F({k}, T-k) (linearmodels 7.1)"))
            else:
                rows.append(_skip(test, se_type, f"Hotelling F needs T > k (T = {t}, k = {k})"))
    return rows


def wald_test(results: Any, restriction: Any, value: Any = None, se_type: str = "fm") -> dict[str, Any]:
    """Wald test of R λ = r on a (stored or fresh) run: ``{"chi2": (W, df, p), "F": (F, df1, df2, p)}``.

    ``restriction`` is a matrix over the run's terms, or a dict {term: coefficient} for one row.
    The covariance is recomputed from the stored λ_t with the run's conventions (fm or nw).
    """
    from fmduck import conventions
    from fmduck.inference import fm_covariance

    terms = results.terms
    if isinstance(restriction, dict):
        unknown = sorted(set(restriction) - set(terms))
        if unknown:
            raise FmduckError(f"unknown term(s) {', '.join(unknown)}; the run has {', '.join(terms)}")
        restriction = [[float(restriction.get(term, 0.0)) for term in terms]]
    lam = results.lambdas.select(terms).to_numpy().astype(np.float64)
    spec = results.spec
    if se_type == "fm":
        cov = fm_covariance(lam)
    elif se_type == "nw":
        conv = conventions.preset(spec.get("conventions", "fmduck"))
        cov = conventions.newey_west(lam, results.lambdas["period_index"].to_numpy(), conv,
                                     spec.get("nw_lags", "auto"), spec.get("nw_divisor", "T")).covariance
    else:
        raise FmduckError(f"wald_test recomputes 'fm' or 'nw' covariances, not {se_type!r}")
    f_form = "stata" if spec.get("conventions") == "stata" else "hotelling"
    rows = wald_rows(lam.mean(axis=0), {se_type: cov}, terms, lam.shape[0], f_form, np.asarray(restriction, float),
                     value, test="wald")
    out: dict[str, Any] = {}
    for r in rows:
        if r["distribution"] == "chi2":
            out["chi2"] = (r["statistic"], r["df1"], r["p_value"])
        elif r["distribution"] == "F":
            out["F"] = (r["statistic"], r["df1"], r["df2"], r["p_value"])
        else:
            out["note"] = r["note"]
    return out


# ====================================================================== residual cross-moments (SQL)
def _resid_query(run: Any, src: Any, resid: exp.Expression, params: dict[str, Any], periods_only: bool,
                 label: str) -> pl.DataFrame:
    variables = [{"expr": templates.sql(resid), "alias": "v0", "shift": "CAST(0 AS DOUBLE)"}]
    sql = templates.render("resid_cross", run.dialect, periods_only=periods_only, src=src, variables=variables)
    return run.query(label, sql, params)


def _cross(run: Any, label: str, src: Any, resid: exp.Expression, params: dict[str, Any]
           ) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """Assets, n[N, N], Σe_i e_j[N, N], Σe_i over common periods [N, N] (row i, col j) from SQL."""
    frame = _resid_query(run, src, resid, params, False, label)
    assets = sorted(set(frame["asset_i"].cast(pl.Utf8).to_list()) | set(frame["asset_j"].cast(pl.Utf8).to_list()))
    pos = {a: i for i, a in enumerate(assets)}
    ii = np.array([pos[a] for a in frame["asset_i"].cast(pl.Utf8).to_list()], dtype=np.int64)
    jj = np.array([pos[a] for a in frame["asset_j"].cast(pl.Utf8).to_list()], dtype=np.int64)
    size = len(assets)
    n, sij, si = np.zeros((size, size)), np.zeros((size, size)), np.zeros((size, size))
    for arr, col_ij, col_ji in ((n, "n", "n"), (sij, "s_ij", "s_ij"), (si, "s_i", "s_j")):
        arr[ii, jj] = frame[col_ij].to_numpy()
        arr[jj, ii] = frame[col_ji].to_numpy()
    return assets, n, sij, si


def _balanced(n: np.ndarray, t_periods: int) -> bool:
    return bool(n.size) and bool(np.all(n == t_periods))


def unbalanced_note(nobs: np.ndarray, t_periods: int | None = None, test: str = "GRS") -> str:
    """Why a test that needs a balanced block is skipped, with what was observed: the range of first-pass
    observations per asset (and, when every asset has as many, that their periods differ)."""
    if nobs.size == 0:
        return "no asset has a usable first-pass regression"
    lo, hi = int(nobs.min()), int(nobs.max())
    if lo != hi:
        seen = f"first-pass observations per asset range from {lo} to {hi}"
    elif t_periods is not None and t_periods != hi:
        seen = f"every asset has {hi} first-pass observations, but not in the same periods ({t_periods} periods in all)"
    else:  # as many observations as periods, yet some pair of assets lacks a common residual
        seen = f"every asset has {hi} first-pass observations, but some pairs of assets do not share all of them"
    return f"unbalanced panel: {seen}; {test} needs every asset in the same T periods"


# ====================================================================== GRS and pricing χ²
def model_tests(run: Any, spec: Any, setup: Any, state: Any, covariances: dict[str, np.ndarray]) -> pl.DataFrame:
    """Every test the run supports (called while the run's scratch tables exist)."""
    from fmduck.conventions import preset

    lambdas = state["lambdas"]
    terms = spec.terms
    estimate = lambdas.select(terms).to_numpy().astype(np.float64).mean(axis=0)
    rows = wald_rows(estimate, covariances, terms, lambdas.height, preset(spec.conventions).wald_f)
    if spec.beta_based and not spec.rolling and setup.first_pass:
        rows += _grs_and_pricing(run, spec, setup, state)
    return pl.DataFrame(rows, schema=COLUMNS)


MAX_PAIR_ROWS = 200_000_000  # N(N+1)/2 · T rows in the self-join: beyond this the N x N tests are skipped


def _grs_and_pricing(run: Any, spec: Any, setup: Any, state: Any) -> list[dict[str, Any]]:
    k = len(spec.factor_cols)
    wide = run.query("first-pass alphas and betas (GRS)", templates.transpile(
        "SELECT CAST(asset AS VARCHAR) AS asset, nobs, "
        + ", ".join(f"e{j} AS {templates.ident(t)}" for j, t in enumerate(["const", *spec.factor_cols]))
        + f" FROM {setup.first_pass} WHERE ok ORDER BY 1", run.dialect))
    nobs = wide["nobs"].to_numpy()
    big_n = wide.height
    p = len(spec.terms)
    fitted: exp.Expression = exp.column("e0", table="b")
    for j, fv in enumerate(setup.variables.factors):
        fitted = exp.Add(this=fitted, expression=exp.Mul(this=exp.column(f"e{j + 1}", table="b"),
                                                         expression=exp.Paren(this=fv.expr)))
    resid = exp.Sub(this=exp.Paren(this=setup.variables.y.expr), expression=exp.Paren(this=fitted))
    if big_n == 0 or not np.all(nobs == nobs[0]):  # unbalanced at a glance: no SQL, no N x N work
        return [_skip("grs", None, unbalanced_note(nobs)),
                _skip("pricing_chi2", None, "characteristics vary over time; the test needs constant betas"
                      if spec.chars else unbalanced_note(nobs, test="the pricing-error test"))]
    src = setup.src.with_(betas="full", betas_table=setup.first_pass)
    pidx = _resid_query(run, src, resid, setup.params, True, "first-pass residual periods (GRS)")["pidx"].to_numpy()
    t_ts = len(pidx)
    # balanced: every asset has a first-pass observation in each of the T periods (checked before any N x N work)
    balanced = bool(big_n) and bool(np.all(nobs == t_ts))
    too_big = big_n * (big_n + 1) // 2 * t_ts > MAX_PAIR_ROWS
    want_grs = balanced and big_n < t_ts - k and not too_big
    want_pricing = balanced and not spec.chars and 0 < big_n - p < t_ts and not too_big
    if want_grs or want_pricing:
        assets, n, sij, _ = _cross(run, "first-pass residual cross-moments (GRS)", src, resid, setup.params)
        balanced = balanced and _balanced(n, t_ts)
    rows: list[dict[str, Any]] = []
    size_note = f"N = {big_n} test assets: the N x N cross-moments over T = {t_ts} periods are too large"
    if not balanced:
        rows.append(_skip("grs", None, unbalanced_note(nobs, t_ts)))
    elif big_n >= t_ts - k:
        rows.append(_skip("grs", None, f"N = {big_n} test assets is not below T - K = {t_ts - k}"))
    elif too_big:
        rows.append(_skip("grs", None, size_note))
    if not balanced or too_big or spec.chars or not 0 < big_n - p < t_ts:
        reason = ("characteristics vary over time; the test needs constant betas" if spec.chars
                  else unbalanced_note(nobs, t_ts, "the pricing-error test") if not balanced else size_note if too_big
                  else f"N - p = {big_n - p} is not between 1 and T - 1 = {t_ts - 1}")
        rows.append(_skip("pricing_chi2", None, reason))
    if not (want_grs or want_pricing) or not balanced:
        return rows
    series = state["factor_series"]
    f = (pl.DataFrame({"pidx": pidx}).join(series, on="pidx", how="left")
         .select([f"f{j}" for j in range(k)]).to_numpy().astype(np.float64))
    if want_grs:
        alpha = wide.filter(pl.col("asset").is_in(assets)).sort("asset")["const"].to_numpy()
        sigma = sij / (t_ts - k - 1)
        mu = f.mean(axis=0)
        omega = np.atleast_2d(np.cov(f, rowvar=False, ddof=1))
        quad = float(alpha @ np.linalg.solve(sigma, alpha))
        denom = 1.0 + float(mu @ np.linalg.solve(omega, mu))
        grs = t_ts / big_n * (t_ts - big_n - k) / (t_ts - k - 1) * quad / denom
        df2 = t_ts - big_n - k
        rows.append(_row("grs", None, "F", grs, big_n, df2, f_sf(grs, big_n, df2),
                         f"GRS (1989) on first-pass alphas, N = {big_n}, T = {t_ts}, K = {k}; "
                         "assumes traded excess-return factors"))
    if want_pricing:
        rows += _pricing_chi2(run, spec, setup, state, assets, sij / t_ts, wide, f)
    return rows


def _pricing_chi2(run: Any, spec: Any, setup: Any, state: Any, assets: list[str], sigma: np.ndarray,
                  wide: pl.DataFrame, f: np.ndarray) -> list[dict[str, Any]]:
    from fmduck.passes import pass2, pricing

    terms = spec.terms
    lambdas = state["lambdas"]
    t = lambdas.height
    p = len(terms)
    errors = state["pricing_errors"]
    alpha = errors.filter(pl.col("asset").is_in(assets)).sort("asset")["alpha"].to_numpy()
    big_n = len(alpha)
    dof = big_n - p
    if dof < 1 or len(alpha) != len(assets):
        return [_skip("pricing_chi2", None, f"N = {big_n} assets leave no degrees of freedom for {p} terms")]
    # FM covariance of the pricing errors: cross-moments of the pass-2 residuals (SQL)
    resid = pricing.residual(spec, setup.pass2.regressors, setup.variables.y)
    src = setup.pass2.src.with_(lambdas_table=setup.pass2.table)
    names, n, sij, si = _cross(run, "pass-2 residual cross-moments (pricing-error chi2)", src, resid,
                               {**setup.params, **pass2.params(spec)})
    rows: list[dict[str, Any]] = []
    if names != assets or not _balanced(n, t):
        rows.append(_skip("pricing_chi2", "fm", "pass-2 residuals are not balanced over the estimated periods"))
    else:
        cov_fm = (sij - si * si.T / t) / t / t
        rows.append(_chi2_row("fm", alpha, cov_fm, dof, "Cochrane (12.2): cov = sum_t (a_t - a)(a_t - a)'/T^2"))
    x = wide.filter(pl.col("asset").is_in(assets)).sort("asset").select(spec.factor_cols).to_numpy()
    if spec.intercept:
        x = np.column_stack([np.ones(big_n), x])
    proj = np.eye(big_n) - x @ np.linalg.solve(x.T @ x, x.T)
    cov_ols = proj @ sigma @ proj.T / t
    rows.append(_chi2_row("ols", alpha, cov_ols, dof, "Cochrane (12.1): (1/T)(I-X(X'X)^-1X') Sigma (.)', "
                                                       "Sigma = e'e/T, no Shanken"))
    lam_f = lambdas.select(spec.factor_cols).to_numpy().astype(np.float64).mean(axis=0)
    sigma_f = np.atleast_2d(np.cov(f, rowvar=False, ddof=1))
    c = float(lam_f @ np.linalg.solve(sigma_f, lam_f))
    rows.append(_chi2_row("shanken", alpha, cov_ols * (1.0 + c), dof,
                          f"Cochrane (12.1) x Shanken (1 + c), c = {c:.6g}"))
    return rows


def _chi2_row(se_type: str, alpha: np.ndarray, cov: np.ndarray, dof: int, note: str) -> dict[str, Any]:
    """α' cov⁺ α with the pseudo-inverse on the dof largest eigenvalues (cov has rank N − p)."""
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2.0)
    keep = np.argsort(vals)[::-1][:dof]
    if not np.all(vals[keep] > 0):
        return _skip("pricing_chi2", se_type, "the covariance of the pricing errors has rank below N - p")
    z = vecs[:, keep].T @ alpha
    stat = float(np.sum(z * z / vals[keep]))
    return _row("pricing_chi2", se_type, "chi2", stat, dof, None, chi2_sf(stat, dof), note)


def summary_lines(tests: pl.DataFrame) -> list[str]:
    """The tests block of the text summary (nothing cut: a skipped test prints its whole reason)."""
    from fmduck.formatting import fmt

    rows = list(tests.iter_rows(named=True))
    name_w = max([22, *(len(r["test"]) + 2 for r in rows)])
    lines = [f"{'Tests of the model':<{name_w}}{'SE':>8}{'dist.':>7}{'statistic':>13}{'std. err.':>11}{'df':>12}"
             f"{'p-value':>10}"]
    for r in rows:
        name, se = r["test"], r["se_type"] or ""
        stat = r["statistic"]
        if stat is None or not np.isfinite(stat):
            lines.append(f"{name:<{name_w}}{se:>8}  {r['note']}")
            continue
        df = "" if r["df1"] is None else f"{r['df1']}" + (f", {r['df2']}" if r["df2"] is not None else "")
        lines.append(f"{name:<{name_w}}{se:>8}{r['distribution'] or '':>7}{fmt(stat, 4):>13}"
                     f"{fmt(r.get('std_error'), 4):>11}{df:>12}{fmt(r['p_value'], 4):>10}")
    return lines
