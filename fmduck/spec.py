"""What the user asked for: one object that the Python API, the CLI and TOML files all build.

A :class:`Spec` holds the core options (:data:`fmduck.options.CORE`) and the options its design
declares (``Design.options``), each checked against its declared type wherever it comes from — a
TOML ``replace = "false"`` or ``nw_lags = true`` is an error naming the key, the value and the type,
never a silent reinterpretation. ``validate`` checks the option values that cannot work (data
checks come later); it reads nothing and writes nothing.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from fmduck.errors import SpecError
from fmduck.options import CORE, Option

MAX_THREADS = 1024  # DuckDB starts every thread it is given: 100000 exhausts the process's limits
_RUN_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_CORE = {o.name: o for o in CORE}


def _design(name: Any) -> Any:
    from fmduck.designs import get

    return get(name)


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value


class Spec:
    """A Fama-MacBeth run.

    ``returns`` and ``factors`` are a table or view name (``schema.table`` allowed), a CSV or
    Parquet path, or a polars/pandas DataFrame. With ``factor_cols`` the run is beta-based
    (pass 1 estimates betas on those factors); ``chars`` are panel columns used directly as
    pass-2 regressors. Both may be combined. The options and their meaning: ``fmduck run --help``
    or :data:`fmduck.options.CORE`; a design adds its own (e.g. ``market``, ``formation`` for fm1973).
    """

    __slots__ = ("_options", "__dict__")  # vars(spec): the option values only

    def __init__(self, name: str | None = None, returns: Any = None, **values: Any) -> None:
        values.update(name=name, returns=returns)
        design = _design(values.get("design", "twopass") or "twopass")
        declared = {**_CORE, **{o.name: o for o in design.options}}
        unknown = sorted(set(values) - set(declared))
        if unknown:
            elsewhere = {k: _designs_declaring(k) for k in unknown}
            hint = "".join(f" (--{k.replace('_', '-')} belongs to design {' or '.join(names)}: set "
                           f"design={names[0]!r})" for k, names in elsewhere.items() if names)
            raise SpecError(f"unknown option(s) {', '.join(unknown)} for design {design.name!r}{hint}; "
                            f"known: {', '.join(sorted(declared))}")
        object.__setattr__(self, "_options", declared)
        for option in declared.values():
            value = values.get(option.name, _copy(option.default))
            object.__setattr__(self, option.name, option.check(value))
        self.validate()

    # ------------------------------------------------------------------ derived
    @property
    def options(self) -> dict[str, Option]:
        return dict(self._options)

    @property
    def beta_based(self) -> bool:
        return bool(self.factor_cols)

    @property
    def rolling(self) -> bool:
        return self.window is not None

    @property
    def effective_min_obs(self) -> int:
        """Minimum observations per first-pass regression: given, or K + 2 (one residual df)."""
        return self.min_obs if self.min_obs is not None else len(self.factor_cols) + 2

    @property
    def terms(self) -> list[str]:
        """Pass-2 terms in order: ``const`` (when fitted), the factors' betas, the characteristics."""
        return (["const"] if self.intercept else []) + self.factor_cols + self.chars

    def __setattr__(self, key: str, value: Any) -> None:
        option = self._options.get(key)
        if option is None:
            raise AttributeError(f"Spec has no option {key!r}")
        object.__setattr__(self, key, option.check(value))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Spec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if v != self._options[k].default)
        return f"Spec({shown})"

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise SpecError for option values that cannot work (data checks come later)."""
        if not isinstance(self.name, str) or not _RUN_NAME.match(self.name):
            raise SpecError(f"run name {self.name!r} is not valid: use 1-128 letters, digits, '_', '-', '.', ':'")
        if self.returns is None:
            raise SpecError("a returns panel is required (table, view, file or DataFrame)")
        for name in ("window", "min_obs", "min_assets", "beta_max_age", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SpecError(f"{name} must be a positive integer, got {value!r}")
        if self.threads is not None and self.threads > MAX_THREADS:
            raise SpecError(f"threads must be at most {MAX_THREADS}, got {self.threads}")
        for name in ("beta_lag", "char_lag"):
            if getattr(self, name) < 0:
                raise SpecError(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")
        for label, names in (("factor column", self.factor_cols), ("characteristic", self.chars)):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise SpecError(f"{label} listed twice: {', '.join(dup)}")
        if self.factor_cols and self.factors is None:
            raise SpecError("factor columns were given but no factors table (--factors)")
        if self.char_lag and not self.chars:
            raise SpecError("--char-lag lags characteristics, but no characteristics were given (--chars)")
        if not isinstance(self.schema, str) or not self.schema:
            raise SpecError("the results schema must be a non-empty name")
        size_pattern = r"\s*\d+(\.\d+)?\s*[KMGT]i?B\s*"
        if self.memory_limit is not None and not re.fullmatch(size_pattern, self.memory_limit, re.I):
            raise SpecError(f"memory_limit must be a size such as 512MB or 4GB, got {self.memory_limit!r}")
        _design(self.design).validate(self)

    # ------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (DataFrame inputs are described, not embedded)."""
        out: dict[str, Any] = {}
        for name in self._options:
            value = getattr(self, name)
            if name in ("returns", "factors") and value is not None and not isinstance(value, (str, Path)):
                rows = f" with {len(value)} rows" if hasattr(value, "__len__") else ""  # Spark frames: no len
                value = f"<{type(value).__module__}.{type(value).__name__}{rows}>"
            elif isinstance(value, Path):
                value = str(value)
            out[name] = _copy(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "") -> Spec:
        if "name" not in data or "returns" not in data:
            raise SpecError("a spec needs at least 'name' and 'returns'" + (f" ({where})" if where else ""))
        values = dict(data)
        return cls(values.pop("name"), values.pop("returns"), **values)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> Spec:
        """Read a spec from a TOML file (top-level keys or a ``[run]`` table); ``overrides`` win."""
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise SpecError(f"spec file not found: {path}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(f"spec file {path} is not valid TOML: {exc}") from exc
        except OSError as exc:
            raise SpecError(f"cannot read spec file {path}: {exc.strerror or exc}") from exc
        raw, data = data, dict(data.get("run", data))
        if "run" in raw and "grid" in raw and "grid" not in data:  # [[grid]] beside a [run] table
            data["grid"] = raw["grid"]
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data, where=f"in {path}")

    def replace_with(self, **changes: Any) -> Spec:
        values = {**{k: _copy(getattr(self, k)) for k in self._options}, **changes}
        return Spec(**values)


def _designs_declaring(name: str) -> list[str]:
    """The designs that declare option ``name`` (for the hint of an unknown option)."""
    from fmduck.designs import registry

    return [d.name for d in registry().values() if name in {o.name for o in d.options}]


def positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(f"{name} must be a positive integer, got {value!r}")
