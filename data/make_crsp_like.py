"""Write a simulated CRSP-like monthly stock panel for the fm1973 worked example (README).

    python data/make_crsp_like.py crsp_like.duckdb  # tables stocks(permno, date, ret), market(date, vwretd, rf)
    python data/make_crsp_like.py crsp_like.duckdb --gamma2 -0.015   # plant a beta-squared premium

1000 stocks over 1926-01 .. 1964-12 (468 months), listing and delisting at random, fat-tailed
returns; the Sharpe-Lintner CAPM holds unless --gamma2 / --gamma3 plant a premium
(fmduck/designs/crsp_like.py). Seeded: the same arguments give the same file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb

from fmduck.designs.crsp_like import simulate_crsp_like


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", help="DuckDB file to write (tables are replaced)")
    parser.add_argument("--stocks", type=int, default=1000)
    parser.add_argument("--months", type=int, default=468)
    parser.add_argument("--premium", type=float, default=0.008, help="monthly market premium (default 0.008)")
    parser.add_argument("--gamma2", type=float, default=0.0, help="planted beta-squared premium")
    parser.add_argument("--gamma3", type=float, default=0.0, help="planted idiosyncratic-volatility premium")
    parser.add_argument("--seed", type=int, default=1973)
    args = parser.parse_args()
    sim = simulate_crsp_like(args.stocks, args.months, premium=args.premium, gamma2=args.gamma2,
                             gamma3=args.gamma3, seed=args.seed)
    con = duckdb.connect(args.database)
    for name, frame in (("stocks", sim.stocks), ("market", sim.market)):
        con.register("frame", frame.to_arrow())
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM frame")
        con.unregister("frame")
    con.close()
    print(f"{args.database}: stocks ({sim.stocks.height:,} rows, {args.stocks} permnos), "
          f"market ({sim.market.height} months)", file=sys.stderr)


if __name__ == "__main__":
    main()
