"""Command-line options of the pooled and mimicking designs (imported by ``fmduck.cli._register_extras``).

``--design pooled`` needs no option of its own (``--chars`` are its regressors); ``--design mimicking``
takes ``--basis`` (comma-separated asset ids; default every asset of the panel) and mimics ``--factor-cols``.
"""

from __future__ import annotations

import argparse
from typing import Any

from fmduck import cli


def _add(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("design mimicking")
    g.add_argument("--basis", help="comma-separated basis asset ids (default: every asset of the panel)")


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    return {"basis": getattr(args, "basis", None)}


if _add not in cli.SPEC_ARGUMENTS:
    cli.SPEC_ARGUMENTS.append(_add)
    cli.SPEC_HOOKS.append(_spec)
