"""A polars in-memory Fama-MacBeth with rolling betas: the "fast in-memory" yardstick.

Independent of fmduck's code: rolling moments with ``DataFrame.rolling`` (calendar window of W
periods per asset), 3x3 centred normal equations solved by the adjugate formula in polars
expressions, cross sections per period with ``group_by``, pass 3 in numpy. Same conventions as
fmduck: window (t − W, t], windows with fewer than ``min_obs`` rows dropped, pass 2 regresses r_t on
β_{t−lag} with an intercept, Fama-MacBeth and Newey-West (Bartlett, Γ/(T(T−1))) standard errors.
"""

from __future__ import annotations

import numpy as np
import polars as pl

X = ["x0", "x1", "x2"]


def _centred_moments(names: list[str], y: str) -> list[pl.Expr]:
    """Centred cross products S_ab = Σab − Σa Σb / n as expressions over columns s_*, p_*, n."""
    out = []
    cols = names + [y]
    for i, a in enumerate(cols):
        for b in cols[i:]:
            out.append((pl.col(f"p_{a}_{b}") - pl.col(f"s_{a}") * pl.col(f"s_{b}") / pl.col("n")).alias(f"S_{a}_{b}"))
    return out


def _sums(names: list[str], y: str) -> list[pl.Expr]:
    cols = names + [y]
    exprs = [pl.len().alias("n")] + [pl.col(c).sum().alias(f"s_{c}") for c in cols]
    for i, a in enumerate(cols):
        for b in cols[i:]:
            exprs.append((pl.col(a) * pl.col(b)).sum().alias(f"p_{a}_{b}"))
    return exprs


def _solve3(names: list[str], y: str, out: list[str]) -> list[pl.Expr]:
    """Slopes of the 3x3 centred system by the adjugate (Cramer) formula, as polars expressions."""
    a, b, c = names

    def s(u: str, v: str) -> pl.Expr:
        u, v = sorted([u, v], key=lambda z: (names + [y]).index(z))
        return pl.col(f"S_{u}_{v}")

    m = [[s(r, q) for q in names] for r in names]
    r = [s(q, y) for q in names]
    det = (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
           - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
           + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))

    def replaced(j: int) -> pl.Expr:
        mm = [[r[i] if k == j else m[i][k] for k in range(3)] for i in range(3)]
        return (mm[0][0] * (mm[1][1] * mm[2][2] - mm[1][2] * mm[2][1])
                - mm[0][1] * (mm[1][0] * mm[2][2] - mm[1][2] * mm[2][0])
                + mm[0][2] * (mm[1][0] * mm[2][1] - mm[1][1] * mm[2][0]))

    return [(replaced(j) / det).alias(out[j]) for j in range(3)]


def first_pass(returns: pl.DataFrame, factors: pl.DataFrame, factor_cols: list[str], window: int,
               min_obs: int) -> pl.DataFrame:
    """Rolling betas per (asset, pidx): columns asset, pidx, n, b0, b1, b2."""
    calendar = factors.select("period").unique().sort("period").with_row_index("pidx", offset=1).with_columns(
        pl.col("pidx").cast(pl.Int64))
    f = factors.join(calendar, on="period").select("period", "pidx",
                                                   *[pl.col(c).alias(x) for c, x in zip(factor_cols, X)])
    panel = returns.select("asset", "period", "ret").filter(pl.col("ret").is_not_null()).join(f, on="period")
    means = panel.select(pl.col(X + ["ret"]).mean()).row(0)
    panel = panel.select(
        "asset", "pidx", *[(pl.col(c) - m).alias(c) for c, m in zip(X + ["ret"], means)]
    ).sort("asset", "pidx")
    mom = panel.rolling(index_column="pidx", period=f"{window}i", group_by="asset").agg(_sums(X, "ret"))
    mom = mom.filter(pl.col("n") >= min_obs)
    return mom.with_columns(_centred_moments(X, "ret")).select(
        "asset", "pidx", "n", *_solve3(X, "ret", ["b0", "b1", "b2"]))


def second_pass(returns: pl.DataFrame, factors: pl.DataFrame, betas: pl.DataFrame, beta_lag: int) -> pl.DataFrame:
    """λ_t per period: columns pidx, n, const, b0, b1, b2 (regressing r_t on β_{t−lag} with an intercept)."""
    calendar = factors.select("period").unique().sort("period").with_row_index("pidx", offset=1).with_columns(
        pl.col("pidx").cast(pl.Int64))
    panel = returns.select("asset", "period", "ret").filter(pl.col("ret").is_not_null()).join(calendar, on="period")
    panel = panel.with_columns((pl.col("pidx") - beta_lag).alias("bpidx")).join(
        betas.select("asset", pl.col("pidx").alias("bpidx"), "b0", "b1", "b2"), on=["asset", "bpidx"])
    return cross_sections(panel, ["b0", "b1", "b2"], "ret")


def cross_sections(panel: pl.DataFrame, names: list[str], y: str) -> pl.DataFrame:
    """OLS of y on an intercept and three regressors per pidx; columns pidx, n, const, *names."""
    means = panel.select(pl.col(names + [y]).mean()).row(0)
    shifted = panel.select("pidx", *[(pl.col(c) - m).alias(c) for c, m in zip(names + [y], means)])
    mom = shifted.group_by("pidx").agg(_sums(names, y)).filter(pl.col("n") >= len(names) + 2)
    lam = mom.with_columns(_centred_moments(names, y)).with_columns(_solve3(names, y, names))
    const = (pl.col(f"s_{y}") / pl.col("n") + means[-1]) - sum(
        ((pl.col(f"s_{c}") / pl.col("n") + m) * pl.col(c) for c, m in zip(names, means)), pl.lit(0.0))
    return lam.select("pidx", "n", const.alias("const"), *names).sort("pidx")


def third_pass(lambdas: np.ndarray, lags: int) -> dict[str, np.ndarray]:
    """Mean, Fama-MacBeth SE and Newey-West SE (Bartlett, Γ/(T(T−1)))."""
    t = lambdas.shape[0]
    dev = lambdas - lambdas.mean(axis=0)
    gamma = dev.T @ dev
    fm = np.sqrt(np.diag(gamma) / (t - 1) / t)
    for lag in range(1, lags + 1):
        c = dev[lag:].T @ dev[:-lag]
        gamma = gamma + (1 - lag / (lags + 1)) * (c + c.T)
    return {"estimate": lambdas.mean(axis=0), "fm": fm, "nw": np.sqrt(np.diag(gamma) / (t * (t - 1)))}


def rolling_fm(returns: pl.DataFrame, factors: pl.DataFrame, factor_cols: list[str], window: int, min_obs: int,
               beta_lag: int, lags: int) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, np.ndarray]]:
    betas = first_pass(returns, factors, factor_cols, window, min_obs)
    lam = second_pass(returns, factors, betas, beta_lag)
    return betas, lam, third_pass(lam.select("const", "b0", "b1", "b2").to_numpy(), lags)


def chars_fm(returns: pl.DataFrame, chars: list[str], lags: int) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    calendar = returns.select("period").unique().sort("period").with_row_index("pidx", offset=1).with_columns(
        pl.col("pidx").cast(pl.Int64))
    panel = returns.drop_nulls(["ret", *chars]).join(calendar, on="period")
    lam = cross_sections(panel, chars, "ret")
    return lam, third_pass(lam.select("const", *chars).to_numpy(), lags)
