"""Per-period preparation in SQL (fmduck/prepare.py, sql/prepare.sql.j2) against pandas.

pandas oracle per period: ``quantile`` (linear, its default) and ``clip`` for winsorize; mean and
``std(ddof=1)`` for standardize; ``rank(method="average")`` scaled (r − 1)/(n − 1) − 0.5 for rank.
NULL characteristics stay NULL and do not enter a period's statistics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

import oracles
from fmduck import FamaMacBeth, Spec
from fmduck.errors import SpecError


def char_panel(seed: int = 41, n_assets: int = 40, n_periods: int = 12) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_periods):
        for i in range(n_assets):
            size = float(np.exp(rng.normal(5, 2)))  # skewed: winsorizing bites
            bm = float(np.round(rng.normal(), 1))  # rounded: ties for the rank
            mom = None if rng.random() < 0.1 else float(rng.standard_t(3))
            ret = 0.01 * np.log(size) + 0.02 * bm + 0.01 * (mom or 0) + rng.normal()
            rows.append({"asset": f"s{i:03d}", "period": 201 + t, "ret": float(ret), "size": size, "bm": bm,
                         "mom": mom})
    return pl.DataFrame(rows)


def pandas_prepare(panel: pl.DataFrame, winsor: dict[str, float], standardize: list[str], rank: list[str]):
    df = panel.to_pandas()
    g = df.groupby("period")
    for c, p in winsor.items():
        lo = g[c].transform(lambda s, p=p: s.quantile(p))
        hi = g[c].transform(lambda s, p=p: s.quantile(1 - p))
        df[c] = df[c].clip(lo, hi)
    g = df.groupby("period")
    for c in standardize:
        df[c] = (df[c] - g[c].transform("mean")) / g[c].transform(lambda s: s.std(ddof=1))
    for c in rank:
        r = g[c].rank(method="average")
        n = g[c].transform("count")
        df[c] = np.where(n > 1, (r - 1) / (n - 1) - 0.5, 0.0)
        df.loc[panel.to_pandas()[c].isna(), c] = np.nan
    return df


def _prepared(con, spec: Spec) -> pd.DataFrame:
    """The prepared panel as a run reads it: prepare.build's SQL (DuckDB syntax, the source every query
    of the run selects from) run with its parameters; the run's pass-2 SQL embeds that same text."""
    from fmduck import prepare, templates
    from fmduck.engines import connect

    engine = connect(con)
    relation = engine.relation(spec.returns, "returns")
    sql, params, _ = prepare.build(spec, relation, "duckdb")
    model = FamaMacBeth(spec, con)
    plan = model.plan()
    pass2 = next(step for step in plan if step.key == "lambdas")
    assert f"({sql})" in pass2.source and set(params) <= set(pass2.params)
    return engine.query(templates.transpile(sql, "duckdb"), params).to_pandas()


CASES = [
    ({"size": 0.05, "mom": 0.1}, [], []),
    ({}, ["size", "mom"], []),
    ({}, [], ["bm", "mom"]),
    ({"size": 0.02, "mom": 0.05}, ["size"], ["bm", "mom"]),
]


@pytest.mark.parametrize(("winsor", "std", "rank"), CASES)
def test_prepared_values_vs_pandas(con, winsor, std, rank):
    panel = char_panel()
    spec = Spec(name="prep", returns=panel, chars=["size", "bm", "mom"], winsorize=winsor or None,
                standardize=std, rank=rank)
    got = pl.from_pandas(_prepared(con, spec)).with_columns(pl.col("period").cast(pl.Int64))
    want = pl.from_pandas(pandas_prepare(panel, winsor, std, rank))
    assert got.height == panel.height
    both = want.join(got, on=["asset", "period"], suffix="_sql")
    for c in ("size", "bm", "mom"):
        a, e = both[f"{c}_sql"].to_numpy().astype(float), both[c].to_numpy().astype(float)
        assert np.array_equal(np.isnan(a), np.isnan(e)), c
        ok = ~np.isnan(e)
        oracles.assert_close(a[ok], e[ok], label="per-period preparation vs pandas", what=c, rtol=1e-10, atol=1e-12)
    if winsor:  # guard: winsorizing changed something
        assert not np.allclose(both["size"].to_numpy(), panel.sort(["asset", "period"])["size"].to_numpy())


def test_prepared_lambdas_vs_pandas_ols(fit):
    panel = char_panel(seed=42)
    winsor, std, rank = {"size": 0.05}, ["size"], ["bm"]
    res = fit(returns=panel, chars=["size", "bm", "mom"], winsorize={"size": 0.05}, standardize=std, rank=rank,
              char_lag=0)
    df = pandas_prepare(panel, winsor, std, rank).dropna(subset=["ret", "size", "bm", "mom"])
    rows = []
    for _, g in df.groupby("period"):
        out = oracles.ols_numpy(g["ret"].to_numpy(), g[["size", "bm", "mom"]].to_numpy())
        rows.append({"period_index": len(rows) + 1, **dict(zip(["const", "size", "bm", "mom"], out["params"]))})
    want = pl.DataFrame(rows)
    oracles.compare_frames(res.lambdas, want, ["period_index"], ["const", "size", "bm", "mom"],
                           label="lambdas on prepared characteristics vs pandas + numpy")
    assert "Characteristics prepared within each period" in res.summary


def test_winsorize_all_characteristics_from_cli_value(con):
    panel = char_panel(seed=43)
    got = _prepared(con, Spec(name="w", returns=panel, chars=["size", "mom"], winsorize=0.1))
    want = pandas_prepare(panel, {"size": 0.1, "mom": 0.1}, [], [])
    merged = want.merge(got, on=["asset", "period"], suffixes=("", "_sql"))
    ok = merged["mom"].notna()
    oracles.assert_close(merged.loc[ok, "mom_sql"], merged.loc[ok, "mom"], label="per-period preparation vs pandas")


@pytest.mark.parametrize(("options", "message"), [
    ({"winsorize": 0.5}, "must be a number in \\(0, 0.5\\)"),
    ({"winsorize": -0.1}, "must be a number in \\(0, 0.5\\)"),
    ({"winsorize": {"nope": 0.1}}, "not characteristics"),
    ({"standardize": ["a"], "rank": ["a"]}, "both standardized and ranked"),
    ({"rank": ["zz"]}, "not characteristics"),
])
def test_bad_preparation_options(options, message):
    with pytest.raises(SpecError, match=message):
        Spec(name="x", returns="t", chars=["a", "b"], **options)


@pytest.mark.parametrize("window", [None, 24])
def test_winsorized_characteristics_with_factor_betas_vs_numpy(con, window):
    """Betas on factors beside winsorized characteristics (every query of the run reads the prepared
    panel: pass 1, pass 2, pricing errors, coverage, GRS) against numpy: per-period np.quantile (linear)
    and clip, then the pass-1 and pass-2 OLS of oracles.py."""
    panel, factors = oracles.synthetic_panel(seed=44, n_assets=20, n_periods=48, chars=["size", "bm"])
    rng = np.random.default_rng(45)
    skew = np.exp(2 * rng.standard_normal(panel.height))  # outliers: winsorizing bites
    panel = panel.with_columns(pl.Series("size", panel["size"].to_numpy() * skew),
                               pl.when(pl.int_range(pl.len()) % 13 == 0).then(None).otherwise(pl.col("bm")).alias("bm"))
    options = {"window": window, "min_obs": 12} if window else {}
    spec = Spec(name="wb", returns=panel, factors=factors, factor_cols=["mkt", "smb"], chars=["size", "bm"],
                winsorize=0.1, char_lag=1, **options)
    model = FamaMacBeth(spec, con)
    assert "$winsor" not in model.sql(inline=True)  # every step that reads the prepared panel binds the levels
    res = model.fit()
    prepared = oracles.winsorize(panel, ["size", "bm"], 0.1)
    assert not prepared["size"].equals(panel["size"])  # guard: winsorizing bites
    if window:
        fits = oracles.pass1_rolling(panel, factors, ["mkt", "smb"], window, min_obs=12)
    else:
        fits = oracles.pass1_full(panel, factors, ["mkt", "smb"], ols=oracles.ols_numpy)
    cross = oracles.pass2(prepared, factors, betas=oracles.betas_from(fits), factor_cols=["mkt", "smb"],
                          rolling=bool(window), chars=["size", "bm"], char_lag=1)
    want = oracles.lambdas_frame(cross, res.terms)
    oracles.compare_frames(res.lambdas, want, ["period_index"], [*res.terms, "r2", "n"],
                           label="winsorized characteristics with betas vs numpy", rtol=1e-10, atol=1e-12)
    fm = {r["term"]: r["estimate"] for r in res.estimates.filter(pl.col("se_type") == "fm").iter_rows(named=True)}
    oracles.assert_close([fm[t] for t in res.terms], want.select(res.terms).to_numpy().mean(axis=0),
                         label="winsorized characteristics with betas vs numpy", rtol=1e-10, what="lambda bar")
    assert res.pricing_errors.height == 20
    if not window:  # balanced full-sample betas: the GRS test reads the prepared panel too
        grs = res.extra["tests"].filter(pl.col("test") == "grs")
        assert grs.height == 1 and grs["statistic"][0] > 0
