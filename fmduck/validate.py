"""Input checks that run before any estimate: each failure names the table, column or rows at fault."""

from __future__ import annotations

from dataclasses import dataclass

from fmduck import templates
from fmduck.engine import Engine, Relation
from fmduck.errors import InputError

_TEXT_TYPES = ("VARCHAR", "TEXT", "STRING")


@dataclass(frozen=True)
class ColumnProfile:
    count: int
    nonfinite: int
    mean: float | None


@dataclass(frozen=True)
class Profile:
    """One scan of a relation: its row count and, per numeric column, count, NaN/Inf count and mean."""

    relation: str
    n_rows: int
    columns: dict[str, ColumnProfile]

    def shift(self, column: str) -> float:
        mean = self.columns[column].mean
        return float(mean) if mean is not None else 0.0


def require_columns(relation: Relation, columns: dict[str, str], numeric: list[str]) -> None:
    """``columns`` maps a role (``--ret``) to a column name; every one must exist, ``numeric`` ones numeric."""
    missing = [f"{role} {name!r}" for role, name in columns.items() if name not in relation.columns]
    if missing:
        available = ", ".join(relation.columns) or "(none)"
        raise InputError(f"{relation.label}: missing column(s) {', '.join(missing)}; it has: {available}")
    wrong = [
        f"{name!r} is {relation.columns[name]}"
        for name in numeric
        if not relation.is_numeric(name)
    ]
    if wrong:
        raise InputError(
            f"{relation.label}: column(s) must be numeric: {'; '.join(wrong)} "
            "(cast them, e.g. CREATE VIEW ... AS SELECT CAST(col AS DOUBLE) ...)"
        )


def require_same_period_type(a: Relation, a_col: str, b: Relation, b_col: str) -> None:
    fa, fb = _family(a.columns[a_col]), _family(b.columns[b_col])
    if fa != fb:
        raise InputError(
            f"period columns do not match: {a.label}.{a_col} is {a.columns[a_col]} but "
            f"{b.label}.{b_col} is {b.columns[b_col]}; convert one of them (fmduck load --period-format)"
        )


def profile(engine: Engine, relation: Relation, columns: list[str]) -> Profile:
    """Count rows, non-NULL and non-finite values and means of ``columns`` in one scan."""
    spec = [{"ident": templates.ident(c), "alias": f"c{i}"} for i, c in enumerate(columns)]
    sql = templates.render("checks/profile", engine.dialect, relation=relation.sql, columns=spec)
    row = engine.query(sql).row(0, named=True)
    out = {
        c: ColumnProfile(int(row[f"c{i}_count"]), int(row[f"c{i}_nonfinite"] or 0), row[f"c{i}_mean"])
        for i, c in enumerate(columns)
    }
    result = Profile(relation.label, int(row["n_rows"]), out)
    if result.n_rows == 0:
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
    return result


def require_unique(engine: Engine, relation: Relation, keys: list[str], limit: int = 5) -> None:
    """No NULL keys, and no two rows with the same key values."""
    idents = [templates.ident(k) for k in keys]
    count = templates.render("checks/duplicate_count", engine.dialect, relation=relation.sql, keys=idents)
    counts = engine.query(count).row(0, named=True)  # NULL keys and repeated keys in one scan
    n_null = int(counts["n_null"])
    if n_null:
        raise InputError(f"{relation.label}: {n_null} row(s) with NULL in key column(s) {', '.join(keys)}")
    if not int(counts["n_rows"]):
        return
    sql = templates.render("checks/duplicates", engine.dialect, relation=relation.sql, keys=idents)
    dup = engine.query(sql, {"limit": limit})
    if dup.height:
        examples = "; ".join(
            ", ".join(f"{k}={row[k]!r}" for k in keys) + f" ({row['n_rows']} rows)"
            for row in dup.iter_rows(named=True)
        )
        raise InputError(
            f"{relation.label}: duplicate ({', '.join(keys)}) rows, e.g. {examples}; "
            "each key must appear once"
        )


def _family(type_name: str) -> str:
    upper = type_name.upper()
    if upper == "DATE" or upper.startswith("TIMESTAMP"):
        return "date"
    return "text" if upper in _TEXT_TYPES else "number"
