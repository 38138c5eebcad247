"""Designs (run types) as plug-ins: one module each, one registry.

A design declares everything the rest of fmduck needs to know about it — its options (Spec fields,
TOML keys and command-line flags at once), its result tables (DDL columns), the SE types it stores
and their labels, its summary title and hook, whether ``fmduck update`` applies — and implements
``validate(spec)`` (pure: no reads, no writes), ``plan(run, catalog)`` (the statements, rendered
before any data is read) and ``fit(run)`` (execute and compute; returns a :class:`RunOutput`). The
fit skeleton around it (engines, write checks, the store, ``--results``) is in :mod:`fmduck.fitting`.

Built-in designs are listed in ``BUILTIN`` and imported when the registry is first read;
:func:`register` adds one (a test's toy design, a user's own) — nothing registers itself on import.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from fmduck.errors import SpecError

BUILTIN = ("fmduck.designs.twopass_design", "fmduck.designs.fm1973", "fmduck.designs.pooled",
           "fmduck.designs.mimicking")


@dataclass
class RunOutput:
    """What a design's fit returns to the skeleton: the frames of the results tables (``lambdas`` wide),
    the run record's fields, and the first pass when it stays in the engine (a ``store.TableCopy``)."""

    lambdas: Any
    estimates: Any
    pricing_errors: Any
    skipped: Any
    conventions: str
    fingerprint: dict[str, Any]
    n_periods: int
    avg_n: float
    avg_r2: float
    extra: dict[str, Any] = field(default_factory=dict)
    first_pass: Any = None  # a polars frame of flat windows, a store.TableCopy, or None
    first_pass_terms: list[str] = field(default_factory=list)
    first_pass_layout: str = "none"
    inference_inputs: dict[str, Any] = field(default_factory=dict)
    coverage: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    statements: list[tuple[str, str]] | None = None  # what this run sent (default: the whole Run's log)
    fingerprints: Any = None  # per input and period: rows and hash (fmduck.input_fingerprints), for update


class Design:
    """Base class of a design: override what differs. ``tables``: name -> [(column, SQL type)];
    ``se_types``: se_type -> (label, short label) for types beyond the covariance registry's."""

    name: str = ""
    help: str = ""
    title: str = "Fama-MacBeth (1973) two-pass procedure"
    options: tuple = ()
    tables: dict[str, list[tuple[str, str]]] = {}
    se_types: dict[str, tuple[str, str]] = {}
    update: str | None = "design {name} does not support update: re-run it on the new data"
    results_class: Any = None  # a FamaMacBethResults subclass with the design's own accessors (None: the base)

    def validate(self, spec: Any) -> None:
        """Option checks of this design (pure)."""

    def plan(self, run: Any, catalog: Any) -> Any:
        """The statements of a run (:class:`fmduck.plan.Plan`), rendered without reading data."""
        raise SpecError(f"design {self.name} has no plan")

    def catalog(self, spec: Any, engine: Any) -> Any:
        """The inputs as the catalog describes them (default: the two-pass inputs)."""
        from fmduck import inputs

        return inputs.catalog(spec, engine)

    def fit(self, run: Any) -> RunOutput:
        raise NotImplementedError

    def run_names(self, spec: Any) -> list[str]:
        """The names of the runs a fit of ``spec`` stores (checked before any computation)."""
        return [spec.name]

    def summary(self, results: Any, text: str) -> str:
        """The text summary of a run of this design (default: the xtfmb-style text as it is)."""
        return text


_REGISTRY: dict[str, Design] = {}
_LOADED = False


def registry() -> dict[str, Design]:
    """Every design by name (built-ins imported on first use)."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for module in BUILTIN:
            register(importlib.import_module(module).DESIGN)
    return _REGISTRY


def register(design: Design) -> Design:
    """Add a design (its SE types join the covariance registry's labels)."""
    if not design.name:
        raise SpecError("a design needs a name")
    _REGISTRY[design.name] = design
    if design.se_types:
        from fmduck import covariance

        for se_type, (label, short) in design.se_types.items():
            if se_type not in covariance.REGISTRY:
                covariance.register(se_type, label, short)
    return design


def get(name: Any) -> Design:
    designs = registry()
    if not isinstance(name, str) or name not in designs:
        raise SpecError(f"unknown design {name!r}; known: {', '.join(designs)}")
    return designs[name]


def results_class(design: Any) -> Any:
    """The design's own results class for runs of ``design`` (a name); None: the base FamaMacBethResults."""
    found = registry().get(design)
    return found.results_class if found is not None else None


def se_order() -> dict[str, int]:
    """The order of SE types in tables: the covariance registry's, then the designs'."""
    from fmduck import covariance

    registry()
    return {name: i for i, name in enumerate(covariance.REGISTRY)}
