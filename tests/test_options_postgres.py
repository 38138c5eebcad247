"""Issue-9 options on a real PostgreSQL 15 server: the same numbers as DuckDB (itself tested against
numpy / statsmodels / linearmodels / pandas in test_modeltests, test_prepare, test_pass2_options,
test_grid): tests of the model (GRS and pricing χ² need the N x N SQL), standardize/rank, WLS,
absorb, a grid; winsorize is a clear error there (no windowed quantile in PostgreSQL)."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest

import oracles
from test_pass2_options import weighted_panel

psycopg = pytest.importorskip("psycopg")

from fmduck import FamaMacBeth, Spec  # noqa: E402
from fmduck.errors import SpecError  # noqa: E402

pytestmark = pytest.mark.postgres


def _both(pg, spec: Spec):
    return (FamaMacBeth(spec, pg).fit(write=True),
            FamaMacBeth(spec.replace_with(name=spec.name + "_duck"), duckdb.connect()).fit(write=False))


def _same_tests(a, b) -> None:
    ta = a.extra["tests"].sort(["test", "se_type", "distribution"], nulls_last=True)
    tb = b.extra["tests"].sort(["test", "se_type", "distribution"], nulls_last=True)
    assert ta.select("test", "se_type", "distribution").rows() == tb.select("test", "se_type", "distribution").rows()
    oracles.assert_close(ta["statistic"].fill_null(np.nan).to_numpy(), tb["statistic"].fill_null(np.nan).to_numpy(),
                         label="tests of the model: postgres vs duckdb", rtol=1e-10)


@pytest.mark.slow
def test_model_tests_on_postgres(pg):
    panel, factors = oracles.synthetic_panel(seed=71, n_assets=8, n_periods=40, noise=1.0)
    pg.create_table('"issue9_panel"', panel)
    pg.create_table('"issue9_factors"', factors)
    spec = Spec(name="pg_grs", returns="issue9_panel", factors="issue9_factors", factor_cols=["mkt", "smb"],
                replace=True)
    got = FamaMacBeth(spec, pg).fit()
    want = FamaMacBeth(spec.replace_with(returns=panel, factors=factors), duckdb.connect()).fit(write=False)
    assert {"grs", "pricing_chi2", "wald_slopes"} <= set(got.extra["tests"]["test"])
    _same_tests(got, want)
    stored = pg.query('SELECT count(*) AS n FROM "fmduck"."tests" WHERE run_name = \'pg_grs\'')["n"][0]
    assert stored == got.extra["tests"].height


@pytest.mark.parametrize("options", [
    {"standardize": ["x1"], "rank": ["x2"]},
    {"weights": "mcap"},
    {"absorb": "industry", "weights": "mcap"},
    {"grid": [{"name": "a", "chars": ["x1"]}, {"name": "b", "chars": ["x1", "x2"]}], "weights": "mcap",
     "conventions": "stata"},
])
def test_options_same_as_duckdb(pg, options):
    panel = weighted_panel(seed=72)
    name = "pg_" + "_".join(sorted(options))
    pg.create_table(f'"{name}"', panel)
    got = FamaMacBeth(Spec(name=name, returns=name, chars=["x1", "x2"], replace=True, **options), pg).fit()
    want = FamaMacBeth(Spec(name=name, returns=panel, chars=["x1", "x2"], **options), duckdb.connect()).fit(write=False)
    pairs = list(zip(got.runs, want.runs)) if options.get("grid") else [(got, want)]
    for a, b in pairs:
        terms = b.terms
        assert a.terms == terms
        oracles.compare_frames(a.lambdas.with_columns(pl.col("period").cast(pl.Utf8)),
                               b.lambdas.with_columns(pl.col("period").cast(pl.Utf8)), ["period_index"],
                               [*terms, "n"], label="issue-9 options: postgres vs duckdb", rtol=1e-10)
        _same_tests(a, b)


def test_winsorize_is_a_clear_error_on_postgres(pg):
    panel = weighted_panel(seed=73)
    pg.create_table('"pg_winsor"', panel)
    with pytest.raises(SpecError, match="winsorize runs on DuckDB only"):
        FamaMacBeth(Spec(name="w", returns="pg_winsor", chars=["x1"], winsorize=0.05), pg).fit()
