"""The input checks of a run, as plan steps: each failure names the table, column or rows and the fix.

- repeated or NULL (asset, period) keys — after mapping to the calendar, so two dates of one asset in
  one month are named with both source dates;
- the profile of each input (rows, NULL and NaN/Inf counts, overflow, means — kept as a scratch table
  whose means shift the moments — and the typical sizes that the unit check reads);
- units: returns, factors and risk-free rate on different scales warn (refused under ``--strict``);
- alignment: without ``--freq``, dated periods of the panel and the factors that mostly do not meet
  are refused with examples of both sides and the ``--freq`` that aligns them;
- the input fingerprints (fmduck/fingerprints.py), so a stored run can be updated later.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import polars as pl

from fmduck import alignment as aligning
from fmduck import inputs, templates, units, validate
from fmduck.errors import InputError
from fmduck.plan import Plan, State


def add(plan: Plan, run: Any, spec: Any, cat: inputs.Catalog, keys_rows: str | None = None) -> None:
    """Repeated or NULL keys, then the profile of each input (kept: its means shift the moments), then
    the units of returns, factors and risk-free rate. ``keys_rows``: the panel rows (SQL) the key check
    reads instead of the whole panel (an update: the changed periods'; the profiles stay whole)."""
    relations = [(cat.returns, [templates.ident(spec.asset)], cat.panel_key, cat.returns_profiled, "returns",
                  [spec.asset, spec.period], {spec.ret: "return", **({spec.rf: "rf"} if spec.rf and
                                                                       not cat.rf_in_factors else {})})]
    if cat.factors is not None:
        relations.append((cat.factors, [], cat.factor_key, cat.factors_profiled, "factors",
                          [spec.factor_period or spec.period],
                          {**{c: "factor" for c in spec.factor_cols},
                           **({spec.rf: "rf"} if cat.rf_in_factors else {})}))
    for relation, key_cols, key, profiled, role, names, roles in relations:
        keys = [f"r.{k}" for k in key_cols] + [key.sql("r")]
        shown = [f"r.{templates.ident(key.column)}"] if key.freq or key.text_format else []
        checked = replace(relation, sql=f"({keys_rows})") if keys_rows and role == "returns" else relation
        plan.add(f"{role}_keys", f"check: repeated ({', '.join(names)}) in {relation.label}",
                 validate.duplicate_count_source(plan.dialect, checked.sql, keys),
                 then=_unique(run, checked, keys, shown, names, key.freq))
        if profiled:
            plan.add(f"profile_{role}", f"profile of {relation.label}",
                     validate.profile_source(plan.dialect, relation, profiled, tuple(roles)), kind="create")
            plan.add(f"profile_{role}_read", f"check: {relation.label} values",
                     f"SELECT * FROM {plan.name('profile_' + role)}",
                     then=_profile(relation, profiled, role, roles))
    dialect = plan.dialect  # a step's callback must not hold its plan: the cycle would keep the engine open
    plan.check("units", "units of returns, factors and risk-free rate (fmduck/units.py)",
               then=lambda state, _: _units(state, spec, dialect))


def _units(state: State, spec: Any, dialect: str) -> None:
    message = units.scale_warning(state.get("scales", []), spec.freq, dialect)
    if message is None:
        return
    if spec.strict:
        raise InputError(message + " (refused under --strict)")
    state.setdefault_list("warnings").append(message)


def alignment(plan: Plan, run: Any, spec: Any, cat: inputs.Catalog) -> None:
    """Without --freq, dated periods of the panel and the factors must mostly meet: else refuse with
    examples and the --freq that aligns them (fmduck/alignment.py)."""
    dated = ("date", "timestamp")
    if cat.factors is None or spec.freq or cat.panel_key.kind not in dated or cat.factor_key.kind not in dated:
        return
    sql = templates.source("checks/calendar_match", plan.dialect, relation=cat.returns.sql,
                           key=cat.panel_key.sql("r"), calendar=plan.name("calendar"))

    def then(state: State, frame: pl.DataFrame) -> None:
        row = frame.row(0, named=True)
        if row["n_rows"] and row["matched"] < aligning.EXACT_SHARE_REQUIRED * row["n_rows"]:
            aligning.diagnose_and_refuse(run.engine, cat.returns, spec.period, spec.asset, cat.factors,
                                          spec.factor_period or spec.period)

    plan.add("calendar_match", "check: panel periods that meet a factor period", sql, then=then)


def _unique(run: Any, relation: Any, keys: list[str], shown: list[str], names: list[str], freq: str | None) -> Any:
    def then(state: State, frame: pl.DataFrame) -> None:
        row = frame.row(0, named=True)
        if int(row["n_null"] or 0):
            raise validate.null_keys_error(relation.label, int(row["n_null"]), names)
        if int(row["n_rows"] or 0):
            dup = run.query("check: name the repeated keys",
                            templates.transpile(validate.duplicates_source(run.dialect, relation.sql, keys, shown),
                                                run.dialect), {"limit": 5})
            raise validate.duplicates_error(relation.label, names, dup, freq)
    return then


def _profile(relation: Any, columns: list[str], role: str, roles: dict[str, str]) -> Any:
    def then(state: State, frame: pl.DataFrame) -> None:
        row = frame.row(0, named=True)
        state[f"profile_{role}"] = validate.read_profile(relation, columns, row)
        state[f"{role}_rows"] = int(row["n_rows"])
        scales = state.setdefault_list("scales")
        for column, kind in roles.items():
            i = columns.index(column)
            median = row.get(f"c{i}_median_abs")
            scales.append(units.ColumnScale(column, kind, int(row[f"c{i}_count"] or 0),
                                            None if median is None else float(median),
                                            int(row.get(f"c{i}_above_one") or 0), relation.sql))
    return then
