"""A seeded CRSP-like monthly stock file and a Ken French-style factors file, as a researcher has them.

Test-only; imports nothing from fmduck. ``make_crsp()`` returns a ``CrspFixture``:

``stocks`` (pandas; one row per permno and month it is listed)
    ``permno`` int64; ``date`` the LAST TRADING DAY of the month (NYSE calendar below: weekends,
    the holiday rules of ``nyse_holidays`` and the special closures in ``SPECIAL_CLOSURES``);
    ``ret`` decimal monthly return, 6 decimals, NaN = NULL; ``prc`` price (negative on ~4 % of rows:
    CRSP's bid/ask-average sign); ``shrout`` shares outstanding in thousands; ``size`` =
    ln(|prc| * shrout / 1000), log market equity in $ millions; ``bm`` book-to-market, constant from
    July to June, NaN (NULL) in ~5 % of stock-years.
``factors_pct`` (pandas) laid out as Ken French publishes it: first column YYYYMM integers (header
    empty), then ``Mkt-RF``, ``SMB``, ``HML``, ``RF`` in PERCENT with 2 decimals; ``write_factors_csv``
    writes it like data/ff_factors_monthly.csv. The factors start five years before the panel and end
    ``factor_tail_gap`` months before it (a file downloaded before the last CRSP update), so the last
    months of the panel have no factor row.

The truth (documented in ``truth``), with f_t = factors_pct / 100 (the rounded published values):

    ret_it = RF_t + beta_i' f_t + g_size (size_i,t-1 - mean_j size_j,t-1)
                  + g_bm (bm*_i,t-1 - mean_j bm*_j,t-1) + sigma_i e_it,

e_it Student t(4) scaled to unit variance, sigma_i ~ U(0.06, 0.14), bm* the latent book-to-market
(also where the published bm is NULL), the means taken over the stocks listed at t. Every stock's
state evolves from the panel's first month, so a newly listed stock has last month's characteristics.
Hence beta-based FM premia estimate E[f] (traded factors, zero alphas), characteristic FM premia
estimate (g_size, g_bm). Departures, on purpose and few: returns are clipped at -0.98, rounded to 6
decimals, and ~30 % of delisting months carry a -30 % delisting return.

Events (``events``): stocks listed before the panel starts and stocks listing throughout it;
delistings (last month with a non-NULL return, then no row); gaps (missing months inside a stock's
life: runs of 1, 2, 3 and 5 months placed after at least 40 months of life, so that the months after
them have no beta lagged one month, but one at most 2, 3, 4 or 6 months old); NULL returns (half of
the listing months, ~0.3 % of other rows, never a delisting month); stocks listed only in the months
without factors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

FACTOR_COLS = ("Mkt-RF", "SMB", "HML")
SPECIAL_CLOSURES = (  # unscheduled NYSE closures (weather, national days of mourning, 9/11)
    date(1994, 4, 27), date(2001, 9, 11), date(2001, 9, 12), date(2001, 9, 13), date(2001, 9, 14),
    date(2004, 6, 11), date(2007, 1, 2), date(2012, 10, 29), date(2012, 10, 30), date(2018, 12, 5),
)


# ====================================================================== NYSE calendar
def easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm, Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """n-th (1-based; -1 = last) given weekday (Mon = 0) of a month."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    """Saturday holidays are observed on Friday, Sunday holidays on Monday."""
    return day - timedelta(days=1) if day.weekday() == 5 else day + timedelta(days=1) if day.weekday() == 6 else day


def nyse_holidays(year: int) -> set[date]:
    """Full-day NYSE holidays of ``year`` by the exchange's rules (New Year's Day on a Saturday is not
    observed on the Friday before: NYSE Rule 7.2), plus ``SPECIAL_CLOSURES``."""
    new_year = date(year, 1, 1)
    days = {_nth_weekday(year, 2, 0, 3),                    # Washington's Birthday
            easter(year) - timedelta(days=2),                # Good Friday
            _nth_weekday(year, 5, 0, -1),                    # Memorial Day
            _observed(date(year, 7, 4)),                     # Independence Day
            _nth_weekday(year, 9, 0, 1),                     # Labor Day
            _nth_weekday(year, 11, 3, 4),                    # Thanksgiving
            _observed(date(year, 12, 25))}                   # Christmas
    if new_year.weekday() != 5:
        days.add(_observed(new_year))
    if year >= 1998:
        days.add(_nth_weekday(year, 1, 0, 3))               # Martin Luther King Jr. Day
    if year >= 2022:
        days.add(_observed(date(year, 6, 19)))              # Juneteenth
    days.update(d for d in SPECIAL_CLOSURES if d.year == year)
    return {d for d in days if d.year == year}


def last_trading_day(year: int, month: int) -> date:
    """The last NYSE trading day of a month (CRSP's monthly ``date``)."""
    day = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    holidays = nyse_holidays(year)
    while day.weekday() >= 5 or day in holidays:
        day -= timedelta(days=1)
    return day


def month_end(year: int, month: int) -> date:
    return date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)


# ====================================================================== the fixture
@dataclass(frozen=True)
class CrspFixture:
    stocks: pd.DataFrame
    factors_pct: pd.DataFrame
    truth: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)

    def write_factors_csv(self, path: str | Path) -> Path:
        """The factors as Ken French's CSV: ``,Mkt-RF,SMB,HML,RF`` then ``YYYYMM,percent...``."""
        path = Path(path)
        frame = self.factors_pct.rename(columns={"yyyymm": ""})
        frame.to_csv(path, index=False, float_format="%.2f")
        return path

    def write_stocks(self, con, table: str = "crsp") -> None:
        """The stock file as a DuckDB table (permno BIGINT, date DATE, ret/prc/size/bm DOUBLE with
        NULLs, shrout BIGINT), written with duckdb directly."""
        import pyarrow as pa

        arrow = pa.Table.from_pandas(self.stocks, preserve_index=False)  # NaN -> NULL
        con.register("crsp_arrow", arrow)
        con.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT CAST(permno AS BIGINT) AS permno, '
                    'CAST("date" AS DATE) AS "date", CAST(ret AS DOUBLE) AS ret, CAST(prc AS DOUBLE) AS prc, '
                    'CAST(shrout AS BIGINT) AS shrout, CAST(size AS DOUBLE) AS size, CAST(bm AS DOUBLE) AS bm '
                    'FROM crsp_arrow ORDER BY permno, "date"')
        con.unregister("crsp_arrow")


def make_crsp(seed: int = 13, *, n_initial: int = 300, n_new: int = 200, first_year: int = 2000,
              months: int = 240, factor_lead_years: int = 5, factor_tail_gap: int = 2,
              g_size: float = -0.0015, g_bm: float = 0.004) -> CrspFixture:
    """A seeded CRSP-like panel (500 permnos, 240 months, ~62,000 rows) and its factors."""
    rng = np.random.default_rng(seed)
    ym = [(first_year + m // 12, m % 12 + 1) for m in range(months)]
    factors_pct, f = _factors(rng, first_year - factor_lead_years, months + 12 * factor_lead_years - factor_tail_gap)
    lead = 12 * factor_lead_years
    f_panel = np.full((months, 4), np.nan)  # decimal Mkt-RF, SMB, HML, RF on the panel months (NaN: no factor row)
    f_panel[: months - factor_tail_gap] = f[lead:]
    # the true model's factors also drive the months without a published factor row
    f_panel[months - factor_tail_gap:] = np.column_stack(
        [rng.normal(0.006, 0.044, (factor_tail_gap, 3)) / [1, 1.5, 1.5], np.full(factor_tail_gap, 0.0015)])

    n = n_initial + n_new
    start = np.concatenate([np.zeros(n_initial, int), rng.integers(1, months - 4, n_new)])
    start[-2:] = months - factor_tail_gap + np.array([0, 1])  # listed only in months without factors
    life = np.concatenate([1 + rng.exponential(220, n_initial), 1 + rng.exponential(140, n_new)]).astype(int)
    end = np.minimum(start + life - 1, months - 1)
    alive = (np.arange(months)[None, :] >= start[:, None]) & (np.arange(months)[None, :] <= end[:, None])

    gaps = _gaps(rng, start, end, alive)
    beta = np.column_stack([rng.normal(1.0, 0.35, n), rng.normal(0.6, 0.6, n), rng.normal(0.2, 0.5, n)])
    sigma = rng.uniform(0.06, 0.14, n)
    permno = np.sort(rng.choice(np.arange(10_001, 93_500), n, replace=False))

    # latent state of every stock, simulated month by month from the panel's first month (a stock's
    # listed months are the observed part; its first listed month has the previous month's characteristics)
    shrout = np.round(np.exp(rng.normal(9.5, 1.2, n))).astype(np.int64)
    prc = np.exp(rng.normal(3.0, 0.8, n))
    size_prev = np.log(prc * shrout / 1000)
    bm_prev = np.exp(rng.normal(-0.2, 0.6, n))
    size_july = size_prev
    bm_missing_year = rng.random((n, months // 12 + 2)) < 0.05
    out = {k: np.full((n, months), np.nan) for k in ("ret", "prc", "size", "bm", "shrout")}
    for m in range(months):
        live = alive[:, m]
        if ym[m][1] == 7:  # updated each July (Fama-French timing): mean-reverting, lower after a rise in price
            bm_now = np.exp(0.7 * np.log(bm_prev) - 0.06 - 0.4 * (size_prev - size_july) + rng.normal(0, 0.25, n))
            size_july = size_prev
        else:
            bm_now = bm_prev
        chars = g_size * (size_prev - size_prev[live].mean()) + g_bm * (bm_prev - bm_prev[live].mean())
        eps = rng.standard_t(4, n) / np.sqrt(2.0)
        ret = np.round(np.maximum(f_panel[m, 3] + beta @ f_panel[m, :3] + chars + sigma * eps, -0.98), 6)
        shrout = np.where(rng.random(n) < 0.01, np.round(shrout * rng.uniform(1.0, 1.1, n)), shrout).astype(np.int64)
        prc = np.maximum(np.round(prc * (1 + ret), 4), 0.01)  # a penny floor keeps ln(size) finite
        size_now = np.log(prc * shrout / 1000)
        for k, v in (("ret", ret), ("prc", prc), ("size", size_now), ("shrout", shrout)):
            out[k][live, m] = v[live]
        out["bm"][live, m] = np.where(bm_missing_year[live, (m + 6) // 12], np.nan, bm_now[live])  # July-June
        size_prev, bm_prev = size_now, bm_now

    stocks, events = _rows(rng, out, alive, start, end, permno, ym, gaps)
    events.update(n_permnos=n, n_rows=len(stocks),
                  only_without_factors=sorted(permno[start >= months - factor_tail_gap].tolist()))
    truth = {"beta": pd.DataFrame(beta, index=pd.Index(permno, name="permno"), columns=list(FACTOR_COLS)),
             "sigma": pd.Series(sigma, index=pd.Index(permno, name="permno")),
             "g_size": g_size, "g_bm": g_bm,
             "factor_means_decimal": dict(zip(FACTOR_COLS, f[lead:, :3].mean(axis=0)))}
    return CrspFixture(stocks=stocks, factors_pct=factors_pct, truth=truth, events=events)


def _factors(rng: np.random.Generator, first_year: int, count: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Monthly Mkt-RF, SMB, HML (fat-tailed, correlated) and a slow RF path, in percent rounded to 2
    decimals as Ken French publishes; also the decimal values (rounded percent / 100)."""
    shocks = rng.standard_t(5, (count, 3)) / np.sqrt(5 / 3)
    chol = np.linalg.cholesky(np.array([[1.0, 0.25, -0.2], [0.25, 1.0, -0.1], [-0.2, -0.1, 1.0]]))
    pct = np.array([0.6, 0.2, 0.3]) + shocks @ chol.T * np.array([4.4, 3.0, 3.0])
    t = np.arange(count)
    rf = np.clip(0.25 + 0.22 * np.sin(t / 40.0) + rng.normal(0, 0.01, count), 0.0, None)
    pct = np.round(np.column_stack([pct, rf]), 2)
    yyyymm = np.array([(first_year + i // 12) * 100 + i % 12 + 1 for i in t], dtype=np.int64)
    frame = pd.DataFrame({"yyyymm": yyyymm, **{c: pct[:, j] for j, c in enumerate((*FACTOR_COLS, "RF"))}})
    return frame, pct / 100


def _gaps(rng, start, end, alive) -> dict[int, tuple[int, int]]:
    """stock index -> (first missing month, gap length): gaps of 1, 2, 3, 5 months after >= 40 months of life."""
    eligible = np.flatnonzero(end - start >= 60)
    chosen = rng.choice(eligible, 48, replace=False)
    gaps = {}
    for j, i in enumerate(chosen):
        length = (1, 1, 2, 3, 1, 5)[j % 6]
        at = int(rng.integers(start[i] + 40, end[i] - length - 2))
        alive[i, at:at + length] = False
        gaps[int(i)] = (at, length)
    return gaps


def _rows(rng, out, alive, start, end, permno, ym, gaps) -> tuple[pd.DataFrame, dict]:
    """The long stock file from the simulated arrays; NULL returns and delisting returns applied."""
    idx_stock, idx_month = np.nonzero(alive)
    ret = out["ret"][idx_stock, idx_month]
    is_last = idx_month == end[idx_stock]
    delisted = is_last & (end[idx_stock] < alive.shape[1] - 1)
    perf = delisted & (rng.random(len(ret)) < 0.3)
    ret = np.where(perf, np.round((1 + ret) * 0.7 - 1, 6), ret)
    first_new = (idx_month == start[idx_stock]) & (start[idx_stock] > 0)
    null_ret = ((first_new & (rng.random(len(ret)) < 0.5)) | (rng.random(len(ret)) < 0.003)) & ~is_last
    ret = np.where(null_ret, np.nan, ret)
    sign = np.where(rng.random(len(ret)) < 0.04, -1.0, 1.0)
    dates = [last_trading_day(*ym[m]) for m in range(alive.shape[1])]
    stocks = pd.DataFrame({
        "permno": permno[idx_stock].astype(np.int64),
        "date": pd.to_datetime([dates[m] for m in idx_month]).as_unit("s"),
        "ret": ret,
        "prc": sign * out["prc"][idx_stock, idx_month],
        "shrout": out["shrout"][idx_stock, idx_month].astype(np.int64),
        "size": out["size"][idx_stock, idx_month],
        "bm": out["bm"][idx_stock, idx_month],
    })
    events = {
        "listed_before_panel": sorted(permno[start == 0].tolist()),
        "listed_in_panel": sorted(permno[start > 0].tolist()),
        "delisted": sorted(permno[end < alive.shape[1] - 1].tolist()),
        "performance_delistings": sorted(set(permno[idx_stock[perf]].tolist())),
        "gaps": {int(permno[i]): (dates[at], length) for i, (at, length) in gaps.items()},
        "null_ret_rows": int(null_ret.sum()),
    }
    return stocks, events
