"""Shared pytest fixtures (keep generic: a DuckDB connection and a one-call fit)."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import oracles` from any test module

# One throwaway PostgreSQL server for the whole session (tests/conftest_pg.py); test modules use the
# fixtures pg_server / pg_url / pg without importing them (an import makes a module its own server).
from conftest_pg import pg, pg_server, pg_url  # noqa: E402, F401

DATA = ROOT / "data"


@pytest.fixture
def con():
    """A fresh in-memory DuckDB connection, closed after the test."""
    connection = duckdb.connect()
    yield connection
    connection.close()


@pytest.fixture
def fit(con):
    """``fit(**spec_options)`` -> FamaMacBethResults on ``con``; run names are made unique unless given."""
    from fmduck import FamaMacBeth, Spec

    counter = itertools.count()

    def _fit(**options):
        options.setdefault("name", f"test_run_{next(counter)}")
        return FamaMacBeth(Spec(**options), con).fit()

    return _fit


@pytest.fixture
def data_dir() -> Path:
    return DATA


def pytest_terminal_summary(terminalreporter):
    """Print the worst relative error measured against each oracle (see tests/oracles.py)."""
    oracles = sys.modules.get("oracles")
    if oracles is None or not getattr(oracles, "MAX_REL_ERR", None):
        return
    terminalreporter.section("max relative error vs oracle")
    for label, err in sorted(oracles.MAX_REL_ERR.items()):
        terminalreporter.write_line(f"{label:<55s} {err:.2e}")
