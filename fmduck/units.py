"""Are returns, factors and the risk-free rate in the same unit? A check on their typical sizes.

Percent returns with decimal factors (or the reverse) run without an error and give numbers 100×
off. The check compares the **typical size** of each column — the median of |x| over its non-NULL
rows, from one scan per table (``sql/checks/scale_stats.sql.j2``) — and warns when

1. the returns and a factor are ``RATIO`` (10) or more times apart, either way. Within one unit the
   ratio stays below about 8 (Ken French portfolios vs factors 1.1-2.3; an individual stock against
   a low-volatility factor such as RMW about 7 monthly, 8 daily); across units it is about 12 or more;
2. the risk-free rate is typically larger than the returns: percent rf with decimal returns (in one
   unit rf stays below half the returns' size, even in 1981);
3. the returns look like percent by themselves — |x| > 1 on most rows, which no decimal return
   series has at any frequency, or a median |x| above ``PERCENT_LIKE[freq]`` (day 0.2, week 0.4,
   month 0.6, quarter 1, year 2) — and are ``RF_BELOW`` (300) or more times the risk-free rate:
   decimal rf with percent returns (in one unit the ratio is about 10-20, 400 only in a sample
   entirely at zero rates, where the returns are then not percent-like).

A panel consistently in percent (returns, factors and rf) is not flagged: its estimates are in
percent. A risk-free rate of exactly zero (2009-2015) says nothing and is skipped.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from sqlglot import exp

from fmduck import templates
from fmduck.engine import Engine, Relation

ROLES = ("return", "factor", "rf")
RATIO = 10.0
RF_BELOW = 300.0
MOST = 0.5
_ROLE_NAMES = {"return": "returns", "factor": "factors", "rf": "risk-free"}
PERCENT_LIKE = {"day": 0.2, "week": 0.4, "month": 0.6, "quarter": 1.0, "year": 2.0}


@dataclass(frozen=True)
class ColumnScale:
    """Typical size of one column: ``median_abs`` = median |x|, ``above_one`` = rows with |x| > 1."""

    column: str
    role: str
    n: int
    median_abs: float | None
    above_one: int
    relation: str = ""  # the SQL of the table or file the column is in (for the view the warning suggests)

    @property
    def share_above_one(self) -> float:
        return self.above_one / self.n if self.n else 0.0


def scale_stats_sql(dialect: str, relation: Relation, columns: list[str]) -> str:
    """One scan of ``relation``: ``c{i}_n``, ``c{i}_median_abs``, ``c{i}_above_one`` per column."""
    spec = [{"ident": templates.ident(c), "alias": f"c{i}"} for i, c in enumerate(columns)]
    return templates.render("checks/scale_stats", dialect, relation=relation.sql, columns=spec)


def read_scale_stats(row: dict, roles: dict[str, str], relation: str = "") -> list[ColumnScale]:
    """``roles`` maps each column (in the order given to :func:`scale_stats_sql`) to its role; ``relation``:
    the SQL of the relation they are in."""
    out = []
    for i, (column, role) in enumerate(roles.items()):
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        median = row[f"c{i}_median_abs"]
        out.append(ColumnScale(column, role, int(row[f"c{i}_n"] or 0), None if median is None else float(median),
                               int(row[f"c{i}_above_one"] or 0), relation))
    return out


def scale_stats(engine: Engine, relation: Relation, roles: dict[str, str]) -> list[ColumnScale]:
    """The typical sizes of ``roles``' columns of ``relation`` (``{"ret": "return", "RF": "rf"}``)."""
    if not roles:
        return []
    row = engine.query(scale_stats_sql(engine.dialect, relation, list(roles))).row(0, named=True)
    return read_scale_stats(row, roles, relation.sql)


def scale_warning(stats: list[ColumnScale], freq: str | None = None, dialect: str = "duckdb") -> str | None:
    """A one-line warning naming the columns that look like another unit, their typical sizes and the
    fix (in ``dialect``'s SQL); None when returns, factors and rf look alike. ``freq``: the data's
    frequency, if known."""
    sized = [s for s in stats if s.median_abs]
    returns = [s for s in sized if s.role == "return"]
    if not returns:
        return None
    ret = sorted(s.median_abs for s in returns)[len(returns) // 2]
    ret_names = [s.column for s in returns]
    reasons: list[str] = []
    larger: list[str] = []
    big = [s for s in sized if s.role == "factor" and s.median_abs >= RATIO * ret]
    small = [s for s in sized if s.role == "factor" and s.median_abs * RATIO <= ret]
    if big:
        reasons.append(f"{_names(big)} {_times(big, ret)} the returns' size")
        larger += [s.column for s in big]
    if small:
        reasons.append(f"the returns are {_times(small, ret, inverse=True)} the size of {_names(small)}")
        larger += ret_names
    for rf in (s for s in sized if s.role == "rf"):
        if rf.median_abs > ret:
            reasons.append(f"the risk-free rate {rf.column!r} is typically larger than the returns")
            larger.append(rf.column)
        elif ret >= RF_BELOW * rf.median_abs and _percent_like(returns, freq):
            reasons.append(f"the returns look like percent and are {ret / rf.median_abs:,.0f}× the risk-free "
                           f"rate {rf.column!r}")
            larger += ret_names + [s.column for s in sized if s.role == "factor" and s.column not in larger
                                   and s.median_abs * RATIO > ret]
    if not reasons:
        return None
    sizes = "; ".join(f"{_ROLE_NAMES[role]} " + ", ".join(f"{s.column} {s.median_abs:.3g}" for s in sized
                                                          if s.role == role)
                      for role in ROLES if any(s.role == role for s in sized))
    cols = list(dict.fromkeys(larger))
    share = max(returns, key=lambda s: s.share_above_one).share_above_one
    return (f"returns, factors and risk-free rate look like different units: typical |x| (median): {sizes}; "
            f"returns |x| > 1 on {100 * share:.0f} % of rows; {'; '.join(reasons)}. If {', '.join(cols)} "
            f"{'is' if len(cols) == 1 else 'are'} in percent, divide by 100: fmduck load FILE --table T --unit "
            f"percent --percent-cols {shlex.quote(','.join(cols))}, or {_views(sized, cols, dialect)}")


def _views(stats: list[ColumnScale], cols: list[str], dialect: str) -> str:
    """Views that divide ``cols`` by 100, one per table they are in (DuckDB: runnable as printed)."""
    tables: dict[str, dict[str, exp.Expression]] = {}
    for s in stats:
        if s.column in cols:
            tables.setdefault(s.relation, {})[s.column] = exp.Div(this=templates.column(s.column),
                                                                   expression=exp.Literal.number(100))
    views = [templates.replacing_view(dialect, columns, relation or "...", "v" if len(tables) == 1 else f"v{i + 1}")
             for i, (relation, columns) in enumerate(tables.items())]
    return ("in a view: " if dialect == "duckdb" else "") + "; ".join(views)


def _percent_like(returns: list[ColumnScale], freq: str | None) -> bool:
    limit = PERCENT_LIKE.get(freq or "", float("inf"))
    return any(s.share_above_one > MOST or (s.median_abs or 0.0) > limit for s in returns)


def _names(stats: list[ColumnScale]) -> str:
    return ", ".join(s.column for s in stats)


def _times(stats: list[ColumnScale], ret: float, inverse: bool = False) -> str:
    ratios = [(ret / s.median_abs) if inverse else (s.median_abs / ret) for s in stats]
    low, high = min(ratios), max(ratios)
    return f"{low:,.0f}×" if round(low) == round(high) else f"{low:,.0f}-{high:,.0f}×"
