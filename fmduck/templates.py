"""Render the SQL templates in ``sql/``: the only module that imports jinja2 and sqlglot.

Templates are written in DuckDB SQL. Jinja only repeats and selects; every identifier that comes
from a user (table, column) is quoted by sqlglot before it reaches a template, and every value
(window length, lags) is a bound parameter (``$name``). The rendered text is parsed by sqlglot and
generated for the target dialect, which also rewrites the parameters (``%(name)s`` for PostgreSQL,
``:name`` for Spark).

What a render returns is an :class:`Sql`: the text plus the names of the parameters it uses, read
from the parsed tree — never by scanning the text, which may hold quoted identifiers such as
``"price$usd"`` or ``"ret %"``. For PostgreSQL, a ``%`` that is not a placeholder is doubled
whenever the statement has placeholders (psycopg's rule). ``inline=`` replaces the placeholders by
literal values instead, so a statement runs as printed in the engine's own client.
"""

from __future__ import annotations

import uuid
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jinja2
import sqlglot
from sqlglot import exp

from fmduck.errors import SpecError

DIALECTS = ("duckdb", "postgres", "spark")
_PACKAGE_DIR = Path(__file__).resolve().parent
_SENTINEL = f"fmduckparam{uuid.uuid4().hex}x"  # unguessable: user text cannot contain it


class Sql(str):
    """SQL text for one dialect with the names of its parameters (and its statements, when several)."""

    params: frozenset[str]
    parts: tuple[Sql, ...]

    def __new__(cls, text: str, params: frozenset[str] = frozenset(), parts: tuple[Sql, ...] = ()) -> Sql:
        obj = super().__new__(cls, text)
        obj.params = frozenset(params)
        obj.parts = parts or (obj,)
        return obj


def template_dirs(kind: str) -> list[Path]:
    """Folders searched for templates of ``kind`` (``sql`` or ``reports``): repo first, wheel second."""
    candidates = [_PACKAGE_DIR.parent / kind, _PACKAGE_DIR / f"_{kind}"]
    return [path for path in candidates if path.is_dir()]


@cache
def environment(kind: str = "sql") -> jinja2.Environment:
    """The jinja2 environment for ``kind``; undefined variables fail loudly."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in template_dirs(kind)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


@cache
def report_environment() -> jinja2.Environment:
    """The jinja2 environment for ``reports/``: ``*.html.j2`` autoescape, LaTeX and text do not."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in template_dirs("reports")]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
    )


def source(name: str, dialect: str = "duckdb", **context: Any) -> str:
    """The DuckDB text of ``sql/<name>.sql.j2`` (or the override ``sql/<dialect>/<name>.sql.j2``)."""
    env = environment("sql")
    try:
        template = env.get_template(f"{dialect}/{name}.sql.j2")
    except jinja2.TemplateNotFound:
        template = env.get_template(f"{name}.sql.j2")
    return template.render(**context)


def render(name: str, dialect: str = "duckdb", *, inline: dict[str, Any] | None = None, **context: Any) -> Sql:
    """Render ``sql/<name>.sql.j2`` (a per-dialect override when it exists) and transpile it to ``dialect``."""
    return transpile(source(name, dialect, **context), dialect, inline=inline)


def transpile(sql: str, dialect: str, *, read: str = "duckdb", inline: dict[str, Any] | None = None) -> Sql:
    """Parse ``read`` SQL (one or more statements) and generate it for ``dialect``.

    ``inline``: parameter values to write into the text as literals (the rest stay parameters).
    Cached: a fit renders the same statements again on every run of a session (grids, benchmarks),
    and parsing is a pure function of the text."""
    items = tuple(sorted((inline or {}).items(), key=lambda kv: kv[0]))
    return _transpile(str(sql), dialect, read, items)


@lru_cache(maxsize=512)
def _transpile(sql: str, dialect: str, read: str, inline: tuple[tuple[str, Any], ...]) -> Sql:
    if dialect not in DIALECTS:
        raise SpecError(f"unknown SQL dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    values = dict(inline)
    parts = []
    for tree in sqlglot.parse(sql, read=read):
        if tree is None:
            continue
        if dialect == "spark":  # Spark has no JSON column type: JSON text is stored as STRING
            tree = tree.transform(_json_as_string)
        if values:
            tree = tree.transform(lambda node: _inlined(node, values))
        names = frozenset(p.name for p in tree.find_all(exp.Placeholder))
        parts.append(Sql(_generate(tree, dialect, names), names))
    return Sql(";\n".join(parts), frozenset().union(*(p.params for p in parts)), tuple(parts))


def _generate(tree: exp.Expression, dialect: str, names: frozenset[str]) -> str:
    if dialect != "postgres" or not names:
        return tree.sql(dialect, pretty=True)
    # psycopg reads every % of a statement with parameters: double the others
    marked = tree.transform(lambda n: exp.column(_SENTINEL + n.name) if isinstance(n, exp.Placeholder) else n)
    text = marked.sql(dialect, pretty=True).replace("%", "%%")
    for name in names:
        text = text.replace(_SENTINEL + name, f"%({name})s")
    return text


def _inlined(node: exp.Expression, values: dict[str, Any]) -> exp.Expression:
    if isinstance(node, exp.Placeholder) and node.name in values:
        return value_expression(values[node.name])
    return node


def value_expression(value: Any) -> exp.Expression:
    """A SQL literal for a parameter value: doubles as CAST('<shortest repr>' AS DOUBLE) (exact in every
    engine, unlike a decimal literal), integers, booleans, text, NULL."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, float):
        return exp.cast(exp.Literal.string(repr(value)), "DOUBLE")
    return exp.Literal.string(str(value))


def placeholders(sql: str, dialect: str) -> frozenset[str]:
    """Parameter names of ``sql``: from the render when it is an :class:`Sql`, else from its parse tree."""
    if isinstance(sql, Sql):
        return sql.params
    names: set[str] = set()
    for tree in sqlglot.parse(sql, read=dialect):
        if tree is not None:
            names.update(p.name for p in tree.find_all(exp.Placeholder))
    return frozenset(names)


def statements(sql: str, dialect: str) -> tuple[Sql, ...]:
    """The statements of ``sql`` (an :class:`Sql` keeps them; other text is split by sqlglot)."""
    if isinstance(sql, Sql):
        return sql.parts
    return transpile(sql, dialect, read=dialect).parts


@lru_cache(maxsize=32)
def created(sql: str) -> dict[str, tuple[str, ...]]:
    """The tables and views a DuckDB DDL script creates, each with its column names (a view: its
    output names), in script order — a results layout read from the statements that make it."""
    out: dict[str, tuple[str, ...]] = {}
    for tree in sqlglot.parse(sql, read="duckdb"):
        if not isinstance(tree, exp.Create) or tree.args.get("kind") not in ("TABLE", "VIEW"):
            continue
        target = tree.this
        if isinstance(target, exp.Schema):  # CREATE TABLE t (column definitions)
            out[target.this.name] = tuple(c.name for c in target.expressions if isinstance(c, exp.ColumnDef))
        elif isinstance(tree.expression, exp.Query):
            out[target.name] = tuple(tree.expression.named_selects)
    return out


def _json_as_string(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.JSON:
        return exp.DataType.build("VARCHAR")
    return node


def ident(name: str) -> str:
    """A quoted identifier, safe for any name a user can type."""
    return exp.to_identifier(name, quoted=True).sql("duckdb")


def table(name: str) -> str:
    """A quoted, possibly schema-qualified table name (``schema.table`` or ``catalog.schema.table``)."""
    try:
        parsed = exp.to_table(name, dialect="duckdb")
    except sqlglot.errors.SqlglotError as exc:
        raise SpecError(
            f"{name!r} is not a table name: use table, schema.table or catalog.schema.table, with "
            'double quotes around parts holding spaces or punctuation ("My Schema"."My Table")'
        ) from exc
    if not isinstance(parsed, exp.Table) or not parsed.args.get("this") or parsed.args.get("joins"):
        raise SpecError(f"{name!r} is not a table name: use table, schema.table or catalog.schema.table")
    for part in ("this", "db", "catalog"):
        node = parsed.args.get(part)
        if node is not None:
            if not isinstance(node, exp.Identifier):
                raise SpecError(f"{name!r} is not a table name (a function or expression is not allowed)")
            node.set("quoted", True)
    return parsed.sql("duckdb")


def column(name: str, alias: str | None = None) -> exp.Column:
    """A quoted column reference ``alias."name"`` (or ``"name"``) as a sqlglot expression."""
    return exp.column(exp.to_identifier(name, quoted=True), table=exp.to_identifier(alias) if alias else None)


def literal(value: str | int | float) -> str:
    """A SQL literal for a value that must be inlined (file paths in table functions)."""
    return value_expression(value).sql("duckdb")


def replacing_view(dialect: str, columns: dict[str, exp.Expression], relation: str = "...", name: str = "v") -> str:
    """For a message: a view of ``relation`` with each of ``columns`` replaced by its expression, to run as
    printed — DuckDB: ``CREATE VIEW v AS SELECT * REPLACE (… AS "col") FROM relation``; a dialect without
    ``* REPLACE``: the select items to write in place of those columns. Names quoted by sqlglot."""
    items = ", ".join(exp.alias_(e, exp.to_identifier(c, quoted=True)).sql(dialect) for c, e in columns.items())
    if dialect != "duckdb":
        return f"a view that selects {items} in place of {'that column' if len(columns) == 1 else 'those columns'}"
    return f"CREATE VIEW {name} AS SELECT * REPLACE ({items}) FROM {relation}"


def sql(expression: exp.Expression) -> str:
    """DuckDB text of a sqlglot expression, for use inside a template."""
    return expression.sql("duckdb")


def scratch_table(dialect: str, name: str, query: str) -> Sql:
    """The statement that materializes ``query`` as the session's scratch table ``name``: a TEMPORARY
    table (DuckDB, PostgreSQL); on Spark a temporary view, which the Spark engine materializes once on
    the executors (``localCheckpoint``: later statements read the stored rows, and their plans do not
    carry the view's own), and which runs as printed in spark-sql (recomputed where it is named)."""
    verb = "CREATE OR REPLACE TEMPORARY VIEW" if dialect == "spark" else "CREATE TEMPORARY TABLE"
    params = query.params if isinstance(query, Sql) else placeholders(query, dialect)
    return Sql(f"{verb} {table_in(dialect, name)} AS\n{query}", params)


def splice(sql: Sql, dialect: str, holder: str, query: str) -> Sql:
    """``sql`` (rendered for ``dialect`` with the table ``holder`` as a stand-in) with that table replaced by
    the subquery ``(query)``, a statement already in ``dialect`` (e.g. a ``store.TableCopy``'s source):
    it joins the rendered template without being parsed again as DuckDB SQL."""
    target = table_in(dialect, ident(holder))
    if str(sql).count(target) != 1:
        raise ValueError(f"{holder} must occur once in the statement")
    params = sql.params | (query.params if isinstance(query, Sql) else placeholders(query, dialect))
    return Sql(str(sql).replace(target, f"({query})"), params)


def table_in(dialect: str, table_sql: str) -> str:
    """A table name as fmduck writes it (DuckDB quoting: ``"db"."t"``) in ``dialect``'s quoting (Spark: backticks)."""
    return exp.to_table(table_sql, dialect="duckdb").sql(dialect)
