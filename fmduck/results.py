"""The results schema: create it, write one run atomically, read runs back.

Tables (schema ``fmduck`` by default): ``runs``, ``first_pass``, ``lambdas`` (long: one row per
period and term), ``estimates`` (one row per term and SE type), ``pricing_errors``, ``skipped``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from collections.abc import Iterator
from functools import cached_property
from typing import Any

import polars as pl

from fmduck import templates
from fmduck.engine import Engine, connect
from fmduck.errors import FmduckError, RunExistsError, RunNotFoundError

SCHEMA_VERSION = 1
TABLES = ("runs", "first_pass", "lambdas", "estimates", "pricing_errors", "skipped")
# Design-specific tables: created by sql/results/schema.sql.j2 too, deleted with their run.
EXTRA_TABLES: list[str] = ["portfolios", "fm1973_portfolio_months", "fm1973_periods", "firm_effect", "mimicking_weights"]
EXTRA_TABLES.append("tests")  # fmduck/modeltests.py: Wald, GRS, pricing-error chi2 (every two-pass run)
SE_TYPES = ("fm", "nw", "shanken")
# design pooled (fmduck/designs/pooled.py) and mimicking (two-pass premium beside the mimicking one)
SE_TYPES += ("ols", "white", "cluster_asset", "cluster_period", "cluster_both", "driscoll_kraay",
             "twopass_fm", "twopass_nw", "twopass_shanken")
WIDE_PIECE_ROWS = 1 << 19  # kept windows per wide piece uploaded and unpivoted by FirstPass.insert


class FirstPass:
    """Pass-1 results held wide, as the solver returned them: one row per (asset, window) of ``keys``
    (columns ``asset`` and, when rolling, ``pidx``), arrays per term, a mask ``ok`` of the kept rows.

    The long ``fmduck.first_pass`` layout (one row per asset, period, term; 4x the rows, with string
    keys) is built only when asked for: ``long()`` (what ``FamaMacBethResults.first_pass`` returns,
    cached there) or ``batches()`` (what ``write_run`` inserts, never held whole)."""

    def __init__(self, keys: pl.DataFrame, terms: list[str], fit: Any, ok: Any,
                 calendar: pl.DataFrame | None = None, tags: tuple[str, str] | None = None) -> None:
        self.keys, self.terms, self.fit, self.ok, self.calendar, self.tags = keys, terms, fit, ok, calendar, tags

    def tagged(self, name: str, run_id: str) -> FirstPass:
        return FirstPass(self.keys, self.terms, self.fit, self.ok, self.calendar, (name, run_id))

    @property
    def height(self) -> int:
        """Rows of the long layout."""
        return int(self.ok.sum()) * len(self.terms)

    def _kept_keys(self, keys: pl.DataFrame | None = None, ok: Any = None) -> pl.DataFrame:
        """asset, period, period_index (strings for asset and period) of the kept rows, in fit order
        (of ``keys``/``ok``, a span of the windows, when given)."""
        import numpy as np

        keys = self.keys if keys is None else keys
        kept = keys.filter(pl.Series(np.asarray(self.ok if ok is None else ok)))
        if "period_index" in kept.columns:  # keys given in the long layout's terms already
            pass
        elif self.calendar is not None:  # the period strings of the (few) calendar rows, then the join
            calendar = self.calendar.select("pidx", pl.col("period").cast(pl.Utf8))
            kept = kept.join(calendar, on="pidx", how="left", maintain_order="left").rename({"pidx": "period_index"})
        else:
            kept = kept.with_columns(pl.lit(None, pl.Utf8).alias("period"), pl.lit(None, pl.Int64).alias("period_index"))
        return kept.select(pl.col("asset").cast(pl.Utf8), pl.col("period").cast(pl.Utf8), "period_index")

    def _ordered(self) -> tuple[pl.DataFrame, Any]:
        """The kept keys and, per output row, its position among them (sorted by asset as a string, then
        period_index: assets ranked once, then an integer sort; the keys are unique)."""
        kept = self._kept_keys()
        ranks = kept.select(pl.col("asset").unique()).sort("asset", nulls_last=False).with_row_index("fmduck_rank")
        order = kept.select("asset", "period_index").with_row_index("fmduck_row").join(
            ranks, on="asset", how="left", nulls_equal=True).sort(
            ["fmduck_rank", "period_index"], nulls_last=False)["fmduck_row"].to_numpy()
        return kept, order

    def wide(self) -> pl.DataFrame:
        """One row per kept (asset, window): asset, period, period_index, then e<i>, s<i>, t<i> (estimate,
        SE, t of term i in ``terms`` order), r2, adj_r2, rmse, nobs; in fit order."""
        pieces = list(self.wide_batches())
        return pl.concat(pieces, how="vertical") if len(pieces) != 1 else pieces[0]

    def wide_batches(self, rows: int | None = None) -> Iterator[pl.DataFrame]:
        """``wide()`` in pieces of about ``rows`` (default ``WIDE_PIECE_ROWS``) kept windows, built one fit
        batch at a time (the batches of a streamed pass 1), so the whole wide frame never exists."""
        rows = rows or WIDE_PIECE_ROWS
        pieces: list[pl.DataFrame] = []
        for piece in self._wide_spans():
            pieces.append(piece)
            if sum(p.height for p in pieces) >= rows:
                yield pl.concat(pieces, how="vertical")
                pieces = []
        if pieces:
            yield pl.concat(pieces, how="vertical")

    def _wide_spans(self) -> Iterator[pl.DataFrame]:
        lo = 0
        for fit in getattr(self.fit, "_fits", None) or [self.fit]:
            hi = lo + len(fit.nobs)
            yield self._wide_span(self.keys.slice(lo, hi - lo), fit, self.ok[lo:hi])
            lo = hi

    def _wide_span(self, keys: pl.DataFrame, fit: Any, ok: Any) -> pl.DataFrame:
        import numpy as np

        ok = np.asarray(ok)
        cols = []
        for i in range(len(self.terms)):
            e, se = fit.params[ok, i], fit.std_errors[ok, i]
            with np.errstate(divide="ignore", invalid="ignore"):
                cols += [pl.Series(f"e{i}", e), pl.Series(f"s{i}", se), pl.Series(f"t{i}", e / se)]
        return self._kept_keys(keys, ok).with_columns(
            *cols, *[pl.Series(name, getattr(fit, name)[ok]) for name in ("r2", "adj_r2", "rmse", "nobs")])

    def insert(self, engine: Engine, table_sql: str) -> None:
        """Append the long rows to the ``first_pass`` table ``table_sql``: DuckDB unpivots the wide rows
        in SQL, a piece at a time; other engines get the long frame in pieces."""
        if engine.dialect != "duckdb" or self.tags is None:
            for piece in self.batches():
                engine.insert(table_sql, piece)
            return
        name = f"fmduck_first_pass_{self.tags[1][:8]}"
        terms = [{"estimate": templates.ident(f"e{i}"), "std_error": templates.ident(f"s{i}"),
                  "t_stat": templates.ident(f"t{i}")} for i in range(len(self.terms))]
        sql = templates.render("results/insert_first_pass", engine.dialect, table=table_sql,
                               wide=templates.ident(name), terms=terms)
        params = {"run_name": self.tags[0], "run_id": self.tags[1], **{f"term_{i}": t for i, t in enumerate(self.terms)}}
        for piece in self.wide_batches():
            engine.upload(name, piece)
            try:
                engine.execute(sql, params)
            except BaseException:
                # an aborted transaction refuses unregister(); keep the original error (the caller rolls back)
                getattr(engine, "_registered", set()).discard(name)
                raise
            engine.drop_upload(name)

    def long(self) -> pl.DataFrame:
        """One row per (asset, period, term), sorted by asset, period_index, term (name order)."""
        kept, order = self._ordered()
        return self._rows(kept, order)

    def batches(self, size: int = 1_000_000):
        """The long layout in pieces of about ``size`` rows (same order as ``long()``)."""
        kept, order = self._ordered()
        step = max(1, size // max(1, len(self.terms)))
        for start in range(0, max(len(order), 1), step):
            yield self._rows(kept, order[start:start + step])

    def _rows(self, kept: pl.DataFrame, order: Any) -> pl.DataFrame:
        import numpy as np

        fit, terms = self.fit, self.terms
        p = len(terms)
        by_name = np.array(sorted(range(p), key=lambda j: terms[j]), dtype=np.int64)
        rows = np.flatnonzero(self.ok)[order]           # positions in the fit arrays, in output order
        take = np.repeat(rows, p)
        col = np.tile(by_name, len(rows))
        estimate, std_error = fit.params[take, col], fit.std_errors[take, col]
        with np.errstate(divide="ignore", invalid="ignore"):  # t of these rows only (not the whole fit per piece)
            t_stat = estimate / std_error
        frame = kept[np.repeat(order, p)].with_columns(
            pl.Series("term", [terms[j] for j in by_name], dtype=pl.Utf8).gather(np.tile(np.arange(p), len(rows))),
            pl.Series("estimate", estimate),
            pl.Series("std_error", std_error),
            pl.Series("t_stat", t_stat),
            pl.Series("r2", np.repeat(fit.r2[rows], p)),
            pl.Series("adj_r2", np.repeat(fit.adj_r2[rows], p)),
            pl.Series("rmse", np.repeat(fit.rmse[rows], p)),
            pl.Series("nobs", np.repeat(fit.nobs[rows], p)),
        )
        return tag(frame, *self.tags) if self.tags else frame


class _LazyFrame:
    """A dataclass field that may be given a ``FirstPass``: built into a polars frame on first access."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_lazy_" + name

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            raise AttributeError(self.slot)  # dataclasses: no default
        value = obj.__dict__[self.slot]
        if isinstance(value, FirstPass):
            value = value.long()
            obj.__dict__[self.slot] = value
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value


@dataclass(frozen=True)
class FamaMacBethResults:
    """One stored (or just computed) run. Frames carry ``run_name`` and ``run_id`` like the SQL tables.

    ``lambdas`` is wide here (one column per term) and long in SQL; everything else has the
    same columns as its table. ``first_pass`` may be given as a ``FirstPass`` (held wide): the long
    frame is then built on first access and cached.
    """

    run: dict[str, Any]
    first_pass: pl.DataFrame = _LazyFrame()  # type: ignore[assignment]  # long; built on first access
    lambdas: pl.DataFrame
    estimates: pl.DataFrame
    pricing_errors: pl.DataFrame
    skipped: pl.DataFrame = field(default_factory=pl.DataFrame)
    extra: dict[str, pl.DataFrame] = field(default_factory=dict)
    """Design-specific tables (e.g. ``portfolios``, ``tests``), written in the same transaction."""

    # ------------------------------------------------------------ accessors
    @property
    def name(self) -> str:
        return self.run["run_name"]

    @property
    def spec(self) -> dict[str, Any]:
        return self.run["spec"]

    @property
    def terms(self) -> list[str]:
        return list(dict.fromkeys(self.estimates["term"].to_list()))

    @property
    def se_types(self) -> list[str]:
        return list(dict.fromkeys(self.estimates["se_type"].to_list()))

    @property
    def params(self) -> dict[str, float]:
        """Mean λ per term."""
        fm = self.estimates.filter(pl.col("se_type") == self.se_types[0])
        return dict(zip(fm["term"].to_list(), fm["estimate"].to_list()))

    def table(self, se_type: str = "fm") -> pl.DataFrame:
        """Estimates of one SE type: term, estimate, std_error, t_stat, p_value, ci_lower, ci_upper."""
        if se_type not in self.se_types:
            raise FmduckError(f"run {self.name!r} has no {se_type!r} standard errors; it has {', '.join(self.se_types)}")
        return self.estimates.filter(pl.col("se_type") == se_type).select(
            "term", "estimate", "std_error", "t_stat", "p_value", "ci_lower", "ci_upper"
        )

    def std_errors(self, se_type: str = "fm") -> dict[str, float]:
        tab = self.table(se_type)
        return dict(zip(tab["term"].to_list(), tab["std_error"].to_list()))

    def first_pass_pieces(self, rows: int | None = None) -> Iterator[pl.DataFrame]:
        """The first pass one row per (asset, window): asset, period, period_index, then per term
        ``<term>``, ``se_<term>``, ``t_<term>``, and r2, adj_r2, rmse, nobs; in pieces of about ``rows``
        windows. Reads a first pass of tens of millions of windows without building the long frame
        (``first_pass``, one row per term); a stored run's long rows come back as one piece."""
        held = self.__dict__.get("_lazy_first_pass")
        if isinstance(held, FirstPass):
            names = {}
            for i, term in enumerate(held.terms):
                names.update({f"e{i}": term, f"s{i}": f"se_{term}", f"t{i}": f"t_{term}"})
            for piece in held.wide_batches(rows):
                yield piece.rename(names)
            return
        long = self.first_pass
        if long.height == 0:
            return
        index = ["asset", "period", "period_index", "r2", "adj_r2", "rmse", "nobs"]
        wide = long.pivot(on="term", index=index, values=["estimate", "std_error", "t_stat"])
        terms = list(dict.fromkeys(long["term"].to_list()))
        yield wide.select(
            "asset", "period", "period_index",
            *[c for t in terms for c in (pl.col(f"estimate_{t}").alias(t), pl.col(f"std_error_{t}").alias(f"se_{t}"),
                                          pl.col(f"t_stat_{t}").alias(f"t_{t}"))],
            "r2", "adj_r2", "rmse", "nobs")

    @property
    def lambdas_long(self) -> pl.DataFrame:
        """λ_t as stored in SQL: one row per (period, term)."""
        return _lambdas_long(self.lambdas, self.terms)

    @cached_property
    def summary(self) -> str:
        """A plain-text table laid out like Stata ``xtfmb``."""
        from fmduck.summary import text_summary

        return text_summary(self)

    def __str__(self) -> str:
        return self.summary


# ------------------------------------------------------------------ assembling a run
def run_record(spec: Any, *, run_id: str, dialect: str, conventions: str, fingerprint: dict[str, Any],
               statements: list[tuple[str, str]], n_periods: int, avg_n: float, avg_r2: float,
               started: float) -> dict[str, Any]:
    """The ``fmduck.runs`` row of a run (every design fills the same record)."""
    from fmduck import __version__

    return {
        "run_name": spec.name,
        "run_id": run_id,
        "spec": spec.to_dict(),
        "created_at": datetime.now(timezone.utc).replace(tzinfo=None),
        "schema_version": SCHEMA_VERSION,
        "fmduck_version": __version__,
        "engine": dialect,
        "design": spec.design,
        "conventions": conventions,
        "input_fingerprint": fingerprint,
        "sql_text": ";\n\n".join(f"-- {label}\n{sql}" for label, sql in statements),
        "n_periods": int(n_periods),
        "avg_n": float(avg_n),
        "avg_r2": float(avg_r2),
        "elapsed_seconds": time.perf_counter() - started,
    }


def tag(frame: pl.DataFrame, name: str, run_id: str) -> pl.DataFrame:
    """Prefix ``run_name`` and ``run_id`` columns (an empty frame stays empty)."""
    return frame.select(pl.lit(name).alias("run_name"), pl.lit(run_id).alias("run_id"), pl.all()).head(frame.height)


def assemble(run: dict[str, Any], *, cls: type[FamaMacBethResults] | None = None,
             extra: dict[str, pl.DataFrame] | None = None, **frames: pl.DataFrame) -> FamaMacBethResults:
    """A results object whose frames all carry the run's name and id."""
    name, run_id = run["run_name"], run["run_id"]
    tagged = {key: frame.tagged(name, run_id) if isinstance(frame, FirstPass) else tag(frame, name, run_id)
              for key, frame in frames.items()}
    extra_tagged = {key: tag(frame, name, run_id) for key, frame in (extra or {}).items()}
    return (cls or FamaMacBethResults)(run=run, extra=extra_tagged, **tagged)


# ------------------------------------------------------------------ writing
def ensure_schema(engine: Engine, schema: str) -> None:
    engine.execute(templates.render("results/schema", engine.dialect, schema=templates.ident(schema)))


def write_run(engine: Engine, schema: str, results: FamaMacBethResults, *, replace: bool = False) -> None:
    """Write every table of one run in one transaction; refuse an existing name unless ``replace``."""
    ensure_schema(engine, schema)
    name = results.name
    q_schema = templates.ident(schema)
    with engine.transaction():
        existing = run_names(engine, schema)
        if name in existing:
            if not replace:
                raise RunExistsError(
                    f"run {name!r} already exists in schema {schema!r}; choose another name or replace it "
                    "(--replace / replace=True)"
                )
            delete_rows = getattr(engine, "delete_rows", None)
            if delete_rows is not None:  # engines without DELETE (Spark) stage it with the inserts
                for table_name in [*TABLES, *EXTRA_TABLES]:
                    delete_rows(f"{q_schema}.{templates.ident(table_name)}", "run_name", name)
            else:
                engine.execute(
                    templates.render("results/delete_run", engine.dialect, schema=q_schema,
                                     tables=[*TABLES, *EXTRA_TABLES]),
                    {"run_name": name},
                )
        run = dict(results.run)
        run["spec"] = json.dumps(run["spec"], default=_json_default)
        run["input_fingerprint"] = json.dumps(run["input_fingerprint"], default=_json_default)
        first_pass = results.__dict__.get("_lazy_first_pass")
        frames = {
            "runs": pl.DataFrame([run]),
            "first_pass": first_pass if isinstance(first_pass, pl.DataFrame) else None,
            "lambdas": _lambdas_long(results.lambdas, results.terms),
            "estimates": results.estimates,
            "pricing_errors": results.pricing_errors,
            "skipped": results.skipped,
            **results.extra,
        }
        for table_name, frame in frames.items():
            if frame is None:  # held wide: the whole long frame is never built in Python
                first_pass.insert(engine, f"{q_schema}.{templates.ident(table_name)}")
                continue
            engine.insert(f"{q_schema}.{templates.ident(table_name)}", frame)


def _lambdas_long(wide: pl.DataFrame, terms: list[str]) -> pl.DataFrame:
    if wide.height == 0:
        return wide
    ids = ["run_name", "run_id", "period", "period_index", "r2", "adj_r2", "n"]
    ids = [c for c in ids if c in wide.columns]
    long = wide.unpivot(index=ids, on=terms, variable_name="term", value_name="estimate")
    order = {t: i for i, t in enumerate(terms)}
    return long.with_columns(pl.col("term").replace_strict(order, return_dtype=pl.Int64).alias("_o")).sort(
        ["period_index", "_o"]
    ).drop("_o")


# ------------------------------------------------------------------ reading
def run_names(engine: Engine, schema: str) -> list[str]:
    try:
        frame = engine.query(_sql(engine, f"SELECT run_name FROM {templates.ident(schema)}.runs ORDER BY created_at"))
    except Exception:  # noqa: BLE001 - a missing schema means no runs
        return []
    return frame["run_name"].to_list()


def list_runs(engine: Engine, schema: str = "fmduck") -> pl.DataFrame:
    """Stored runs: name, id, time, design, engine, periods, avg N, avg R²."""
    engine = connect(engine)
    if not run_names(engine, schema):
        return pl.DataFrame(schema={"run_name": pl.Utf8})
    return engine.query(_sql(
        engine,
        f"SELECT run_name, run_id, created_at, design, engine, n_periods, avg_n, avg_r2 "
        f"FROM {templates.ident(schema)}.runs ORDER BY created_at",
    ))


def load_run(engine: Engine, name: str, schema: str = "fmduck") -> FamaMacBethResults:
    """Read a stored run back from the result tables (``engine``: an engine, connection or path)."""
    engine = connect(engine)
    q = templates.ident(schema)
    names = run_names(engine, schema)
    if name not in names:
        known = ", ".join(names) if names else "none"
        raise RunNotFoundError(f"no run named {name!r} in schema {schema!r} (stored runs: {known})")
    params = {"run_name": name}
    runs = engine.query(_sql(engine, f"SELECT * FROM {q}.runs WHERE run_name = $run_name"), params)
    run = runs.row(0, named=True)
    version = run.get("schema_version")
    if version != SCHEMA_VERSION:
        raise FmduckError(
            f"run {name!r} was stored with results schema version {version}, this fmduck reads version "
            f"{SCHEMA_VERSION}; re-run it with this version"
        )
    run["spec"] = json.loads(run["spec"])
    run["input_fingerprint"] = json.loads(run["input_fingerprint"])

    def read(table: str, order: str) -> pl.DataFrame:
        return engine.query(_sql(engine, f"SELECT * FROM {q}.{table} WHERE run_name = $run_name ORDER BY {order}"),
                            params)

    estimates = read("estimates", "se_type, term")
    terms = _term_order(run["spec"], estimates["term"].unique().to_list())
    order = {t: i for i, t in enumerate(terms)}
    se_order = {s: i for i, s in enumerate(SE_TYPES)}
    estimates = estimates.sort(
        pl.col("se_type").replace_strict(se_order, default=99, return_dtype=pl.Int64),
        pl.col("term").replace_strict(order, default=99, return_dtype=pl.Int64),
    )
    long = read("lambdas", "period_index, term")
    wide = long.pivot(on="term", index=["run_name", "run_id", "period", "period_index", "r2", "adj_r2", "n"],
                      values="estimate").sort("period_index")
    wide = wide.select(["run_name", "run_id", "period", "period_index", *terms, "r2", "adj_r2", "n"])
    return FamaMacBethResults(
        run=run,
        first_pass=read("first_pass", "asset, period_index, term"),
        lambdas=wide,
        estimates=estimates,
        pricing_errors=read("pricing_errors", "asset"),
        skipped=read("skipped", "pass, asset, period"),
        extra=_read_extra(engine, q, params),
    )


def _read_extra(engine: Engine, q_schema: str, params: dict[str, Any]) -> dict[str, pl.DataFrame]:
    """The run's rows of every design-specific table that has some (tables missing in old files are skipped)."""
    extra = {}
    for table in EXTRA_TABLES:
        try:
            frame = engine.query(
                _sql(engine, f"SELECT * FROM {q_schema}.{templates.ident(table)} WHERE run_name = $run_name"), params)
        except Exception:  # noqa: BLE001 - a results file written before this table existed
            continue
        if frame.height:
            extra[table] = frame
    return extra


def _sql(engine: Engine, duckdb_sql: str) -> str:
    """DuckDB SQL written here, for the engine's dialect (quotes and ``$name`` parameters rewritten)."""
    return duckdb_sql if engine.dialect == "duckdb" else templates.transpile(duckdb_sql, engine.dialect)


def _term_order(spec: dict[str, Any], present: list[str]) -> list[str]:
    wanted = (["const"] if spec.get("intercept", True) else []) + list(spec.get("factor_cols") or []) + list(
        spec.get("chars") or []
    )
    return [t for t in wanted if t in present] + sorted(t for t in present if t not in wanted)


def _json_default(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)
