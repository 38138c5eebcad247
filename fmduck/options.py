"""The options of a run, declared once: their type, default, help text and command-line flag.

:class:`fmduck.spec.Spec`, TOML spec files and the ``fmduck run`` / ``fmduck sql`` command lines are
all built from these declarations (and from each design's own, ``Design.options``): a value is
checked against its declared type wherever it comes from, every flag has its help text, and an
option a design adds needs no edit anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from typing import Any

from fmduck.errors import SpecError

MAX_INT = 2**62  # integers beyond this are refused: the engines' BIGINT arithmetic on them would overflow
# value kinds: str, int, float, bool, names (list of column names; "a,b" on the command line),
# source (a table name, a file path or a DataFrame), lags ("auto" or int >= 0), levels (float or
# {name: float}), choice (one of choices), any (API only)


@dataclass(frozen=True)
class Option:
    name: str
    kind: str
    default: Any
    help: str
    group: str = "options"
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    cli: bool = True  # False: API/TOML only (e.g. a DataFrame, a grid table)
    nullable: bool = True

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, where: str = "") -> Any:
        """``value`` as the option's type, or a SpecError naming the key, the value and the type."""
        return check(self, value, where)


def _bad(option: Option, value: Any, expected: str, where: str) -> SpecError:
    origin = f" ({where})" if where else ""
    return SpecError(f"option {option.name!r}{origin} must be {expected}, got {value!r} ({type(value).__name__})")


def check(option: Option, value: Any, where: str = "") -> Any:
    kind = option.kind
    if value is None:
        if option.nullable:
            return None
        raise _bad(option, value, _EXPECTED.get(kind, kind), where)
    if kind == "any":
        return value
    if kind == "source":  # a table name or file path, or a DataFrame (anything with columns)
        if (isinstance(value, (str, PathLike)) and str(value).strip()) or hasattr(value, "columns"):
            return value
    if kind == "str":
        if isinstance(value, str):
            return value
    elif kind == "choice":
        if isinstance(value, str) and value in option.choices:
            return value
        raise _bad(option, value, "one of " + ", ".join(option.choices), where)
    elif kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INT:
            return value
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind == "names":
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                                    for v in value):
            return [str(v) for v in value]
    elif kind == "lags":
        if value == "auto":
            return value
        if isinstance(value, str) and value.isdigit() and int(value) <= MAX_INT:
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT:
            return value
    elif kind == "levels":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, bool):
            return value if value is False else _raise(_bad(option, value, _EXPECTED[kind], where))
        if isinstance(value, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                           for v in value.values()):
            return {str(k): float(v) for k, v in value.items()}
    elif kind == "flags":  # true (all characteristics) or a list of them
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
    elif kind == "grid":
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            return value
    raise _bad(option, value, _EXPECTED.get(kind, kind), where)


def _raise(exc: Exception) -> Any:
    raise exc


_EXPECTED = {
    "str": "a string", "bool": "true or false (a boolean, not a string)",
    "int": "an integer between -2^62 and 2^62",
    "float": "a number", "names": "a list of names (or 'a,b')", "lags": "'auto' or an integer from 0 to 2^62",
    "levels": "a number or a table {name = number}", "flags": "true/false or a list of names",
    "grid": "a list of tables ([[grid]])", "choice": "one of the allowed values",
    "source": "a table name, a CSV/Parquet path or a DataFrame",
}

CORE: tuple[Option, ...] = (
    Option("name", "str", None, "run name (stored in the results schema)", "run", nullable=True),
    Option("returns", "source", None, "table/view, CSV or Parquet file with the long panel", "panel", metavar="TABLE"),
    Option("asset", "str", "asset", "asset id column (default: asset)", "panel", metavar="COL"),
    Option("period", "str", "period", "period column: date, timestamp, integer or time-ordered text (default: period)",
           "panel", metavar="COL"),
    Option("ret", "str", "ret", "return column (default: ret)", "panel", metavar="COL"),
    Option("rf", "str", None, "risk-free column in the panel or the factors table: y = ret - rf", "panel",
           metavar="COL"),
    Option("freq", "choice", None, "map DATE/TIMESTAMP periods of every input to this calendar's periods before "
           "joining (stored as the period's last day); e.g. month: last trading days meet month-end factors",
           "panel", choices=("day", "week", "month", "quarter", "year")),
    Option("factors", "source", None, "table/file of factors keyed by period (beta-based FM)", "regressors",
           metavar="TABLE"),
    Option("factor_cols", "names", [], "comma-separated factor columns", "regressors", metavar="A,B"),
    Option("factor_period", "str", None, "period column of the factors table (default: --period)", "regressors",
           metavar="COL"),
    Option("chars", "names", [], "comma-separated characteristic columns of the panel (characteristic FM)",
           "regressors", metavar="A,B"),
    Option("char_lag", "int", 0, "lag characteristics by this many periods (default 0)", "regressors",
           metavar="N", nullable=False),
    Option("window", "int", None, "rolling window of W calendar periods (default: full sample)", "pass 1",
           metavar="W"),
    Option("min_obs", "int", None, "minimum observations per first-pass regression (default K+2)", "pass 1",
           metavar="N"),
    Option("beta_lag", "int", 1, "rolling betas enter pass 2 from the window ending this many periods "
           "before t (default 1)", "pass 1", metavar="L", nullable=False),
    Option("beta_max_age", "int", None, "rolling betas: use the most recent beta no older than K periods "
           "(K >= --beta-lag; default: exactly --beta-lag)", "pass 1", metavar="K"),
    Option("first_pass", "choice", "full", "what to store of pass 1: full (every window), summary (per-asset "
           "averages of rolling betas) or none", "pass 1", choices=("full", "summary", "none"), nullable=False),
    Option("intercept", "bool", True, "fit an intercept in pass 2 (--no-intercept: none)", "pass 2 and 3",
           nullable=False, cli=False),
    Option("min_assets", "int", None, "minimum cross-section size per period (default p+1)", "pass 2 and 3",
           metavar="N"),
    Option("csr", "choice", "ols", "the second pass as one cross-sectional regression on mean returns: ols "
           "(default), gls or wls (Kan-Robotti-Shanken 2013 inference)", "pass 2 and 3",
           choices=("ols", "gls", "wls"), nullable=False),
    Option("nw_lags", "lags", "auto", "Newey-West lag: an integer or 'auto' (default auto, nw1994 rule)",
           "pass 2 and 3", metavar="L|auto", nullable=False),
    Option("nw_divisor", "choice", "T", "Newey-West divisor: T (default) or T-1 (Stata)", "pass 2 and 3",
           choices=("T", "T-1"), nullable=False),
    Option("lag_rule", "choice", "nw1994", "automatic Newey-West lag rule", "pass 2 and 3", choices=("nw1994",),
           nullable=False),
    Option("conventions", "choice", "fmduck", "match another tool's Newey-West: fmduck (default), stata, "
           "linearmodels, sandwich", "conventions, preparation and pass-2 options",
           choices=("fmduck", "stata", "linearmodels", "sandwich"), nullable=False),
    Option("winsorize", "levels", None, "clip each characteristic at its P and 1-P quantiles within each period",
           "conventions, preparation and pass-2 options", metavar="P"),
    Option("standardize", "flags", False, "z-score each characteristic within each period",
           "conventions, preparation and pass-2 options", nullable=False),
    Option("rank", "flags", False, "replace each characteristic by its cross-sectional rank scaled to [-0.5, 0.5]",
           "conventions, preparation and pass-2 options", nullable=False),
    Option("weights", "str", None, "weighted least squares per period with weights COL",
           "conventions, preparation and pass-2 options", metavar="COL"),
    Option("absorb", "str", None, "absorb a categorical COL (demean within period and category)",
           "conventions, preparation and pass-2 options", metavar="COL"),
    Option("grid", "grid", None, "specification grid from one scan: characteristic lists separated by ';', e.g. "
           "'size; size,bm' (each a subset of --chars); one stored run per specification",
           "conventions, preparation and pass-2 options", metavar="SPECS"),
    Option("strict", "bool", False, "refuse (instead of warning about) inputs that look mis-scaled or misaligned",
           "checks", nullable=False),
    Option("memory_limit", "str", None, "the engine's memory limit, e.g. 4GB (DuckDB memory_limit; PostgreSQL "
           "work_mem per sort); running out of it is an error that names this option", "engine", metavar="SIZE"),
    Option("threads", "int", None, "threads the engine may use (DuckDB threads)", "engine", metavar="N"),
    Option("spark_master", "str", None, "Spark master URL (local[2], spark://host:7077, yarn; default "
           "$FMDUCK_SPARK_MASTER or local[*]); sc://host:15002 as the database connects through Spark Connect",
           "engine", metavar="URL"),
    Option("spark_conf", "names", [], "Spark settings as key=value, comma-separated "
           "(e.g. spark.executor.memory=4g)", "engine", metavar="K=V,..."),
    Option("schema", "str", "fmduck", "results schema (default fmduck)", "results", nullable=False),
    Option("replace", "bool", False, "replace a stored run of the same name", "results", nullable=False),
    Option("design", "str", "twopass", "run type", "run", nullable=False),
)
