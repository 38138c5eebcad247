"""What the user asked for: one dataclass that the Python API, the CLI and TOML files all build."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmduck.errors import SpecError
from fmduck.inference import LAG_RULES, NW_DIVISORS

FM1973_REGRESSORS = ("beta", "beta2", "se")  # β_p, β_p², s_p(e) in Fama-MacBeth (1973)
_RUN_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


@dataclass
class Spec:
    """A Fama-MacBeth run.

    ``returns`` and ``factors`` are a table or view name (``schema.table`` allowed), a CSV or
    Parquet path, or a polars/pandas DataFrame. With ``factor_cols`` the run is beta-based
    (pass 1 estimates betas on those factors); ``chars`` are panel columns used directly as
    pass-2 regressors. Both may be combined.
    """

    name: str
    returns: Any
    asset: str = "asset"
    period: str = "period"
    ret: str = "ret"
    rf: str | None = None
    factors: Any = None
    factor_cols: list[str] = field(default_factory=list)
    factor_period: str | None = None
    chars: list[str] = field(default_factory=list)
    char_lag: int = 0
    window: int | None = None
    min_obs: int | None = None
    beta_lag: int = 1
    intercept: bool = True
    nw_lags: int | str = "auto"
    nw_divisor: str = "T"
    lag_rule: str = "nw1994"
    min_assets: int | None = None
    schema: str = "fmduck"
    replace: bool = False
    design: str = "twopass"
    # design "mimicking" (fmduck/designs/mimicking.py): basis assets (default: every asset of the panel)
    basis: list[str] = field(default_factory=list)
    # design "fm1973" (Fama and MacBeth 1973; fmduck/designs/fm1973.py): lengths in calendar periods
    market: str | None = None
    formation: int = 48
    estimation: int = 60
    testing: int = 48
    n_portfolios: int = 20
    fm_regressors: list[str] = field(default_factory=lambda: list(FM1973_REGRESSORS))
    beta_update: int = 12
    subperiods: int | None = None
    # issue 9 (fmduck/conventions.py, prepare.py, grid.py): presets, per-period preparation, WLS, absorb, grid
    conventions: str = "fmduck"
    winsorize: float | dict[str, float] | None = None
    standardize: bool | list[str] = False
    rank: bool | list[str] = False
    weights: str | None = None
    absorb: str | None = None
    grid: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self.factor_cols = _as_list(self.factor_cols)
        self.chars = _as_list(self.chars)
        self.basis = _as_list(self.basis)
        self.fm_regressors = _as_list(self.fm_regressors)
        if isinstance(self.nw_lags, str) and self.nw_lags.isdigit():
            self.nw_lags = int(self.nw_lags)
        self.validate()

    # ------------------------------------------------------------------ derived
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

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise SpecError for option values that cannot work (data checks come later)."""
        if not isinstance(self.name, str) or not _RUN_NAME.match(self.name):
            raise SpecError(
                f"run name {self.name!r} is not valid: use 1-128 letters, digits, '_', '-', '.', ':'"
            )
        from fmduck.designs import REGISTRY

        if self.design not in REGISTRY:
            raise SpecError(f"unknown design {self.design!r}; known: {', '.join(REGISTRY)}")
        if self.returns is None:
            raise SpecError("a returns panel is required (table, view, file or DataFrame)")
        if self.design != "fm1973" and not self.factor_cols and not self.chars:
            raise SpecError("nothing to estimate: give factor columns (beta-based FM) and/or characteristics")
        if self.factor_cols and self.factors is None:
            raise SpecError("factor columns were given but no factors table (--factors)")
        for label, names in (("factor column", self.factor_cols), ("characteristic", self.chars)):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise SpecError(f"{label} listed twice: {', '.join(dup)}")
        overlap = set(self.factor_cols) & set(self.chars)
        if overlap:
            raise SpecError(f"a name cannot be both a factor and a characteristic: {', '.join(sorted(overlap))}")
        if "const" in self.factor_cols + self.chars:
            raise SpecError("'const' is reserved for the intercept term; rename that column")
        if self.window is not None:
            if not self.factor_cols:
                raise SpecError("a rolling window (--window) needs factor columns: it is a first-pass option")
            _positive_int("window", self.window)
            if self.window < len(self.factor_cols) + 2:
                raise SpecError(
                    f"window {self.window} is too short for {len(self.factor_cols)} factors "
                    f"and an intercept (needs at least {len(self.factor_cols) + 2} periods)"
                )
        if self.min_obs is not None:
            _positive_int("min_obs", self.min_obs)
            if self.min_obs < len(self.factor_cols) + 2:
                raise SpecError(
                    f"min_obs {self.min_obs} leaves no residual degree of freedom for "
                    f"{len(self.factor_cols)} factors and an intercept (needs >= {len(self.factor_cols) + 2})"
                )
            if self.window is not None and self.min_obs > self.window:
                raise SpecError(f"min_obs {self.min_obs} exceeds the window length {self.window}")
        _nonnegative_int("beta_lag", self.beta_lag)
        _nonnegative_int("char_lag", self.char_lag)
        if self.window is not None and self.beta_lag < 1:
            raise SpecError("beta_lag must be at least 1 with rolling betas, or pass 2 would look ahead")
        if not (self.nw_lags == "auto" or (isinstance(self.nw_lags, int) and self.nw_lags >= 0)):
            raise SpecError(f"nw_lags must be a non-negative integer or 'auto', got {self.nw_lags!r}")
        if self.nw_divisor not in NW_DIVISORS:
            raise SpecError(f"nw_divisor must be one of {', '.join(NW_DIVISORS)}, got {self.nw_divisor!r}")
        if self.lag_rule not in LAG_RULES:
            raise SpecError(f"lag_rule must be one of {', '.join(LAG_RULES)}, got {self.lag_rule!r}")
        if self.min_assets is not None:
            _positive_int("min_assets", self.min_assets)
        if not isinstance(self.schema, str) or not self.schema:
            raise SpecError("the results schema must be a non-empty name")
        if self.design == "fm1973":
            _validate_fm1973(self)
        if self.basis and self.design != "mimicking":
            raise SpecError("--basis (mimicking-portfolio basis assets) needs --design mimicking")
        from fmduck.prepare import validate_spec_options

        validate_spec_options(self)

    # ------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (DataFrame inputs are described, not embedded)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("returns", "factors") and value is not None and not isinstance(value, (str, Path)):
                rows = f" with {len(value)} rows" if hasattr(value, "__len__") else ""  # Spark frames: no len
                value = f"<{type(value).__module__}.{type(value).__name__}{rows}>"
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Spec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"unknown spec keys: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "name" not in data or "returns" not in data:
            raise SpecError("a spec needs at least 'name' and 'returns'")
        return cls(**data)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> Spec:
        """Read a spec from a TOML file (top-level keys or a ``[run]`` table); ``overrides`` win."""
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise SpecError(f"spec file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"spec file {path} is not valid TOML: {exc}") from exc
        raw, data = data, dict(data.get("run", data))
        if "run" in raw and "grid" in raw and "grid" not in data:  # [[grid]] beside a [run] table
            data["grid"] = raw["grid"]
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data)

    def replace_with(self, **changes: Any) -> Spec:
        return dataclasses.replace(self, **changes)


def _validate_fm1973(spec: Spec) -> None:
    """Options of the Fama-MacBeth (1973) portfolio design."""
    if spec.factors is None or not spec.market:
        raise SpecError("design fm1973 needs a factors table (--factors) and its market return column (--market)")
    for label, value in (("--factor-cols", spec.factor_cols), ("--chars", spec.chars), ("--window", spec.window)):
        if value:
            raise SpecError(f"design fm1973 does not use {label}: betas are on --market, over the formation and "
                            "estimation periods (--formation, --estimation)")
    if not spec.intercept:
        raise SpecError("design fm1973 always fits the intercept gamma_0 (drop --no-intercept)")
    for name in ("formation", "estimation", "testing", "n_portfolios", "beta_update"):
        _positive_int(name, getattr(spec, name))
    for name in ("formation", "estimation"):
        if getattr(spec, name) < 3:
            raise SpecError(f"{name} must be at least 3 periods (a market-model regression needs a residual df)")
    if spec.min_obs is not None and not 3 <= spec.min_obs <= spec.formation:
        raise SpecError(f"min_obs (formation-period observations per stock) must be between 3 and "
                        f"formation = {spec.formation}, got {spec.min_obs}")
    unknown = [r for r in spec.fm_regressors if r not in FM1973_REGRESSORS]
    if unknown or "beta" not in spec.fm_regressors or len(set(spec.fm_regressors)) != len(spec.fm_regressors):
        raise SpecError(f"fm_regressors must list 'beta' and optionally 'beta2', 'se' once each, got "
                        f"{', '.join(spec.fm_regressors) or 'none'}")
    spec.fm_regressors = [r for r in FM1973_REGRESSORS if r in spec.fm_regressors]
    if spec.n_portfolios < len(spec.fm_regressors) + 2:
        raise SpecError(f"n_portfolios {spec.n_portfolios} is too few for gamma_0 and {len(spec.fm_regressors)} "
                        f"regressor(s): the monthly cross-section needs at least {len(spec.fm_regressors) + 2}")
    if spec.subperiods is not None:
        _positive_int("subperiods", spec.subperiods)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(f"{name} must be a positive integer, got {value!r}")


def _nonnegative_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SpecError(f"{name} must be a non-negative integer, got {value!r}")
