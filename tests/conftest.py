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


# `make test-fast` (-m "not slow and not spark") runs the first FAST_CASES cases of every parametrized
# test; the other cases count as slow (they run in `make test`). Long single tests carry
# @pytest.mark.slow; SLOW_FILES / SLOW_TESTS mark those of test files that do not mark their own yet
# (whole files whose fixtures fit and render runs; a file's owner may mark its tests and drop it here).
FAST_CASES = 1
SLOW_FILES = ("test_report.py", "test_report_large.py", "test_report_escaping.py", "test_report_sections.py",
              "test_export.py", "test_real_data.py", "test_krs_report.py")
SLOW_TESTS = (
    "test_krs.py::test_r2_eq_1_size_on_a_correctly_specified_model",
    "test_krs.py::test_misspec_se_exceeds_eiv_se_when_misspecified",
    "test_load.py::test_cli_load",
    "test_pooled.py::test_simulated_firm_effect_recovered",
    "test_pooled.py::test_cli_pooled",
    "test_mimicking.py::test_cli_mimicking",
    "test_mimicking.py::test_omitted_factor_bias",
    "test_mimicking.py::test_stored_tables",
    "test_fm1973.py::test_cli_and_toml",
    "test_fm1973.py::test_postgres_matches_duckdb",
    "test_fm1973.py::test_results_are_stored_and_queryable",
    "test_fm1973.py::test_capm_holds_tests_do_not_reject_and_gamma1_is_recovered",
    "test_fm1973_plan.py::test_results_go_to_another_database",
    "test_fm1973_plan.py::test_inline_script_runs_in_psql_as_printed",
    "test_pooled_mimicking_v2.py::test_mimicking_postgres_equals_duckdb",
    "test_pooled_mimicking_v2.py::test_pooled_postgres_equals_duckdb",
    "test_update.py::test_update_as_new_name_keeps_the_old_run",
    "test_update.py::test_update_on_postgres",
    "test_fuzz_identifiers.py::test_fuzz_duckdb",
    "test_fuzz_identifiers.py::test_fuzz_postgres",
    "test_fuzz_identifiers.py::test_raw_table_names_through_load_and_run",
    "test_secrets.py::test_connection_errors_never_show_a_password",
    "test_secrets.py::test_a_whole_session_with_the_right_password_shows_and_stores_none_of_it",
)


def pytest_collection_modifyitems(config, items):
    seen: dict[str, int] = {}
    for item in items:
        key = item.nodeid.split("[", 1)[0]
        name = key.rsplit("/", 1)[-1]
        if name.split("::", 1)[0] in SLOW_FILES or name in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        if getattr(item, "callspec", None) is None:
            continue
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > FAST_CASES:
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter):
    """Print the worst relative error measured against each oracle (see tests/oracles.py)."""
    oracles = sys.modules.get("oracles")
    if oracles is None or not getattr(oracles, "MAX_REL_ERR", None):
        return
    terminalreporter.section("max relative error vs oracle")
    for label, err in sorted(oracles.MAX_REL_ERR.items()):
        terminalreporter.write_line(f"{label:<55s} {err:.2e}")
