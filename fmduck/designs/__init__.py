"""Run types beside the two-pass default. Each design registers an estimator class whose
``__init__(spec, database)`` and ``fit(write=..., progress=...)`` mirror :class:`fmduck.model.FamaMacBeth`."""

from __future__ import annotations

import importlib
from typing import Any

from fmduck.errors import SpecError

# design name -> "module:Class" (imported lazily)
REGISTRY: dict[str, str] = {
    "twopass": "fmduck.model:FamaMacBeth",
    "fm1973": "fmduck.designs.fm1973:FM1973",
    "pooled": "fmduck.designs.pooled:PooledOLS",
    "mimicking": "fmduck.designs.mimicking:Mimicking",
}


def estimator(spec: Any, database: Any, **options: Any) -> Any:
    """The estimator object for ``spec.design`` (``options``, e.g. ``results=``, only when given)."""
    try:
        target = REGISTRY[spec.design]
    except KeyError:
        raise SpecError(f"unknown design {spec.design!r}; known: {', '.join(REGISTRY)}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)(spec, database, **options)
