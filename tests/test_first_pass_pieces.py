"""The streamed rolling pass 1 and the piecewise first-pass insert: results do not depend on the
batch sizes (pass-1 Arrow batches, wide pieces unpivoted by SQL)."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest

from fmduck import model as model_mod
from fmduck import results as results_mod
from fmduck.model import FamaMacBeth
from fmduck.results import FamaMacBethResults, load_run
from fmduck.spec import Spec


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


def _run(monkeypatch: pytest.MonkeyPatch, batch: int, piece: int) -> tuple[FamaMacBethResults, pl.DataFrame]:
    monkeypatch.setattr(model_mod, "PASS1_BATCH", batch)
    monkeypatch.setattr(results_mod, "WIDE_PIECE_ROWS", piece)
    returns, factors = _panel(11)
    con = duckdb.connect()
    spec = Spec(name="pieces", returns=returns, factors=factors, factor_cols=["mkt", "smb"], window=24, min_obs=10)
    res = FamaMacBeth(spec, con).fit()
    return res, load_run(con, "pieces").first_pass


def test_small_batches_and_pieces_store_the_same_first_pass(monkeypatch):
    whole, whole_stored = _run(monkeypatch, batch=1 << 17, piece=1 << 19)
    lazy = whole.__dict__["_lazy_first_pass"]
    assert len(list(lazy.wide_batches())) == 1
    small, small_stored = _run(monkeypatch, batch=37, piece=50)
    pieces = list(small.__dict__["_lazy_first_pass"].wide_batches())
    assert len(pieces) > 3 and all(p.height >= 50 for p in pieces[:-1])
    drop = ["run_name", "run_id"]
    assert whole_stored.height > 500
    assert small_stored.drop(drop).equals(whole_stored.drop(drop))   # stored rows (sorted by load_run)
    assert small.first_pass.drop(drop).equals(whole.first_pass.drop(drop))   # the lazy long frame
    assert small_stored.drop(drop).equals(small.first_pass.drop(drop))
    # pass 2 reads the betas in another chunking: the same sums, maybe in another order
    a, b = small.lambdas.select("const", "mkt", "smb").to_numpy(), whole.lambdas.select("const", "mkt", "smb").to_numpy()
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_wide_rows_line_up_with_their_keys(monkeypatch):
    """Each wide row's estimates belong to its own (asset, period): the long rows of one window agree."""
    res, _ = _run(monkeypatch, batch=41, piece=60)
    wide = res.__dict__["_lazy_first_pass"].wide()
    long = res.first_pass.filter(pl.col("term") == "mkt").select("asset", "period_index", "estimate", "nobs")
    joined = wide.join(long, on=["asset", "period_index"], how="inner")
    assert joined.height == wide.height == long.height
    assert (joined["e1"] == joined["estimate"]).all() and (joined["nobs"] == joined["nobs_right"]).all()


def test_first_pass_pieces_public_reader(monkeypatch):
    """``first_pass_pieces`` gives the same numbers as the long frame, in pieces, for a fitted run and
    for the same run loaded back from the results tables."""
    res, _ = _run(monkeypatch, batch=29, piece=40)
    pieces = list(res.first_pass_pieces())
    assert len(pieces) > 2
    wide = pl.concat(pieces)
    long = res.first_pass
    assert wide.height * 3 == long.height
    for term in ("const", "mkt", "smb"):
        part = long.filter(pl.col("term") == term).select("asset", "period_index", "estimate", "std_error", "t_stat")
        joined = wide.join(part, on=["asset", "period_index"])
        assert joined.height == wide.height
        assert (joined[term] == joined["estimate"]).all() and (joined[f"se_{term}"] == joined["std_error"]).all()
        assert (joined[f"t_{term}"] == joined["t_stat"]).all()
    con = duckdb.connect()
    returns, factors = _panel(11)
    spec = Spec(name="again", returns=returns, factors=factors, factor_cols=["mkt", "smb"], window=24, min_obs=10)
    FamaMacBeth(spec, con).fit()
    stored = pl.concat(list(load_run(con, "again").first_pass_pieces()))
    key = ["asset", "period_index"]
    assert stored.sort(key).select(wide.columns).equals(wide.sort(key))
