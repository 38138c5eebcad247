"""Export a stored run's estimates, or any of its results tables, as CSV, Markdown or JSON.

    fmduck export DB RUN [--format csv|md|json] [--table estimates] [-o FILE]

- ``csv``: RFC 4180 (polars ``write_csv``: fields with commas, quotes or line breaks are quoted);
  cells are written as stored (no spreadsheet-formula guard: a name starting with ``=`` stays as is);
- ``md``: a pipe table; names through ``fmduck.escape.md`` (``|`` and Markdown specials escaped),
  numbers exact (``fmt(value, None)``: the shortest text that reads back as the same float);
- ``json``: a list of records (one object per row); NaN and infinities become ``null``.

The rows come from the result tables (``fmduck.store.load_run``), the same as a report's; ``--table``
is any relation of the results schema (the run's rows: ``comparisons`` those naming it on either side,
``first_pass_windows`` one row per asset and window with a column per term). The format is ``--format``,
else the suffix of ``-o`` (another suffix is refused: ``-o x.xlsx`` would be CSV text), else csv.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from pathlib import Path
from typing import Any, TextIO

import polars as pl

from fmduck import templates
from fmduck.errors import FmduckError, SpecError
from fmduck.escape import csv_column, md
from fmduck.formatting import fmt
from fmduck.results import FamaMacBethResults

EXPORT_FORMATS = ("csv", "md", "json")
# column order of fmduck.lambdas (sql/results/schema.sql.j2); FamaMacBethResults holds λ_t wide
LAMBDA_COLUMNS = ["run_name", "run_id", "period", "period_date", "period_ts", "period_int", "period_index", "term",
                  "estimate", "r2", "adj_r2", "n"]


TABLES = ("runs", "first_pass", "lambdas", "estimates", "pricing_errors", "skipped")
STORED = ("run_history", "first_pass_terms", "comparisons")  # read from the schema (read_run_rows.sql.j2)
SUFFIXES = {"csv": "csv", "md": "md", "markdown": "md", "json": "json"}


def known_tables() -> list[str]:
    """Every relation of the results schema (:func:`fmduck.store.contract`: the core tables, the
    designs' tables and the first_pass view)."""
    from fmduck import store

    return list(store.contract())


def run_table(results: FamaMacBethResults, table: str = "estimates", engine: Any = None,
              schema: str = "fmduck") -> pl.DataFrame:
    """The rows of one results table of a run, columns as in SQL (``runs``: spec and fingerprint as JSON
    text; ``first_pass_windows``: one row per asset and window, a column per term's estimate, ``se_``
    and ``t_``). ``engine``: the results engine, for the tables the run does not hold (:data:`STORED`)."""
    from fmduck.store import JSON_FIELDS

    known = known_tables()
    if table not in known:
        raise SpecError(f"--table must be one of {', '.join(known)}; got {table!r}")
    if table == "runs":
        record = dict(results.run)
        for key in (*JSON_FIELDS, "first_pass_terms"):
            if key in record:
                record[key] = json.dumps(record[key], default=str)
        return pl.DataFrame([record])
    if table == "lambdas":
        long = results.lambdas_long
        return long.select([c for c in LAMBDA_COLUMNS if c in long.columns])
    if table == "first_pass_windows":
        pieces = list(results.first_pass_pieces())
        if not pieces:
            raise FmduckError(f"run {results.name!r} stored no first pass (no factors: no regression per asset)")
        return pl.concat(pieces, how="vertical_relaxed")
    if table in TABLES:
        return getattr(results, table)
    if table in STORED:
        if engine is None:
            raise FmduckError(f"table {table!r} is read from the results schema: give the engine")
        sql = templates.render("results/read_run_rows", engine.dialect, schema=templates.ident(schema),
                               table=templates.ident(table), kind=table)
        return engine.query(sql, {"run_name": results.name})
    frame = results.extra.get(table)
    if frame is None:
        raise FmduckError(f"run {results.name!r} has no rows in table {table!r} "
                          f"(its tables: {', '.join([*TABLES, 'first_pass_windows', *STORED, *results.extra])})")
    return frame


def to_markdown(frame: pl.DataFrame) -> str:
    """A pipe table: numeric columns right-aligned and exact, text escaped for Markdown."""
    numeric = [dtype.is_numeric() for dtype in frame.dtypes]

    def cell(value: Any, is_number: bool) -> str:
        if value is None:
            return ""
        if is_number and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                return str(value)  # nan, inf, -inf
            return fmt(value, None)
        return md(value)

    lines = ["| " + " | ".join(md(c) for c in frame.columns) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    for row in frame.iter_rows():
        lines.append("| " + " | ".join(cell(v, n) for v, n in zip(row, numeric)) + " |")
    return "\n".join(lines) + "\n"


def to_json(frame: pl.DataFrame) -> str:
    """Records, one object per row; non-finite floats as null, dates and times as ISO text."""
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    records = [{k: clean(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]
    return json.dumps(records, ensure_ascii=False, allow_nan=False, indent=1,
                      default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)) + "\n"


def write_frame(frame: pl.DataFrame, fmt_name: str, output: str | Path | TextIO | None = None) -> str | None:
    """Write ``frame`` as ``fmt_name`` to a file path or a text stream; ``output=None`` returns the text."""
    if fmt_name not in EXPORT_FORMATS:
        raise SpecError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt_name!r}")
    if fmt_name == "csv":
        text = frame.with_columns(csv_column(c) for c, t in frame.schema.items() if t == pl.Utf8).write_csv(None)
    elif fmt_name == "md":
        text = to_markdown(frame)
    else:
        text = to_json(frame)
    if output is None:
        return text
    if isinstance(output, (str, Path)):
        Path(output).write_text(text, encoding="utf-8")
    else:
        output.write(text)
    return None


def export(database: str | Path, run: str, fmt_name: str = "csv", *, table: str = "estimates",
           output: str | Path | TextIO | None = None, schema: str = "fmduck") -> str | None:
    """Export ``table`` of the stored ``run``: the library call behind ``fmduck export``.

    ``output``: a file path, a text stream, or None to get the text back."""
    from fmduck import store
    from fmduck.report.loading import open_results

    if fmt_name not in EXPORT_FORMATS:
        raise SpecError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt_name!r}")
    if isinstance(output, (str, Path)):
        output = Path(output)
        if str(output).endswith(("/", "\\")) or output.is_dir():
            raise FmduckError(f"-o {output} is a folder; give a file name such as {output / (run + '.' + fmt_name)}")
    engine = open_results(database)
    frame = run_table(store.load_run(engine, run, schema), table, engine, schema)
    if isinstance(output, Path):  # whole text first: a failed write leaves the old file, not half a new one
        text = write_frame(frame, fmt_name)
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise FmduckError(f"cannot write {output}: {exc.strerror or exc}") from exc
        return None
    return write_frame(frame, fmt_name, output)


# ------------------------------------------------------------------ CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("database", help="the database holding the results schema: a DuckDB file or a postgresql:// URL")
    p.add_argument("run", help="stored run name")
    p.add_argument("--format", dest="fmt", choices=EXPORT_FORMATS,
                   help="csv, md (a Markdown pipe table) or json (records); default: from the -o suffix, else csv")
    p.add_argument("--table", default="estimates", choices=known_tables(),
                   help="results table to export (default estimates): any table of the results schema, or the "
                   "first_pass view")
    p.add_argument("-o", "--output", type=Path,
                   help="file to write (default: standard output); a suffix .csv, .md or .json gives the format")
    p.add_argument("--schema", default="fmduck", help="results schema (default fmduck)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the name of the file written")


def cmd_export(args: argparse.Namespace) -> int:
    from fmduck.escape import text

    fmt_name = args.fmt
    if fmt_name is None:
        suffix = args.output.suffix.lstrip(".").lower() if args.output else ""
        if suffix and suffix not in SUFFIXES:
            raise SpecError(f"cannot tell the format from {args.output.name!r}: fmduck export writes "
                            f"{', '.join(EXPORT_FORMATS)} (-o FILE.csv, .md or .json, or --format)")
        fmt_name = SUFFIXES.get(suffix, "csv")
    if args.output is None:
        buffer = io.StringIO()
        export(args.database, args.run, fmt_name, table=args.table, output=buffer, schema=args.schema)
        sys.stdout.write(buffer.getvalue())
        return 0
    export(args.database, args.run, fmt_name, table=args.table, output=args.output, schema=args.schema)
    if not args.quiet:
        print(text(args.output), file=sys.stderr)
    return 0
