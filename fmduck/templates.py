"""Render the SQL templates in ``sql/``: the only module that imports jinja2 and sqlglot.

Templates are written in DuckDB SQL. Jinja only repeats and selects; every identifier that comes
from a user (table, column) is quoted by sqlglot before it reaches a template, and every value
(window length, lags, shifts) is a bound parameter (``$name``). The rendered text is parsed by
sqlglot and generated for the target dialect, which also rewrites the parameters
(``%(name)s`` for PostgreSQL, ``:name`` for Spark).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import sqlglot
from sqlglot import exp

from fmduck.errors import SpecError

DIALECTS = ("duckdb", "postgres", "spark")
_PACKAGE_DIR = Path(__file__).resolve().parent


def template_dirs(kind: str) -> list[Path]:
    """Folders searched for templates of ``kind`` (``sql`` or ``reports``): repo first, wheel second."""
    candidates = [_PACKAGE_DIR.parent / kind, _PACKAGE_DIR / f"_{kind}"]
    return [path for path in candidates if path.is_dir()]


@lru_cache(maxsize=None)
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


@lru_cache(maxsize=None)
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


def render(name: str, dialect: str = "duckdb", **context: Any) -> str:
    """Render ``sql/<name>.sql.j2`` and transpile it to ``dialect``.

    A per-dialect override ``sql/<dialect>/<name>.sql.j2`` is used when it exists.
    """
    env = environment("sql")
    try:
        template = env.get_template(f"{dialect}/{name}.sql.j2")
    except jinja2.TemplateNotFound:
        template = env.get_template(f"{name}.sql.j2")
    return transpile(template.render(**context), dialect)


def transpile(sql: str, dialect: str, *, read: str = "duckdb") -> str:
    """Parse DuckDB SQL (or ``read``'s; one or more statements) and generate it for ``dialect``.

    Cached: a fit renders the same statements again on every run of a session (grids, benchmarks),
    and parsing is a pure function of the text."""
    return _transpile(sql, dialect, read)


@lru_cache(maxsize=512)
def _transpile(sql: str, dialect: str, read: str) -> str:
    if dialect not in DIALECTS:
        raise SpecError(f"unknown SQL dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    trees = [tree for tree in sqlglot.parse(sql, read=read) if tree is not None]
    if dialect == "spark":  # Spark has no JSON column type: JSON text is stored as STRING
        trees = [tree.transform(_json_as_string) for tree in trees]
    return ";\n".join(tree.sql(dialect, pretty=True) for tree in trees)


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
    for part in ("this", "db", "catalog"):
        node = parsed.args.get(part)
        if node is not None:
            node.set("quoted", True)
    return parsed.sql("duckdb")


def column(name: str, alias: str) -> exp.Column:
    """A quoted column reference ``alias."name"`` as a sqlglot expression."""
    return exp.column(exp.to_identifier(name, quoted=True), table=exp.to_identifier(alias))


def literal(value: str | int | float) -> str:
    """A SQL literal for a value that must be inlined (file paths in table functions)."""
    if isinstance(value, str):
        return exp.Literal.string(value).sql("duckdb")
    return exp.Literal.number(value).sql("duckdb")


def sql(expression: exp.Expression) -> str:
    """DuckDB text of a sqlglot expression, for use inside a template."""
    return expression.sql("duckdb")
