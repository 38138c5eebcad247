"""The one number-formatting function (fmduck.formatting.fmt), tested once for every format."""

from __future__ import annotations

import math

import pytest

from fmduck.formatting import STARS_NOTE, fmt, stars


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (0.0135269, 4, "0.0135"),
        (0.01355, 3, "0.014"),
        (1.5, 0, "2"),
        (-0.00664978, 4, "-0.0066"),
        (-2.7049, 2, "-2.70"),
        (-0.00001, 4, "0.0000"),  # negative zero after rounding loses its sign
        (-0.0, 2, "0.00"),
        (123456.789, 1, "123456.8"),
        (24570, 4, "24,570"),  # integers: thousands separators, digits ignored
    ],
)
def test_digits_and_negatives(value, digits, expected):
    assert fmt(value, digits) == expected


@pytest.mark.parametrize(
    ("p_value", "marks"),
    [(0.0, "***"), (0.0099999, "***"), (0.01, "**"), (0.049999, "**"), (0.05, "*"), (0.0999, "*"),
     (0.10, ""), (0.5, ""), (None, ""), (math.nan, "")],
)
def test_star_thresholds_are_strict(p_value, marks):
    assert stars(p_value) == marks
    assert fmt(-1.23456, 3, p_value=p_value) == "-1.235" + marks
    assert STARS_NOTE == "* p<0.10, ** p<0.05, *** p<0.01"


def test_parentheses_and_stars_together():
    assert fmt(-2.7049, 2, parens=True) == "(-2.70)"
    assert fmt(6.94, 2, parens=True, p_value=0.001) == "(6.94)***"


@pytest.mark.parametrize("missing_value", [None, math.nan, math.inf, -math.inf])
def test_missing(missing_value):
    assert fmt(missing_value) == ""
    assert fmt(missing_value, 3, missing=".") == "."
    assert fmt(missing_value, 3, parens=True, p_value=0.001, missing="n/a") == "n/a"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0135269, ".0135269"), (-0.00664978, "-.00664978"), (12.3456789, "12.3457"), (0.0, "0"),
     (-0.000738266, "-.000738266"), (1.5e-9, "1.5e-09"), (-3.08797e-05, "-.0000308797"), (1.5e-6, ".0000015"),
     (9.99e-7, "9.99e-07")],
)
def test_significant_stata_style(value, expected):
    """The xtfmb text summary's columns: %g with 6 significant digits and no leading zero."""
    assert fmt(value, 6, significant=True) == expected


def test_text_summary_uses_fmt():
    from fmduck import summary

    assert summary.number(-0.00664978, 11) == fmt(-0.00664978, 6, significant=True).rjust(11)
    assert summary.number(None, 10) == ".".rjust(10)
    assert summary.fixed(-2.7049, 8, 2) == "   -2.70"
