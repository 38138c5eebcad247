"""The GRS (and pricing-error test) skip note says what was observed (issue 19: it said "not every asset has
all 227 periods" when the panel had 240): the range of first-pass observations per asset, or that the
assets have as many observations but in different periods, and that the test needs every asset in the
same T periods. Oracle: the observation counts of the seeded panel, counted with polars.
"""

from __future__ import annotations

import numpy as np
import polars as pl

FACTORS = ["mkt", "smb"]


def frames(n_assets: int = 8, n_periods: int = 60, seed: int = 3) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    f = rng.normal(0.01, 0.04, size=(n_periods, 2))
    beta = rng.normal(1.0, 0.3, size=(n_assets, 2))
    r = beta @ f.T + rng.normal(0.0, 0.03, size=(n_assets, n_periods))
    panel = pl.DataFrame({"asset": np.repeat([f"A{i:03d}" for i in range(n_assets)], n_periods),
                          "period": np.tile(np.arange(n_periods), n_assets), "ret": r.ravel()})
    factors = pl.DataFrame({"period": np.arange(n_periods), "mkt": f[:, 0], "smb": f[:, 1]})
    return panel, factors


def notes(res) -> dict[str, str]:
    tests = res.extra["tests"].filter(pl.col("test").is_in(["grs", "pricing_chi2"]))
    return dict(zip(tests["test"].to_list(), tests["note"].to_list()))


def test_note_gives_the_observed_range(fit):
    panel, factors = frames()
    late = (pl.col("asset") == "A005") & (pl.col("period") < 10)
    gappy = panel.filter(~late & ~((pl.col("asset") == "A003") & (pl.col("period") == 17)))
    counts = gappy.group_by("asset").len()["len"]
    lo, hi = counts.min(), counts.max()
    assert (lo, hi) == (50, 60)
    got = notes(fit(returns=gappy, factors=factors, factor_cols=FACTORS))
    assert got["grs"] == (f"skipped: unbalanced panel: first-pass observations per asset range from {lo} to {hi}; "
                          "GRS needs every asset in the same T periods")
    assert got["pricing_chi2"] == (f"skipped: unbalanced panel: first-pass observations per asset range from {lo} to "
                                   f"{hi}; the pricing-error test needs every asset in the same T periods")


def test_note_when_every_asset_has_as_many_observations_in_other_periods(fit):
    panel, factors = frames()
    offset = pl.col("asset").str.slice(1).cast(pl.Int64)
    staggered = panel.filter((pl.col("period") >= offset) & (pl.col("period") < offset + 50))
    assert set(staggered.group_by("asset").len()["len"].to_list()) == {50}
    periods = staggered["period"].n_unique()
    assert periods == 57
    got = notes(fit(returns=staggered, factors=factors, factor_cols=FACTORS))
    assert got["grs"] == (f"skipped: unbalanced panel: every asset has 50 first-pass observations, but not in the same "
                          f"periods ({periods} periods in all); GRS needs every asset in the same T periods")
