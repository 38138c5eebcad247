"""A seeded, CRSP-like monthly stock panel for the fm1973 design (tests and the README example).

Stocks (``permno`` integers) list and delist at random times, returns have fat tails (Student t,
5 df, scaled to the stated volatility) and a few missing months, betas are spread like CRSP
market betas (log-normal around 1) and idiosyncratic volatility rises with beta. Returns follow

    r_it = rf_t + β_i (r_mt − rf_t) + γ_2 (β_i² − 1) + γ_3 σ_i + σ_i ε_it,

so with ``gamma2 = gamma3 = 0`` the Sharpe-Lintner CAPM holds exactly in expectation: the
Fama-MacBeth (1973) γ_0 = r_f, γ_1 = the market premium, γ_2 = γ_3 = 0 (up to the errors in
the estimated betas). ``gamma2`` plants a β² premium (non-linearity, test C1), ``gamma3`` an
idiosyncratic-risk premium (test C2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl


@dataclass(frozen=True)
class CrspLike:
    """The simulated ``stocks`` panel (permno, date, ret), ``market`` table (date, vwretd, rf) and the truth."""

    stocks: pl.DataFrame
    market: pl.DataFrame
    betas: pl.DataFrame  # permno, beta, sigma: the true values
    premium: float
    gamma2: float
    gamma3: float


def simulate_crsp_like(n_stocks: int = 800, n_months: int = 360, *, start: tuple[int, int] = (1926, 1),
                       premium: float = 0.008, market_vol: float = 0.05, gamma2: float = 0.0,
                       gamma3: float = 0.0, missing: float = 0.001, seed: int = 1973) -> CrspLike:
    """Simulate ``n_stocks`` stocks over ``n_months`` month-ends starting at ``start`` (year, month)."""
    rng = np.random.default_rng(seed)
    months = [_month_end(start[0] + (start[1] - 1 + m) // 12, (start[1] - 1 + m) % 12 + 1) for m in range(n_months)]
    # risk-free: a persistent, positive monthly rate around 0.3%
    rf = np.empty(n_months)
    level = 0.003
    for t in range(n_months):
        level = 0.003 + 0.95 * (level - 0.003) + 0.0002 * rng.standard_normal()
        rf[t] = max(level, 0.0)
    excess = premium + market_vol * _t5(rng, n_months)
    beta = np.clip(rng.lognormal(0.0, 0.35, n_stocks), 0.2, 2.8)
    sigma = (0.03 + 0.035 * beta) * rng.uniform(0.7, 1.3, n_stocks)
    # listing: some stocks trade from the first month, others list later; lives are geometric (~25 years)
    first = np.where(rng.uniform(size=n_stocks) < 0.5, 0, rng.integers(0, n_months, n_stocks))
    last = np.minimum(first + rng.geometric(1.0 / 300.0, n_stocks), n_months)
    t_idx = np.arange(n_months)
    alive = (t_idx[None, :] >= first[:, None]) & (t_idx[None, :] < last[:, None])
    alive &= rng.uniform(size=alive.shape) >= missing
    ret = (rf[None, :] + beta[:, None] * excess[None, :] + gamma2 * (beta[:, None] ** 2 - 1.0)
           + gamma3 * sigma[:, None] + sigma[:, None] * _t5(rng, (n_stocks, n_months)))
    stock_i, month_i = np.nonzero(alive)
    permno = 10000 + np.arange(n_stocks)
    stocks = pl.DataFrame({
        "permno": permno[stock_i].astype(np.int64),
        "date": pl.Series([months[m] for m in month_i], dtype=pl.Date),
        "ret": ret[stock_i, month_i],
    })
    market = pl.DataFrame({"date": pl.Series(months, dtype=pl.Date), "vwretd": rf + excess, "rf": rf})
    truth = pl.DataFrame({"permno": permno.astype(np.int64), "beta": beta, "sigma": sigma})
    return CrspLike(stocks, market, truth, premium, gamma2, gamma3)


def _t5(rng: np.random.Generator, size) -> np.ndarray:
    """Student t with 5 df scaled to unit variance (fat-tailed like monthly stock returns)."""
    return rng.standard_t(5, size) / np.sqrt(5.0 / 3.0)


def _month_end(year: int, month: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return date.fromordinal(nxt.toordinal() - 1)
