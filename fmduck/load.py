"""Turn files into tables: long panels as they are, and wide files laid out as Ken French publishes
them (first column the period as YYYYMM or YYYYMMDD, one column per portfolio, returns in percent)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from fmduck import templates
from fmduck.engine import Engine
from fmduck.errors import InputError, SpecError

PERIOD_FORMATS = ("auto", "yyyymm", "yyyymmdd", "none")
UNITS = {"decimal": 1.0, "percent": 100.0, "bp": 10_000.0}


def read_file(path: str | Path) -> pl.DataFrame:
    """Read a CSV/TSV or Parquet file into polars."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    if ".parquet" in path.suffixes:
        return pl.read_parquet(path)
    separator = "\t" if ".tsv" in path.suffixes else ","
    try:
        return pl.read_csv(path, separator=separator, infer_schema_length=10_000, null_values=["", "NA", "-99.99", "-999"])
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc


def prepare(frame: pl.DataFrame, *, wide: bool = False, period: str = "period", asset: str = "asset",
            value: str = "ret", period_format: str = "auto", unit: str = "decimal",
            source: str = "file") -> pl.DataFrame:
    """Name the period column, convert YYYYMM(DD) periods to dates, unpivot wide files, scale units."""
    if period_format not in PERIOD_FORMATS:
        raise SpecError(f"period format must be one of {', '.join(PERIOD_FORMATS)}, got {period_format!r}")
    if unit not in UNITS:
        raise SpecError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
    first = frame.columns[0]
    if wide or first.strip() == "":
        frame = frame.rename({first: period})
    if period not in frame.columns:
        raise InputError(f"{source}: no period column {period!r}; columns are {', '.join(frame.columns)}")
    frame = frame.with_columns(_convert_period(frame[period], period_format, source))
    value_cols = [c for c in frame.columns if c != period]
    if wide:
        bad = [c for c in value_cols if not frame[c].dtype.is_numeric()]
        if bad:
            raise InputError(f"{source}: wide layout needs numeric asset columns; not numeric: {', '.join(bad)}")
        frame = frame.unpivot(index=period, on=value_cols, variable_name=asset, value_name=value).select(
            asset, period, value
        )
        value_cols = [value]
    scale = UNITS[unit]
    if scale != 1.0:
        numeric = [c for c in value_cols if frame[c].dtype.is_numeric() and c not in (asset,)]
        frame = frame.with_columns([(pl.col(c).cast(pl.Float64) / scale).alias(c) for c in numeric])
    return frame


def load(engine: Engine, path: str | Path, table: str, *, replace: bool = False, **options: Any) -> int:
    """Load ``path`` into a new table ``table``; return the number of rows written."""
    frame = prepare(read_file(path), source=str(path), **options)
    engine.create_table(templates.table(table), frame, replace=replace)
    return frame.height


def _convert_period(series: pl.Series, fmt: str, source: str) -> pl.Series:
    if fmt == "none" or not series.dtype.is_integer():
        if fmt in ("yyyymm", "yyyymmdd") and not series.dtype.is_integer():
            raise InputError(f"{source}: period column {series.name!r} is {series.dtype}, not YYYYMM integers")
        return series
    values = series.drop_nulls()
    if fmt == "auto":
        if values.len() and values.min() >= 100_001 and values.max() <= 999_912:
            fmt = "yyyymm"
        elif values.len() and values.min() >= 10_000_101 and values.max() <= 99_991_231:
            fmt = "yyyymmdd"
        else:
            return series
    try:
        if fmt == "yyyymm":
            dates = [None if v is None else date(v // 100, v % 100, 1) for v in series.to_list()]
        else:
            dates = [None if v is None else date(v // 10_000, v // 100 % 100, v % 100) for v in series.to_list()]
    except ValueError as exc:
        raise InputError(f"{source}: period column {series.name!r} has a value that is not {fmt.upper()}: {exc}") from exc
    return pl.Series(series.name, dates, dtype=pl.Date)
