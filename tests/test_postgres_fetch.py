"""Query results from PostgreSQL: fetched as CSV through COPY (numbers and text) or row by row (any
other type), the same frame either way — NULLs, empty strings, extreme and special floats, bigints,
numerics, and the fallbacks (dates, booleans)."""

from __future__ import annotations

import math

import polars as pl
import pytest

psycopg = pytest.importorskip("psycopg")

from fmduck.engines import postgres as pg_mod  # noqa: E402

pytestmark = pytest.mark.postgres

QUERIES = {
    "numbers and text": (
        "SELECT * FROM (VALUES "
        "(1::bigint, 9007199254740993::bigint, 0.1::double precision, 'a'::text, 12.25::numeric), "
        "(2, -5, 1e-300, '', NULL), "
        "(3, NULL, 1.7976931348623157e308, NULL, -0.5), "
        "(4, 7, -2.2250738585072014e-308, 'x,\"y\"\nz', 3), "
        "(5, 8, 'NaN'::double precision, ' spaced ', 1e-20), "
        "(6, 9, 'Infinity'::double precision, 'b', 0), "
        "(7, 10, '-Infinity'::double precision, 'c', 1), "
        "(8, 11, NULL, 'd', 2)) AS t(i, big, x, s, num)"
    ),
    "parameters": "SELECT %(a)s + 1 AS a1, %(x)s * 2.0 AS x2, %(s)s AS s",
    "a date (row by row)": "SELECT 1 AS i, DATE '2020-02-29' AS d",
    "a boolean (row by row)": "SELECT 1 AS i, TRUE AS b",
    "no rows": "SELECT 1::bigint AS i, 'a'::text AS s WHERE FALSE",
    "a WITH query": "WITH v AS (SELECT generate_series(1, 5) AS k) SELECT k, k * 0.5 AS h FROM v ORDER BY k",
}
PARAMS = {"a": 41, "x": 0.1 + 0.2, "s": "it's"}


def _same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.columns == b.columns and a.dtypes == b.dtypes and a.height == b.height
    for col in a.columns:
        for x, y in zip(a[col].to_list(), b[col].to_list()):
            if isinstance(x, float) and isinstance(y, float) and math.isnan(x):
                assert math.isnan(y)
            else:
                assert x == y and (not isinstance(x, float) or math.copysign(1, x) == math.copysign(1, y)), (col, x, y)


@pytest.mark.parametrize("label", list(QUERIES))
def test_copy_fetch_equals_row_fetch(pg, monkeypatch, label):
    engine = pg
    sql = QUERIES[label]
    params = PARAMS if "%(" in sql else None
    copied = engine.query(sql, params)
    monkeypatch.setattr(pg_mod, "COPY_FETCH", False)
    rows = engine.query(sql, params)
    _same(copied, rows)
    used_copy = engine._query_copy(sql, params) is not None
    assert used_copy == (label in {"numbers and text", "parameters", "no rows", "a WITH query"})


def test_copy_keeps_doubles_bit_for_bit(pg):
    engine = pg
    values = [0.1, 1 / 3, 2.0 ** -1074, 123456.789e-200, -9.999999999999999e22]
    sql = "SELECT * FROM (VALUES " + ", ".join(f"({i}, %(v{i})s::double precision)" for i in range(len(values))) + \
        ") AS t(i, v) ORDER BY i"
    got = engine.query(sql, {f"v{i}": v for i, v in enumerate(values)})
    assert engine._query_copy(sql, {f"v{i}": v for i, v in enumerate(values)}) is not None
    assert got["v"].to_list() == values
