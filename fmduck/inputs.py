"""The inputs of a run as SQL sees them: relations, their columns and types, the period keys, the variables.

:func:`catalog` reads only the engines' catalogs (column names and types; for text periods a sample of
distinct values): it resolves the returns panel and the factors table, checks the columns each role
needs, and decides how periods meet (:class:`PeriodKey`: the column itself, a date mapped to the
period of ``--freq``, or text parsed to a date). :func:`variables` then writes each regression
variable as SQL with its shift, read from the profile scratch tables that the plan creates.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from fmduck import periods, templates, validate
from fmduck.engine import Relation
from fmduck.errors import InputError
from fmduck.moments import Variable

TEXT_PERIODS = 200_000  # distinct text periods read to tell their format (every one, in practice)


@dataclass(frozen=True)
class PeriodKey:
    """How a relation's period column becomes a calendar key: as it is, mapped to the period of
    ``freq`` (DATE: the period's last day), or text parsed with ``text_format`` first."""

    column: str
    family: str  # date | timestamp | number | text
    freq: str | None = None
    text_format: str | None = None
    integer: bool = False

    def expression(self, alias: str) -> exp.Expression:
        value: exp.Expression = templates.column(self.column, alias)
        if self.text_format:
            value = periods.parse_text_period(value, self.text_format)
        if self.freq:
            value = periods.period_end(value, self.freq)
        return value

    def sql(self, alias: str) -> str:
        return templates.sql(self.expression(alias))

    @property
    def kind(self) -> str:
        """The calendar's period kind: date (mapped or parsed), timestamp, integer, number or text."""
        if self.freq or self.text_format:
            return "date"
        if self.family == "number":
            return "integer" if self.integer else "number"
        return self.family


@dataclass(frozen=True)
class Catalog:
    """The checked inputs of a run (catalog only). ``returns_profiled``/``factors_profiled``: the numeric
    columns profiled per relation, in the order of the profile's aliases c0, c1, ..."""

    returns: Relation
    factors: Relation | None
    rf_in_factors: bool
    panel_key: PeriodKey
    factor_key: PeriodKey | None
    returns_profiled: list[str]
    factors_profiled: list[str]

    @property
    def calendar_relation(self) -> Relation:
        """The relation whose distinct periods are the calendar: the factors table, else the panel."""
        return self.factors if self.factors is not None else self.returns

    @property
    def calendar_key(self) -> PeriodKey:
        return self.factor_key if self.factor_key is not None else self.panel_key


def catalog(spec, engine, *, returns: Relation | None = None) -> Catalog:
    """Resolve and check the inputs of ``spec`` on ``engine`` (``returns``: a relation already resolved)."""
    returns = returns or engine.relation(spec.returns, "returns")
    factors = engine.relation(spec.factors, "factors") if spec.factors is not None else None
    fperiod = spec.factor_period or spec.period
    needed = {"--asset": spec.asset, "--period": spec.period, "--ret": spec.ret}
    needed.update({f"--chars {c}": c for c in spec.chars})
    numeric = [spec.ret]
    rf_in_factors = False
    if spec.rf is not None:
        if spec.rf in returns.columns:
            needed["--rf"] = spec.rf
            numeric.append(spec.rf)
        elif factors is not None and spec.rf in factors.columns:
            rf_in_factors = True
        else:
            where = f"{returns.label}" + (f" or {factors.label}" if factors else "")
            raise InputError(f"risk-free column --rf {spec.rf!r} is in neither {where}")
    validate.require_columns(returns, needed, numeric + list(spec.chars), engine.dialect)
    returns_profiled = numeric + list(spec.chars)
    factors_profiled: list[str] = []
    factor_key = None
    if factors is not None:
        fneeded = {"--factor-period": fperiod, **{f"--factor-cols {c}": c for c in spec.factor_cols}}
        factors_profiled = list(spec.factor_cols) + ([spec.rf] if rf_in_factors else [])
        if rf_in_factors:
            fneeded["--rf"] = spec.rf
        validate.require_columns(factors, fneeded, factors_profiled, engine.dialect)
        validate.require_same_period_type(engine, returns, spec.period, factors, fperiod)
        factor_key = period_key(engine, factors, fperiod, spec.freq)
    panel_key = period_key(engine, returns, spec.period, spec.freq)
    return Catalog(returns, factors, rf_in_factors, panel_key, factor_key, returns_profiled, factors_profiled)


def period_key(engine, relation: Relation, column: str, freq: str | None) -> PeriodKey:
    """How ``relation.column`` meets the calendar (text periods: sampled and classified)."""
    family = validate.period_family(relation.columns[column])
    if family == "other":
        raise InputError(f"{relation.label}: period column {column!r} is {relation.columns[column]}; use a date, "
                         "a timestamp, an integer or text in time order (YYYY-MM-DD, YYYYMM, ...)")
    text_format = None
    if family == "text":
        sample = engine.query(templates.render("checks/period_sample", engine.dialect, relation=relation.sql,
                                               period=templates.ident(column)), {"limit": TEXT_PERIODS})
        found = periods.classify_text_periods([str(v) for v in sample["period"].to_list()], column,
                                              f"{relation.label}.{column}",
                                              periods.format_option(relation.label, column))
        if found.kind == "parse":
            text_format = found.format
        elif found.kind != "ordered":
            raise InputError(found.message)
    if freq is not None and family not in ("date", "timestamp") and text_format is None:
        raise InputError(f"--freq {freq} maps dates to periods, but {relation.label}.{column} is "
                         f"{relation.columns[column]}; drop --freq (integer or text periods meet as they are)")
    return PeriodKey(column, family, freq, text_format, family == "number" and _integer_type(relation.columns[column]))


@dataclass(frozen=True)
class Variables:
    """The regression variables of a two-pass run: y (the excess return), the factors, the characteristics."""

    y: Variable
    factors: list[Variable]
    chars: list[Variable]


def variables(spec, cat: Catalog, profile_returns: str, profile_factors: str | None) -> Variables:
    """Each variable as SQL over the joined rows (aliases p: panel, f: factors, lagged: the panel
    ``char_lag`` periods before) with its shift, the profile mean (a scalar subquery on the profile)."""

    def mean(table: str, i: int) -> str:
        return f"COALESCE((SELECT c{i}_mean FROM {table}), 0)"

    y_expr: exp.Expression = templates.column(spec.ret, "p")
    y_shift = mean(profile_returns, 0)
    if spec.rf is not None:
        if cat.rf_in_factors:
            source, shift = "f", mean(profile_factors, cat.factors_profiled.index(spec.rf))
        else:
            source, shift = "p", mean(profile_returns, cat.returns_profiled.index(spec.rf))
        y_expr = exp.Sub(this=y_expr, expression=templates.column(spec.rf, source))
        y_shift = f"{y_shift} - {shift}"
    factors = [Variable(c, templates.column(c, "f"), mean(profile_factors, j)) for j, c in enumerate(spec.factor_cols)]
    alias = "lagged" if spec.char_lag else "p"
    chars = [Variable(c, templates.column(c, alias), mean(profile_returns, cat.returns_profiled.index(c)))
             for c in spec.chars]
    return Variables(Variable("y", y_expr, y_shift), factors, chars)


# ====================================================================== typed keys of the results
def asset_columns(relation: Relation, column: str, expr: str) -> list[tuple[str, str]]:
    """The stored asset columns of an asset value ``expr`` (SQL): ``asset`` as text, and ``asset_int``
    (BIGINT, NULL for other types), so results join back to an integer id without a cast."""
    return [("asset", f"CAST({expr} AS VARCHAR)"),
            ("asset_int", f"CAST({expr} AS BIGINT)" if integer_asset(relation, column) else "CAST(NULL AS BIGINT)")]


def integer_asset(relation: Relation, column: str) -> bool:
    """Integer ids (permno): stored also as ``asset_int``."""
    type_name = relation.columns[column]
    return validate.period_family(type_name) == "number" and _integer_type(type_name)


def period_columns(kind: str, expr: str) -> list[tuple[str, str]]:
    """The stored period columns of a calendar period ``expr`` of ``kind``: ``period`` as text (ISO dates),
    and the one typed column that matches: ``period_date``, ``period_ts`` or ``period_int``."""
    typed = {"date": ("period_date", "DATE"), "timestamp": ("period_ts", "TIMESTAMP"),
             "integer": ("period_int", "BIGINT")}
    out = [("period", f"CAST({expr} AS VARCHAR)")]
    for name, sql_type in typed.values():
        own = typed.get(kind)
        out.append((name, f"CAST({expr} AS {sql_type})" if own and own[0] == name else f"CAST(NULL AS {sql_type})"))
    return out


PERIOD_COLUMNS = ("period", "period_date", "period_ts", "period_int")
ASSET_COLUMNS = ("asset", "asset_int")


def _integer_type(type_name: str) -> bool:
    upper = type_name.upper()
    return "INT" in upper or (upper.startswith(("DECIMAL", "NUMERIC")) and upper.rstrip(")").endswith(",0"))
