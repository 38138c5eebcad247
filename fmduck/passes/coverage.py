"""Coverage: what a two-pass run left out of the panel, counted in one SQL pass and stated where the user looks.

Every panel row falls in the first category it meets, in this order: its period is not in the calendar
(no factor row), a factor or the risk-free rate is NULL, the return is NULL, a characteristic is NULL
(or has no row ``char_lag`` periods before), the asset has no beta yet (rolling: no usable window
ending ``beta_lag`` or more periods before; full sample: no usable time-series regression), the beta
rule finds none (rolling: the window ending exactly ``beta_lag`` periods before — or with
``beta_max_age`` K the most recent one no older than K — is missing), a weight or category is NULL,
the period's cross-section could not be estimated; the rest are used. The counts go to
``fmduck.skipped`` (pass ``coverage``, one row per category), into the run record, and into one line
of the summary; windows below ``min_obs`` are counted for pass 1. More than :data:`WARN_SHARE` of the
rows lost to causes no option asked for gives a warning that names the biggest.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from fmduck import templates
from fmduck.plan import Plan, State

WARN_SHARE = 0.10
# category -> (reason stored in fmduck.skipped, caused by an explicit option)
REASONS = {
    "no_period": ("no factor row for the period (the period is not in the calendar)", False),
    "null_factor": ("a factor value or the risk-free rate is NULL", False),
    "null_return": ("the return (or the risk-free rate) is NULL", False),
    "null_char": ("a characteristic is NULL (or has no row char_lag periods before)", False),
    "no_beta_yet": ("no usable beta yet (before the asset's first full window, or no usable regression)", True),
    "no_lagged_beta": ("no beta by the lag rule (a gap: no window ending exactly beta_lag periods before)", False),
    "null_weight": ("weight NULL or zero (--weights)", True),
    "null_category": ("category NULL (--absorb)", True),
    "cross_section": ("the period's cross-section could not be estimated", False),
}


def add(plan: Plan, spec: Any, setup: Any) -> None:
    """The coverage step (after pass 2): counts per category, and pass 1's usable rows."""
    sql, params = _source(plan, spec, setup, setup.first_pass)
    plan.add("coverage", "coverage: the panel rows each step left out", sql, params=params,
             then=lambda state, frame: state.__setitem__("coverage", frame))


def add_appended(plan: Plan, spec: Any, setup: Any, periods: str, betas: str | None) -> None:
    """The coverage of an update's appended periods only (state ``coverage_appended``, merged by
    :func:`appended`): the same classification over ``setup.src`` (the rows an update reads), the rows of
    periods not in the table ``periods`` (those only a lagged characteristic reads) counted as 'outside';
    ``betas``: the first-pass rows (asset, pidx, ok) that say whether an asset had a beta before."""
    outside = {"category": "outside", "condition": f"p.fmduck_pidx NOT IN (SELECT pidx FROM {periods})"}
    sql, params = _source(plan, spec, setup, betas, first=[outside])
    plan.add("coverage_appended", "coverage: the rows of the appended periods", sql, params=params,
             then=lambda state, frame: state.__setitem__("coverage_appended", frame))


def _source(plan: Plan, spec: Any, setup: Any, betas: str | None, first: list[dict[str, str]] = ()
            ) -> tuple[str, dict[str, Any]]:
    src = setup.src
    cat = setup.catalog
    variables = setup.variables
    conditions: list[dict[str, str]] = list(first)
    factor_cols = [templates.column(c, "f") for c in spec.factor_cols]
    if cat.rf_in_factors:
        factor_cols.append(templates.column(spec.rf, "f"))
    if factor_cols:
        conditions.append({"category": "null_factor",
                           "condition": " OR ".join(f"{templates.sql(c)} IS NULL" for c in factor_cols)})
    conditions.append({"category": "null_return", "condition": f"({templates.sql(variables.y.expr)}) IS NULL"})
    chars = [v for v in variables.chars if v.name in spec.chars]
    if chars:
        conditions.append({"category": "null_char",
                           "condition": " OR ".join(f"({templates.sql(v.expr)}) IS NULL" for v in chars)})
    beta = None
    if setup.first_pass:
        lag = "$beta_lag" if spec.rolling else None
        beta = {"table": betas, "rolling": spec.rolling, "lag": lag,
                "max_age": "$beta_max_age" if spec.rolling and spec.beta_max_age else None}
    if spec.weights:
        conditions_after = [{"category": "null_weight",
                             "condition": f"{templates.sql(templates.column(spec.weights, 'p'))} IS NULL OR "
                                          f"{templates.sql(templates.column(spec.weights, 'p'))} = 0"}]
    else:
        conditions_after = []
    if spec.absorb:
        conditions_after.append({"category": "null_category",
                                 "condition": f"{templates.sql(templates.column(spec.absorb, 'p'))} IS NULL"})
    sql = templates.source("coverage", plan.dialect, src=src.with_(betas=None, betas_table=betas),
                           conditions=conditions,
                           after=conditions_after, beta=beta, char_lag=bool(spec.chars and spec.char_lag),
                           lambdas=setup.pass2.table,
                           pass1=[templates.sql(v.expr) for v in (*variables.factors, variables.y)]
                           if setup.first_pass else [])
    params = {"beta_lag": spec.beta_lag, "char_lag": spec.char_lag}
    if spec.rolling and spec.beta_max_age:
        params["beta_max_age"] = spec.beta_max_age
    return sql, params


def summarize(spec: Any, state: State) -> tuple[dict[str, Any], pl.DataFrame, list[str]]:
    """(the record's coverage dict, skipped rows, warnings) from the coverage counts."""
    frame = state.get("coverage")
    if frame is None or frame.height == 0:
        return {}, pl.DataFrame(), []
    counts = {r["category"]: int(r["n"]) for r in frame.iter_rows(named=True) if r["category"] != "pass1_rows"}
    pass1_rows = sum(int(r["n"]) for r in frame.iter_rows(named=True) if r["category"] == "pass1_rows")
    total = sum(counts.values())
    used = counts.pop("used", 0)
    record: dict[str, Any] = {"panel_rows": total, "used": used, **counts}
    rows = [(cat, REASONS[cat][0], n) for cat, n in counts.items() if n]
    if spec.rolling and state.get("first_pass_outcomes") is not None:
        windows = int(state["first_pass_outcomes"]["n"].sum())
        below = max(pass1_rows - windows, 0)
        record["windows_below_min_obs"] = below
        if below:
            rows.append(("windows", f"first-pass windows with fewer than {spec.effective_min_obs} observations", below))
    # counts, not regressions: pass 'coverage', asset and period NULL, nobs = the count
    skipped = pl.DataFrame({
        "pass": ["coverage"] * len(rows),
        "reason": [r for _, r, _ in rows], "nobs": [n for _, _, n in rows]},
        schema={"pass": pl.Utf8, "reason": pl.Utf8, "nobs": pl.Int64})
    warnings = []
    silent = {c: n for c, n in counts.items() if not REASONS[c][1]}
    lost = sum(silent.values())
    if total and lost / total > WARN_SHARE:
        biggest = max(silent, key=silent.get)
        warnings.append(f"{lost:,} of {total:,} panel rows ({lost / total:.0%}) were left out; the biggest cause: "
                        f"{silent[biggest]:,} rows — {REASONS[biggest][0]} (fmduck.skipped, pass 'coverage', has "
                        "every count)")
    return record, skipped, warnings


def appended(old: dict[str, Any], frame: pl.DataFrame, no_period: int, pass1_rows: int | None) -> pl.DataFrame:
    """The coverage counts of the whole panel after an append (``fmduck update``), as the coverage step's
    rows (category, n, and 'pass1_rows') for :func:`summarize`, from

    - ``old``: the stored run's record — its rows keep their category, since an append changes no stored
      period, window or λ_t and the calendar only grows after its last period;
    - ``frame``: the counts of the appended periods' rows (:func:`add_appended`; 'outside' dropped);
    - ``no_period``: the panel rows whose period is not in the calendar now, counted again over the
      whole panel from the input fingerprints (rows of an appended period were 'no_period' before);
    - ``pass1_rows``: the appended periods' rows pass 1 can use (None without a first pass): 'pass1_rows'
      is the stored windows_below_min_obs plus these, so that with ``first_pass_outcomes`` holding the
      recomputed windows only, :func:`summarize` counts below = stored + appended rows − new windows.
    Categories with no row are left out, as the coverage query leaves them out."""
    new = {r["category"]: int(r["n"] or 0) for r in frame.iter_rows(named=True)}
    counts = {c: int(old.get(c) or 0) + new.get(c, 0) for c in (*REASONS, "used") if c != "no_period"}
    counts["no_period"] = int(no_period)
    rows = [(c, n) for c, n in counts.items() if n]
    if pass1_rows is not None:
        rows.append(("pass1_rows", int(old.get("windows_below_min_obs") or 0) + int(pass1_rows)))
    return pl.DataFrame(rows, schema={"category": pl.Utf8, "n": pl.Int64}, orient="row")


def line(record: dict[str, Any]) -> str:
    """The summary's coverage line: "used 64,741 of 66,229 panel rows; 1,488 without a lagged beta; ..."."""
    if not record:
        return ""
    short = {"no_period": "without a factor row", "null_factor": "with a NULL factor",
             "null_return": "with a NULL return", "null_char": "with a NULL (lagged) characteristic",
             "no_beta_yet": "before a first usable beta",
             "no_lagged_beta": "without a lagged beta (lag rule)", "null_weight": "with a NULL or zero weight",
             "null_category": "with a NULL category", "cross_section": "in periods without a usable cross-section"}
    parts = [f"used {record['used']:,} of {record['panel_rows']:,} panel rows"]
    parts += [f"{record[k]:,} {text}" for k, text in short.items() if record.get(k)]
    if record.get("windows_below_min_obs"):
        parts.append(f"{record['windows_below_min_obs']:,} windows below min_obs")
    return "; ".join(parts)
