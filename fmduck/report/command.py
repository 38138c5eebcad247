"""``fmduck report`` and ``fmduck export`` on the command line: thin wrappers over ``fmduck.report.report``
and ``fmduck.export.export``, registered in ``fmduck.cli.EXTRA_COMMANDS``."""

from __future__ import annotations

import argparse

from fmduck.errors import SpecError
from fmduck.escape import text
from fmduck.report.options import FORMATS, SECTIONS


def parse_pairs(text: str | None) -> dict[str, str]:
    """``--labels`` text: TERM=LABEL pairs separated by commas."""
    if not text:
        return {}
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise SpecError(f"--labels wants TERM=LABEL pairs separated by commas, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("database", help="the database holding the results schema: a DuckDB file or a postgresql:// URL")
    p.add_argument("runs", nargs="+", metavar="RUN", help="stored run name(s); several go side by side")
    p.add_argument("--format", dest="fmt", choices=FORMATS, help="output format (default: from the -o suffix)")
    p.add_argument("-o", "--output", required=True,
                   help="file to write (plots and CSV files go to <stem>_files/)")
    p.add_argument("--se", default="fm", metavar="TYPE",
                   help="standard errors for t/SE and stars: fm (default), nw, shanken, and what the run stored "
                        "beside them (eiv_robust, misspec_robust; the designs' own types)")
    p.add_argument("--stat", choices=["t", "se"], default="t", help="beneath each coefficient: t (default) or se")
    p.add_argument("--labels", help="term labels, e.g. MktRF=β_MKT,SMB=β_{SMB} (text after _ is a subscript; "
                   "terms without a label print their raw name)")
    p.add_argument("--order", help="comma-separated term order (terms not named follow in run order)")
    p.add_argument("--digits", type=int, default=4, help="decimals of coefficients and SEs (default 4)")
    p.add_argument("--title", help="report title")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated parts to include (default all: {','.join(SECTIONS)})")
    p.add_argument("--no-plots", action="store_true", help="skip the figures (same as leaving out 'plots')")
    p.add_argument("--schema", default="fmduck", help="results schema (default fmduck)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the names of the files written")


def cmd_report(args: argparse.Namespace) -> int:
    from fmduck.report.api import report
    from fmduck.report.render import check_output

    output = check_output(args.output)  # a folder is an error before anything else
    fmt_name = args.fmt or output.suffix.lstrip(".").lower()
    if fmt_name not in FORMATS:
        raise SpecError(f"cannot tell the format from {output.name!r}; give --format {'|'.join(FORMATS)}")
    order = [t.strip() for t in args.order.split(",") if t.strip()] if args.order else []
    result = report(args.database, args.runs, fmt_name, output, schema=args.schema, se_type=args.se,
                    stat=args.stat, labels=parse_pairs(args.labels), order=order, digits=args.digits,
                    plots=not args.no_plots, title=args.title, sections=args.sections)
    if not args.quiet:
        for path in result.files:
            print(text(path))
    return 0
