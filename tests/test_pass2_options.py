"""--weights (WLS per period) vs statsmodels WLS, and --absorb vs explicit category dummies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.api as sm

import oracles
from fmduck.errors import InputError

CHARS = ["x1", "x2"]


def weighted_panel(seed: int = 51, n_assets: int = 30, n_periods: int = 15, bad_weights: bool = True):
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_periods):
        for i in range(n_assets):
            x = rng.normal(size=2)
            ind = ["A", "B", "C", "D"][i % 4]
            y = 0.2 + {"A": 0.0, "B": 1.0, "C": -0.5, "D": 2.0}[ind] + x @ [0.4, -0.3] + rng.normal() * (1 + i % 3)
            w = float(np.exp(rng.normal(3, 1)))
            if bad_weights and rng.random() < 0.05:
                w = None
            elif bad_weights and rng.random() < 0.05:
                w = 0.0
            cat = None if (bad_weights and rng.random() < 0.03) else ind
            rows.append({"asset": f"f{i:02d}", "period": 1 + t, "ret": float(y), "x1": float(x[0]),
                         "x2": float(x[1]), "mcap": w, "industry": cat})
    return pl.DataFrame(rows, schema={"asset": pl.Utf8, "period": pl.Int64, "ret": pl.Float64, "x1": pl.Float64,
                                      "x2": pl.Float64, "mcap": pl.Float64, "industry": pl.Utf8})


def _per_period(df: pd.DataFrame, weighted: bool, dummies: bool) -> pl.DataFrame:
    rows = []
    for idx, (_, g) in enumerate(df.groupby("period")):
        x = g[CHARS]
        if dummies:
            x = pd.concat([x, pd.get_dummies(g["industry"], dtype=float)], axis=1)  # all categories, no const
        else:
            x = sm.add_constant(x)
        model = sm.WLS(g["ret"], x, weights=g["mcap"]) if weighted else sm.OLS(g["ret"], x)
        fit = model.fit()
        row = {"period_index": idx + 1, "x1": fit.params["x1"], "x2": fit.params["x2"], "n": int(fit.nobs)}
        if not dummies:
            row.update({"const": fit.params["const"], "r2": fit.rsquared, "adj_r2": fit.rsquared_adj})
        rows.append(row)
    return pl.DataFrame(rows)


def test_wls_vs_statsmodels(fit):
    panel = weighted_panel()
    res = fit(returns=panel, chars=CHARS, weights="mcap")
    df = panel.to_pandas()
    df = df[df["mcap"].notna() & (df["mcap"] > 0)]
    want = _per_period(df, weighted=True, dummies=False)
    oracles.compare_frames(res.lambdas, want, ["period_index"], ["const", "x1", "x2", "r2", "adj_r2", "n"],
                           label="WLS per period vs statsmodels WLS")
    dropped = res.skipped.filter(pl.col("pass") == "weights")
    n_bad = int(panel.select((pl.col("mcap").is_null() | (pl.col("mcap") == 0)).sum()).item())
    assert n_bad > 0 and int(dropped["nobs"].sum()) == n_bad
    assert "weighted least squares per period" in res.summary
    plain = fit(returns=panel.filter(pl.col("mcap") > 0), chars=CHARS)  # guard: weights change λ_t
    assert not np.allclose(plain.lambdas["x1"].to_numpy(), res.lambdas["x1"].to_numpy())


def test_negative_weights_are_an_error(fit):
    panel = weighted_panel(bad_weights=False).with_columns(
        pl.when((pl.col("asset") == "f03") & (pl.col("period") == 4)).then(-1.0).otherwise(pl.col("mcap"))
        .alias("mcap"))
    with pytest.raises(InputError, match=r"--weights column 'mcap' has 1 negative value\(s\) \(periods 4\)"):
        fit(returns=panel, chars=CHARS, weights="mcap")


def test_weights_column_must_exist(fit):
    with pytest.raises(InputError, match="nope"):
        fit(returns=weighted_panel(), chars=CHARS, weights="nope")


@pytest.mark.parametrize("weighted", [False, True])
def test_absorb_equals_dummies(fit, weighted):
    panel = weighted_panel(seed=52)
    res = fit(returns=panel, chars=CHARS, absorb="industry", weights="mcap" if weighted else None)
    df = panel.to_pandas()
    df = df[df["industry"].notna()]
    if weighted:
        df = df[df["mcap"].notna() & (df["mcap"] > 0)]
    want = _per_period(df, weighted=weighted, dummies=True)
    assert "const" not in res.lambdas.columns
    oracles.compare_frames(res.lambdas, want, ["period_index"], ["x1", "x2", "n"],
                           label="absorb vs category dummies (statsmodels)")
    assert int(res.skipped.filter(pl.col("pass") == "absorb")["nobs"].sum()) == \
        int(panel.select(pl.col("industry").is_null().sum()).item())
    plain = fit(returns=panel.filter(pl.col("industry").is_not_null()), chars=CHARS,
                weights="mcap" if weighted else None)  # guard: absorbing changes the slopes
    assert not np.allclose(plain.lambdas["x1"].to_numpy(), res.lambdas["x1"].to_numpy())


def test_weights_with_betas_vs_statsmodels(fit):
    panel, factors = oracles.synthetic_panel(seed=53, n_assets=20, n_periods=40)
    rng = np.random.default_rng(0)
    panel = panel.with_columns(pl.Series("w", np.exp(rng.normal(size=panel.height))))
    res = fit(returns=panel, factors=factors, factor_cols=["mkt", "smb"], weights="w")
    betas = oracles.betas_from(oracles.pass1_full(panel, factors, ["mkt", "smb"]))
    df = panel.to_pandas()
    rows = []
    for idx, (_, g) in enumerate(df.groupby("period")):
        b = np.array([betas[a] for a in g["asset"]])
        fitw = sm.WLS(g["ret"].to_numpy(), sm.add_constant(b), weights=g["w"].to_numpy()).fit()
        rows.append({"period_index": idx + 1, "const": fitw.params[0], "mkt": fitw.params[1], "smb": fitw.params[2]})
    oracles.compare_frames(res.lambdas, pl.DataFrame(rows), ["period_index"], ["const", "mkt", "smb"],
                           label="WLS on full-sample betas vs statsmodels WLS")


@pytest.mark.slow
def test_cli_options(tmp_path, capsys):
    """--weights, --absorb, --standardize, --rank, --winsorize through fmduck.cli.main."""
    from fmduck.cli import main

    csv = tmp_path / "p.csv"
    weighted_panel(seed=54).write_csv(csv)
    db = str(tmp_path / "o.duckdb")
    assert main(["run", db, "--name", "w", "--returns", str(csv), "--chars", "x1,x2", "--weights", "mcap",
                 "--absorb", "industry", "--standardize", "--winsorize", "0.05", "-q"]) == 0
    out = capsys.readouterr().out
    assert "weighted least squares per period" in out and "industry absorbed" in out
    assert "x1 winsorized at 0.05/0.95 quantiles then standardized" in out
    assert main(["run", db, "--name", "r", "--returns", str(csv), "--chars", "x1,x2", "--rank", "-q"]) == 0
    assert main(["run", db, "--name", "bad", "--returns", str(csv), "--chars", "x1", "--winsorize", "0.7", "-q"]) == 2
    assert "winsorize level for 'x1' must be a number in (0, 0.5)" in capsys.readouterr().err
