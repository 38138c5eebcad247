"""What the designs beside the two-pass default share: the refusal of the per-period options they do
not apply (pooled and mimicking use the raw, unweighted rows of the panel)."""

from __future__ import annotations

from typing import Any

from fmduck.errors import SpecError

# per-period preparation and weighting options of the two-pass design that pooled and mimicking do not apply
UNSUPPORTED = ("winsorize", "standardize", "rank", "weights", "absorb", "grid")


def reject_unsupported(spec: Any) -> None:
    """A clear error rather than a silently ignored option (pure: reads the spec only)."""
    given = [f"--{name}" for name in UNSUPPORTED if getattr(spec, name, None) not in (None, False, [], {})]
    if given:
        raise SpecError(f"design {spec.design} does not support {', '.join(given)}: it uses the raw, "
                        "unweighted rows of the panel")
