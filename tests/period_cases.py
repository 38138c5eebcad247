"""Test data for calendars and text periods, shared by the DuckDB/PostgreSQL and the Spark tests.

Oracles do not use fmduck.periods: period ends come from pandas ``Period(d, freq).end_time``, text
periods are written from known dates by the formatters below (and read back must give those dates).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pandas as pd
import polars as pl

from fmduck import templates
from fmduck.periods import FREQS, parse_text_period, period_end

PANDAS_FREQ = {"day": "D", "week": "W-SUN", "month": "M", "quarter": "Q-DEC", "year": "Y-DEC"}
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
TIMES = [time(0, 0), time(12, 34, 56, 789000), time(23, 59, 59, 999999)]


def oracle_end(value: date, freq: str) -> date:
    """The last day of ``value``'s period by pandas (W-SUN: weeks ending on Sunday)."""
    return pd.Period(value, PANDAS_FREQ[freq]).end_time.date()


def calendar_dates() -> list[date]:
    """Every day of Dec 2019 - Mar 2021 (a leap February, year and quarter ends, all weekdays) and
    boundary days from 1899 to 2100 (1900 and 2100 are not leap years, 2000 is)."""
    span = [date(2019, 12, 1) + timedelta(days=i) for i in range((date(2021, 3, 31) - date(2019, 12, 1)).days + 1)]
    specials = [date(1899, 12, 31), date(1900, 1, 1), date(1900, 2, 28), date(1900, 3, 1), date(1925, 12, 31),
                date(1926, 1, 1), date(1969, 12, 28), date(1969, 12, 31), date(1970, 1, 1), date(1999, 12, 31),
                date(2000, 1, 1), date(2000, 2, 28), date(2000, 2, 29), date(2000, 3, 1), date(2003, 2, 27),
                date(2004, 12, 31), date(2100, 2, 28), date(2100, 3, 1), date(2100, 12, 31)]
    return sorted(set(span + specials))


def calendar_frame() -> pl.DataFrame:
    """id, a DATE ``d`` and a TIMESTAMP ``ts`` (the same day at a varying time of day); two NULL rows."""
    days = calendar_dates()
    stamps = [datetime.combine(d, TIMES[i % len(TIMES)]) for i, d in enumerate(days)]
    return pl.DataFrame({"id": list(range(len(days) + 2)), "d": days + [None, None],
                         "ts": stamps + [None, datetime(2020, 1, 1)]}, schema={"id": pl.Int64, "d": pl.Date,
                                                                              "ts": pl.Datetime("us")})


def calendar_sql(relation: str, dialect: str) -> str:
    cols = ", ".join(f"{templates.sql(period_end(templates.ident(c), f))} AS {c}_{f}"
                     for f in FREQS for c in ("d", "ts"))
    return templates.transpile(f"SELECT id, {cols} FROM {templates.ident(relation)} ORDER BY id", dialect)


def expected_calendar(frame: pl.DataFrame) -> pl.DataFrame:
    out = {"id": frame["id"].to_list()}
    for f in FREQS:
        for c in ("d", "ts"):
            out[f"{c}_{f}"] = [None if v is None else oracle_end(v.date() if isinstance(v, datetime) else v, f)
                               for v in frame[c].to_list()]
    return pl.DataFrame(out, schema={"id": pl.Int64, **{k: pl.Date for k in out if k != "id"}})


# ------------------------------------------------------------------ text periods
TEXT_DATES = [date(2000, 2, 29), date(2001, 1, 31), date(1999, 12, 5), date(2024, 10, 13), date(1926, 7, 1),
              date(2100, 3, 1), date(2020, 12, 31), date(2021, 1, 1), date(2004, 9, 30), date(1900, 11, 12)]


def _first_of_month(d: date) -> date:
    return d.replace(day=1)


def _first_of_quarter(d: date) -> date:
    return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def text_cases() -> dict[str, list[tuple[bool, list[tuple[str, date]]]]]:
    """format -> variants; a variant: (ordered as text?, [(text, the date it names), ...])."""
    def variant(ordered: bool, write, read) -> tuple[bool, list[tuple[str, date]]]:
        return ordered, [(write(d), read(d)) for d in TEXT_DATES]

    def q(d: date) -> int:
        return (d.month - 1) // 3 + 1

    def mon(d: date) -> str:
        return MONTHS[d.month - 1]

    day, fom, foq, year = (lambda d: d), _first_of_month, _first_of_quarter, (lambda d: date(d.year, 1, 1))

    def iso(d: date) -> str:
        return f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}"

    return {
        "YYYY": [variant(True, lambda d: f"{d.year}", year)],
        "YYYYMM": [variant(True, lambda d: f"{d.year}{d.month:02d}", fom)],
        "YYYYMMDD": [variant(True, lambda d: f"{d:%Y%m%d}", day)],
        "YYYY-MM": [variant(True, lambda d: f"{d.year}-{d.month:02d}", fom),
                    variant(False, lambda d: f"{d.year}/{d.month}", fom)],
        "YYYY-MM-DD": [variant(True, lambda d: d.isoformat(), day),
                       variant(False, lambda d: f"{d.year}/{d.month}/{d.day}", day),
                       variant(True, lambda d: f"{d.year}.{d.month:02d}.{d.day:02d}", day)],
        "YYYYQn": [variant(True, lambda d: f"{d.year}Q{q(d)}", foq), variant(True, lambda d: f"{d.year}-Q{q(d)}", foq),
                   variant(True, lambda d: f"{d.year}q{q(d)}", foq), variant(True, lambda d: f"{d.year} Q{q(d)}", foq)],
        "YYYY-Www": [variant(True, iso, _monday), variant(True, lambda d: iso(d).replace("-", ""), _monday)],
        "YYYYmM": [variant(False, lambda d: f"{d.year}m{d.month}", fom),
                   variant(True, lambda d: f"{d.year}m{d.month:02d}", fom)],
        "MM/DD/YYYY": [variant(False, lambda d: f"{d.month}/{d.day}/{d.year}", day),
                       variant(False, lambda d: f"{d.month:02d}-{d.day:02d}-{d.year}", day)],
        "DD/MM/YYYY": [variant(False, lambda d: f"{d.day}.{d.month}.{d.year}", day),
                       variant(False, lambda d: f"{d.day:02d}/{d.month:02d}/{d.year}", day)],
        "MM/YYYY": [variant(False, lambda d: f"{d.month}/{d.year}", fom),
                    variant(False, lambda d: f"{d.month:02d}-{d.year}", fom)],
        "Qn YYYY": [variant(False, lambda d: f"Q{q(d)} {d.year}", foq),
                    variant(False, lambda d: f"q{q(d)}-{d.year}", foq)],
        "Mon YYYY": [variant(False, lambda d: f"{mon(d)[:3]} {d.year}", fom),
                     variant(False, lambda d: f"{mon(d)} {d.year}", fom),
                     variant(False, lambda d: f"{mon(d)[:3].upper()}-{d.year}", fom),
                     variant(False, lambda d: f"{'Sept' if d.month == 9 else mon(d)[:3]}. {d.year}", fom)],
        "MonYYYY": [variant(False, lambda d: f"{mon(d)[:3].upper()}{d.year}", fom)],
        "YYYY Mon": [variant(False, lambda d: f"{d.year} {mon(d)[:3]}", fom),
                     variant(False, lambda d: f"{d.year}-{mon(d)}", fom)],
        "DD Mon YYYY": [variant(False, lambda d: f"{d.day} {mon(d)[:3]} {d.year}", day),
                        variant(False, lambda d: f"{d.day:02d}-{mon(d)[:3].upper()}-{d.year}", day)],
        "DDMonYYYY": [variant(False, lambda d: f"{d.day:02d}{mon(d)[:3].upper()}{d.year}", day)],
        "Mon DD YYYY": [variant(False, lambda d: f"{mon(d)} {d.day}, {d.year}", day),
                        variant(False, lambda d: f"{mon(d)[:3]} {d.day:02d} {d.year}", day)],
        "YYYY-Mon-DD": [variant(False, lambda d: f"{d.year}-{mon(d)[:3]}-{d.day:02d}", day)],
    }


JUNK = ["junk", "2001-1-1-1", "", "  "]  # no format's shape: NULL in SQL


def text_frame() -> tuple[pl.DataFrame, pl.DataFrame]:
    """One text column per format (every variant's texts, junk and a NULL) and the expected DATEs."""
    cases = text_cases()
    cols, expected = {}, {}
    for i, variants in enumerate(cases.values()):
        pairs = [pair for _, vs in variants for pair in vs]
        cols[f"c{i}"] = [t for t, _ in pairs] + JUNK + [None]
        expected[f"c{i}"] = [d for _, d in pairs] + [None] * (len(JUNK) + 1)
    n = max(len(v) for v in cols.values())
    pad = {k: v + [None] * (n - len(v)) for k, v in cols.items()}
    exp_pad = {k: v + [None] * (n - len(v)) for k, v in expected.items()}
    ids = list(range(n))
    frame = pl.DataFrame({"id": ids, **pad, "yyyymm_int": [200101 + (i % 12) for i in ids]},
                         schema={"id": pl.Int64, **{k: pl.String for k in pad}, "yyyymm_int": pl.Int64})
    exp = pl.DataFrame({"id": ids, **exp_pad, "yyyymm_int": [date(2001, 1 + i % 12, 1) for i in ids]},
                       schema={"id": pl.Int64, **{k: pl.Date for k in exp_pad}, "yyyymm_int": pl.Date})
    return frame, exp


def text_sql(relation: str, dialect: str) -> str:
    names = list(text_cases())
    cols = [f"{templates.sql(parse_text_period(templates.ident(f'c{i}'), fmt))} AS c{i}" for i, fmt in enumerate(names)]
    cols.append(f"{templates.sql(parse_text_period(templates.ident('yyyymm_int'), 'YYYYMM'))} AS yyyymm_int")
    return templates.transpile(f"SELECT id, {', '.join(cols)} FROM {templates.ident(relation)} ORDER BY id", dialect)


def invalid_date_sql(dialect: str) -> str:
    """A value of the right shape that names no date (30 February): an error on every engine."""
    expr = templates.sql(parse_text_period(templates.literal("02/30/2001"), "MM/DD/YYYY"))
    return templates.transpile(f"SELECT {expr} AS d", dialect)


# ------------------------------------------------------------------ alignment
def last_trading_days(start: str = "2000-01", months: int = 240) -> list[date]:
    """The last weekday of each month that is not a US federal holiday (CRSP-style month dates)."""
    from pandas.tseries.holiday import USFederalHolidayCalendar
    from pandas.tseries.offsets import CustomBusinessMonthEnd

    offset = CustomBusinessMonthEnd(calendar=USFederalHolidayCalendar())
    return [d.date() for d in pd.date_range(start=pd.Period(start, "M").start_time, periods=months, freq=offset)]


def crsp_like_panel(dates: list[date], n_assets: int = 12, seed: int = 7) -> pl.DataFrame:
    """permno, date, ret: staggered listings, gaps (about 5 %), an early delisting."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_assets):
        first = int(rng.integers(0, len(dates) // 3))
        last = len(dates) - 1 if i else len(dates) // 2  # asset 0 delists half-way
        for t in range(first, last + 1):
            if rng.random() > 0.05:
                rows.append((10_000 + i, dates[t], float(rng.normal(0.01, 0.08))))
    return pl.DataFrame(rows, schema={"permno": pl.Int64, "date": pl.Date, "ret": pl.Float64}, orient="row")


def factor_table(dates: list[date], seed: int = 8) -> pl.DataFrame:
    import numpy as np

    rng = np.random.default_rng(seed)
    return pl.DataFrame({"date": dates, "mkt": rng.normal(0.005, 0.04, len(dates))})


def oracle_alignment(panel: pd.DataFrame, period: str, factors: pd.DataFrame, factor_period: str,
                     asset: str = "permno") -> dict:
    """Shares and duplicates by pandas Periods (independent of fmduck.periods)."""
    p, f = pd.to_datetime(panel[period]), pd.to_datetime(factors[factor_period]).drop_duplicates()
    out = {"n_rows": len(p), "exact_rows": int(p.isin(set(f)).sum())}
    for freq, code in PANDAS_FREQ.items():
        pe, fe = p.dt.to_period(code).dt.end_time.dt.date, f.dt.to_period(code).dt.end_time.dt.date
        out[f"rows_{freq}"] = int(pe.isin(set(fe)).sum())
        out[f"factor_dups_{freq}"] = int(len(fe) - fe.nunique())
        groups = pd.DataFrame({"a": panel[asset].to_numpy(), "e": pe.to_numpy()}).groupby(["a", "e"]).size()
        out[f"panel_dups_{freq}"] = int((groups - 1).sum())
    return out
