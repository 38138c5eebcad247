"""The paper's tests and Table 3 of a Fama-MacBeth (1973) run: per sub-period statistics of γ_t and their layout.

:func:`periods` computes the rows of ``fmduck.fm1973_periods`` from λ_t (arrays in, a frame out; no
SQL): per sub-period (then overall, ``subperiod`` 0) and per γ_j the mean, s(γ_j) (the standard
deviation of γ_jt, ddof 1), the first-order autocorrelation, Fama-MacBeth and Newey-West standard
errors, t and p, and the paper's test of the term — C1 linearity E(γ_2) = 0, C2 no non-beta risk
E(γ_3) = 0, C3 positive trade-off E(γ_1) > 0 (one-sided), with a risk-free series Sharpe-Lintner
E(γ_0 − r_f) = 0 — rejected or not at :data:`LEVEL`. :func:`table3` and :func:`table3_text` lay a
run's rows out like the paper's Table 3; :func:`summary` is the design's summary hook.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from fmduck.errors import InputError
from fmduck.inference import fm_covariance, inference, newey_west_covariance, t_sf

TESTS = {
    # term: (test, null hypothesis, alternative)
    "const_minus_rf": ("S-L", "E(gamma_0 - r_f) = 0", "two-sided"),
    "beta": ("C3", "E(gamma_1) = 0 vs > 0", "greater"),
    "beta2": ("C1", "E(gamma_2) = 0", "two-sided"),
    "se": ("C2", "E(gamma_3) = 0", "two-sided"),
}
GAMMA = {"const": "gamma_0", "beta": "gamma_1", "beta2": "gamma_2", "se": "gamma_3", "const_minus_rf": "g0-rf"}
LEVEL = 0.05  # the test size behind the reject_* columns of fmduck.fm1973_periods

PERIODS = {
    "subperiod": pl.Int64, "label": pl.Utf8, "first_period": pl.Utf8, "last_period": pl.Utf8,
    "first_period_index": pl.Int64, "last_period_index": pl.Int64,
    "n_periods": pl.Int64, "term": pl.Utf8, "test": pl.Utf8, "null_hypothesis": pl.Utf8, "alternative": pl.Utf8,
    "mean": pl.Float64, "std_dev": pl.Float64, "rho1": pl.Float64, "fm_std_error": pl.Float64,
    "fm_t": pl.Float64, "fm_p": pl.Float64, "reject_fm": pl.Boolean, "nw_std_error": pl.Float64,
    "nw_t": pl.Float64, "nw_p": pl.Float64, "reject_nw": pl.Boolean, "nw_lags": pl.Int64,
    "avg_r2": pl.Float64, "sd_r2": pl.Float64,
}
SQL_TYPES = {pl.Int64: "BIGINT", pl.Utf8: "VARCHAR", pl.Float64: "DOUBLE", pl.Boolean: "BOOLEAN"}


def periods(lambdas: pl.DataFrame, terms: list[str], rf: np.ndarray | None, test_starts: np.ndarray, lags: int,
            subperiods: int | None, divisor: str) -> pl.DataFrame:
    """The rows of ``fmduck.fm1973_periods``: sub-periods are the cohorts' testing periods (cohorts begin
    at the calendar positions ``test_starts``, sorted) or ``subperiods`` equal blocks of the testing
    periods; then the overall row (subperiod 0). The Newey-West lag is ``lags``, at most n − 1 per block."""
    series = {t: lambdas[t].to_numpy().astype(np.float64) for t in terms}
    if rf is not None:
        series["const_minus_rf"] = series["const"] - rf
    pidx = lambdas["period_index"].to_numpy()
    labels = lambdas["period"].to_list()
    if subperiods is None:
        cohort_of = np.searchsorted(test_starts, pidx, side="right") - 1
        blocks = [np.flatnonzero(cohort_of == c) for c in np.unique(cohort_of)]
    else:
        blocks = [b for b in np.array_split(np.arange(len(pidx)), subperiods) if len(b)]
    blocks = ([] if len(blocks) == 1 else blocks) + [np.arange(len(pidx))]
    r2 = lambdas["r2"].to_numpy()
    rows = []
    for b, idx in enumerate(blocks):
        overall = b == len(blocks) - 1
        for term, values in series.items():
            rows.append({
                "subperiod": 0 if overall else b + 1,
                "label": "overall" if overall else f"{labels[idx[0]]} - {labels[idx[-1]]}",
                "first_period": labels[idx[0]], "last_period": labels[idx[-1]],
                "first_period_index": int(pidx[idx[0]]), "last_period_index": int(pidx[idx[-1]]),
                "n_periods": len(idx), "term": term, **_period_stats(term, values[idx], lags, divisor),
                "avg_r2": float(r2[idx].mean()),
                "sd_r2": float(r2[idx].std(ddof=1)) if len(idx) > 1 else None,
            })
    return pl.DataFrame(rows, schema=PERIODS)


def _period_stats(term: str, values: np.ndarray, lags: int, divisor: str) -> dict[str, Any]:
    """Mean, s(γ), first-order autocorrelation, FM and NW t of one γ series, and the paper's test."""
    n = len(values)
    test, null, alternative = TESTS.get(term, (None, None, None))
    out: dict[str, Any] = {"test": test, "null_hypothesis": null, "alternative": alternative,
                           "mean": float(values.mean())}
    lam = values[:, None]
    fm = inference("fm", lam.mean(axis=0), fm_covariance(lam), n - 1) if n > 1 else None
    lag = min(lags, n - 1)
    nw = inference("nw", lam.mean(axis=0), newey_west_covariance(lam, lag, divisor), n - 1) if n > 1 else None
    dev = values - values.mean()
    out["std_dev"] = float(values.std(ddof=1)) if n > 1 else None
    out["rho1"] = float(dev[1:] @ dev[:-1] / (dev @ dev)) if n > 2 and dev @ dev > 0 else None
    for label, inf in (("fm", fm), ("nw", nw)):
        if inf is None:
            out.update({f"{label}_std_error": None, f"{label}_t": None, f"{label}_p": None, f"reject_{label}": None})
            continue
        t_stat = float(inf.t_stat[0])
        p = t_sf(t_stat, n - 1) if alternative == "greater" else float(inf.p_value[0])
        out.update({f"{label}_std_error": float(inf.std_error[0]), f"{label}_t": t_stat,
                    f"{label}_p": p if test else None, f"reject_{label}": bool(p < LEVEL) if test else None})
    out["nw_lags"] = lag if n > 1 else None
    return out


# ====================================================================== Table 3
def summary(results: Any, text: str) -> str:
    """The summary of an fm1973 run: the xtfmb-style blocks with this design's header, then Table 3."""
    from fmduck.summary import replace_header

    spec = results.spec
    # the generic header describes a two-pass run; say what this design did instead
    left = ["Fama-MacBeth (1973) beta-sorted portfolios",
            f"Run: {results.name}  (fm1973, {results.run['engine']})",
            (f"{spec['n_portfolios']} portfolios; {spec['formation']}/{spec['estimation']}/{spec['testing']} "
             "form/est/test"),
            f"Dependent: portfolio mean {spec['ret']} (raw)"]
    text = replace_header(results, text, left)
    if "fm1973_periods" not in results.extra:
        return text
    return text + "\n\n" + table3_text(results)


def table3(results: Any) -> pl.DataFrame:
    """The paper's Table 3 layout: one row per sub-period (then 'overall'); per γ_j its mean, s(γ_j)
    (the standard deviation of the monthly γ_jt) and t(γ̄_j) = γ̄_j / (s(γ_j)/√n); NW t beside it;
    then the mean and standard deviation of the periods' R²."""
    periods = results.extra.get("fm1973_periods")
    if periods is None:
        raise InputError(f"run {results.name!r} has no fm1973_periods table (is it a design fm1973 run?)")
    periods = periods.sort(pl.when(pl.col("subperiod") == 0).then(10**9).otherwise(pl.col("subperiod")),
                           maintain_order=True)
    order = list(dict.fromkeys(periods["term"].to_list()))
    base = periods.select("subperiod", pl.col("label").alias("period"), pl.col("n_periods").alias("n"),
                          pl.col("avg_r2").alias("r2_mean"), pl.col("sd_r2").alias("r2_sd")).unique(
        "subperiod", keep="first", maintain_order=True)
    for term in order:
        g = GAMMA.get(term, term)
        part = periods.filter(pl.col("term") == term).select(
            "subperiod", pl.col("mean").alias(f"{g}"), pl.col("std_dev").alias(f"s({g})"),
            pl.col("fm_t").alias(f"t({g})"), pl.col("nw_t").alias(f"t_nw({g})"))
        base = base.join(part, on="subperiod", how="left", maintain_order="left")
    cols = [c for c in base.columns if c not in ("r2_mean", "r2_sd")] + ["r2_mean", "r2_sd"]
    return base.select(cols).drop("subperiod")


def table3_text(results: Any) -> str:
    """Table 3 as text: blocks of γ̄, s(γ), t(γ̄) FM and NW, periods as rows, γ_j as columns."""
    from fmduck.summary import number

    tab = table3(results)
    gammas = [c for c in tab.columns if c not in ("period", "n", "r2_mean", "r2_sd") and "(" not in c]
    width = 30
    lines = ["Fama-MacBeth (1973) Table 3 layout: portfolio cross-sections per period, by sub-period"]
    blocks = (("mean of gamma_t", "{}"), ("s(gamma): std. dev. of gamma_t", "s({})"),
              ("t(mean) = mean / (s/sqrt(n))", "t({})"), ("Newey-West t(mean)", "t_nw({})"))
    for title, pattern in blocks:
        lines.append("-" * 78)
        r2_head = f"{'r2':>8}" if pattern == "{}" else ""
        lines.append(f"{title:<{width}}" + "".join(f"{g:>10}" for g in gammas) + r2_head)
        for row in tab.iter_rows(named=True):
            head = f"{row['period']:<24}{row['n']:>6}"
            cells = "".join(" " + number(row[pattern.format(g)], 9, 4) for g in gammas)
            lines.append(head + cells + (" " + number(row["r2_mean"], 7, 3) if pattern == "{}" else ""))
    lines.append("-" * 78)
    lines.append("Tests of the overall mean (Student t with n-1 df; C3 one-sided, the others two-sided):")
    overall = results.extra["fm1973_periods"].filter((pl.col("subperiod") == 0) & pl.col("test").is_not_null())
    for row in overall.iter_rows(named=True):
        verdict = "rejected" if row["reject_fm"] else "not rejected"
        lines.append(f"  {row['test']:<4} {row['null_hypothesis']:<24} t = {row['fm_t']:7.2f} (NW {row['nw_t']:6.2f})"
                     f"  p = {row['fm_p']:.3f}  {verdict} at {LEVEL:g}")
    return "\n".join(lines)
