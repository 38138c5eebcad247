"""Errors fmduck raises. Each message names the table, column or rows at fault."""

from __future__ import annotations


class FmduckError(Exception):
    """Base class: anything fmduck reports to a user as a clear error (CLI exit code 2)."""


class SpecError(FmduckError, ValueError):
    """The specification itself is invalid (option values, missing fields)."""


class InputError(FmduckError, ValueError):
    """The input data cannot be used as given (missing columns, duplicates, types, too few rows)."""


class EstimationError(FmduckError, ArithmeticError):
    """No estimate can be produced (every group singular, no usable periods)."""


class RunExistsError(FmduckError):
    """A run with this name is already stored and ``replace`` was not asked for."""


class RunNotFoundError(FmduckError, LookupError):
    """The requested run is not in the results schema."""
