"""Per-period preparation of characteristics, in SQL, before the moments (``sql/prepare.sql.j2``).

``winsorize = P`` clips a characteristic at its P and 1 − P quantiles within each period
(``quantile_cont``: linear interpolation between order statistics, pandas' default ``quantile``);
``standardize`` z-scores it within the period (sample standard deviation, ddof = 1);
``rank`` replaces it by its cross-sectional rank scaled to [−0.5, 0.5]:
(rank − 1)/(n − 1) − 0.5 with average ranks for ties (pandas ``rank(method="average")``), 0 when n = 1.
Order: winsorize, then standardize or rank (a characteristic cannot be both standardized and ranked).

The statistics of a period are those of the rows where the characteristic is non-NULL (each
characteristic on its own rows); pass 2 then keeps the rows where every variable is present.
Each option is either for every characteristic (``winsorize = 0.01``, ``standardize = true``) or
per characteristic in a TOML spec (``winsorize = {size = 0.01}``, ``rank = ["bm"]``).
"""

from __future__ import annotations

from typing import Any

from fmduck import grid_spec
from fmduck.errors import SpecError


def validate_spec_options(spec: Any) -> None:
    """Check the issue-9 options of a Spec (conventions, preparation, weights, absorb, grid)."""
    from fmduck.conventions import PRESETS

    if spec.conventions not in PRESETS:
        raise SpecError(f"unknown conventions preset {spec.conventions!r}; choose one of {', '.join(PRESETS)}")
    if spec.conventions != "fmduck" and spec.nw_divisor != "T" and spec.nw_divisor != PRESETS[spec.conventions].divisor:
        raise SpecError(f"nw_divisor {spec.nw_divisor!r} conflicts with the {spec.conventions!r} preset, "
                        f"which uses {PRESETS[spec.conventions].divisor!r}; drop one of them")
    per = winsor_levels(spec)
    for name, p in per.items():
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < float(p) < 0.5:
            raise SpecError(f"winsorize level for {name!r} must be a number in (0, 0.5), got {p!r}")
    std, rnk = set(_chosen(spec, "standardize")), set(_chosen(spec, "rank"))
    both = sorted(std & rnk)
    if both:
        raise SpecError(f"a characteristic cannot be both standardized and ranked: {', '.join(both)}")
    for col, label in ((spec.weights, "weights"), (spec.absorb, "absorb")):
        if col is not None and (not isinstance(col, str) or not col):
            raise SpecError(f"{label} must be a column name, got {col!r}")
    if spec.absorb is not None and spec.intercept:
        spec.intercept = False  # the category dummies absorb the intercept
    if spec.absorb is not None and spec.absorb in spec.chars:
        raise SpecError(f"--absorb {spec.absorb!r} is also a characteristic; it is absorbed, not estimated")
    if spec.grid is not None:
        grid_spec.validate_grid(spec)


def winsor_levels(spec: Any) -> dict[str, float]:
    """Characteristic -> winsorizing level (empty when not asked)."""
    w = spec.winsorize
    if w is None or w is False:
        return {}
    if isinstance(w, dict):
        unknown = sorted(set(w) - set(spec.chars))
        if unknown:
            raise SpecError(f"winsorize names {', '.join(unknown)}, which are not characteristics (--chars)")
        return {k: v for k, v in w.items()}
    if not spec.chars:
        raise SpecError("winsorize needs characteristics (--chars) to act on")
    return {c: w for c in spec.chars}


def _chosen(spec: Any, option: str) -> list[str]:
    value = getattr(spec, option)
    if value is True:
        if not spec.chars:
            raise SpecError(f"{option} needs characteristics (--chars) to act on")
        return list(spec.chars)
    if not value:
        return []
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    unknown = sorted(set(names) - set(spec.chars))
    if unknown:
        raise SpecError(f"{option} names {', '.join(unknown)}, which are not characteristics (--chars)")
    return names


def plan(spec: Any) -> list[dict[str, Any]]:
    """Per characteristic: {name, winsorize (level or None), scale ('standardize' | 'rank' | None)}."""
    levels = winsor_levels(spec)
    std, rnk = set(_chosen(spec, "standardize")), set(_chosen(spec, "rank"))
    out = []
    for c in spec.chars:
        scale = "standardize" if c in std else "rank" if c in rnk else None
        if c in levels or scale:
            out.append({"name": c, "winsorize": levels.get(c), "scale": scale})
    return out


def build(spec: Any, returns: Any, dialect: str) -> tuple[str, dict[str, float], list[dict[str, Any]]] | None:
    """(prepared panel SQL in DuckDB syntax for ``dialect``, its bound parameters, the steps), or None
    when nothing is asked."""
    from fmduck import templates

    steps = plan(spec)
    if not steps:
        return None
    if dialect != "duckdb" and any(s["winsorize"] is not None for s in steps):
        raise SpecError(f"winsorize runs on DuckDB only: {dialect} has no windowed quantile (percentile_cont "
                        "is not a window function there); standardize and rank work on every engine")
    by_name = {s["name"]: (i, s) for i, s in enumerate(steps)}
    columns = []
    for name in returns.columns:
        i, step = by_name.get(name, (None, None))
        columns.append({"ident": templates.ident(name), "i": i,
                        "scale": step["scale"] if step else None,
                        "winsorize": bool(step and step["winsorize"] is not None)})
    sql = templates.source("prepare", dialect, returns=returns.sql, period=templates.ident(spec.period),
                           columns=columns)
    params = {}
    for i, step in enumerate(steps):
        if step["winsorize"] is not None:
            params[f"winsor_lo_{i}"] = float(step["winsorize"])
            params[f"winsor_hi_{i}"] = 1.0 - float(step["winsorize"])
    return sql, params, steps


def note(steps: list[dict[str, Any]]) -> str:
    """The summary note that says what was prepared."""
    parts = []
    for s in steps:
        what = [f"winsorized at {s['winsorize']:g}/{1 - s['winsorize']:g} quantiles"] if s["winsorize"] else []
        what += {"standardize": ["standardized (sd ddof=1)"], "rank": ["ranked to [-0.5, 0.5]"], None: []}[s["scale"]]
        parts.append(f"{s['name']} {' then '.join(what)}")
    return "Characteristics prepared within each period: " + "; ".join(parts)
