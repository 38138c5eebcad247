"""The ``fmduck`` command line: thin wrappers over the library, built from the option declarations.

Exit codes: 0 ok, 2 an input, option or data error (``fmduck: error: ...`` on one line), 1 a bug (the
hint says to rerun with ``--debug`` for the traceback), 130 interrupted. Messages and progress go to
stderr, results to stdout; every stderr line leaves through :func:`fmduck.secrets.mask` and
:func:`fmduck.escape.text` (names from data cannot send terminal escapes), an error line also with its
line breaks written as ``\n`` (a name holding one cannot split it). The parser of a
command is built only when that command runs, so ``fmduck --version`` and ``fmduck --help`` start
without loading the engines.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from fmduck import __version__
from fmduck.cli_options import add_spec_arguments, int_arg, spec_from_args
from fmduck.errors import FmduckError, FmduckWarning, UsageError
from fmduck.secrets import mask

EXIT_OK, EXIT_BUG, EXIT_ERROR = 0, 1, 2

COMMANDS: dict[str, str] = {
    "run": "run a Fama-MacBeth regression (any design) and store it",
    "sql": "print the SQL a specification runs (rendered without reading the data)",
    "show": "print a stored run laid out like Stata xtfmb, re-infer it, or list the stored runs",
    "report": "render stored runs as an HTML, LaTeX or text report",
    "export": "write a stored run's estimates (or any results table) as CSV, Markdown or JSON",
    "compare": "compare two stored runs' models by their CSR R-squared (Kan-Robotti-Shanken 2013)",
    "update": "update a stored run after new data arrived: recompute only what changed",
    "delete": "delete a stored run (one transaction)",
    "load": "load a CSV/Parquet file (long, wide, or Ken French's as downloaded) into a table",
    "demo": "three-factor FM on bundled Ken French data",
}


def say(message: str) -> None:
    from fmduck.escape import text

    print(text(mask(message)), file=sys.stderr, flush=True)


def error(message: object) -> None:
    """The one ``fmduck: error:`` line."""
    say("fmduck: error: " + str(message).strip().replace("\r", "\\r").replace("\n", "\\n"))


def progress(quiet: bool) -> Callable[[str], None]:
    start = time.perf_counter()

    def report(message: str) -> None:
        if not quiet:
            say(f"[{time.perf_counter() - start:7.2f}s] {message}")

    return report


def _quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages on stderr")


def _database(p: argparse.ArgumentParser, text: str = "the database: a DuckDB file, a postgresql:// URL, or with "
              "--engine spark a Spark warehouse directory (or sc://host:port for Spark Connect)") -> None:
    p.add_argument("database", help=text)


def _engine(database: str, kind: str | None = None, spec: Any = None, *, read_only: bool = False,
            exists: bool = True) -> Any:
    """The engine of ``database``; ``exists``: a DuckDB file must exist (with a spec: if an input is a
    table in it), so a mistyped path is an error, not a new empty file."""
    from fmduck.engines import open_engine, require_database

    if exists:
        require_database(database, kind, None if spec is None else {"--returns": spec.returns,
                                                                    "--factors": spec.factors})

    options: dict[str, Any] = {}
    if spec is not None:
        options.update(memory_limit=spec.memory_limit, threads=spec.threads, spark_master=spec.spark_master,
                       spark_conf=spec.spark_conf)
    return open_engine(database, kind, read_only=read_only, **options)


# ====================================================================== commands
def cmd_run(args: argparse.Namespace) -> int:
    from fmduck.model import FamaMacBeth

    spec = spec_from_args(args)
    engine = _engine(args.database, args.engine, spec, read_only=bool(args.results))
    results = _engine(args.results, None, spec, exists=False) if args.results else None
    out = FamaMacBeth(spec, engine, results=results).fit(progress=progress(args.quiet))
    print(out.summary)
    for res in getattr(out, "runs", [out]):
        for warning in res.warnings:
            say(f"fmduck: warning: {warning}")
    return EXIT_OK


def cmd_sql(args: argparse.Namespace) -> int:
    from fmduck.model import FamaMacBeth

    spec = spec_from_args(args)
    engine = _engine(args.database, args.engine, spec, read_only=True)
    print(FamaMacBeth(spec, engine).sql(inline=args.inline, dialect=args.dialect))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from fmduck import store

    engine = _engine(args.database, args.engine, read_only=True)
    if args.run is None:
        print(_run_list(store.list_runs(engine, args.schema)))
        return EXIT_OK
    if args.history:
        print(_history(store.history(engine, args.run, args.schema)))
        return EXIT_OK
    res = store.load_run(engine, args.run, args.schema)
    overrides = {k: getattr(args, k) for k in ("nw_lags", "nw_divisor", "conventions") if getattr(args, k) is not None}
    if overrides or args.se:
        from fmduck.passes import pass3
        from fmduck.summary import estimates_block

        estimates = pass3.reinfer(res, **overrides) if overrides else res.estimates
        print(estimates_block(res, estimates, [args.se] if args.se else None))
        return EXIT_OK
    print(res.summary)
    return EXIT_OK


def _run_list(frame: Any) -> str:
    if frame.height == 0:
        return "stored runs: none"
    from fmduck.formatting import fmt

    rows = [("run", "design", "engine", "periods", "avg N", "avg R2", "version", "created (UTC)")]
    for r in frame.iter_rows(named=True):
        rows.append((r["run_name"], r["design"], r["engine"], fmt(r["n_periods"]), fmt(r["avg_n"], 1),
                     fmt(r["avg_r2"], 4), str(r.get("version") or 1), str(r["created_at"])[:19]))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths)))
                     for row in rows)


def _history(frame: Any) -> str:
    lines = [f"{'version':>7}  {'run_id':<32}  {'created (UTC)':<19}  recomputed"]
    for r in frame.iter_rows(named=True):
        lines.append(f"{r['version']:>7}  {r['run_id']:<32}  {str(r['created_at'])[:19]:<19}  {r['recomputed']}")
    return "\n".join(lines)


def cmd_delete(args: argparse.Namespace) -> int:
    from fmduck import store

    if not args.yes:
        if not sys.stdin.isatty():
            raise FmduckError(f"delete run {args.run!r}: confirm with --yes (no terminal to ask on)")
        answer = input(f"delete run {args.run!r} from schema {args.schema!r}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            say("nothing deleted")
            return EXIT_OK
    store.delete_run(_engine(args.database, args.engine), args.run, args.schema)
    if not args.quiet:
        say(f"deleted run {args.run!r} from schema {args.schema!r}")
    return EXIT_OK


def cmd_load(args: argparse.Namespace) -> int:
    from fmduck.load import load, options_from_args

    engine = _engine(args.database, exists=False)

    def note(text: str) -> None:
        say(f"fmduck: note: {text}")

    rows = load(engine, args.file, args.table, notify=note, describe=None if args.quiet else note,
                **options_from_args(args))
    if not args.quiet:
        say(f"loaded {rows:,} rows into {args.table}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from fmduck.demo import run_demo

    for res in run_demo(args.output, progress=progress(args.quiet)):
        print(res.summary)
        print()
    if not args.quiet:
        say(f"results stored in {args.output} (schema fmduck); try: fmduck show {args.output} ff3")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from fmduck.report import command

    return command.cmd_report(args)


def cmd_export(args: argparse.Namespace) -> int:
    from fmduck import export

    return export.cmd_export(args)


def cmd_compare(args: argparse.Namespace) -> int:
    from fmduck import comparison
    from fmduck.engines import require_database

    require_database(args.database)
    print(comparison.cmd_compare(args))
    return EXIT_OK


def cmd_update(args: argparse.Namespace) -> int:
    from fmduck import update

    out = update.update(_engine(args.database, args.engine), args.run, schema=args.schema, new_name=args.as_name,
                        progress=progress(args.quiet))
    print(out.summary if out is not None else f"run {args.run!r}: nothing changed in its inputs; nothing to do")
    return EXIT_OK


# ====================================================================== parsers
class Parser(argparse.ArgumentParser):
    """argparse with fmduck's error contract: a parse error is a :class:`UsageError`, printed as the one
    ``fmduck: error:`` line (exit 2) with a suggestion for a misspelt option or choice and where the help is."""

    def error(self, message: str) -> NoReturn:
        hint = "the commands" if self.prog == "fmduck" else "the options"
        raise UsageError(f"{self._explain(message)} ({self.prog} --help lists {hint})")

    def _explain(self, message: str) -> str:
        if message.startswith("unrecognized arguments: "):
            options = [s for action in self._actions for s in action.option_strings]
            unknown = [t.split("=")[0] for t in message.split(": ", 1)[1].split() if re.match(r"^--?[A-Za-z]", t)]
            if unknown:
                return "; ".join(f"unknown option {name}" + _suggest(name, options) for name in dict.fromkeys(unknown))
            return message
        choice = re.match(r"^argument (\S+): invalid choice: '(.*)' \(choose from", message)
        if choice:
            name, value = choice.groups()
            action = next((a for a in self._actions if name in (*a.option_strings, a.metavar, a.dest)), None)
            choices = [str(c) for c in (action.choices or [])] if action is not None else []
            return (f"argument {name}: invalid choice {value!r}{_suggest(value, choices)}; "
                    f"choose from {', '.join(choices)}")
        return message


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _parser(command: str) -> argparse.ArgumentParser:
    p = Parser(prog=f"fmduck {command}", description=COMMANDS[command])
    schema_help = "results schema (default fmduck)"
    if command in ("run", "sql"):
        _database(p)
        add_spec_arguments(p, results=command == "run")
        if command == "sql":
            p.add_argument("--dialect", choices=["duckdb", "postgres", "spark"],
                           help="render for this engine's dialect (default: the database's engine)")
            p.add_argument("--inline", action="store_true",
                           help="write every parameter as a literal and name the scratch tables, so the script "
                                "runs as printed in the engine's own client")
        _quiet(p)
    elif command == "show":
        _database(p)
        p.add_argument("run", nargs="?", help="run name (omit to list the stored runs)")
        p.add_argument("--schema", default="fmduck", help=schema_help)
        p.add_argument("--history", action="store_true", help="list the run's versions and what each recomputed")
        p.add_argument("--se", metavar="TYPE", help="print only this SE type's block (e.g. nw)")
        p.add_argument("--nw-lags", type=int_arg, metavar="L",
                       help="re-infer the stored lambda_t with this Newey-West lag (no SQL is run)")
        p.add_argument("--nw-divisor", choices=["T", "T-1"], help="re-infer with this Newey-West divisor")
        p.add_argument("--conventions", choices=["fmduck", "stata", "linearmodels", "sandwich"],
                       help="re-infer with another tool's Newey-West conventions")
        p.add_argument("--engine", choices=["duckdb", "postgres", "spark"], help="the database's engine")
        _quiet(p)
    elif command == "delete":
        _database(p)
        p.add_argument("run", help="the run to delete")
        p.add_argument("--schema", default="fmduck", help=schema_help)
        p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        p.add_argument("--engine", choices=["duckdb", "postgres", "spark"], help="the database's engine")
        _quiet(p)
    elif command == "update":
        _database(p)
        p.add_argument("run", help="the stored run to update")
        p.add_argument("--as", dest="as_name", metavar="NEW_NAME",
                       help="store the update under a new name (the old run stays as it is)")
        p.add_argument("--schema", default="fmduck", help=schema_help)
        p.add_argument("--engine", choices=["duckdb", "postgres", "spark"], help="the database's engine")
        _quiet(p)
    elif command == "compare":
        _database(p)
        p.add_argument("run_a", metavar="RUN_A", help="the first stored run")
        p.add_argument("run_b", metavar="RUN_B", help="the second stored run (same test assets and periods)")
        p.add_argument("--schema", default="fmduck", help=schema_help)
        p.add_argument("--no-write", action="store_true", help="print the tests without storing them")
        _quiet(p)
    elif command == "load":
        from fmduck.load import add_arguments as add_load_arguments

        add_load_arguments(p)
        if p.get_default("quiet") is None:  # not declared by the command's own options
            _quiet(p)
    elif command == "demo":
        p.add_argument("-o", "--output", default="fmduck-demo.duckdb",
                       help="database to write (default fmduck-demo.duckdb)")
        _quiet(p)
    elif command in ("report", "export"):
        module = importlib.import_module({"report": "fmduck.report.command", "export": "fmduck.export"}[command])
        module.add_arguments(p)
        if p.get_default("quiet") is None:  # not declared by the command's own options
            _quiet(p)
    p.set_defaults(func=globals()[f"cmd_{command}"])
    return p


def _top() -> argparse.ArgumentParser:
    p = Parser(
        prog="fmduck", description="Fama-MacBeth (1973) regressions computed in SQL where the panel lives.",
        epilog="commands:\n" + "\n".join(f"  {c:<9} {h}" for c, h in COMMANDS.items())
        + "\n\n`fmduck COMMAND --help` lists a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"fmduck {__version__}")
    p.add_argument("--debug", action="store_true", help="print the traceback of an error")
    p.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="one of: " + ", ".join(COMMANDS))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    command = next((a for a in argv if not a.startswith("-")), None)
    warnings.simplefilter("ignore", FmduckWarning)  # a run's warnings are printed as fmduck: warning: lines
    try:
        if command not in COMMANDS:
            _top().parse_args(argv)  # --help, --version, or an error naming the commands
            return EXIT_ERROR
        rest = argv[:argv.index(command)] + argv[argv.index(command) + 1:]
        args = _parser(command).parse_intermixed_args(rest)  # options may stand between positionals
        return args.func(args)
    except FmduckError as exc:
        error(exc)
        return EXIT_ERROR
    except KeyboardInterrupt:
        say("fmduck: interrupted")
        return 130
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the one boundary: every other failure is a bug
        return _bug(exc, debug)


def _bug(exc: BaseException, debug: bool) -> int:
    from fmduck.errors import translate

    known = translate(exc)
    if known is not None:
        error(known)
        return EXIT_ERROR
    if debug:
        import traceback

        say("".join(traceback.format_exception(exc)))
    first = (str(exc).strip().splitlines() or [""])[0]
    error(f"internal error ({type(exc).__name__}: {first}); this is a bug — rerun with --debug for the traceback "
          "and report it")
    return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
