"""The specification grid as the user writes it (``--grid "size; size,bm"`` or TOML ``[[grid]]``):
parsing, validation and the member specifications. No engine here; :mod:`fmduck.designs.grid` runs it."""

from __future__ import annotations

import re
from typing import Any

from fmduck.errors import SpecError

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,60}$")


def parse_cli(text: str) -> list[dict[str, Any]]:
    """``"size; size,bm"`` -> [{"name": "m1", "chars": ["size"]}, {"name": "m2", "chars": ["size", "bm"]}]."""
    entries = [e.strip() for e in text.split(";") if e.strip()]
    return [{"name": f"m{i + 1}", "chars": [c.strip() for c in e.split(",") if c.strip()]}
            for i, e in enumerate(entries)]


def validate_grid(spec: Any) -> None:
    """Refuse a grid that is not a list of {name, chars} tables over --chars, or that cannot run."""
    if not isinstance(spec.grid, list) or not spec.grid:
        raise SpecError("grid must be a non-empty list of specifications (TOML [[grid]] tables)")
    if spec.absorb:
        raise SpecError("a grid cannot use --absorb (the demeaning depends on each specification's rows; "
                        "run those specifications separately)")
    if spec.design != "twopass":
        raise SpecError(f"a grid runs two-pass specifications; design {spec.design!r} does not support it")
    names = []
    for i, entry in enumerate(spec.grid):
        if not isinstance(entry, dict):
            raise SpecError(f"grid entry {i + 1} must be a table with 'name' and 'chars', got {entry!r}")
        unknown = sorted(set(entry) - {"name", "chars"})
        if unknown:
            raise SpecError(f"grid entry {i + 1}: unknown key(s) {', '.join(unknown)}; use 'name' and 'chars'")
        name, chars = entry_of(i, entry)
        if not _NAME.match(name):
            raise SpecError(f"grid entry {i + 1}: name {name!r} must be 1-60 letters, digits, '_', '-', '.'")
        names.append(name)
        missing = sorted(set(chars) - set(spec.chars))
        if missing:
            raise SpecError(f"grid entry {name!r}: {', '.join(missing)} not among the characteristics (--chars "
                            f"{', '.join(spec.chars) or 'none'}); --chars lists the union")
        if not chars and not spec.factor_cols:
            raise SpecError(f"grid entry {name!r} has no regressors")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpecError(f"grid names listed twice: {', '.join(dup)}")


def member_specs(spec: Any) -> list[Any]:
    """One Spec per grid entry (chars in the order of the union, grid cleared)."""
    out = []
    for i, entry in enumerate(spec.grid):
        name, chars = entry_of(i, entry)
        pick = dict(winsorize=option_subset(spec.winsorize, chars),
                    standardize=option_subset(spec.standardize, chars), rank=option_subset(spec.rank, chars))
        out.append(spec.replace_with(name=f"{spec.name}:{name}", chars=[c for c in spec.chars if c in chars],
                                     grid=None, **pick))
    return out


def entry_of(i: int, entry: dict[str, Any]) -> tuple[str, list[str]]:
    """(name, characteristics) of grid entry ``i`` (``chars`` a list or a comma-separated string)."""
    chars = entry.get("chars") or []
    return (str(entry.get("name", f"m{i + 1}")),
            [c.strip() for c in chars.split(",")] if isinstance(chars, str) else list(chars))


def option_subset(option: Any, chars: list[str]) -> Any:
    """A preparation option (winsorize/standardize/rank) restricted to a member's characteristics."""
    if isinstance(option, dict):
        return {k: v for k, v in option.items() if k in chars} or None
    if isinstance(option, (list, tuple)):
        return [c for c in option if c in chars]
    if isinstance(option, str):
        return [c for c in option.split(",") if c.strip() in chars]
    if option is True:
        return True if chars else False
    return option if (option is None or option is False) or chars else None
