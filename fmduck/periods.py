"""Periods as calendars and text: the SQL that maps dates to calendar periods and reads text periods.

Calendars (``--freq``). :func:`period_end` maps a DATE or TIMESTAMP expression to the **last
calendar day** of its period, as a DATE:

| freq | period | its date |
|---|---|---|
| ``day`` | the calendar day (a TIMESTAMP loses its time of day) | the day |
| ``week`` | the ISO week, Monday to Sunday | the Sunday that ends it |
| ``month`` | the calendar month | the month's last day (2024-02-29) |
| ``quarter`` | Jan-Mar, Apr-Jun, Jul-Sep, Oct-Dec | Mar 31, Jun 30, Sep 30, Dec 31 |
| ``year`` | the calendar year | Dec 31 |

Weeks end on Sunday so that every calendar labels a period by its last calendar day, whatever the
holidays: a Friday close (CRSP, Ken French weekly files), a Thursday close before Good Friday and a
Saturday date all fall in the same Monday-Sunday week and get the same date; a Friday label would
depend on the exchange calendar. A TIMESTAMP WITH TIME ZONE is taken as the date in the session's
time zone. NULL stays NULL. The SQL is written once in DuckDB SQL and transpiled by sqlglot; it is
tested on DuckDB, PostgreSQL 15 and Spark (``tests/test_periods*.py``).

Text periods. :func:`classify_text_periods` looks at the distinct values of a text period column:

- ``ordered``: text order is time order, and the text is kept and compared as text. Every value
  has the same shape (same width, same separators) and its fields run from the year down:
  ``YYYY``, ``YYYYMM``, ``YYYYMMDD``, ``YYYY-MM``, ``YYYY-MM-DD`` (any one separator, zero-padded),
  ``YYYYQn`` / ``YYYY-Qn``, ``YYYY-Www`` (ISO week), ``YYYYmM`` (Stata ``%tm``) with two-digit months;
- ``parse``: the text names dates in one format the data make unambiguous, read into DATE by
  :func:`parse_text_period`: ``MM/DD/YYYY``, ``DD/MM/YYYY`` (some day above 12 decides),
  ``MM/YYYY``, ``YYYY-MM-DD`` / ``YYYY-MM`` without zero padding, ``Mon YYYY``, ``MonYYYY``,
  ``YYYY Mon``, ``DD Mon YYYY``, ``DDMonYYYY`` (SAS ``date9``), ``Mon DD YYYY``, ``YYYY-Mon-DD``,
  ``Qn YYYY``, ``YYYYmM`` (Stata ``%tm``);
- ``ambiguous``: both ``MM/DD/YYYY`` and ``DD/MM/YYYY`` read every value (no day above 12);
- ``unknown``: anything else (two-digit years, mixed formats, text digits that are not years...).

Reading a format: separators are any run of characters other than ASCII letters and digits,
leading zeros are optional, month names are English (``Jan``, ``January``, ``Sept``; any case).
A value that names a month, quarter, week or year is read as the period's **first day** (as
``fmduck load`` reads YYYYMM numbers); ``--freq`` then maps it to the period's last day. A value of
the right shape but no calendar date (``02/30/2001``) is an error in every engine; a value of
another shape is NULL.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlglot import exp

from fmduck import templates
from fmduck.errors import SpecError

FREQS = ("day", "week", "month", "quarter", "year")

# The period end of `fmduck_x`, DuckDB SQL. 1900-01-01 is a Monday: the day's offset into its ISO
# week is its day count from there, mod 7 (made non-negative for dates before 1900); INTEGER, as
# DuckDB adds no BIGINT to a DATE.
_WEEKDAY = "CAST(((DATE_DIFF('day', DATE '1900-01-01', {d}) % 7) + 7) % 7 AS INTEGER)"  # DATE + BIGINT fails
_END = {
    "day": "CAST(fmduck_x AS DATE)",
    "week": "CAST(fmduck_x AS DATE) + (6 - " + _WEEKDAY.format(d="CAST(fmduck_x AS DATE)") + ")",
    "month": "LAST_DAY(CAST(fmduck_x AS DATE))",
    "quarter": "LAST_DAY(CAST(DATE_TRUNC('quarter', CAST(fmduck_x AS DATE)) + INTERVAL 2 MONTH AS DATE))",
    "year": "LAST_DAY(CAST(DATE_TRUNC('year', CAST(fmduck_x AS DATE)) + INTERVAL 11 MONTH AS DATE))",
}


def period_end(expr: exp.Expression | str, freq: str) -> exp.Expression:
    """DATE expression: the last calendar day of the ``freq`` period holding ``expr`` (DATE or TIMESTAMP).

    ``expr`` is a sqlglot expression or DuckDB SQL text. Render it with ``fmduck.templates.sql``
    inside a template, which then transpiles to the engine's dialect."""
    return _fill(_END[check_freq(freq)], expr)


def period_end_date(value: date | datetime, freq: str) -> date:
    """Python twin of :func:`period_end`: the last calendar day of ``value``'s ``freq`` period."""
    day = value.date() if isinstance(value, datetime) else value
    freq = check_freq(freq)
    if freq == "day":
        return day
    if freq == "week":
        return day + timedelta(days=6 - day.weekday())
    if freq == "year":
        return date(day.year, 12, 31)
    last_month = day.month if freq == "month" else 3 * ((day.month - 1) // 3) + 3
    first_next = date(day.year + 1, 1, 1) if last_month == 12 else date(day.year, last_month + 1, 1)
    return first_next - timedelta(days=1)


def check_freq(freq: str) -> str:
    if freq not in FREQS:
        raise SpecError(f"--freq must be one of {', '.join(FREQS)}, got {freq!r}")
    return freq


_YYYYMM, _YYYYMMDD = (100_001, 999_912), (10_000_101, 99_991_231)


def yyyymm_format(values: list[int]) -> str | None:
    """``yyyymm`` when every value is in 100001-999912, ``yyyymmdd`` in 10000101-99991231, else None."""
    if not values:
        return None
    low, high = min(values), max(values)
    if _YYYYMM[0] <= low and high <= _YYYYMM[1]:
        return "yyyymm"
    if _YYYYMMDD[0] <= low and high <= _YYYYMMDD[1]:
        return "yyyymmdd"
    return None


# ------------------------------------------------------------------ text periods
@dataclass(frozen=True)
class TextFormat:
    """One text layout. ``pattern`` matches the normalized text (upper case, each run of other
    characters than letters and digits one space). ``year``/``month``/``day`` say where each
    field is: ``tN`` the N-th space-separated token, ``sA:L`` the L characters from position A,
    ``sA:`` the rest from A, ``-L`` the last L characters, ``afterM`` the text after the first M;
    a month prefixed ``name:`` is an English month name, ``q:`` a quarter (1-4), ``w:`` an ISO week."""

    name: str
    pattern: str
    year: str
    month: str = ""
    day: str = ""
    ordered: bool = False  # fields run from the year down: text order is time order for one shape
    strptime: str = ""     # DuckDB strptime pattern, for messages ('/' stands for the separator)

    @property
    def unit(self) -> str:
        if self.day:
            return "day"
        if not self.month:
            return "year"
        return {"q": "quarter", "w": "week"}.get(self.month.split(":")[0], "month")


_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_FULL_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
               "october", "november", "december", "sept")
_N, _NAME = "[0-9]{1,2}", "[A-Z]{3,9}"
FORMATS: tuple[TextFormat, ...] = (
    TextFormat("YYYY", "^[0-9]{4}$", "s1:4", ordered=True, strptime="%Y"),
    TextFormat("YYYYMM", "^[0-9]{4}(0[1-9]|1[0-2])$", "s1:4", "s5:2", ordered=True, strptime="%Y%m"),
    TextFormat("YYYYMMDD", "^[0-9]{8}$", "s1:4", "s5:2", "s7:2", ordered=True, strptime="%Y%m%d"),
    TextFormat("YYYY-MM", f"^[0-9]{{4}} {_N}$", "t1", "t2", ordered=True, strptime="%Y/%m"),
    TextFormat("YYYY-MM-DD", f"^[0-9]{{4}} {_N} {_N}$", "t1", "t2", "t3", ordered=True, strptime="%Y/%m/%d"),
    TextFormat("YYYYQn", "^[0-9]{4} ?Q[1-4]$", "s1:4", "q:-1", ordered=True),
    TextFormat("YYYY-Www", "^[0-9]{4} ?W(0[1-9]|[1-4][0-9]|5[0-3])$", "s1:4", "w:-2", ordered=True),
    TextFormat("YYYYmM", "^[0-9]{4} ?M[0-9]{1,2}$", "s1:4", "afterM", ordered=True),
    TextFormat("MM/DD/YYYY", f"^{_N} {_N} [0-9]{{4}}$", "t3", "t1", "t2", strptime="%m/%d/%Y"),
    TextFormat("DD/MM/YYYY", f"^{_N} {_N} [0-9]{{4}}$", "t3", "t2", "t1", strptime="%d/%m/%Y"),
    TextFormat("MM/YYYY", f"^{_N} [0-9]{{4}}$", "t2", "t1", strptime="%m/%Y"),
    TextFormat("Qn YYYY", "^Q[1-4] ?[0-9]{4}$", "-4", "q:s2:1"),
    TextFormat("Mon YYYY", f"^{_NAME} [0-9]{{4}}$", "t2", "name:t1", strptime="%b %Y"),
    TextFormat("MonYYYY", "^[A-Z]{3}[0-9]{4}$", "s4:4", "name:s1:3", strptime="%b%Y"),
    TextFormat("YYYY Mon", f"^[0-9]{{4}} {_NAME}$", "t1", "name:t2", strptime="%Y %b"),
    TextFormat("DD Mon YYYY", f"^{_N} {_NAME} [0-9]{{4}}$", "t3", "name:t2", "t1", strptime="%d %b %Y"),
    TextFormat("DDMonYYYY", "^[0-9]{2}[A-Z]{3}[0-9]{4}$", "s6:4", "name:s3:3", "s1:2", strptime="%d%b%Y"),
    TextFormat("Mon DD YYYY", f"^{_NAME} {_N} [0-9]{{4}}$", "t3", "name:t1", "t2", strptime="%b %d %Y"),
    TextFormat("YYYY-Mon-DD", f"^[0-9]{{4}} {_NAME} {_N}$", "t1", "name:t2", "t3", strptime="%Y/%b/%d"),
)
_ALIASES = {"M-D-YYYY": "MM/DD/YYYY", "D-M-YYYY": "DD/MM/YYYY", "M-YYYY": "MM/YYYY", "YYYY-M-D": "YYYY-MM-DD",
            "YYYY-M": "YYYY-MM", "YYYY-QN": "YYYYQn", "YYYYWWW": "YYYY-Www", "YYYYMMM": "YYYYmM",
            "MMM-YYYY": "Mon YYYY", "DDMMMYYYY": "DDMonYYYY", "QN-YYYY": "Qn YYYY"}  # keys as _key() spells them
TEXT_FORMATS = tuple(f.name for f in FORMATS)


def text_format(name: str) -> TextFormat:
    """The format a user named (``--period-format``): its exact name, else ignoring case and separators
    (``mm-dd-yyyy``), or an alias (``M/D/YYYY``, ``YYYY-Qn``, ``DD-MON-YYYY`` ...)."""
    for f in FORMATS:
        if f.name == name:
            return f
    key = _key(name)
    key = _key(_ALIASES[key]) if key in _ALIASES else key
    for f in FORMATS:  # first match: YYYYMM before Stata's YYYYmM
        if _key(f.name) == key:
            return f
    raise SpecError(f"unknown period format {name!r}; text formats: {', '.join(TEXT_FORMATS)}")


def _key(name: str) -> str:
    return re.sub(r"[^0-9A-Z]+", "-", name.upper()).strip("-")


def normalize(value: str) -> str:
    """Python twin of the SQL normalization: separators to one space, trimmed, upper case."""
    return re.sub(r"[^0-9A-Za-z]+", " ", value).strip().upper()


def parse_text_value(value: str, fmt: str | TextFormat) -> date:
    """Python twin of :func:`parse_text_period`: the DATE a text value names; ValueError if none."""
    f = fmt if isinstance(fmt, TextFormat) else text_format(fmt)
    n = normalize(value)
    if not re.fullmatch(f.pattern, n):
        raise ValueError(f"{value!r} is not {f.name}")
    year = int(_py_field(n, f.year))
    if f.unit == "week":
        return date.fromisocalendar(year, int(_py_field(n, f.month[2:])), 1)
    month = _py_month(n, f.month) if f.month else 1
    return date(year, month, int(_py_field(n, f.day)) if f.day else 1)


def _py_field(n: str, where: str) -> str:
    if where.startswith("t"):
        parts = n.split(" ")
        i = int(where[1:])
        return parts[i - 1] if i <= len(parts) else ""
    if where.startswith("s"):
        start, _, length = where[1:].partition(":")
        return n[int(start) - 1:int(start) - 1 + int(length)] if length else n[int(start) - 1:]
    if where.startswith("-"):
        return n[int(where):]
    return n.split("M", 1)[1]  # afterM


def _py_month(n: str, where: str) -> int:
    kind, _, src = where.partition(":")
    if kind == "name":
        text = _py_field(n, src).lower()
        if text not in _MONTH_NAMES and text not in _FULL_NAMES:
            raise ValueError(f"{text!r} is not a month name")
        return _MONTH_NAMES.index(text[:3]) + 1
    if kind == "q":
        return 3 * int(_py_field(n, src)) - 2
    return int(_py_field(n, where))


def parse_text_period(expr: exp.Expression | str, fmt: str | TextFormat) -> exp.Expression:
    """DATE expression: the date a text period names in format ``fmt`` (its first day for months,
    quarters, ISO weeks and years); NULL for NULL or for text of another shape. An integer
    expression is read as its decimal text (``200101`` with ``YYYYMM``)."""
    f = fmt if isinstance(fmt, TextFormat) else text_format(fmt)
    n = "UPPER(TRIM(REGEXP_REPLACE(CAST(fmduck_x AS VARCHAR), '[^0-9A-Za-z]+', ' ', 'g')))"
    year = _sql_field(n, f.year)
    if f.unit == "week":
        jan4 = f"CAST({year} || '-01-04' AS DATE)"
        week = f"CAST({_sql_field(n, f.month[2:])} AS INTEGER)"
        value = f"{jan4} - {_WEEKDAY.format(d=jan4)} + 7 * ({week} - 1)"
    else:
        month = _sql_month(n, f.month) if f.month else "'1'"
        day = _sql_field(n, f.day) if f.day else "'1'"
        value = f"CAST({year} || '-' || {month} || '-' || {day} AS DATE)"
    return _fill(f"CASE WHEN REGEXP_MATCHES({n}, '{f.pattern}') THEN {value} END", expr)


def _sql_field(n: str, where: str) -> str:
    if where.startswith("t"):
        return f"SPLIT_PART({n}, ' ', {int(where[1:])})"
    if where.startswith("s"):
        start, _, length = where[1:].partition(":")
        return f"SUBSTRING({n}, {int(start)}, {int(length)})" if length else f"SUBSTRING({n}, {int(start)})"
    if where.startswith("-"):
        return f"SUBSTRING({n}, LENGTH({n}) - {-int(where) - 1}, {-int(where)})"
    return f"SPLIT_PART({n}, 'M', 2)"  # afterM


def _sql_month(n: str, where: str) -> str:
    kind, _, src = where.partition(":")
    if kind == "name":
        whens = " ".join(f"WHEN '{m.upper()}' THEN '{i}'" for i, m in enumerate(_MONTH_NAMES, 1))
        return f"(CASE SUBSTRING({_sql_field(n, src)}, 1, 3) {whens} END)"
    if kind == "q":
        whens = " ".join(f"WHEN '{q}' THEN '{3 * q - 2}'" for q in range(1, 5))
        return f"(CASE {_sql_field(n, src)} {whens} END)"
    return _sql_field(n, where)


def _fill(template: str, expr: exp.Expression | str) -> exp.Expression:
    """Parse DuckDB SQL holding the column ``fmduck_x`` and put ``expr`` in its place."""
    value = exp.maybe_parse(expr, dialect="duckdb") if isinstance(expr, str) else expr
    tree = exp.maybe_parse(template, dialect="duckdb")
    return tree.transform(
        lambda node: value.copy() if isinstance(node, exp.Column) and node.name == "fmduck_x" else node)


# ------------------------------------------------------------------ classifying text periods
@dataclass(frozen=True)
class TextPeriods:
    """What a text period column holds. ``kind``: ``ordered`` (keep the text), ``parse`` (read
    ``format`` into DATE with :func:`parse_text_period`), ``ambiguous`` or ``unknown`` (refuse with
    ``message``). ``formats``: every format that reads all values (two when ambiguous)."""

    kind: str
    format: str | None
    message: str
    examples: tuple[str, ...]
    formats: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.kind in ("ordered", "parse")


def classify_text_periods(samples: list[str | None], column: str = "period", label: str | None = None,
                          option: str | None = "--period-format") -> TextPeriods:
    """Classify the distinct values of a text period column (pass all of them: the calendar).

    ``column`` is the column's name (in the view of a fix), ``label`` how messages name it (default
    ``column 'period'``; e.g. ``table crsp.date``); ``option`` is the option that names a format in
    the fix (``fmduck load`` takes ``--period-format``; :func:`format_option` for a run's input; None:
    no option can, a view converts the column)."""
    name = column
    column = label or f"column {column!r}"
    values = sorted({v for v in samples if v is not None and v.strip()})
    examples = tuple(_spread(values, 3))
    shown = ", ".join(repr(v) for v in examples)
    if not values:
        return TextPeriods("unknown", None, f"{column}: no non-empty text periods", ())
    fits = [f for f in FORMATS if all(_reads(v, f) for v in values)]
    if len(fits) > 1:
        names = tuple(f.name for f in fits)
        views = " or ".join(f"{_view(name, f, values[0])} ({f.name})" for f in fits)
        how = f"{' or '.join(f'{option} {shlex.quote(n)}' for n in names)}, or convert them in a view: " if option \
            else "convert them in a view: "
        return TextPeriods(
            "ambiguous", None,
            f"{column}: text periods like {shown} read as {' and as '.join(names)} (no day above 12); "
            f"say which: {how}{views}", examples, names)
    if fits:
        f = fits[0]
        if f.ordered and len({_shape(v) for v in values}) == 1:
            return TextPeriods("ordered", f.name, f"{column}: text periods like {shown} are {f.name}, "
                               "in time order as text; compared as text", examples, (f.name,))
        return TextPeriods("parse", f.name, f"{column}: text periods like {shown} are {f.name}; "
                           f"read as DATE ({'the day' if f.unit == 'day' else 'first day of the ' + f.unit})",
                           examples, (f.name,))
    return TextPeriods("unknown", None, _unknown_message(values, name, column, shown, option), examples)


def _reads(value: str, f: TextFormat) -> bool:
    try:
        parse_text_value(value, f)
    except ValueError:
        return False
    return True


def _shape(value: str) -> str:
    return re.sub(r"[0-9]", "9", value)


def _spread(values: list[str], k: int) -> list[str]:
    """Up to k values spread over the sorted list (first, middle, last)."""
    if len(values) <= k:
        return values
    return [values[round(i * (len(values) - 1) / (k - 1))] for i in range(k)]


def _view(col: str, f: TextFormat, example: str) -> str:
    """A DuckDB view that converts the column, with the separator the data use."""
    col = templates.ident(col)
    sep = re.search(r"[^0-9A-Za-z]+", example.strip())
    pattern = f.strptime.replace("/", sep.group(0) if sep else "")
    return f"CREATE VIEW v AS SELECT * REPLACE (CAST(strptime({col}, '{pattern}') AS DATE) AS {col}) FROM t"


BLANK_HEADER = "column0"  # read_csv's name for a blank first header cell (Ken French's period column)


def format_option(label: str, column: str) -> str | None:
    """The option that reads the text periods of ``column`` of the input ``label`` in a named format:
    ``fmduck load … --period-format`` for a file (``returns file PATH``); None for a table (a view does)."""
    _, is_file, path = label.partition(" file ")
    if not is_file:
        return None
    named = "" if column in ("period", BLANK_HEADER) else f" --period-name {shlex.quote(column)}"
    return f"fmduck load DB {shlex.quote(path)} --table NAME{named} --period-format"


def _unknown_message(values: list[str], name: str, column: str, shown: str, option: str | None) -> str:
    formats = f"{option} FORMAT with FORMAT one of {', '.join(TEXT_FORMATS)}; " if option else ""
    fix = f"convert them to DATE ({formats}or a view with strptime) or to integers"
    if all(v.strip().isdigit() for v in values):
        return (f"{column}: text periods like {shown} are digits that do not sort as numbers as text "
                f"('10' < '9'); cast them to integers (CAST({templates.ident(name)} AS INTEGER) in a view)")
    if all(re.fullmatch(r"[0-9]{1,2} [0-9]{1,2} [0-9]{2}|[0-9]{1,2} [0-9]{2}|[A-Z]{3,9} [0-9]{2}", normalize(v))
           for v in values):
        return f"{column}: text periods like {shown} have two-digit years (19xx or 20xx?); {fix}"
    best, n_best = None, 0
    for f in FORMATS:
        n = sum(_reads(v, f) for v in values)
        if n > n_best:
            best, n_best = f, n
    if best is not None:
        odd = [v for v in values if not _reads(v, best)]
        return (f"{column}: {len(odd):,} of {len(values):,} distinct text periods are not {best.name} like the "
                f"rest, e.g. {', '.join(repr(v) for v in odd[:3])}; fix or remove them, or {fix}")
    return f"{column}: text periods like {shown} are in no format fmduck reads as time; {fix}"
