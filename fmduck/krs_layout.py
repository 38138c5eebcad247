"""The Kan-Robotti-Shanken (2013) layout of a run's results (a view: stored numbers in, table out; no I/O).

KRS's tables show for each coefficient γ of the two-pass CSR the estimate and four t-ratios side by
side — t_FM (Fama-MacBeth), t_S (Shanken 1992), t_JW (Jagannathan-Wang 1998: EIV-robust under a
correctly specified model) and t_KRS (robust to model misspecification) — then the sample CSR R²
with its standard error and the p-values of the tests of R² = 1 (correct specification) and R² = 0.
:func:`krs_table` takes every number from the run's stored rows: γ and t_KRS from the
``misspec_robust`` estimates, t_JW from ``eiv_robust``, t_FM and t_S from fmduck's ``fm`` and
``shanken`` rows (their conventions: divisor T − 1, t with T − 1 df; KRS's own FM and Shanken use
divisor T), R² and its SE from the ``csr_r2`` test row, the p-values from ``r2_eq_1`` and ``r2_eq_0``
(imposing the null; the ``_unrestricted`` versions are in the tests table). The text summary
(:mod:`fmduck.summary`) and the reports (:mod:`fmduck.report`) lay it out.
"""

from __future__ import annotations

from typing import Any

import polars as pl

# (se_type, column header) of the four t-ratios, in KRS's order
T_COLUMNS = (("fm", "t_FM"), ("shanken", "t_S"), ("eiv_robust", "t_JW"), ("misspec_robust", "t_KRS"))
NOTE = ("γ: the CSR estimates; t_FM and t_S from fmduck's fm and shanken rows (divisor T − 1); t_JW: EIV-robust "
        "under correct specification (Jagannathan-Wang 1998); t_KRS: misspecification-robust (Kan-Robotti-Shanken "
        "2013); t_JW and t_KRS against the standard normal. p(R² = 1), p(R² = 0): KRS tests imposing the null.")


def _test(tests: pl.DataFrame, name: str) -> dict[str, Any] | None:
    if tests.height == 0 or "test" not in tests.columns:
        return None
    rows = tests.filter(pl.col("test") == name)
    return rows.row(0, named=True) if rows.height else None


def krs_table(results: Any) -> dict[str, Any] | None:
    """The KRS layout of ``results`` (a FamaMacBethResults), or None when it has no ``misspec_robust`` rows.

    Keys: ``rows`` (term, gamma, and per ``T_COLUMNS`` header its t or None), ``columns`` (the t
    headers), ``r2``, ``r2_se``, ``p_r2_eq_1``, ``p_r2_eq_0`` (None when not stored), ``weighting``
    (OLS, GLS or WLS), ``lags`` (Newey-West lags of the robust SEs), ``n_assets``, ``n_periods``, ``note``.
    """
    est = results.estimates
    if est.height == 0 or "misspec_robust" not in set(est["se_type"].to_list()):
        return None
    by_type = {se_type: {r["term"]: r for r in est.filter(pl.col("se_type") == se_type).iter_rows(named=True)}
               for se_type, _ in T_COLUMNS}
    krs = est.filter(pl.col("se_type") == "misspec_robust")
    rows = []
    for r in krs.iter_rows(named=True):
        t = {header: (by_type[se_type].get(r["term"]) or {}).get("t_stat") for se_type, header in T_COLUMNS}
        rows.append({"term": r["term"], "gamma": r["estimate"], "t": t})
    tests = results.tests
    r2 = _test(tests, "csr_r2") or {}
    lags = krs["nw_lags"][0] if "nw_lags" in krs.columns and krs.height else None
    return {
        "rows": rows,
        "columns": [header for _, header in T_COLUMNS],
        "r2": r2.get("statistic"),
        "r2_se": r2.get("std_error"),
        "p_r2_eq_1": (_test(tests, "r2_eq_1") or {}).get("p_value"),
        "p_r2_eq_0": (_test(tests, "r2_eq_0") or {}).get("p_value"),
        "weighting": str(results.spec.get("csr") or "ols").upper(),
        "lags": None if lags is None else int(lags),
        "n_assets": results.run.get("avg_n"),
        "n_periods": results.run.get("n_periods"),
        "note": NOTE,
    }


def heading(table: dict[str, Any]) -> str:
    """``Kan-Robotti-Shanken (2013): OLS CSR, N = 30, T = 819, Newey-West L = 6``."""
    parts = [f"{table['weighting']} CSR"]
    if table["n_assets"] is not None:
        parts.append(f"N = {round(table['n_assets']):,}")
    if table["n_periods"] is not None:
        parts.append(f"T = {int(table['n_periods']):,}")
    if table["lags"] is not None:
        parts.append(f"Newey-West L = {table['lags']}")
    return "Kan-Robotti-Shanken (2013): " + ", ".join(parts)
