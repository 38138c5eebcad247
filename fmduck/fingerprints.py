"""Input fingerprints: per period of each input, its row count and an order-free hash of its rows.

Every run stores them (``fmduck.input_fingerprints``: source, period, n, fingerprint), taken in SQL in
one GROUP BY per input over all of its columns (``sql/fingerprints.sql.j2``, a per-dialect hash; with the
period's calendar index, after the calendar step), so
that ``fmduck update`` can tell — without reading the data into Python — which periods were
appended, restated or deleted since the run: :func:`diff` compares two sets of fingerprints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from fmduck import templates
from fmduck.plan import Plan, State


def add(plan: Plan, cat: Any) -> None:
    """Fingerprint steps for the panel and the factors of ``cat`` (an :class:`fmduck.inputs.Catalog`)."""
    sources = [("returns", cat.returns, cat.panel_key)]
    if cat.factors is not None:
        sources.append(("factors", cat.factors, cat.factor_key))
    for role, relation, key in sources:
        sql = templates.source("fingerprints", plan.dialect, relation=relation.sql, key=key.sql("r"),
                               calendar=plan.name("calendar"),
                               columns=[f"r.{templates.ident(c)}" for c in relation.columns])

        def then(state: State, frame: pl.DataFrame, role: str = role) -> None:
            state.setdefault_list("fingerprints").append(
                frame.select(pl.lit(role).alias("source"), pl.col("period").cast(pl.Utf8),
                             pl.col("period_index").cast(pl.Int64), pl.col("n").cast(pl.Int64),
                             pl.col("fingerprint").cast(pl.Utf8)))

        plan.add(f"fingerprints_{role}", f"fingerprints of {relation.label} per period", sql, then=then)


def frame(state: State) -> pl.DataFrame | None:
    parts = state.get("fingerprints")
    return pl.concat(parts) if parts else None


@dataclass(frozen=True)
class Changes:
    """Periods (text keys) per source that were added, removed or changed since the stored run."""

    added: dict[str, set[str]]
    removed: dict[str, set[str]]
    changed: dict[str, set[str]]

    @property
    def none(self) -> bool:
        return not any(self.added.values()) and not any(self.removed.values()) and not any(self.changed.values())

    def periods(self, source: str) -> set[str]:
        """Every period of ``source`` whose rows differ (added, removed or changed)."""
        return self.added.get(source, set()) | self.removed.get(source, set()) | self.changed.get(source, set())

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for source in sorted(set(self.added) | set(self.removed) | set(self.changed)):
            for kind, found in (("added", self.added), ("removed", self.removed), ("changed", self.changed)):
                periods = sorted(found.get(source, set()))
                if periods:
                    out[f"{source}_{kind}"] = {"count": len(periods), "first": periods[0], "last": periods[-1]}
        return out


def diff(old: pl.DataFrame, new: pl.DataFrame) -> Changes:
    """What changed between the stored fingerprints ``old`` and the current ``new`` (per source)."""
    added: dict[str, set[str]] = {}
    removed: dict[str, set[str]] = {}
    changed: dict[str, set[str]] = {}
    for source in set(old["source"].to_list()) | set(new["source"].to_list()):
        a = {r["period"]: (r["n"], r["fingerprint"])
             for r in old.filter(pl.col("source") == source).iter_rows(named=True)}
        b = {r["period"]: (r["n"], r["fingerprint"])
             for r in new.filter(pl.col("source") == source).iter_rows(named=True)}
        added[source] = set(b) - set(a)
        removed[source] = set(a) - set(b)
        changed[source] = {p for p in set(a) & set(b) if a[p] != b[p]}
    return Changes(added, removed, changed)
