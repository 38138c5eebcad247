"""The store: read and write runs in the results schema, on any engine (DuckDB, PostgreSQL, Spark).

``write`` puts one run in one transaction: the schema and tables are created inside it (a table of
the same name that is not fmduck's is refused), the run name is locked and checked (a name exists
once per schema: ``UNIQUE`` where the engine has it, an advisory lock on PostgreSQL so two writers
of one name wait for each other and the second gets :class:`RunExistsError`), a replaced run's rows
are deleted, and the new rows inserted. The first pass is copied in SQL from the engine table that
pass 1 wrote (no Python in between when the results live in the same engine; in pieces otherwise).
``check_writable`` runs the same DDL in a transaction it rolls back, before any computation, so a
read-only role or a foreign table is refused before pass 1. ``load_run`` reads a run back (the first
pass lazily, in pieces); ``list_runs``, ``history`` and ``delete_run`` do what they say.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import polars as pl

from fmduck import templates
from fmduck.engine import first_line
from fmduck.engines import connect
from fmduck.errors import FmduckError, InputError, RunExistsError, RunNotFoundError
from fmduck.results import FamaMacBethResults, lambdas_long, tag, term_order

SCHEMA_VERSION = 2
CORE_TABLES = ("runs", "first_pass_terms", "first_pass_windows", "input_fingerprints", "lambdas", "estimates",
               "pricing_errors", "skipped", "tests")
JSON_FIELDS = ("spec", "input_fingerprint", "inference_inputs", "coverage", "warnings", "recomputed")
PIECE_ROWS = 1 << 19
EAGER_WINDOWS = 1_000_000  # a stored first pass up to this many windows is read with the run; larger ones lazily


@dataclass(frozen=True)
class TableCopy:
    """Rows that a run's engine holds (e.g. the first pass): ``source`` is SQL in the run engine's
    dialect giving the flat columns (keys, nobs, r2, adj_r2, rmse, e0.., s0..), ``params`` its values."""

    engine: Any
    source: str
    params: dict[str, Any] = field(default_factory=dict)
    n_terms: int = 0

    def frames(self, rows: int = PIECE_ROWS) -> Iterator[pl.DataFrame]:
        batches = getattr(self.engine, "query_batches", None)
        if batches is not None:
            yield from batches(self.source, self.params, rows)
        else:
            yield self.engine.query(self.source, self.params)


def design_tables() -> list[dict[str, Any]]:
    from fmduck.designs import registry

    out, seen = [], set()
    for design in registry().values():
        for name, columns in design.tables.items():
            if name not in seen:
                seen.add(name)
                out.append({"name": name, "columns": columns})
    return out


def all_tables() -> list[str]:
    return [*CORE_TABLES, *(t["name"] for t in design_tables())]


def _q(schema: str) -> str:
    return templates.ident(schema)


def _sql(engine: Any, duckdb_sql: str) -> templates.Sql:
    return templates.transpile(duckdb_sql, engine.dialect)


# ====================================================================== schema
def contract() -> dict[str, tuple[str, ...]]:
    """Every relation of the results layout (tables, the designs' tables, the first_pass view) and the
    columns fmduck writes and reads in it, read from the DDL that creates them."""
    q = _q("fmduck")
    return templates.created(templates.source("results/schema", schema=q, tables=design_tables()) + ";\n"
                             + templates.source("results/first_pass_view", schema=q))


def ensure_schema(engine: Any, schema: str) -> None:
    """Create the results schema and whatever of its tables is missing (inside the caller's transaction);
    refuse a schema holding a relation of one of these names that is not fmduck's, or an older results
    layout. When every relation exists no DDL runs, so a role that may only read and write rows stores
    runs. Creating takes the engine's lock on the schema: two first writers create it one after the other."""
    layout = contract()
    columns = getattr(engine, "table_columns", None)
    if columns is not None:
        found = {name: columns(schema, name) for name in layout}
        _refuse_foreign(schema, layout, found)
        if all(cols is not None for cols in found.values()):
            return
    lock = getattr(engine, "lock", None)
    if lock is not None:
        lock(lock_key(schema))
    engine.execute(templates.render("results/schema", engine.dialect, schema=_q(schema), tables=design_tables()))
    engine.execute(templates.render("results/first_pass_view", engine.dialect, schema=_q(schema)))


def lock_key(schema: str, name: str | None = None) -> str:
    """The key of the engine lock a writer holds until its transaction ends: of a run name in a schema
    (every write), or of the schema itself (while its tables are created)."""
    return f"fmduck:{schema}" if name is None else f"fmduck:{schema}:{name}"


def _refuse_foreign(schema: str, layout: dict[str, tuple[str, ...]], found: dict[str, dict[str, str] | None]) -> None:
    runs = found.get("runs")
    if runs is not None and "run_name" in runs and "schema_version" in runs and "first_pass_layout" not in runs:
        raise InputError(f"schema {schema!r} holds runs of an older fmduck results layout (schema_version 1); "
                         "write to another schema (--schema fmduck_v2) or re-run them there")
    for name, expected in layout.items():
        have = found.get(name)
        if have is None:
            continue
        missing = [c for c in expected if c not in have]
        if missing:
            whose = "of another fmduck results layout" if "run_name" in have else "that is not fmduck's"
            raise InputError(f"schema {schema!r} has a table {name!r} {whose} (it lacks "
                             f"{', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}; its columns: "
                             f"{', '.join(list(have)[:8])}{', ...' if len(have) > 8 else ''}); choose another "
                             "results schema (--schema)")


def check_writable(engine: Any, schema: str, name: str | list[str] | None = None, replace: bool = False) -> None:
    """Refuse, before any computation, what would fail at the write: no privilege to create or insert,
    a read-only file, a foreign table in the schema, a stored run of the same ``name`` (or of any of the
    names a design stores; unless ``replace``: the write checks it again under the lock). The DDL runs
    in a transaction rolled back."""
    names = [name] if isinstance(name, str) else list(name or [])
    probe = getattr(engine, "check_writable", None)
    if probe is not None:  # engines without transactional DDL (Spark) check their own way
        probe(lambda: ensure_schema(engine, schema))
        return
    try:
        with engine.transaction(rollback=True):
            ensure_schema(engine, schema)
            for table in [*all_tables(), "run_history"]:  # privileges are checked when a statement is planned
                t = f"{_q(schema)}.{templates.ident(table)}"
                engine.execute(_sql(engine, f"INSERT INTO {t} SELECT * FROM {t} WHERE 1 = 0"))
                if replace and table != "run_history":  # a replaced run's rows are deleted; its history stays
                    engine.execute(_sql(engine, f"DELETE FROM {t} WHERE 1 = 0"))
            stored = set(run_names(engine, schema)) if names and not replace else set()
            exists = [n for n in names if n in stored]
    except FmduckError:
        raise
    except Exception as exc:  # noqa: BLE001 - translated: the engine's own message, first line
        raise InputError(f"cannot write results to schema {schema!r}: {first_line(exc)}; write them elsewhere "
                         "(--results results.duckdb)") from exc
    if exists:
        raise RunExistsError(_exists(exists[0], schema))


# ====================================================================== write
def write(engine: Any, schema: str, results: FamaMacBethResults, *, replace: bool = False,
          first_pass: TableCopy | None = None, frame_first_pass: pl.DataFrame | None = None, version: int = 1,
          parent_run_id: str | None = None, recomputed: dict[str, Any] | None = None,
          keep_windows: dict[str, Any] | None = None) -> None:
    """Write every table of one run in one transaction; refuse an existing name unless ``replace``.

    ``keep_windows`` (an update): {"from": stored run name, "replace": [period indexes]} — the stored
    windows of those ends are replaced by ``first_pass`` and the others kept (copied under a new name)."""
    q = _q(schema)
    name = results.name
    with engine.transaction():
        lock = getattr(engine, "lock", None)
        if lock is not None:  # before the DDL: the loser of a race on a new schema waits here, then sees the run
            lock(lock_key(schema, name))
        ensure_schema(engine, schema)
        if name in run_names(engine, schema):
            if not replace:
                raise RunExistsError(_exists(name, schema))
            if recomputed is None:  # a new run under a stored name (--replace): the name's next version
                before = engine.query(_sql(engine, f"SELECT run_id, version FROM {q}.runs WHERE run_name = $run_name"),
                                      {"run_name": name}).row(0, named=True)
                version, parent_run_id = int(before["version"] or 1) + 1, before["run_id"]
                recomputed = {"mode": "replaced", "reason": "a new run under the same name (--replace)"}
            in_place = keep_windows is not None and keep_windows["from"] == name
            _delete(engine, schema, name, keep=("first_pass_windows",) if in_place else ())
        if keep_windows is not None:
            _keep_windows(engine, schema, name, keep_windows)
        run = dict(results.run)
        run.update(version=version, parent_run_id=parent_run_id, recomputed=recomputed)
        terms = run.pop("first_pass_terms", None) or []
        row = {k: (json.dumps(v, default=_json_default) if k in JSON_FIELDS else v) for k, v in run.items()}
        frames = {
            "runs": pl.DataFrame([row]),
            "first_pass_terms": pl.DataFrame({"term_index": list(range(1, len(terms) + 1)), "term": terms},
                                             schema={"term_index": pl.Int64, "term": pl.Utf8}),
            "lambdas": lambdas_long(results.lambdas, results.terms),
            "estimates": results.estimates,
            "pricing_errors": results.pricing_errors,
            "skipped": results.skipped,
            **results.extra,
        }
        for table, frame in frames.items():
            engine.insert(f"{q}.{templates.ident(table)}", tag(frame, name, results.run["run_id"]))
        history = {"run_name": name, "run_id": results.run["run_id"], "version": version,
                   "parent_run_id": parent_run_id, "created_at": results.run["created_at"],
                   "recomputed": json.dumps(recomputed, default=_json_default),
                   "input_fingerprint": row["input_fingerprint"]}
        engine.insert(f"{q}.{templates.ident('run_history')}", pl.DataFrame([history]))
        if terms and (first_pass is not None or frame_first_pass is not None):
            _copy_windows(engine, schema, first_pass, frame_first_pass, name, results.run["run_id"], len(terms))


def _copy_windows(engine: Any, schema: str, copy: TableCopy | None, frame: pl.DataFrame | None, name: str,
                  run_id: str, n_terms: int) -> None:
    """first_pass_windows from the flat first-pass rows: in SQL when they live in this engine, else
    uploaded piece by piece and turned into arrays by the same INSERT ... SELECT."""
    params = {"run_name": name}
    if copy is not None and copy.engine is engine:
        holder = "fmduck_copy_source"  # the copy's source is in the engine's dialect already: spliced in
        sql = templates.render("results/insert_windows", engine.dialect, schema=_q(schema),
                               source=templates.ident(holder), n_terms=n_terms)
        engine.execute(templates.splice(sql, engine.dialect, holder, copy.source), {**copy.params, **params})
        return
    buffer = "fmduck_window_buffer"
    sql = templates.render("results/insert_windows", engine.dialect, schema=_q(schema),
                           source=templates.ident(buffer), n_terms=n_terms)
    for piece in (copy.frames() if copy is not None else [frame]):
        engine.upload(buffer, piece)
        try:
            engine.execute(sql, params)
        finally:
            engine.drop_upload(buffer)


def _keep_windows(engine: Any, schema: str, name: str, keep: dict[str, Any]) -> None:
    buffer = "fmduck_replaced_ends"
    engine.upload(buffer, pl.DataFrame({"pidx": keep["replace"]}, schema={"pidx": pl.Int64}))
    try:
        sql = templates.render("results/keep_windows", engine.dialect, schema=_q(schema), ends=templates.ident(buffer),
                               copy=keep["from"] != name)
        engine.execute(sql, {"run_name": name, "old_name": keep["from"]})
    finally:
        engine.drop_upload(buffer)


def _delete(engine: Any, schema: str, name: str, keep: tuple[str, ...] = ()) -> None:
    q = _q(schema)
    tables = [t for t in all_tables() if t not in ("runs", *keep)] + ["runs"]
    delete_rows = getattr(engine, "delete_rows", None)
    if delete_rows is not None:  # engines without DELETE (Spark) stage it with the inserts
        for table in tables:
            delete_rows(f"{q}.{templates.ident(table)}", "run_name", name)
        return
    engine.execute(templates.render("results/delete_run", engine.dialect, schema=q, tables=tables),
                   {"run_name": name})


def delete_run(database: Any, name: str, schema: str = "fmduck") -> None:
    """Delete a stored run (every table, one transaction); its history stays."""
    engine = connect(database)
    with engine.transaction():
        if name not in run_names(engine, schema):
            raise RunNotFoundError(_not_found(engine, name, schema))
        _delete(engine, schema, name)


# ====================================================================== read
def run_names(engine: Any, schema: str) -> list[str]:
    """Names of the stored runs (none when the schema or its runs table does not exist)."""
    if engine.table_columns(schema, "runs") is None:
        return []
    frame = engine.query(_sql(engine, f"SELECT run_name FROM {_q(schema)}.runs ORDER BY created_at"))
    return frame["run_name"].to_list()


def _exists(name: str, schema: str) -> str:
    return (f"run {name!r} already exists in schema {schema!r}; choose another name or replace it "
            "(--replace / replace=True)")


def _not_found(engine: Any, name: str, schema: str) -> str:
    names = run_names(engine, schema)
    return f"no run named {name!r} in schema {schema!r} (stored runs: {', '.join(names) if names else 'none'})"


def list_runs(database: Any, schema: str = "fmduck") -> pl.DataFrame:
    """Stored runs: name, id, time, design, engine, periods, avg N, avg R², version."""
    engine = connect(database)
    if not run_names(engine, schema):
        return pl.DataFrame(schema={"run_name": pl.Utf8})
    return engine.query(_sql(engine, f"SELECT run_name, run_id, created_at, design, engine, n_periods, avg_n, avg_r2, "
                                     f"version FROM {_q(schema)}.runs ORDER BY created_at"))


def history(database: Any, name: str, schema: str = "fmduck") -> pl.DataFrame:
    """The versions of a run, oldest first, with what each recomputed."""
    engine = connect(database)
    frame = engine.query(_sql(engine, f"SELECT version, run_id, parent_run_id, created_at, recomputed FROM "
                                      f"{_q(schema)}.run_history WHERE run_name = $run_name ORDER BY version"),
                         {"run_name": name})
    if frame.height == 0:
        raise RunNotFoundError(_not_found(engine, name, schema))
    return frame


def load_run(database: Any, name: str, schema: str = "fmduck", *, extra: tuple[str, ...] | None = None,
             first_pass: bool = True) -> FamaMacBethResults:
    """Read a stored run back from the result tables (``database``: an engine, connection, path or URL).
    ``extra``: the tables of ``results.extra`` to read (default: the tests and every design table);
    ``first_pass=False``: not the first pass (an update reads the windows it needs in SQL)."""
    engine = connect(database)
    q = _q(schema)
    if name not in run_names(engine, schema):
        raise RunNotFoundError(_not_found(engine, name, schema))
    params = {"run_name": name}
    run = engine.query(_sql(engine, f"SELECT * FROM {q}.runs WHERE run_name = $run_name"), params).row(0, named=True)
    if run.get("schema_version") != SCHEMA_VERSION:
        raise FmduckError(f"run {name!r} was stored with results schema version {run.get('schema_version')}, this "
                          f"fmduck reads version {SCHEMA_VERSION}; re-run it with this version")
    for key in JSON_FIELDS:
        if isinstance(run.get(key), str):
            run[key] = json.loads(run[key])
    terms = engine.query(_sql(engine, f"SELECT term FROM {q}.first_pass_terms WHERE run_name = $run_name "
                                      "ORDER BY term_index"), params)["term"].to_list()
    run["first_pass_terms"] = terms

    def read(table: str, order: str) -> pl.DataFrame:
        return engine.query(_sql(engine, f"SELECT * FROM {q}.{table} WHERE run_name = $run_name ORDER BY {order}"),
                            params)

    from fmduck.designs import se_order

    estimates = read("estimates", "se_type, term")
    order = term_order(run["spec"], estimates["term"].unique().to_list())
    position = {t: i for i, t in enumerate(order)}
    estimates = estimates.sort(
        pl.col("se_type").replace_strict(se_order(), default=99, return_dtype=pl.Int64),
        pl.col("term").replace_strict(position, default=99, return_dtype=pl.Int64))
    long = read("lambdas", "period_index, term")
    index = ["period", "period_date", "period_ts", "period_int", "period_index", "r2", "adj_r2", "n"]
    wide = long.pivot(on="term", index=index, values="estimate").sort("period_index") if long.height else \
        pl.DataFrame(schema={c: long.schema[c] for c in index})
    wide = wide.select(["period", "period_date", "period_ts", "period_int", "period_index",
                        *[t for t in order if t in wide.columns], "r2", "adj_r2", "n"])

    from fmduck.designs import results_class

    return (results_class(run.get("design")) or FamaMacBethResults)(
        run, lambdas=wide, estimates=estimates, pricing_errors=read("pricing_errors", "asset"),
        skipped=read("skipped", "pass, asset, period"), extra=_read_extra(engine, q, params, extra),
        first_pass=_first_pass(engine, schema, name, len(terms)) if terms and first_pass else None)


def _first_pass(engine: Any, schema: str, name: str, n_terms: int) -> Any:
    """The stored windows: read now when they are few (the results stand alone, e.g. after the connection
    closes), else a reader that fetches them in pieces on use."""
    count = engine.query(_sql(engine, f"SELECT COUNT(*) AS n FROM {_q(schema)}.first_pass_windows WHERE run_name = "
                                      "$run_name"), {"run_name": name})["n"][0]
    reader = windows_reader(engine, schema, name, n_terms)
    if int(count or 0) > EAGER_WINDOWS:
        return reader
    frames = list(reader())
    return pl.concat(frames, how="vertical_relaxed") if frames else None


def windows_reader(engine: Any, schema: str, name: str, n_terms: int) -> Any:
    """A function giving a stored run's first-pass windows (flat) in pieces of about ``rows`` rows."""
    source = templates.render("results/read_windows", engine.dialect, schema=_q(schema), n_terms=n_terms)

    def windows(rows: int | None = None) -> Iterator[pl.DataFrame]:
        batches = getattr(engine, "query_batches", None)
        if batches is not None:
            yield from batches(source, {"run_name": name}, rows or PIECE_ROWS)
        else:
            yield engine.query(source, {"run_name": name})

    return windows


def _read_extra(engine: Any, q: str, params: dict[str, Any], tables: tuple[str, ...] | None = None
                ) -> dict[str, pl.DataFrame]:
    """The run's rows of the tests table and of every design table that has some (or of ``tables``)."""
    extra = {}
    names = tables if tables is not None else ["tests", "input_fingerprints", *(t["name"] for t in design_tables())]
    for table in names:
        try:
            frame = engine.query(_sql(engine, f"SELECT * FROM {q}.{templates.ident(table)} WHERE run_name = $run_name"),
                                 params)
        except Exception:  # noqa: BLE001 - a design table that this results schema predates
            continue
        if frame.height:
            extra[table] = frame
    return extra


def _json_default(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)
