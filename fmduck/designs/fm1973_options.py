"""Command-line options of ``--design fm1973`` (imported by ``fmduck.cli._register_extras``)."""

from __future__ import annotations

import argparse
from typing import Any

from fmduck import cli


def _add(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("design fm1973 (Fama-MacBeth 1973 beta-sorted portfolios; lengths in periods)")
    g.add_argument("--market", help="market return column of the --factors table")
    g.add_argument("--formation", type=int, help="portfolio formation period length (default 48)")
    g.add_argument("--estimation", type=int, help="estimation period length (default 60)")
    g.add_argument("--testing", type=int, help="testing period length, also the roll-forward step (default 48)")
    g.add_argument("--n-portfolios", type=int, help="number of beta-sorted portfolios (default 20)")
    g.add_argument("--fm-regressors", help="comma-separated subset of beta,beta2,se (default all three)")
    g.add_argument("--beta-update", type=int,
                   help="re-estimate stock betas and s(e) every N testing periods (default 12, the paper's yearly)")
    g.add_argument("--subperiods", type=int,
                   help="report N equal sub-periods of the testing months (default: one per testing period)")


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    names = ("market", "formation", "estimation", "testing", "n_portfolios", "fm_regressors", "beta_update",
             "subperiods")
    return {name: getattr(args, name, None) for name in names}


if _add not in cli.SPEC_ARGUMENTS:
    cli.SPEC_ARGUMENTS.append(_add)
    cli.SPEC_HOOKS.append(_spec)
