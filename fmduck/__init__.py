"""fmduck: Fama-MacBeth (1973) regressions computed where the panel lives, in SQL.

The public names are imported on first use (PEP 562), so ``import fmduck`` and ``fmduck --help``
start without loading DuckDB, polars, numpy or sqlglot.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    "FamaMacBeth": "fmduck.model", "fama_macbeth": "fmduck.model",
    "Spec": "fmduck.spec",
    "FamaMacBethResults": "fmduck.results",
    "list_runs": "fmduck.store", "load_run": "fmduck.store", "delete_run": "fmduck.store",
    "DuckDBEngine": "fmduck.engine", "connect": "fmduck.engines",
    "compare": "fmduck.comparison",
    "FmduckError": "fmduck.errors", "SpecError": "fmduck.errors", "InputError": "fmduck.errors",
    "EstimationError": "fmduck.errors", "RunExistsError": "fmduck.errors", "RunNotFoundError": "fmduck.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fmduck' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
