"""Turn files into tables: long panels as they are, and wide files laid out as Ken French publishes
them (first column the period as YYYYMM or YYYYMMDD, one column per portfolio, returns in percent).

Reading. CSV/TSV files are read by DuckDB's ``read_csv`` — the reader ``--returns file.csv`` uses —
so a loaded table and the file read directly have the same column types: 'YYYY-MM-DD' text is a
DATE, a timestamp a TIMESTAMP, numbers are numbers. Missing values: empty and ``NA``; in ``--wide``
files and Ken French files also ``-99.99`` and ``-999`` (in another long file -99.99 is a return). One exception
to "as read_csv": day/month dates. ``read_csv`` reads '01/02/2001' as 1 February (DD/MM) when no
value decides; here such columns are read by :func:`fmduck.periods.classify_text_periods`, which
reads them when some day is above 12 (the same dates as ``read_csv``) and otherwise refuses the
period column and keeps any other column as text. Parquet files are read by polars.

Ken French files as downloaded (:mod:`fmduck.french`): description lines, then blocks (a title line,
a header starting with a comma, rows keyed by YYYYMM, YYYY or YYYYMMDD) and a copyright line. The
first block is read (``--block N`` or ``--block TITLE``: another), as a file of its own; a note says
what was read and what was left out, and how many -99.99 / -999 became NULL.

The period column (``--period-format``):

- ``auto`` (default): integers 100001-999912 are YYYYMM and become the **first day of the month**
  as DATE (19490101 ... as YYYYMMDD: the day); other integers stay integers. Text in time order as
  text (``2001-01``, ``2001Q1``) stays text; text in another unambiguous format (``1/2001``,
  ``Jan 2001``, ``01/31/2001``) becomes DATE; ambiguous or unknown text is refused with the fix.
  With ``fmduck run --freq month`` a first-of-month date is mapped to its month's last day, so
  YYYYMM factors meet CRSP's last-trading-day dates and month-end dates alike.
- ``yyyymm`` / ``yyyymmdd``: the same conversion, required (integers or digit text).
- a text format of :data:`fmduck.periods.TEXT_FORMATS` (``MM/DD/YYYY``, ``DD/MM/YYYY``, ``MM/YYYY``,
  ``Mon YYYY``, ``YYYY-MM-DD``, ``YYYYQn`` ...; separators and case free): read the column as
  text in that format into DATE (first day of a month, quarter, week or year); a value in
  another format is refused with examples.
- ``none``: keep the column exactly as read.

Units (``--unit percent|bp``) scale only the columns named: ``--percent-cols a,b`` in a long file,
the return columns of a ``--wide`` file. Identifiers, periods and characteristics are never scaled;
a long file with a unit and no ``--percent-cols`` is refused.
"""

from __future__ import annotations

import argparse
import re
import shlex
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
from sqlglot import exp

from fmduck import french, templates
from fmduck.engine import DuckDBEngine, Engine
from fmduck.errors import InputError, SpecError
from fmduck.periods import TEXT_FORMATS, classify_text_periods, parse_text_period, text_format, yyyymm_format

PERIOD_FORMATS = ("auto", "yyyymm", "yyyymmdd", "none", *TEXT_FORMATS)
UNITS = {"decimal": 1.0, "percent": 100.0, "bp": 10_000.0}
MISSING = ("", "NA")
KEN_FRENCH_MISSING = ("-99.99", "-999")
# a column whose name says it is a return (ret, retx, dlret, vwretd, ret_1m, return, excess_return, ...)
RETURN_NAME = re.compile(r"(.*[^a-z])?(dl|ex|vw|ew|x)?(ret[xd]?|rtn|returns?)([^a-z].*)?")


def read_file(path: str | Path, *, missing: tuple[str, ...] = MISSING, text: tuple[str, ...] = (),
              source: str | None = None) -> pl.DataFrame:
    """A CSV/TSV file through DuckDB's ``read_csv`` (``missing`` read as NULL, ``text`` columns as
    VARCHAR), a Parquet file through polars. ``source``: the file's name in messages (default ``path``)."""
    path = _existing(path)
    if ".parquet" in path.suffixes:
        return pl.read_parquet(path)
    reader = DuckDBEngine()
    try:
        return reader.query(f"SELECT * FROM {read_csv_sql(path, missing, text)}")
    except Exception as exc:  # DuckDB's own error types; the message names the row
        raise InputError(f"cannot read {source or path}: {str(exc).strip().splitlines()[0]}") from exc
    finally:
        reader.close()


def load(engine: Engine, path: str | Path, table: str, *, replace: bool = False,
         notify: Callable[[str], None] | None = None, **options: Any) -> int:
    """Load ``path`` into a new table ``table``; return the number of rows written. ``options``: those
    of :func:`read_prepared` and :func:`prepare`; ``notify`` receives notes (columns kept as text) for the
    user. An existing ``table`` is refused (unless ``replace``) before the file is read."""
    table_sql = templates.table(table)
    if not replace:
        parsed = exp.to_table(table, dialect="duckdb")
        schema = parsed.db or ("public" if engine.dialect == "postgres" else "main")
        if engine.table_columns(schema, parsed.name) is not None:
            raise InputError(f"table {table} already exists; --replace overwrites it, or load into another --table")
    frame = read_prepared(path, notify=notify, **options)
    engine.create_table(table_sql, frame, replace=replace)
    return frame.height


def read_prepared(path: str | Path, *, wide: bool = False, period: str = "period",
                  period_format: str = "auto", block: str | int | None = None,
                  notify: Callable[[str], None] | None = None, describe: Callable[[str], None] | None = None,
                  **options: Any) -> pl.DataFrame:
    """:func:`read_file` with the day/month date columns and a period column in a text format read
    as text, then :func:`prepare`. A Ken French file as downloaded (:mod:`fmduck.french`): its first
    block, or ``block`` (a number or a title), with -99.99 and -999 as NULL; ``describe`` receives what
    was read and what was left out."""
    path = _existing(path)
    check_period_format(period_format)
    found = None if ".parquet" in path.suffixes else french.layout(path)
    if block is not None and found is None:
        raise SpecError(f"--block picks a block of a Ken French file (a header line starting with a comma above "
                        f"rows keyed by YYYYMM, YYYY or YYYYMMDD); {path} has none")
    if ".parquet" in path.suffixes:
        return prepare(read_file(path), wide=wide, period=period, period_format=period_format,
                       source=str(path), notify=notify, **options)
    if found is None:
        return _read_csv(path, str(path), wide, period, period_format, notify, options)
    chosen = found.choose(block, str(path))
    if not chosen.returns:  # counts, sizes, ratios: no unit to divide by, no note that they look like percent
        if options.get("unit") not in (None, "decimal"):
            raise SpecError(f"{path}: {chosen.name()} holds no returns; --unit {options['unit']} divides returns "
                            "(leave it out)")
        options = {**options, "unit": "decimal"}
    with tempfile.TemporaryDirectory(prefix="fmduck-") as folder:
        plain = Path(folder) / "block.csv"
        text = french.note(str(path), found, chosen, french.write_block(chosen, plain))
        if text and describe is not None:
            describe(text)
        return _read_csv(plain, str(path), wide, period, period_format, notify, options)


def _read_csv(path: Path, source: str, wide: bool, period: str, period_format: str,
              notify: Callable[[str], None] | None, options: dict[str, Any]) -> pl.DataFrame:
    missing = MISSING + KEN_FRENCH_MISSING if wide else MISSING
    types, day_month = sniff_csv(path, missing, source)
    first_blank = french.blank_first_header(path)
    period_in_file = next(iter(types)) if wide or first_blank else period
    text = list(day_month)
    if period_format not in ("auto", "none", "yyyymm", "yyyymmdd") and types.get(period_in_file, "").startswith(
            ("DATE", "TIMESTAMP")):
        text.append(period_in_file)
    frame = read_file(path, missing=missing, text=tuple(dict.fromkeys(text)), source=source)
    if first_blank and not wide:
        frame = frame.rename({frame.columns[0]: period})
    return prepare(frame, wide=wide, period=period, period_format=period_format, source=source,
                   day_month=tuple(c for c in day_month if c != period_in_file), notify=notify,
                   ken_french=first_blank, **options)


def prepare(frame: pl.DataFrame, *, wide: bool = False, period: str = "period", asset: str = "asset",
            value: str = "ret", period_format: str = "auto", unit: str | None = None,
            percent_cols: list[str] | None = None, source: str = "file", day_month: tuple[str, ...] = (),
            ken_french: bool = False,
            notify: Callable[[str], None] | None = None) -> pl.DataFrame:
    """Name the period column, read it (``period_format``), unpivot wide files, scale ``unit`` columns.

    ``day_month``: other text columns that hold day/month dates, read as DATE when unambiguous.
    ``unit`` None: not given — decimal, with a note when the file looks like Ken French's percent."""
    check_period_format(period_format)
    unit_given, unit = unit is not None, unit or "decimal"
    if unit not in UNITS:
        raise SpecError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
    if wide:
        frame = frame.rename({frame.columns[0]: period})
    if period not in frame.columns:
        raise InputError(f"{source}: no period column {period!r}; columns are {', '.join(frame.columns)} "
                         "(name it with --period-name)")
    frame = frame.with_columns(_read_period(frame[period], period_format, source))
    for name in day_month:
        frame = frame.with_columns(_read_dates(frame[name], source, notify))
    value_cols = [c for c in frame.columns if c != period]
    if wide:
        bad = [c for c in value_cols if not frame[c].dtype.is_numeric()]
        if bad:
            raise InputError(f"{source}: wide layout needs numeric asset columns; not numeric: {', '.join(bad)}")
        frame = frame.unpivot(index=period, on=value_cols, variable_name=asset, value_name=value).select(
            asset, period, value)
    scaled = _unit_columns(frame, wide, value, period, unit, percent_cols or [], source, ken_french)
    if not unit_given and (ken_french or wide) and notify is not None:
        _percent_note(frame, value if wide else None, period, source, ken_french, notify)
    if ken_french and not wide and scaled and not percent_cols and notify is not None:
        notify(f"{source} is laid out as Ken French publishes (a blank first header): its value columns "
               f"{', '.join(scaled)} are returns and were divided by {int(UNITS[unit])}")
    return frame.with_columns([_divide(frame[c], UNITS[unit]) for c in scaled])


def check_period_format(period_format: str) -> None:
    if period_format in ("auto", "yyyymm", "yyyymmdd", "none"):
        return
    try:
        text_format(period_format)
    except SpecError:
        raise SpecError(f"period format must be auto, yyyymm, yyyymmdd, none or a text format "
                        f"({', '.join(TEXT_FORMATS)}), got {period_format!r}") from None


# ------------------------------------------------------------------ periods
def _read_period(series: pl.Series, fmt: str, source: str) -> pl.Series:
    where = f"{source}: period column {series.name!r}"
    if fmt == "none":
        return series
    if series.dtype.is_integer():
        if fmt == "auto":
            fmt = yyyymm_format(series.drop_nulls().to_list())
            if fmt is None:
                return series
        return _parse(series, "YYYYMM" if fmt == "yyyymm" else "YYYYMMDD" if fmt == "yyyymmdd" else fmt, where)
    if series.dtype == pl.String:
        if fmt in ("yyyymm", "yyyymmdd"):
            return _parse(series, fmt.upper(), where)
        if fmt != "auto":
            return _parse(series, fmt, where)
        kind = classify_text_periods(series.unique().to_list(), series.name, where)
        if kind.kind == "ordered":
            return series
        if kind.kind == "parse":
            return _parse(series, kind.format, where)
        raise InputError(f"{kind.message}; or --period-format none keeps the text as it is")
    if fmt != "auto":
        raise InputError(f"{where} is {series.dtype}, not integers or text; --period-format {fmt} reads those "
                         "(drop it to keep the column as it is)")
    return series


def _read_dates(series: pl.Series, source: str, notify: Callable[[str], None] | None) -> pl.Series:
    """A day/month date column other than the period: DATE when unambiguous, else kept as text."""
    kind = classify_text_periods(series.unique().to_list(), series.name, f"{source}: column {series.name!r}")
    if kind.kind == "parse" and kind.format in ("MM/DD/YYYY", "DD/MM/YYYY"):
        return _parse(series, kind.format, f"{source}: column {series.name!r}")
    if notify is not None:
        notify(f"{kind.message.split(';')[0]}; kept as text")
    return series


def _parse(series: pl.Series, fmt: str, where: str) -> pl.Series:
    """``series`` read in text format ``fmt`` into DATE by the SQL the engines run
    (:func:`fmduck.periods.parse_text_period`); a value in another format is refused."""
    engine = DuckDBEngine()
    try:
        engine.upload("fmduck_load_period", series.to_frame("v"))
        expr = templates.sql(parse_text_period(templates.ident("v"), fmt))
        parsed = engine.query(f"SELECT {expr} AS v FROM fmduck_load_period")["v"]
    except Exception as exc:  # a value of the right shape that is no date (02/30/2001)
        raise InputError(f"{where}: not every value is a {text_format(fmt).name} date: "
                         f"{str(exc).strip().splitlines()[0]}") from exc
    finally:
        engine.close()
    bad = series.filter(series.is_not_null() & parsed.is_null()).unique(maintain_order=True)
    if bad.len():
        shown = ", ".join(repr(v) for v in bad.head(3).to_list())
        raise InputError(f"{where}: {bad.len():,} distinct value(s) are not {text_format(fmt).name}, e.g. {shown}; "
                         "give the format with --period-format, or --period-format none to keep the column")
    return parsed.alias(series.name)


# ------------------------------------------------------------------ units
def _unit_columns(frame: pl.DataFrame, wide: bool, value: str, period: str, unit: str, percent_cols: list[str],
                  source: str, ken_french: bool = False) -> list[str]:
    """The columns ``unit`` scales: ``percent_cols``; in a --wide file the returns; in a long Ken French file
    (blank first header: every value column is a return or factor) all value columns."""
    if unit == "decimal":
        if percent_cols:
            raise SpecError("--percent-cols names the columns --unit percent (or bp) divides; give --unit")
        return []
    if wide:
        if percent_cols:
            raise SpecError("--percent-cols is for long files: in a --wide file --unit scales every return column")
        return [value]
    numeric = [c for c in frame.columns if c != period and frame[c].dtype.is_numeric()]
    if not percent_cols and ken_french:
        return numeric
    if not percent_cols:
        returns = [c for c in numeric if RETURN_NAME.fullmatch(c.lower())]
        raise SpecError(f"--unit {unit} on a long file needs --percent-cols naming the columns in {unit} "
                        f"(e.g. --percent-cols {shlex.quote(','.join(returns) or 'ret')}); identifiers and "
                        "characteristics are never scaled")
    missing = [c for c in percent_cols if c not in frame.columns]
    if missing:
        raise InputError(f"{source}: --percent-cols {', '.join(missing)} not in the file; "
                         f"it has {', '.join(frame.columns)}")
    wrong = [c for c in percent_cols if c == period or c not in numeric]
    if wrong:
        raise InputError(f"{source}: --percent-cols must name numeric value columns, not the period or text: "
                         f"{', '.join(wrong)}")
    return list(dict.fromkeys(percent_cols))


def _percent_note(frame: pl.DataFrame, value: str | None, period: str, source: str, ken_french: bool,
                  notify: Callable[[str], None]) -> None:
    """No --unit on a Ken French layout: say the values were kept as they are, with their typical size."""
    cols = [value] if value else [c for c in frame.columns if c != period and frame[c].dtype.is_numeric()]
    if not cols:
        return
    typical = frame.select(pl.concat_list([pl.col(c).abs() for c in cols]).explode().median()).item()
    if typical is None or (not ken_french and typical < 0.3):
        return
    layout = "laid out as Ken French publishes (a blank first header)" if ken_french else "a wide file"
    notify(f"{source} is {layout}; such files are usually in percent, and its values were loaded as they are "
           f"(typical |x| {typical:.3g}): add --unit percent to divide them by 100 (--unit decimal keeps them "
           "and silences this note)")


def _divide(series: pl.Series, scale: float) -> pl.Series:
    """``series / scale`` as IEEE division (as numpy, pandas and SQL divide; polars multiplies by
    the reciprocal, 1 ulp off for 5.34 / 100); NULL stays NULL."""
    values = series.cast(pl.Float64)
    divided = pl.Series(series.name, values.to_numpy() / scale, dtype=pl.Float64)
    return pl.select(pl.when(values.is_null()).then(None).otherwise(divided).alias(series.name)).to_series()


# ------------------------------------------------------------------ files
def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    return path


def read_csv_sql(path: Path, missing: tuple[str, ...] = MISSING, text: tuple[str, ...] = ()) -> str:
    """The ``read_csv(...)`` call: DuckDB's sniffer, ``missing`` as NULL, ``text`` columns as VARCHAR."""
    args = [templates.literal(str(path)), "nullstr = [" + ", ".join(templates.literal(m) for m in missing) + "]"]
    if text:
        args.append("types = {" + ", ".join(f"{templates.literal(c)}: 'VARCHAR'" for c in text) + "}")
    return f"read_csv({', '.join(args)})"


def sniff_csv(path: Path, missing: tuple[str, ...] = MISSING, source: str | None = None
              ) -> tuple[dict[str, str], tuple[str, ...]]:
    """Column types as ``read_csv`` reads them, and the DATE/TIMESTAMP columns it reads with a
    day/month format ('%d/%m/%Y' when no value decides): read those as ``text`` and classify them."""
    reader = DuckDBEngine()
    try:
        types = dict(reader.query(f"DESCRIBE SELECT * FROM {read_csv_sql(path, missing, ())}")
                     .select("column_name", "column_type").iter_rows())
        sniffed = reader.query(f"SELECT DateFormat, TimestampFormat FROM sniff_csv({templates.literal(str(path))})")
    except Exception as exc:
        raise InputError(f"cannot read {source or path}: {str(exc).strip().splitlines()[0]}") from exc
    finally:
        reader.close()
    date_fmt, ts_fmt = sniffed.row(0)
    day_month = tuple(c for c, t in types.items()
                      if (t == "DATE" and date_fmt and not date_fmt.startswith("%Y"))
                      or (t.startswith("TIMESTAMP") and ts_fmt and not ts_fmt.startswith("%Y")))
    return types, day_month


# ------------------------------------------------------------------ command line
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``fmduck load``."""
    p.add_argument("database", help="the database to load into: a DuckDB file (created if missing) or a "
                   "postgresql:// URL")
    p.add_argument("file", type=Path, help="the CSV/TSV or Parquet file to load (a Ken French file as downloaded: "
                   "its first block, see --block)")
    p.add_argument("--table", required=True, help="name of the new table")
    p.add_argument("--wide", action="store_true", help="one column per asset, first column the period")
    p.add_argument("--block", metavar="N|TITLE",
                   help="a Ken French file with several blocks (value- and equal-weighted, annual, ...): the block "
                   "to read, by number or title (default: the first; the note on stderr lists them)")
    p.add_argument("--period-format", default="auto", metavar="FORMAT",
                   help="auto (default), yyyymm, yyyymmdd, none, or a text format: " + ", ".join(TEXT_FORMATS))
    p.add_argument("--unit", default=None, choices=list(UNITS),
                   help="unit of the --percent-cols (long file) or of the returns (--wide); default decimal "
                   "(a note when a Ken French layout looks like percent)")
    p.add_argument("--percent-cols", help="comma-separated columns in --unit (long files); nothing else is scaled")
    p.add_argument("--period-name", default="period", help="name of the period column (default period)")
    p.add_argument("--asset-name", default="asset", help="wide files: name of the asset column")
    p.add_argument("--value-name", default="ret", help="wide files: name of the value column")
    p.add_argument("--replace", action="store_true", help="replace the table if it exists")


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`load` keyword arguments from the parsed ``fmduck load`` options."""
    cols = [c.strip() for c in args.percent_cols.split(",") if c.strip()] if args.percent_cols else None
    return {"replace": args.replace, "wide": args.wide, "period": args.period_name, "asset": args.asset_name,
            "value": args.value_name, "period_format": args.period_format, "unit": args.unit, "percent_cols": cols,
            "block": args.block}
