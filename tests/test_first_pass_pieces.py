"""The first pass read in pieces: what is read does not depend on the piece sizes (store.PIECE_ROWS,
``first_pass_pieces(rows=...)``), and a run held in memory (``fit(write=False)``), stored (``fit()``)
and loaded back (``load_run``: read at once below store.EAGER_WINDOWS windows, else in pieces on use)
has the same first pass. Pass 1 itself is solved in SQL in one statement (no batches); its rows come
back only through these readers."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest

from fmduck import store
from fmduck.model import FamaMacBeth
from fmduck.spec import Spec
from fmduck.store import load_run

DROP = ["run_name", "run_id"]
KEY = ["asset", "period_index"]


def _panel(seed: int, assets: int = 30, periods: int = 80) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((periods, 2)) * [0.04, 0.03]
    rows = []
    for a in range(assets):
        start, end = sorted(rng.integers(1, periods + 1, 2))
        beta = rng.normal(1.0, 0.3, 2)
        rows += [(f"s{a:02d}", t, float(f[t - 1] @ beta + rng.normal(0, 0.05)))
                 for t in range(start, end + 1) if rng.random() > 0.1]  # gaps
    returns = pl.DataFrame(rows, schema=["asset", "period", "ret"], orient="row")
    factors = pl.DataFrame({"period": np.arange(1, periods + 1), "mkt": f[:, 0], "smb": f[:, 1]})
    return returns, factors


def _spec(name: str) -> Spec:
    returns, factors = _panel(11)
    return Spec(name=name, returns=returns, factors=factors, factor_cols=["mkt", "smb"], window=24, min_obs=10)


@pytest.fixture(scope="module")
def stored():
    """(connection, the results of fit(), of fit(write=False), of load_run, of load_run reading in pieces)
    of one rolling spec."""
    con = duckdb.connect()
    fitted = FamaMacBeth(_spec("pieces"), con).fit()
    held = FamaMacBeth(_spec("held"), con).fit(write=False)
    loaded = load_run(con, "pieces")
    with pytest.MonkeyPatch.context() as m:
        m.setattr(store, "EAGER_WINDOWS", 0)
        lazy = load_run(con, "pieces")
    yield con, fitted, held, loaded, lazy
    con.close()


def test_held_stored_and_loaded_first_pass_are_the_same(stored):
    _, fitted, held, loaded, lazy = stored
    assert fitted.first_pass.height > 500
    assert loaded.first_pass.equals(fitted.first_pass) and lazy.first_pass.equals(fitted.first_pass)
    assert held.first_pass.drop(DROP).equals(fitted.first_pass.drop(DROP))
    # pass 2 joined the same betas (summed in the order of the join: equal up to rounding)
    a = held.lambdas.select("const", "mkt", "smb").to_numpy()
    b = fitted.lambdas.select("const", "mkt", "smb").to_numpy()
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("which", ["fitted", "held", "loaded", "lazy"])
def test_piece_sizes_do_not_change_what_is_read(stored, which, monkeypatch):
    """Small pieces (rows=37, and store.PIECE_ROWS = 50 for the default) give the same windows as one piece."""
    res = {"fitted": stored[1], "held": stored[2], "loaded": stored[3], "lazy": stored[4]}[which]
    whole = list(res.first_pass_pieces(rows=10**9))
    assert len(whole) == 1
    small = list(res.first_pass_pieces(rows=37))
    assert len(small) > 3 and all(p.height <= 37 for p in small)
    monkeypatch.setattr(store, "PIECE_ROWS", 50)
    default = list(res.first_pass_pieces())
    if which in ("fitted", "lazy"):  # read from the database on use: store.PIECE_ROWS sets the default piece size
        assert len(default) > 3 and all(p.height <= 50 for p in default)
    for pieces in (small, default):
        assert pl.concat(pieces).sort(KEY).equals(whole[0].sort(KEY))


def test_wide_pieces_line_up_with_the_long_first_pass(stored):
    """Each wide row's estimates belong to its own (asset, window): for every term, the piece columns
    <term>, se_<term>, t_<term> equal the long rows' estimate, std_error, t_stat."""
    for res in stored[1:]:
        wide = pl.concat(list(res.first_pass_pieces(rows=41)))
        long = res.first_pass
        assert wide.height * 3 == long.height
        for term in ("const", "mkt", "smb"):
            part = long.filter(pl.col("term") == term).select(*KEY, "estimate", "std_error", "t_stat", "nobs")
            joined = wide.join(part, on=KEY)
            assert joined.height == wide.height
            assert (joined[term] == joined["estimate"]).all() and (joined[f"se_{term}"] == joined["std_error"]).all()
            assert (joined[f"t_{term}"] == joined["t_stat"]).all() and (joined["nobs"] == joined["nobs_right"]).all()


def test_loaded_pieces_equal_fitted_pieces(stored):
    _, fitted, _, loaded, lazy = stored
    a = pl.concat(list(fitted.first_pass_pieces(rows=53))).sort(KEY)
    for res in (loaded, lazy):
        b = pl.concat(list(res.first_pass_pieces(rows=29))).sort(KEY)
        assert a.drop(DROP).equals(b.drop(DROP))
