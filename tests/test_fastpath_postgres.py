"""The rolling fast path (sql/moments/rolling_fast.sql.j2 with sql/postgres/moments/window_sums.sql.j2) on a
real PostgreSQL 15 server.

PostgreSQL takes no column in a frame offset and has GENERATE_SERIES as a set-returning function, so
its fast branch sums the per-asset variables over the RANGE frame of n and lists gap periods with a
lateral GENERATE_SERIES (``rows_frame`` false). Checked here, as tests/test_fastpaths.py does on DuckDB:
the pass-1 moments and estimates of the fast branch equal the plain RANGE-window ones, on a panel with
runs of missing periods (one longer than the window), late listings, early delistings and a period
with a NULL factor; and the fast branch's SQL is what PostgreSQL ran.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from fmduck import moments as moments_mod
from fmduck import templates
from fmduck.model import FamaMacBeth
from fmduck.spec import Spec
from test_fastpaths import _panel, pass1_moments, same_fits

psycopg = pytest.importorskip("psycopg")

pytestmark = pytest.mark.postgres


def _gappy_panel() -> tuple[pl.DataFrame, pl.DataFrame]:
    """tests/test_fastpaths.py's panel (random gaps, staggered listings, smb NULL in period 47) with
    planted runs of missing periods, each in a different asset listed well around it: 3 and 6 in a
    row, 3 around the NULL factor, and 20 in a row (longer than every window)."""
    returns, factors = _panel(23, assets=40, periods=90)
    spans = returns.group_by("asset").agg(pl.col("period").min().alias("lo"), pl.col("period").max().alias("hi"))
    runs = [(50, 52), (40, 45), (46, 48), (35, 54)]
    planted = pl.lit(False)
    used: set[str] = set()
    for lo, hi in runs:
        fits = spans.filter((pl.col("lo") < lo - 10) & (pl.col("hi") > hi + 10) & ~pl.col("asset").is_in(list(used)))
        asset = fits["asset"].sort()[0]
        used.add(asset)
        planted = planted | ((pl.col("asset") == asset) & pl.col("period").is_between(lo, hi))
    return returns.filter(~planted), factors


def _fit(pg, monkeypatch, fast: bool, options: dict):
    """One rolling fit on PostgreSQL; returns the results, the pass-1 moments frame, the pass-1
    statement of the run and every statement PostgreSQL received."""
    monkeypatch.setattr(moments_mod, "FAST_ROLLING", fast)
    sent: list[str] = []
    spec = Spec(name="fast" if fast else "plain", returns="panel", factors="factors",
                factor_cols=["mkt", "smb", "hml"], **options)
    model = FamaMacBeth(spec, pg)
    with monkeypatch.context() as m:
        for method in ("query", "execute", "create_scratch"):
            original = getattr(pg, method)

            def recorded(*args, _original=original, _method=method, **kwargs):
                sent.append(str(args[1] if _method == "create_scratch" else args[0]))
                return _original(*args, **kwargs)

            m.setattr(pg, method, recorded)
        res = model.fit(write=False)
    pass1 = [s for label, s in model.statements if label.startswith("pass 1:") and "time-series" in label]
    assert len(pass1) == 1
    return res, pass1_moments(pg, spec), pass1[0], sent


@pytest.mark.parametrize("options", [
    {"window": 24, "min_obs": 10},
    {"window": 12, "min_obs": 5, "rf": "rf"},        # y = ret - f.rf: a per-asset variable reading a factor
    {"window": 8},                                    # default min_obs = K + 2
])
@pytest.mark.slow
def test_rolling_fast_path_matches_plain_windows_postgres(pg, monkeypatch, options):
    returns, factors = _gappy_panel()
    pg.create_table(templates.table("panel"), returns)
    pg.create_table(templates.table("factors"), factors)
    fast, fast_mom, fast_sql, fast_sent = _fit(pg, monkeypatch, True, options)
    plain, plain_mom, plain_sql, plain_sent = _fit(pg, monkeypatch, False, options)

    # the fast branch, in its PostgreSQL form, is the SQL PostgreSQL ran for pass 1 (and only there)
    assert "fmduck_gap_periods" in fast_sql and "fmduck_gaps" not in plain_sql
    assert "GENERATE_SERIES(g.fmduck_prev + 1, g.pidx - 1) AS s(gp)" in fast_sql
    assert "UNNEST" not in fast_sql and "n - 1 PRECEDING" not in fast_sql and "fmduck_ranked" not in fast_sql
    assert fast_sql in fast_sent and plain_sql in plain_sent
    assert not any("fmduck_gaps" in s for s in plain_sent)

    # the same windows, the same moments (≤ 1e-10 of each column's largest magnitude)
    assert fast_mom.height > 0
    assert fast_mom.select("asset", "pidx", "n").equals(plain_mom.select("asset", "pidx", "n"))
    assert fast_mom.columns == plain_mom.columns
    for col in fast_mom.columns[3:]:
        x, y = fast_mom[col].to_numpy(), plain_mom[col].to_numpy()
        assert np.max(np.abs(x - y)) <= 1e-10 * np.max(np.abs(y)), col

    # and the same first pass, skipped windows and λ_t
    same_fits(fast, plain)


def test_planted_gaps_are_in_the_panel():
    """The panel really has the gaps the comparison above is meant to cover."""
    returns, factors = _gappy_panel()
    steps = returns.sort("asset", "period").with_columns(pl.col("period").diff().over("asset").alias("step"))
    assert steps["step"].max() >= 21                          # a run of 20 missing periods inside a listing
    assert steps.filter(pl.col("step").is_between(4, 10)).height >= 2
    assert factors.filter(pl.col("smb").is_null()).height == 1
    spans = returns.group_by("asset").agg(pl.col("period").min().alias("lo"), pl.col("period").max().alias("hi"))
    assert spans["lo"].n_unique() > 5 and spans["hi"].n_unique() > 5
