"""The estimator object of the Python API: ``FamaMacBeth(spec, database).fit()``.

    model = FamaMacBeth(spec, "panel.duckdb")
    results = model.fit()          # runs the spec's design and stores the run in the results schema
    print(results.summary)
    print(model.sql())             # the statements of the run, rendered without reading the data

Every design (``spec.design``: twopass, fm1973, pooled, mimicking, or one registered) goes through
the same object; the work is in :mod:`fmduck.fitting` (the skeleton) and the design's module.
"""

from __future__ import annotations

from typing import Any

from fmduck import designs, fitting
from fmduck.engines import connect
from fmduck.run import Progress, Run
from fmduck.spec import Spec


class FamaMacBeth:
    """A run of ``spec`` on ``database`` (a DuckDB path or connection, a ``postgresql://`` URL, an engine);
    ``results``: another database or engine for the results (e.g. a local DuckDB file for a read-only source)."""

    def __init__(self, spec: Spec, database: Any = ":memory:", *, results: Any = None) -> None:
        spec.validate()
        self.spec = spec
        self.database = database
        self.results = results
        self.statements: list[tuple[str, str]] = []

    @property
    def engine(self) -> Any:
        return connect(self.database)

    def fit(self, *, write: bool = True, progress: Progress | None = None) -> Any:
        """Run the design; store the run (unless ``write=False``) and return its results (a list of
        results for a specification grid, laid out side by side by its ``summary``)."""
        self.statements = []
        out = fitting.fit(self.spec, self.database, results=self.results, write=write, progress=progress,
                          log=self.statements)
        if isinstance(out, list):
            from fmduck.designs.grid import GridResults

            return GridResults(out)
        return out

    def update(self, run: str | None = None, *, new_name: str | None = None, progress: Progress | None = None) -> Any:
        """Update the stored run ``run`` (default: this spec's name) after its inputs changed, recomputing
        only what depends on the change (:mod:`fmduck.update`); None when nothing changed."""
        from fmduck import update

        return update.update(self.database, run or self.spec.name, schema=self.spec.schema, new_name=new_name,
                             results=self.results, progress=progress)

    def plan(self, *, script: bool = False, dialect: str | None = None) -> Any:
        """The plan of the run (:class:`fmduck.plan.Plan`), rendered from the catalog only (no data read
        beyond it). ``script``: stable scratch names, for a script that runs as printed; ``dialect``:
        render for another engine's dialect than this database's (the catalog is read here)."""
        design = designs.get(self.spec.design)
        engine = connect(self.database)
        run = Run(self.spec, _Dialect(engine, dialect) if dialect else engine, script=script)
        return design.plan(run, design.catalog(self.spec, engine))

    def sql(self, *, inline: bool = False, dialect: str | None = None) -> str:
        """The plan as one script; ``inline``: every parameter written as a literal, scratch tables named
        so the script runs as printed in the engine's own client."""
        return self.plan(script=inline, dialect=dialect).render(inline=inline)


class _Dialect:
    """An engine seen through another dialect, for rendering only (its catalog, that dialect's SQL)."""

    def __init__(self, engine: Any, dialect: str) -> None:
        self.engine, self.dialect = engine, dialect

    def relation(self, source: Any, role: str) -> Any:
        return self.engine.relation(source, role)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        return self.engine.query(sql, params)


def fama_macbeth(database: Any = ":memory:", spec: Spec | None = None, *, write: bool = True,
                 progress: Progress | None = None, **options: Any) -> Any:
    """Run a Fama-MacBeth regression: ``fama_macbeth(con, name=..., returns=..., factor_cols=[...])``."""
    spec = spec if spec is not None else Spec(**options)
    return FamaMacBeth(spec, database).fit(write=write, progress=progress)
