"""Periods: calendar keys of --freq, text periods (placeholder until the periods module lands)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp

FREQS = ("day", "week", "month", "quarter", "year")
_ORDERED = [re.compile(p) for p in (r"^\d{4}$", r"^\d{6}$", r"^\d{4}-\d{2}$", r"^\d{4}-\d{2}-\d{2}$",
                                     r"^\d{4}Q[1-4]$", r"^\d{4}-Q[1-4]$", r"^\d{8}$")]


@dataclass(frozen=True)
class TextPeriods:
    kind: str
    format: str | None
    message: str


def classify_text_periods(samples: list[str]) -> TextPeriods:
    for pattern in _ORDERED:
        if samples and all(pattern.match(s) for s in samples):
            return TextPeriods("ordered", None, "")
    m = [re.match(r"^([^0-9]*)(\d+)$", s) for s in samples]
    if samples and all(m) and len({x.group(1) for x in m}) == 1 and len({len(s) for s in samples}) == 1:
        return TextPeriods("ordered", None, "")  # one prefix and zero-padded counters: text order is time order
    return TextPeriods("unknown", None, f"text periods such as {', '.join(map(repr, samples[:3]))} are not in "
                       "time order as text; use YYYY-MM-DD, YYYYMM or a DATE column")


def parse_text_period(value: exp.Expression, fmt: str) -> exp.Expression:
    return exp.StrToDate(this=value, format=exp.Literal.string(fmt))


def period_end(value: exp.Expression, freq: str) -> exp.Expression:
    date = exp.cast(value, "DATE")
    if freq == "day":
        return date
    if freq == "month":
        return exp.LastDay(this=date)
    raise NotImplementedError(freq)
