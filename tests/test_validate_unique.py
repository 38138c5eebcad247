"""The duplicate-key check: a sort-based count (``sql/checks/duplicate_count.sql.j2``) decides, the
GROUP BY query names the duplicates. The count equals the surplus rows Σ(n_key − 1), computed here
in Python, on DuckDB and on PostgreSQL, with repeated keys next to partition edges, triples, string
and date keys."""

from __future__ import annotations

import collections
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from fmduck import templates
from fmduck.engines import connect
from fmduck.errors import InputError
from fmduck.validate import require_unique


def _keys(seed: int, dup_rows: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    assets = [f"a{i:02d}" for i in range(12)]
    rows = [(a, date(2000, 1, 1) + timedelta(days=int(d))) for a in assets for d in rng.choice(40, 25, replace=False)]
    for i in rng.choice(len(rows), dup_rows, replace=True):  # the same key again (twice drawn: a triple)
        rows.append(rows[int(i)])
    rows.append(("a00", date(2000, 1, 1) + timedelta(days=99)))  # a key whose period another asset lacks
    order = rng.permutation(len(rows))
    return pl.DataFrame([rows[i] for i in order], schema=["asset", "period"], orient="row").with_columns(
        pl.Series("ret", rng.normal(size=len(rows))))


def _surplus(frame: pl.DataFrame) -> int:
    counts = collections.Counter(frame.select("asset", "period").iter_rows())
    return sum(n - 1 for n in counts.values())


def _count(engine, relation) -> int:
    sql = templates.render("checks/duplicate_count", engine.dialect, relation=relation.sql,
                           keys=[templates.ident("asset"), templates.ident("period")])
    return int(engine.query(sql)["n_rows"][0])


@pytest.mark.parametrize("dup_rows", [0, 1, 7])
def test_count_is_the_surplus_rows_duckdb(dup_rows):
    frame = _keys(dup_rows, dup_rows)
    engine = connect(duckdb.connect())
    relation = engine.relation(frame, "returns")
    assert _count(engine, relation) == _surplus(frame) == dup_rows  # each planted row is one surplus row
    if dup_rows:
        dates = r"duplicate \(asset, period\) rows, e\.g\. asset=a\d+, period=\d{4}-\d\d-\d\d \(\d rows\)"
        with pytest.raises(InputError, match=dates):
            require_unique(engine, relation, ["asset", "period"])
    else:
        require_unique(engine, relation, ["asset", "period"])


@pytest.mark.postgres
def test_count_is_the_surplus_rows_postgres(pg_url):
    pytest.importorskip("psycopg")
    from fmduck.engines.postgres import PostgresEngine

    engine = PostgresEngine(pg_url)
    try:
        for dup_rows in (0, 5):
            frame = _keys(40 + dup_rows, dup_rows)
            name = f"dup_keys_{dup_rows}"
            engine.execute(f"DROP TABLE IF EXISTS {name}")
            engine.create_table(templates.ident(name), frame)
            relation = engine.relation(name, "returns")
            assert _count(engine, relation) == _surplus(frame)
            if dup_rows:
                with pytest.raises(InputError, match="duplicate"):
                    require_unique(engine, relation, ["asset", "period"])
            engine.execute(f"DROP TABLE {name}")
    finally:
        engine.close()
