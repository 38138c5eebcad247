"""Do the periods of the panel and of the factors meet? Diagnose it, suggest ``--freq``, say why not.

Typical failure: CRSP dates the last trading day of a month (2003-02-27), Ken French factors the
last calendar day (2003-02-28) or, loaded from YYYYMM, the first (2003-02-01). Joined on the date
they meet on a fraction of the rows. :func:`diagnose` counts, in one query
(``sql/checks/period_alignment.sql.j2``), the panel rows whose period the factors have, and the
rows that meet after both sides are mapped to each calendar (:func:`fmduck.periods.period_end`).

A calendar is **eligible** when mapping keeps the inputs' keys: no two factor periods fall in one
period, and at most ``MAX_PANEL_DUPLICATES`` (1 %) of the panel rows share (asset, period) with
another row (a stray mid-month row next to a month-end one is then a duplicate-key error naming
both dates; a daily panel mapped to months is not a calendar question). The suggestion is the
eligible calendar that meets the most rows, the coarsest one on ties, when it adds at least
``MIN_GAIN`` (10 %) of the panel rows to the exact match. Ties matter: a last trading day and the
month's last day nearly always share an ISO week too, and the coarsest calendar that keeps both
inputs' keys is the data's own frequency (month, not week).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from fmduck import templates
from fmduck.engine import Engine, Relation
from fmduck.errors import InputError
from fmduck.periods import (
    BLANK_HEADER,
    FREQS,
    classify_text_periods,
    format_option,
    parse_text_period,
    period_end,
    text_format,
    yyyymm_format,
)

MAX_PANEL_DUPLICATES = 0.01
MIN_GAIN = 0.10
EXACT_SHARE_REQUIRED = 0.90
_PLURAL = {"day": "days", "week": "ISO weeks", "month": "months", "quarter": "quarters", "year": "years"}


@dataclass(frozen=True)
class CalendarMatch:
    """Panel rows that meet a factor period after mapping both sides to ``freq``."""

    freq: str
    rows: int
    panel_duplicates: int   # panel rows that share (asset, mapped period) with another row
    factor_duplicates: int  # factor periods that fall on a mapped period another one has


@dataclass(frozen=True)
class Alignment:
    n_rows: int            # panel rows with a non-NULL period
    n_periods: int         # distinct panel periods
    n_factor_periods: int  # distinct factor periods
    exact_rows: int        # panel rows whose period equals a factor period
    calendars: tuple[CalendarMatch, ...] = ()

    def share(self, freq: str | None = None) -> float:
        """Share of the panel rows that meet a factor period (exactly, or after mapping to ``freq``)."""
        rows = self.exact_rows if freq is None else self.calendar(freq).rows
        return rows / self.n_rows if self.n_rows else 0.0

    def calendar(self, freq: str) -> CalendarMatch:
        return next(c for c in self.calendars if c.freq == freq)

    def eligible(self, match: CalendarMatch) -> bool:
        return match.factor_duplicates == 0 and match.panel_duplicates <= MAX_PANEL_DUPLICATES * self.n_rows

    @property
    def suggestion(self) -> CalendarMatch | None:
        """The calendar to suggest (see the module doc), or None."""
        best = None
        for match in self.calendars:  # finest first: a tie goes to the coarser calendar
            if self.eligible(match) and (best is None or match.rows >= best.rows):
                best = match
        if best is None or best.rows - self.exact_rows < MIN_GAIN * self.n_rows:
            return None
        return best

    @property
    def misaligned(self) -> bool:
        """Refuse without ``--freq``: exact matching keeps < 90 % of the rows and a calendar fixes it."""
        return self.share() < EXACT_SHARE_REQUIRED and self.suggestion is not None


def is_date_type(type_name: str) -> bool:
    upper = type_name.upper()
    return upper == "DATE" or upper.startswith("TIMESTAMP")


def alignment_sql(dialect: str, panel: Relation, period: str, asset: str, factors: Relation,
                  factor_period: str, freqs: tuple[str, ...] = FREQS) -> str:
    """The query behind :func:`diagnose` (one row; columns named as :func:`read_alignment` reads)."""
    mapped = [{"name": f,
               "panel_end": templates.sql(period_end(templates.ident("fmduck_period"), f)),
               "factor_end": templates.sql(period_end(templates.ident("fmduck_period"), f)),
               "joined_end": templates.sql(period_end(templates.column("fmduck_period", "pp"), f))}
              for f in freqs]
    return templates.render("checks/period_alignment", dialect, panel=panel.sql, period=templates.ident(period),
                            asset=templates.ident(asset), factors=factors.sql,
                            factor_period=templates.ident(factor_period), freqs=mapped)


def read_alignment(row: dict, freqs: tuple[str, ...] = FREQS) -> Alignment:
    def n(key: str) -> int:
        return int(row[key] or 0)

    return Alignment(n("n_rows"), n("n_periods"), n("n_factor_periods"), n("exact_rows"),
                     tuple(CalendarMatch(f, n(f"rows_{f}"), n(f"panel_dups_{f}"), n(f"factor_dups_{f}"))
                           for f in freqs))


def diagnose(engine: Engine, panel: Relation, period: str, asset: str, factors: Relation,
             factor_period: str) -> Alignment:
    """Count how the periods meet; calendars only when both period columns are DATE or TIMESTAMP."""
    dates = is_date_type(panel.columns[period]) and is_date_type(factors.columns[factor_period])
    freqs = FREQS if dates else ()
    row = engine.query(alignment_sql(engine.dialect, panel, period, asset, factors, factor_period, freqs))
    return read_alignment(row.row(0, named=True), freqs)


def examples_sql(dialect: str, panel: Relation, period: str, factors: Relation, factor_period: str,
                 freq: str | None = None) -> str:
    """Panel periods no factor period equals, each with the factor period of its ``freq`` period
    (or the next factor period); binds ``$limit``."""
    ends = {}
    if freq is not None:
        ends = {"panel_end": templates.sql(period_end(templates.column("fmduck_period", "m"), freq)),
                "factor_end": templates.sql(period_end(templates.column("fmduck_period", "fp"), freq))}
    return templates.render("checks/period_examples", dialect, panel=panel.sql, period=templates.ident(period),
                            factors=factors.sql, factor_period=templates.ident(factor_period),
                            panel_end=ends.get("panel_end", ""), factor_end=ends.get("factor_end", ""))


def examples(engine: Engine, panel: Relation, period: str, factors: Relation, factor_period: str,
             freq: str | None = None, limit: int = 3) -> list[tuple[object, object]]:
    sql = examples_sql(engine.dialect, panel, period, factors, factor_period, freq)
    return [tuple(r) for r in engine.query(sql, {"limit": limit}).iter_rows()]


def alignment_message(alignment: Alignment, panel_label: str, period: str, factor_label: str, factor_period: str,
                      pairs: list[tuple[object, object]]) -> str:
    """The one-line refusal (or, without a suggestion, the explanation of a poor match).

    Labels as ``Relation.label`` (``table crsp``); ``pairs`` come from :func:`examples` with the
    suggested calendar."""
    panel, factors = f"{panel_label}.{period}", f"{factor_label}.{factor_period}"
    short_p, short_f = _short(panel_label), _short(factor_label)
    shown = ", ".join(f"{short_p} {_fmt(p)} vs {short_f} {_fmt(f) if f is not None else '(none)'}"
                      for p, f in pairs)
    text = (f"{panel} and {factors} match on {_pct(alignment.share())} of panel rows "
            f"({alignment.exact_rows:,} of {alignment.n_rows:,}" + (f"; e.g. {shown})" if shown else ")"))
    best = alignment.suggestion
    if best is not None:
        return (f"{text}; mapped to {_PLURAL[best.freq]} they match on {_pct(alignment.share(best.freq))}: "
                f"add --freq {best.freq} (each period is then dated by its last day)")
    return text + "; no calendar (--freq) aligns them better: check the periods of both inputs"


def diagnose_and_refuse(engine: Engine, panel: Relation, period: str, asset: str, factors: Relation,
                        factor_period: str) -> Alignment:
    """:func:`diagnose`; raise InputError with :func:`alignment_message` when it is misaligned."""
    alignment = diagnose(engine, panel, period, asset, factors, factor_period)
    if alignment.misaligned:
        best = alignment.suggestion
        pairs = examples(engine, panel, period, factors, factor_period, best.freq if best else None)
        raise InputError(alignment_message(alignment, panel.label, period, factors.label, factor_period, pairs))
    return alignment


def _short(label: str) -> str:
    """'table crsp' -> 'crsp'; 'returns file data/x.csv' -> 'x.csv'; 'returns DataFrame' -> 'returns'."""
    if label.endswith(" DataFrame"):
        return label.split()[0]
    return label.split()[-1].rsplit("/", 1)[-1]


def _fmt(value: object) -> str:
    text = str(value)
    return text[:-9] if text.endswith(" 00:00:00") else text


def _pct(share: float) -> str:
    return f"{100 * share:.1f} %"


# ------------------------------------------------------------------ period types that cannot meet
def period_type_mismatch(a_label: str, a_column: str, a_type: str, a_examples: list[object],
                         b_label: str, b_column: str, b_type: str, b_examples: list[object]) -> str:
    """The one-line error for period columns of different kinds (date, number, text), with a few
    values of each side and a fix that works: ``fmduck load --period-format`` for files, a view for
    tables. Call it from ``fmduck.validate.require_same_period_type`` with a few distinct values."""
    sides = [(a_label, a_column, a_type, a_examples), (b_label, b_column, b_type, b_examples)]
    shown = [f"{label}.{col} is {typ} (e.g. {', '.join(_fmt(v) for v in ex[:3])})" if ex else f"{label}.{col} is {typ}"
             for label, col, typ, ex in sides]
    kinds = [_kind(t) for _, _, t, _ in sides]
    if "date" in kinds:  # convert the other side to dates
        fix = _to_date_fix(*sides[kinds.index("date") ^ 1])
    else:  # a number and a text side: the text as integers when it is digits, else both as dates
        label, col, _, ex = sides[kinds.index("text")]
        if ex and all(str(v).strip().isdigit() for v in ex):
            fix = f"cast {label}.{col} to integers (CAST({templates.ident(col)} AS INTEGER) in a view)"
        else:
            both = [_to_date_fix(*side) for side in sides]
            fix = " and ".join(both) if all(both) else None
    fix = fix or "give both the same type (integers, or dates; a view can convert one side)"
    if "first day of each month" in fix:
        fix += "; then --freq month meets month-end and trading-day dates"
    return f"period columns do not match: {shown[0]} but {shown[1]}; {fix}"


def _kind(type_name: str) -> str:
    if is_date_type(type_name):
        return "date"
    return "text" if type_name.upper() in ("VARCHAR", "TEXT", "STRING") else "number"


def _to_date_fix(label: str, column: str, type_name: str, examples: list[object]) -> str | None:
    """How to read a number or text period side as DATE, or None when its values say nothing clear."""
    kind = _kind(type_name)
    col = templates.ident(column)
    if kind == "number":
        fmt = yyyymm_format([int(v) for v in examples if v is not None])
        if fmt is None:
            return None
        view = (f"make_date(CAST({col} // 100 AS INTEGER), CAST({col} % 100 AS INTEGER), 1)" if fmt == "yyyymm"
                else f"CAST(strptime(CAST({col} AS VARCHAR), '%Y%m%d') AS DATE)")
        what = "the first day of each month" if fmt == "yyyymm" else "dates"
    elif kind == "text":
        result = classify_text_periods([str(v) for v in examples if v is not None], column, f"{label}.{column}",
                                       format_option(label, column))
        if not result.accepted:
            return result.message.split(": ", 1)[1]
        fmt, f = result.format, text_format(result.format)
        view = (f"CAST(strptime({col}, '{f.strptime.replace('/', _separator(examples))}') AS DATE)" if f.strptime
                else templates.sql(parse_text_period(templates.column(column), f)))
        what = "dates" if f.unit == "day" else f"the first day of each {f.unit}"
    else:
        return None
    role, _, path = label.partition(" file ")
    if not path:
        return f"read {label}.{column} in a view ({what}: CREATE VIEW v AS SELECT * REPLACE ({view} AS {col}) FROM ...)"
    loaded = "period" if column == BLANK_HEADER else column  # a blank first header is loaded as `period`
    option = "--factor-period" if role == "factors" else "--period"
    return (f"load {path} with {format_option(label, column)} {shlex.quote(fmt)} ({what}: CREATE VIEW v AS SELECT "
            f"* REPLACE ({view} AS {col}) FROM ...) and run with --{role} NAME {option} {shlex.quote(loaded)}")


def _separator(examples: list[object]) -> str:
    for v in examples:
        found = re.search(r"[^0-9A-Za-z]+", str(v).strip())
        if found:
            return found.group(0)
    return ""
