"""The spec options on the command line: argparse arguments built from the option declarations
(:data:`fmduck.options.CORE` and every design's ``options``), and the Spec built back from them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fmduck.errors import FmduckError


def _add_option(group: Any, option: Any) -> None:  # an argparse argument group
    kw: dict[str, Any] = {"help": option.help, "dest": option.name, "default": None}
    if option.kind == "bool":
        kw["action"] = "store_true"
    elif option.kind == "flags":
        kw["action"] = "store_true"
    elif option.kind == "int":
        kw["type"] = int_arg
        kw["metavar"] = option.metavar or "N"
    elif option.kind == "float" or option.kind == "levels":
        kw["type"] = float_arg
        kw["metavar"] = option.metavar or "X"
    elif option.kind == "choice":
        kw["choices"] = list(option.choices)
    else:
        kw["metavar"] = option.metavar or "VALUE"
    group.add_argument(option.flag, **kw)


def int_arg(text: str) -> int:
    """An argparse type: an integer within ±2^62 (argparse names the option: ``argument --window: ...``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants an integer, got {text!r}") from None
    if abs(value) > 2**62:
        raise argparse.ArgumentTypeError(f"{text} is out of range")
    return value


def float_arg(text: str) -> float:
    """An argparse type: a number (argparse names the option)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants a number, got {text!r}") from None


def add_spec_arguments(p: argparse.ArgumentParser, *, results: bool = True) -> None:
    """The options that build a Spec: the core ones and every design's (``results``: also those that
    only matter when a run is stored)."""
    from fmduck.designs import registry
    from fmduck.options import CORE

    p.add_argument("--config", type=Path, metavar="SPEC.toml",
                   help="TOML spec file; options given on the command line override it")
    groups: dict[str, Any] = {}  # argparse argument groups by title
    skip = {"returns_frame"} | (set() if results else {"replace", "schema", "first_pass"})
    designs = registry()
    for option in CORE:
        if not option.cli or option.name in skip:
            continue
        group = groups.setdefault(option.group, p.add_argument_group(option.group))
        if option.name == "design":
            group.add_argument("--design", choices=list(designs), default=None,
                               help="run type: " + "; ".join(f"{d.name}: {d.help}" for d in designs.values()))
            continue
        _add_option(group, option)
    groups["pass 2 and 3"].add_argument("--no-intercept", dest="intercept", action="store_false", default=None,
                                        help="no intercept in pass 2")
    for design in designs.values():
        if design.options:
            group = p.add_argument_group(f"design {design.name}")
            for option in design.options:
                if option.cli:
                    _add_option(group, option)
    g = groups.setdefault("engine", p.add_argument_group("engine"))
    g.add_argument("--engine", choices=["duckdb", "postgres", "spark"],
                   help="where the passes run (default: postgres for a postgresql:// URL, else duckdb)")
    if results:
        g.add_argument("--results", metavar="DB.duckdb",
                       help="write the results to this database instead of DATABASE (e.g. for read-only sources)")


def spec_from_args(args: argparse.Namespace) -> Any:
    from fmduck.designs import registry
    from fmduck.grid_spec import parse_cli
    from fmduck.options import CORE
    from fmduck.spec import Spec

    names = [o.name for o in CORE] + [o.name for d in registry().values() for o in d.options]
    options = {name: getattr(args, name, None) for name in dict.fromkeys(names)}
    if isinstance(options.get("grid"), str):
        options["grid"] = parse_cli(options["grid"])
    for flag in ("standardize", "rank", "replace", "strict"):
        if options.get(flag) is False:
            options[flag] = None
    if args.config is not None:
        return Spec.from_toml(args.config, **options)
    given = {k: v for k, v in options.items() if v is not None}
    missing = [f"--{k}" for k in ("name", "returns") if k not in given]
    if missing:
        raise FmduckError(f"missing required option(s): {', '.join(missing)} (or give --config spec.toml)")
    return Spec(**given)
