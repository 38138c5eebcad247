"""First-pass aggregates computed in SQL on the results engine (fmduck.store_aggregates), DuckDB and PostgreSQL.

Runs are fitted by fmduck on a seeded unbalanced panel (gaps, NULL returns, assets that start late:
windows with different observation counts, periods with different numbers of assets). Oracle: the
long first pass read with plain SQL from the ``first_pass`` view of the same engine, grouped with
numpy loops (np.mean, np.quantile with the default linear method); relative tolerance 1e-12.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest

from fmduck import FamaMacBeth, Spec, templates
from fmduck.errors import FmduckError
from fmduck.store_aggregates import QUANTILES, StoredFirstPass

FACTORS = ["mkt", "smb"]
QS = ["q05", "q25", "q50", "q75", "q95"]


def panel_frames(n_assets: int = 24, n_periods: int = 48, seed: int = 11) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    f = rng.normal(0.01, 0.05, size=(n_periods, 2))
    beta = rng.normal(1.0, 0.5, size=(n_assets, 2))
    r = beta @ f.T + rng.normal(0.0, 0.05, size=(n_assets, n_periods))
    rows = []
    for i in range(n_assets):
        start = 0 if i % 3 else int(rng.integers(0, 15))  # a third of the assets start late
        for t in range(start, n_periods):
            if rng.random() < 0.06:
                continue  # a gap
            rows.append((f"A{i:03d}", t, None if rng.random() < 0.03 else float(r[i, t])))
    panel = pl.DataFrame(rows, schema={"asset": pl.Utf8, "period": pl.Int64, "ret": pl.Float64}, orient="row")
    factors = pl.DataFrame({"period": np.arange(n_periods), "mkt": f[:, 0], "smb": f[:, 1]})
    return panel, factors


def rolling_spec(name: str, **extra) -> Spec:
    return Spec(name=name, returns="panel", factors="factors", factor_cols=FACTORS, window=24, min_obs=12, **extra)


def view_rows(engine, name: str, schema: str = "fmduck") -> pl.DataFrame:
    sql = templates.transpile(f"SELECT asset, period_index, term, estimate, std_error, t_stat, r2, rmse, nobs FROM "
                              f"{templates.ident(schema)}.first_pass WHERE run_name = $run_name", engine.dialect)
    return engine.query(sql, {"run_name": name})


def as_float(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def check_by_asset(stored: StoredFirstPass, long: pl.DataFrame) -> None:
    got = stored.by_asset()
    assert got.height == long.select("asset", "term").unique().height
    by_key = {(r["asset"], r["term"]): r for r in got.iter_rows(named=True)}
    for (asset, term), group in long.group_by("asset", "term"):
        row = by_key[(asset, term)]
        for column in ("estimate", "std_error", "t_stat", "r2", "rmse", "nobs"):
            np.testing.assert_allclose(row[column], np.nanmean(as_float(group[column].to_list())), rtol=1e-12,
                                       err_msg=f"{asset} {term} {column}")
        assert row["windows"] == group.height
    assert got["asset"].to_list() == sorted(got["asset"].to_list())
    assert got.filter(pl.col("asset") == got["asset"][0])["term"].to_list() == stored.terms  # term order


def check_by_period(stored: StoredFirstPass, long: pl.DataFrame, terms: list[str]) -> None:
    got = stored.by_period(terms)
    wanted = long.filter(pl.col("term").is_in(terms))
    assert got.height == wanted.select("period_index", "term").unique().height
    by_key = {(r["period_index"], r["term"]): r for r in got.iter_rows(named=True)}
    for (pidx, term), group in wanted.group_by("period_index", "term"):
        row = by_key[(pidx, term)]
        values = as_float(group["estimate"].to_list())
        expected = np.quantile(values[np.isfinite(values)], QUANTILES)
        np.testing.assert_allclose([row[q] for q in QS], expected, rtol=1e-12, atol=1e-15, err_msg=f"{pidx} {term}")
        assert row["n"] == group.height
    assert got["period_index"].to_list() == sorted(got["period_index"].to_list())
    assert got.filter(pl.col("period_index") == got["period_index"][0])["term"].to_list() == terms  # asked order


@pytest.fixture(scope="module")
def duck():
    from fmduck.engine import DuckDBEngine

    panel, factors = panel_frames()
    con = duckdb.connect()
    con.register("p", panel.to_arrow())
    con.register("f", factors.to_arrow())
    con.execute("CREATE TABLE panel AS SELECT * FROM p")
    con.execute("CREATE TABLE factors AS SELECT * FROM f")
    FamaMacBeth(rolling_spec("roll.q-1"), con).fit()
    FamaMacBeth(Spec(name="full", returns="panel", factors="factors", factor_cols=FACTORS), con).fit()
    yield DuckDBEngine(con)
    con.close()


def test_duckdb_rolling_aggregates_equal_numpy(duck):
    name = "roll.q-1"
    stored = StoredFirstPass(duck, name)
    long = view_rows(duck, name)
    assert stored.terms == ["const", *FACTORS]
    n_windows = long.select("asset", "period_index").unique().height
    assert stored.shape == {"n_assets": long["asset"].n_unique(), "n_windows": n_windows, "rolling": True}
    assert len(set(long.group_by("asset").len()["len"].to_list())) > 1  # the assets have different window counts
    check_by_asset(stored, long)
    check_by_period(stored, long, ["smb", "const"])
    check_by_period(stored, long, stored.terms)


def test_duckdb_full_sample_aggregates(duck):
    stored = StoredFirstPass(duck, "full")
    long = view_rows(duck, "full")
    assert stored.shape == {"n_assets": 24, "n_windows": 24, "rolling": False}
    check_by_asset(stored, long)
    assert set(stored.by_asset()["windows"].to_list()) == {1}
    assert stored.by_period().height == 0  # no window ends: no per-period distribution
    with pytest.raises(FmduckError, match="no first-pass term"):
        stored.by_period(["nope"])


def test_unknown_run_gives_empty_aggregates(duck):
    stored = StoredFirstPass(duck, "nosuch")
    assert stored.terms == [] and stored.shape["n_windows"] == 0 and stored.by_asset().height == 0


@pytest.mark.postgres
def test_postgres_aggregates_equal_numpy(pg):
    """The same templates transpiled for PostgreSQL (percentile_cont ... WITHIN GROUP), a mixed-case schema."""
    panel, factors = panel_frames(seed=5)
    pg.create_table(templates.table("panel"), panel)
    pg.create_table(templates.table("factors"), factors)
    FamaMacBeth(rolling_spec("pg_roll", schema="FM Results"), pg).fit()
    stored = StoredFirstPass(pg, "pg_roll", schema="FM Results")
    long = view_rows(pg, "pg_roll", schema="FM Results")
    assert stored.shape["n_assets"] == long["asset"].n_unique() and stored.shape["rolling"]
    check_by_asset(stored, long)
    check_by_period(stored, long, ["const", "mkt", "smb"])
    sql = templates.render("results/first_pass_periods", "postgres", schema=templates.ident("FM Results"),
                           positions=[0], levels="[0.05, 0.5]")
    assert "PERCENTILE_CONT(ARRAY[0.05, 0.5]) WITHIN GROUP" in sql
