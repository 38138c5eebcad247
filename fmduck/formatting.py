"""The one number-formatting function: every number fmduck prints (text, HTML, LaTeX) goes through ``fmt``."""

from __future__ import annotations

import math

# Significance stars, most demanding first: p < 0.01 -> ***, p < 0.05 -> **, p < 0.10 -> *.
STARS: tuple[tuple[float, str], ...] = ((0.01, "***"), (0.05, "**"), (0.10, "*"))
STARS_NOTE = "* p<0.10, ** p<0.05, *** p<0.01"


def stars(p_value: float | None) -> str:
    """The stars for a p-value (strictly below the threshold); none for a missing p-value."""
    if p_value is None or not math.isfinite(p_value):
        return ""
    for threshold, mark in STARS:
        if p_value < threshold:
            return mark
    return ""


def fmt(
    value: float | None,
    digits: int | None = 4,
    *,
    p_value: float | None = None,
    parens: bool = False,
    significant: bool = False,
    missing: str = "",
) -> str:
    """Format one number.

    ``digits`` decimal places (fixed point), or with ``significant=True`` that many significant
    digits laid out like Stata's ``%g`` columns (``.0135269``, ``-.00664978``: no leading zero).
    ``digits=None``: exact, for machine-readable exports — the shortest text that reads back as the
    same float (``repr``), integers without separators.
    ``p_value`` appends significance stars (see ``STARS``); ``parens`` wraps the number as
    ``(1.23)``. Missing values (None, NaN, ±inf) give ``missing``. Integers print with thousands
    separators. Negative zero after rounding prints without its sign.
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    if digits is None:
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else repr(float(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        text = f"{value:,}"
    elif significant:
        text = f"{value:.{digits}g}"
        if "e-0" in text and abs(value) >= 1e-6:  # -3.08797e-05 -> -.0000308797, as Stata's columns print it
            text = f"{value:.{digits - 1 - math.floor(math.log10(abs(value)))}f}".rstrip("0")
        if "e" not in text and value != 0 and abs(value) < 1:
            text = text.replace("0.", ".", 1)
    else:
        text = f"{value:.{digits}f}"
    if text.startswith("-") and text.strip("-0.") == "":
        text = text[1:]
    if parens:
        text = f"({text})"
    return text + stars(p_value)
