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


class _Cursor:
    """A psycopg cursor that records the COPY statements it runs."""

    def __init__(self, cur, copies: list[str]) -> None:
        self.cur, self.copies = cur, copies

    def __enter__(self):
        self.cur.__enter__()
        return self

    def __exit__(self, *exc):
        return self.cur.__exit__(*exc)

    def copy(self, statement, *args, **kwargs):
        self.copies.append(str(statement))
        return self.cur.copy(statement, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.cur, name)


class _Connection:
    def __init__(self, con, copies: list[str]) -> None:
        self.con, self.copies = con, copies

    def cursor(self, *args, **kwargs):
        return _Cursor(self.con.cursor(*args, **kwargs), self.copies)

    def __getattr__(self, name):
        return getattr(self.con, name)


def _fetched_by_copy(engine, monkeypatch, sql: str, params) -> tuple[pl.DataFrame, bool]:
    """``engine.query(sql, params)`` and whether the result came through ``COPY ... TO STDOUT``."""
    copies: list[str] = []
    with monkeypatch.context() as m:
        m.setattr(engine, "con", _Connection(engine.con, copies))
        frame = engine.query(sql, params)
    return frame, any(c.startswith("COPY (") and c.endswith("TO STDOUT (FORMAT csv)") for c in copies)


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
    copied, used_copy = _fetched_by_copy(engine, monkeypatch, sql, params)
    assert used_copy == (label in {"numbers and text", "parameters", "no rows", "a WITH query"})
    monkeypatch.setattr(pg_mod, "COPY_FETCH", False)
    rows, by_copy = _fetched_by_copy(engine, monkeypatch, sql, params)
    assert not by_copy
    _same(copied, rows)


def test_copy_keeps_doubles_bit_for_bit(pg, monkeypatch):
    engine = pg
    values = [0.1, 1 / 3, 2.0 ** -1074, 123456.789e-200, -9.999999999999999e22]
    sql = "SELECT * FROM (VALUES " + ", ".join(f"({i}, %(v{i})s::double precision)" for i in range(len(values))) + \
        ") AS t(i, v) ORDER BY i"
    got, used_copy = _fetched_by_copy(engine, monkeypatch, sql, {f"v{i}": v for i, v in enumerate(values)})
    assert used_copy
    assert got["v"].to_list() == values
