"""Errors fmduck raises. Each message names the table, column or rows at fault."""

from __future__ import annotations


class FmduckError(Exception):
    """Base class: anything fmduck reports to a user as a clear error (CLI exit code 2)."""


class SpecError(FmduckError, ValueError):
    """The specification itself is invalid (option values, missing fields)."""


class UsageError(FmduckError):
    """The command line cannot be parsed (an unknown option, a value of the wrong type, a missing argument)."""


class InputError(FmduckError, ValueError):
    """The input data cannot be used as given (missing columns, duplicates, types, too few rows)."""


class EstimationError(FmduckError, ArithmeticError):
    """No estimate can be produced (every group singular, no usable periods)."""


class RunExistsError(FmduckError):
    """A run with this name is already stored and ``replace`` was not asked for."""


class RunNotFoundError(FmduckError, LookupError):
    """The requested run is not in the results schema."""


class FmduckWarning(UserWarning):
    """What a run warns about (units that look mixed, rows left out): stored with the run (``runs.warnings``),
    printed in its summary, on stderr by the CLI, and issued as a Python warning by ``fit()``."""


def translate(exc: BaseException) -> str | None:
    """A one-line message for a failure of the environment (files, memory, numbers, connections) that a
    user can act on; None for anything else (a bug). Drivers are recognised by name, not imported."""
    kind = type(exc).__name__
    module = type(exc).__module__
    first = (str(exc).strip().splitlines() or [kind])[0]
    if isinstance(exc, MemoryError) or kind in ("OutOfMemoryException",):
        return ("out of memory; give the engine a memory limit it can keep (--memory-limit 4GB) or use fewer "
                f"threads (--threads 1) ({first})")
    if isinstance(exc, IsADirectoryError):
        return f"{exc.filename or first} is a folder: give a file name"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or first}"
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder: {exc.filename or first}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or first}: {exc.filename}" if exc.filename else f"operating system error: {first}"
    if isinstance(exc, OverflowError):
        return f"a number is out of range: {first}"
    if module.startswith("psycopg") and kind in ("OperationalError", "InterfaceError"):
        return f"PostgreSQL connection failed: {first}"
    if module.startswith("duckdb") and kind in ("IOException", "PermissionException"):
        return f"DuckDB: {first}"
    return None


def missing_driver(package: str, extra: str, exc: ImportError) -> FmduckError:
    """The error of an engine whose driver is not installed: what to pip install."""
    return FmduckError(f"the {extra} engine needs {package}: pip install 'fmduck[{extra}]' ({exc})")
