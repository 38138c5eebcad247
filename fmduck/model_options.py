"""Command-line options of issue 9: convention presets, per-period preparation, WLS, absorb, grid.

Registered through ``fmduck.cli.SPEC_ARGUMENTS`` / ``SPEC_HOOKS`` (imported by ``_register_extras``).
"""

from __future__ import annotations

import argparse
from typing import Any

from fmduck import cli
from fmduck.conventions import PRESETS


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("conventions, preparation and pass-2 options")
    g.add_argument("--conventions", choices=list(PRESETS),
                   help="match another tool's Newey-West: fmduck (default), stata, linearmodels, sandwich")
    g.add_argument("--winsorize", type=float, metavar="P",
                   help="clip each characteristic at its P and 1-P quantiles within each period")
    g.add_argument("--standardize", action="store_true", default=None,
                   help="z-score each characteristic within each period")
    g.add_argument("--rank", action="store_true", default=None,
                   help="replace each characteristic by its cross-sectional rank scaled to [-0.5, 0.5]")
    g.add_argument("--weights", metavar="COL", help="weighted least squares per period with weights COL")
    g.add_argument("--absorb", metavar="COL", help="absorb a categorical COL (demean within period and category)")
    g.add_argument("--grid", metavar="SPECS",
                   help="specification grid from one scan: characteristic lists separated by ';', e.g. "
                        "'size; size,bm' (each a subset of --chars); one stored run per specification")


def spec_options(args: argparse.Namespace) -> dict[str, Any]:
    from fmduck.grid import parse_cli

    options = {name: getattr(args, name, None)
               for name in ("conventions", "winsorize", "standardize", "rank", "weights", "absorb")}
    options["grid"] = parse_cli(args.grid) if getattr(args, "grid", None) else None
    return options


if add_arguments not in cli.SPEC_ARGUMENTS:
    cli.SPEC_ARGUMENTS.append(add_arguments)
    cli.SPEC_HOOKS.append(spec_options)
