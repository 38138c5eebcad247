"""The ``fmduck`` command line: thin wrappers over the library. Exit codes: 0 ok, 2 usage or input error, 1 bug."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fmduck import __version__
from fmduck.errors import FmduckError

EXIT_OK, EXIT_BUG, EXIT_ERROR = 0, 1, 2

Command = Callable[[argparse.Namespace], int]
# Extra subcommands register themselves here: name -> (add_arguments, run, help)
EXTRA_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Command, str]] = {}
# Extra spec options registered by other modules: each returns a dict of Spec fields from args.
SPEC_HOOKS: list[Callable[[argparse.Namespace], dict[str, Any]]] = []
# ... and the argparse options they read: each adds arguments to the run/sql parsers.
SPEC_ARGUMENTS: list[Callable[[argparse.ArgumentParser], None]] = []


def _progress(quiet: bool) -> Callable[[str], None]:
    start = time.perf_counter()

    def say(message: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:7.2f}s] {message}", file=sys.stderr, flush=True)

    return say


# ------------------------------------------------------------------ run
def add_spec_arguments(p: argparse.ArgumentParser) -> None:
    """The options that build a Spec (shared by ``run`` and ``sql``)."""
    p.add_argument("database", help="DuckDB database file (created if missing), a postgresql://user@host/db URL, "
                   "or with --engine spark the Spark warehouse directory")
    p.add_argument("--config", type=Path, help="TOML spec file; options given on the command line override it")
    p.add_argument("--name", help="run name (stored in the results schema)")
    g = p.add_argument_group("panel")
    g.add_argument("--returns", help="table/view, CSV or Parquet file with the long panel")
    g.add_argument("--asset", help="asset id column (default: asset)")
    g.add_argument("--period", help="period column (date or integer; default: period)")
    g.add_argument("--ret", help="return column (default: ret)")
    g.add_argument("--rf", help="risk-free column in the panel or the factors table: y = ret - rf")
    g = p.add_argument_group("regressors")
    g.add_argument("--factors", help="table/file of factors keyed by period (beta-based FM)")
    g.add_argument("--factor-cols", help="comma-separated factor columns")
    g.add_argument("--factor-period", help="period column of the factors table (default: --period)")
    g.add_argument("--chars", help="comma-separated characteristic columns of the panel (characteristic FM)")
    g.add_argument("--char-lag", type=int, help="lag characteristics by this many periods (default 0)")
    g = p.add_argument_group("pass 1")
    g.add_argument("--window", type=int, help="rolling window of W calendar periods (default: full sample)")
    g.add_argument("--min-obs", type=int, help="minimum observations per first-pass regression (default K+2)")
    g.add_argument("--beta-lag", type=int, help="lag of rolling betas in pass 2, in periods (default 1)")
    g = p.add_argument_group("pass 2 and 3")
    g.add_argument("--no-intercept", action="store_true", default=None, help="no intercept in pass 2")
    g.add_argument("--min-assets", type=int, help="minimum cross-section size per period (default p+1)")
    g.add_argument("--nw-lags", help="Newey-West lag: an integer or 'auto' (default auto, nw1994 rule)")
    g.add_argument("--nw-divisor", choices=["T", "T-1"], help="Newey-West divisor: T (default) or T-1 (Stata)")
    g = p.add_argument_group("results")
    g.add_argument("--schema", help="results schema (default fmduck)")
    g.add_argument("--replace", action="store_true", default=None, help="replace a stored run of the same name")
    p.add_argument("--design", help="run type (default twopass)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages on stderr")
    g = p.add_argument_group("engine")
    g.add_argument("--engine", choices=["duckdb", "postgres", "spark"],
                   help="where the passes run (default: postgres for a postgresql:// URL, else duckdb)")
    g.add_argument("--results", metavar="DB.duckdb",
                   help="write the results to this DuckDB file instead of DATABASE (read-only sources)")
    for add_arguments in SPEC_ARGUMENTS:
        add_arguments(p)


def spec_from_args(args: argparse.Namespace) -> Any:
    from fmduck.spec import Spec

    options = {name: getattr(args, name) for name in (
        "name", "returns", "asset", "period", "ret", "rf", "factors", "factor_cols", "factor_period", "chars",
        "char_lag", "window", "min_obs", "beta_lag", "min_assets", "nw_lags", "nw_divisor", "schema", "replace",
        "design")}
    options["intercept"] = False if args.no_intercept else None
    for hook in SPEC_HOOKS:
        options.update(hook(args))
    if args.config is not None:
        return Spec.from_toml(args.config, **options)
    given = {k: v for k, v in options.items() if v is not None}
    missing = [f"--{k}" for k in ("name", "returns") if k not in given]
    if missing:
        raise FmduckError(f"missing required option(s): {', '.join(missing)} (or give --config spec.toml)")
    return Spec(**given)


def cmd_run(args: argparse.Namespace) -> int:
    from fmduck.designs import estimator

    spec = spec_from_args(args)
    options = {"results": args.results} if args.results else {}  # designs take results= only when given
    results = estimator(spec, _engine(args), **options).fit(progress=_progress(args.quiet))
    print(results.summary)
    return EXIT_OK


def _engine(args: argparse.Namespace) -> Any:
    from fmduck.engines import open_engine

    return open_engine(args.database, args.engine)


def cmd_sql(args: argparse.Namespace) -> int:
    from fmduck.engines.translate import TranslatingEngine
    from fmduck.model import FamaMacBeth

    spec = spec_from_args(args)
    engine = _engine(args)
    if args.dialect and args.dialect != engine.dialect:
        # rendered exactly as a `dialect` engine renders it; run on this engine through sqlglot
        engine = TranslatingEngine(engine, args.dialect)
    from fmduck.designs import estimator

    model = estimator(spec, engine)  # a design's own statements when it lists them (fm1973), else passes 1-3
    for label, sql in (model if hasattr(model, "sql") else FamaMacBeth(spec, engine)).sql():
        print(f"-- {label}\n{sql};\n")
    return EXIT_OK


# ------------------------------------------------------------------ other commands
def cmd_load(args: argparse.Namespace) -> int:
    from fmduck.engines import open_engine
    from fmduck.load import load

    engine = open_engine(args.database)  # a DuckDB file or a postgresql:// URL
    rows = load(engine, args.file, args.table, replace=args.replace, wide=args.wide, period=args.period_name,
                asset=args.asset_name, value=args.value_name, period_format=args.period_format, unit=args.unit)
    print(f"loaded {rows:,} rows into {args.table}", file=sys.stderr)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from fmduck.engines import is_postgres_url, open_engine
    from fmduck.results import list_runs, load_run

    engine = open_engine(args.database if is_postgres_url(args.database) else _existing(args.database))
    if args.run is None:
        print(list_runs(engine, args.schema))
        return EXIT_OK
    print(load_run(engine, args.run, args.schema).summary)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from fmduck.demo import run_demo

    results = run_demo(args.output, progress=_progress(args.quiet))
    for res in results:
        print(res.summary)
        print()
    print(f"results stored in {args.output} (schema fmduck); try: fmduck show {args.output} ff3", file=sys.stderr)
    return EXIT_OK


def _existing(path: str) -> str:
    if path != ":memory:" and not Path(path).exists():
        raise FmduckError(f"database not found: {path}")
    return path


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmduck", description="Fama-MacBeth (1973) regressions computed in SQL where the panel lives."
    )
    parser.add_argument("--version", action="version", version=f"fmduck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="run a Fama-MacBeth regression and store it")
    add_spec_arguments(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sql", help="print the SQL a specification runs")
    add_spec_arguments(p)
    p.add_argument("--dialect", choices=["duckdb", "postgres", "spark"],
                   help="SQL dialect to print (default: the engine's, i.e. exactly the statements it runs)")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("load", help="load a CSV/Parquet file (long or Ken French wide) into a table")
    p.add_argument("database")
    p.add_argument("file", type=Path)
    p.add_argument("--table", required=True, help="name of the new table")
    p.add_argument("--wide", action="store_true", help="one column per asset, first column the period")
    p.add_argument("--period-format", default="auto", choices=["auto", "yyyymm", "yyyymmdd", "none"])
    p.add_argument("--unit", default="decimal", choices=["decimal", "percent", "bp"], help="unit of the values")
    p.add_argument("--period-name", default="period", help="name of the period column (default period)")
    p.add_argument("--asset-name", default="asset", help="wide files: name of the asset column")
    p.add_argument("--value-name", default="ret", help="wide files: name of the value column")
    p.add_argument("--replace", action="store_true", help="replace the table if it exists")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("show", help="print a stored run laid out like Stata xtfmb (or list runs)")
    p.add_argument("database")
    p.add_argument("run", nargs="?", help="run name (omit to list runs)")
    p.add_argument("--schema", default="fmduck")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("demo", help="three-factor FM on bundled Ken French data")
    p.add_argument("-o", "--output", default="fmduck-demo.duckdb", help="database to write (default fmduck-demo.duckdb)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

    for name, (add_arguments, run, help_text) in EXTRA_COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        add_arguments(p)
        p.set_defaults(func=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _register_extras()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except FmduckError as exc:
        print(f"fmduck: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("fmduck: interrupted", file=sys.stderr)
        return 130


def _register_extras() -> None:
    """Import optional command modules so they can add themselves to EXTRA_COMMANDS / SPEC_HOOKS."""
    import importlib

    for module in ("fmduck.report", "fmduck.designs.options", "fmduck.designs.fm1973_options",
                   "fmduck.model_options"):
        importlib.import_module(module)


if __name__ == "__main__":
    sys.exit(main())
