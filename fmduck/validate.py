"""Input checks: each failure names the table, column or rows at fault and says what to do.

Checks on the catalog (columns and types) run before anything is rendered; checks on the data are
plan steps (``sql/checks/*.sql.j2``) whose rows the functions here read: the profile of a relation
(rows, NULL and NaN/Inf counts, means — kept as a scratch table whose means shift the moments) and
repeated keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from fmduck import escape, templates
from fmduck.engine import Relation
from fmduck.errors import InputError

_TEXT_TYPES = ("VARCHAR", "TEXT", "STRING")


@dataclass(frozen=True)
class ColumnProfile:
    count: int
    nonfinite: int
    mean: float | None


def require_columns(relation: Relation, columns: dict[str, str], numeric: list[str], dialect: str = "duckdb") -> None:
    """``columns`` maps a role (``--ret``) to a column name; every one must exist, ``numeric`` ones numeric
    (else the message gives a view in ``dialect`` that casts them)."""
    missing = [f"{role} {name!r}" for role, name in columns.items() if name not in relation.columns]
    if missing:
        available = ", ".join(repr(c) for c in relation.columns) or "(none)"
        raise InputError(f"{relation.label}: missing column(s) {', '.join(missing)}; it has: {available}")
    names = [name for name in dict.fromkeys(numeric) if not relation.is_numeric(name)]
    if names:
        wrong = [f"{name!r} is {relation.columns[name]}" for name in names]
        casts = {name: exp.cast(templates.column(name), "DOUBLE") for name in names}
        raise InputError(f"{relation.label}: column(s) must be numeric: {'; '.join(wrong)} "
                         f"(cast them in a view: {templates.replacing_view(dialect, casts, relation.sql)})")


def period_family(type_name: str) -> str:
    """date | timestamp | number | text | other, of a DuckDB type name."""
    upper = type_name.upper()
    if upper == "DATE":
        return "date"
    if upper.startswith("TIMESTAMP"):
        return "timestamp"
    if upper in _TEXT_TYPES:
        return "text"
    if Relation("", "", {"x": upper}).is_numeric("x"):
        return "number"
    return "other"


def require_same_period_type(engine: Any, a: Relation, a_col: str, b: Relation, b_col: str) -> None:
    """Period columns of the same kind (dates and timestamps meet); else refuse with a few values of each
    side and a conversion that works for them (:func:`fmduck.alignment.period_type_mismatch`)."""
    from fmduck.alignment import period_type_mismatch

    fa, fb = period_family(a.columns[a_col]), period_family(b.columns[b_col])
    dated = {"date", "timestamp"}
    if fa == fb or (fa in dated and fb in dated):
        return
    sides = []
    for relation, column in ((a, a_col), (b, b_col)):
        sql = templates.render("checks/period_sample", engine.dialect, relation=relation.sql,
                               period=templates.ident(column))
        values = sorted(engine.query(sql, {"limit": PERIOD_EXAMPLES})["period"].to_list())
        sides += [relation.label, column, relation.columns[column], values]
    raise InputError(period_type_mismatch(*sides))


PERIOD_EXAMPLES = 1000  # distinct period values read to show and classify a side of a type mismatch


# ====================================================================== profile
OVERFLOW = 1e150  # |x| beyond this overflows a sum of squares (1e308): refused, not a "singular" regression


def profile_source(dialect: str, relation: Relation, columns: list[str], scale: tuple[str, ...] = ()) -> str:
    """One scan: row count, and per column the non-NULL count, the NaN/Inf count, max |x| and the mean
    (``scale`` columns: also the median |x| and the rows with |x| > 1, for the unit check)."""
    spec = [{"ident": templates.ident(c), "alias": f"c{i}", "scale": c in scale} for i, c in enumerate(columns)]
    return templates.source("checks/profile", dialect, relation=relation.sql, columns=spec)


def read_profile(relation: Relation, columns: list[str], row: dict[str, Any]) -> dict[str, ColumnProfile]:
    """The profile row of ``relation``; raises for an empty relation, NaN/Inf or an all-NULL column."""
    out = {c: ColumnProfile(int(row[f"c{i}_count"] or 0), int(row[f"c{i}_nonfinite"] or 0), row[f"c{i}_mean"])
           for i, c in enumerate(columns)}
    if int(row["n_rows"] or 0) == 0:
        raise InputError(f"{relation.label} is empty")
    bad = [f"{c!r} ({p.nonfinite} rows)" for c, p in out.items() if p.nonfinite]
    if bad:
        raise InputError(
            f"{relation.label}: NaN or infinite values in {', '.join(bad)}; "
            "use NULL for missing values (rows with NULL are dropped and counted)"
        )
    empty = [repr(c) for c, p in out.items() if p.count == 0]
    if empty:
        raise InputError(f"{relation.label}: column(s) {', '.join(empty)} hold only NULL values")
    huge = [f"{c!r} (|x| up to {row[f'c{i}_max_abs']:.3g})" for i, c in enumerate(columns)
            if (row.get(f"c{i}_max_abs") or 0) > OVERFLOW]
    if huge:
        raise InputError(f"{relation.label}: values too large for double-precision sums of squares (overflow) in "
                         f"{', '.join(huge)}; check the units or the data (e.g. a missing-value code)")
    return out


# ====================================================================== repeated keys
def duplicate_count_source(dialect: str, relation_sql: str, keys: list[str]) -> str:
    """NULL keys and repeated keys of ``relation_sql`` (key expressions ``keys``) in one sorted scan."""
    return templates.source("checks/duplicate_count", dialect, relation=relation_sql, keys=keys)


def duplicates_source(dialect: str, relation_sql: str, keys: list[str], shown: list[str]) -> str:
    """Up to $limit repeated keys with their row count and the ``shown`` source columns' values."""
    return templates.source("checks/duplicates", dialect, relation=relation_sql, keys=keys, shown=shown)


def null_keys_error(label: str, n_null: int, keys: list[str]) -> InputError:
    return InputError(f"{label}: {n_null} row(s) with NULL in key column(s) {', '.join(keys)}")


def duplicates_error(label: str, names: list[str], frame: Any, freq: str | None = None) -> InputError:
    """The repeated keys of ``frame`` (columns k<i>, n_rows, and when the period (the last key) is mapped
    or parsed: shown, the source values that met in it, and n_shown, how many distinct) as one message;
    ``freq``: the period is a date mapped by ``--freq``. Values print as text (:func:`fmduck.escape.text`)."""
    examples, met = [], False
    for row in frame.iter_rows(named=True):
        values = [_text(row[f"k{i}"]) for i in range(len(names))]
        n, shown = row["n_rows"], row.get("shown")
        if shown is not None and int(row.get("n_shown") or 0) > 1:  # distinct source periods met in one period
            met = True
            ids = ", ".join(f"{name}={v}" for name, v in zip(names[:-1], values[:-1]))
            where = (f"in the {freq} of {values[-1]} after --freq {freq} (source dates {_dates(shown)})" if freq
                     else f"in the period {values[-1]} (source values {_text(shown)})")
            examples.append(f"{ids + ': ' if ids else ''}{n} rows {where}")
        else:  # the same source value repeated: show it as written
            values[-1] = _text(shown.split(", ")[0]) if shown is not None and freq else values[-1]
            examples.append(", ".join(f"{name}={v}" for name, v in zip(names, values)) + f" ({n} rows)")
    rule = f"each ({', '.join(names)}) must appear once per {freq or 'period'}" if met else "each key must appear once"
    return InputError(f"{label}: duplicate ({', '.join(names)}) rows, e.g. {'; '.join(examples)}; {rule}")


def _text(value: Any) -> str:
    """A key value as text (a date as 2004-03-31, not a Python repr)."""
    return escape.text("NULL" if value is None else str(value))


def _dates(shown: str, most: int = 5) -> str:
    """The distinct source dates of a mapped period (ISO text, in order), at most ``most`` of them."""
    dates = list(dict.fromkeys(shown.split(", ")))
    more = f", ... ({len(dates)} dates)" if len(dates) > most else ""
    return escape.text(", ".join(dates[:most]) + more)


def require_unique(engine: Any, relation: Relation, keys: list[str], limit: int = 5) -> None:
    """No NULL keys and no two rows with the same key values (both queries, run now)."""
    idents = [f"r.{templates.ident(k)}" for k in keys]
    count = templates.transpile(duplicate_count_source(engine.dialect, relation.sql, idents), engine.dialect)
    row = engine.query(count).row(0, named=True)
    if int(row["n_null"] or 0):
        raise null_keys_error(relation.label, int(row["n_null"]), keys)
    if int(row["n_rows"] or 0):
        names = templates.transpile(duplicates_source(engine.dialect, relation.sql, idents, []), engine.dialect)
        raise duplicates_error(relation.label, keys, engine.query(names, {"limit": limit}))


def profile(engine: Any, relation: Relation, columns: list[str]) -> dict[str, ColumnProfile]:
    """The profile of ``relation`` (run now); raises as :func:`read_profile`."""
    sql = templates.transpile(profile_source(engine.dialect, relation, columns), engine.dialect)
    return read_profile(relation, columns, engine.query(sql).row(0, named=True))
