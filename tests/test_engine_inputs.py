"""The same data given as a DuckDB table, a CSV path, a Parquet path, a polars or a pandas DataFrame
gives identical estimates (and matches the oracle).

"Identical" is to 1e-12 relative: DuckDB sums doubles in parallel, so the last bits of a sum may
depend on the scan order of the source."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

import oracles
from fmduck.errors import InputError

FACTORS = ["mkt", "smb"]
KINDS = ["table", "csv", "parquet", "polars", "pandas"]


def _as(kind: str, frame: pl.DataFrame, role: str, con, tmp_path):
    if kind == "table":
        con.register(f"{role}_src", frame.to_arrow())
        con.execute(f"CREATE OR REPLACE TABLE {role}_tbl AS SELECT * FROM {role}_src")
        con.unregister(f"{role}_src")
        return f"{role}_tbl"
    if kind == "csv":
        path = tmp_path / f"{role}.csv"
        frame.write_csv(path)
        return str(path)
    if kind == "parquet":
        path = tmp_path / f"{role}.parquet"
        frame.write_parquet(path)
        return path
    return frame if kind == "polars" else frame.to_pandas()


@pytest.fixture(scope="module")
def data():
    panel, factors = oracles.synthetic_panel(seed=71, n_assets=10, n_periods=30, chars=["size"], missing=0.1,
                                             null_ret=0.05)
    return panel, factors


@pytest.fixture(scope="module")
def reference(data):
    import duckdb

    from fmduck import FamaMacBeth, Spec

    panel, factors = data
    return FamaMacBeth(Spec(name="ref", returns=panel, factors=factors, factor_cols=FACTORS, chars=["size"]),
                       duckdb.connect()).fit()


@pytest.mark.parametrize("factors_kind", KINDS)
@pytest.mark.parametrize("returns_kind", KINDS)
def test_input_kinds_identical(fit, con, tmp_path, data, reference, returns_kind, factors_kind):
    panel, factors = data
    res = fit(returns=_as(returns_kind, panel, "returns", con, tmp_path),
              factors=_as(factors_kind, factors, "factors", con, tmp_path), factor_cols=FACTORS, chars=["size"])
    for attr, keys in (("estimates", ["term", "se_type"]), ("lambdas", ["period_index"]),
                       ("first_pass", ["asset", "term"]), ("pricing_errors", ["asset"])):
        frame, ref = getattr(res, attr), getattr(reference, attr)
        cols = [c for c in frame.columns if frame[c].dtype == pl.Float64]
        oracles.compare_frames(frame, ref, keys, cols, label="input kinds vs DataFrame run", rtol=1e-12, atol=1e-15)
    assert res.lambdas["period"].to_list() == reference.lambdas["period"].to_list()


def test_reference_matches_oracle(data, reference):
    panel, factors = data
    fits = oracles.pass1_full(panel, factors, FACTORS)
    lam = oracles.lambdas_frame(oracles.pass2(panel, factors, betas=oracles.betas_from(fits), factor_cols=FACTORS,
                                              chars=["size"]), ["const", *FACTORS, "size"])
    oracles.compare_frames(reference.lambdas, lam, ["period_index"], ["const", *FACTORS, "size", "r2", "n"],
                           label="pass2 betas+chars vs numpy lstsq")


@pytest.mark.parametrize("period_type", ["date", "string"])
def test_period_types(fit, data, period_type):
    """DATE and text periods order the calendar like the integers they replace (same λ_t)."""
    panel, factors = data
    if period_type == "date":
        conv = pl.col("period").map_elements(lambda p: dt.date(2000 + (p - 1) // 12, (p - 1) % 12 + 1, 1),
                                             return_dtype=pl.Date)
    else:  # text in time order as text (YYYY-MM); labels such as 'P001' are refused (test_text_labels_refused)
        conv = pl.format("{}-{}", (2000 + (pl.col("period") - 1) // 12).cast(pl.Utf8),
                         ((pl.col("period") - 1) % 12 + 1).cast(pl.Utf8).str.zfill(2))
    res = fit(returns=panel.with_columns(conv.alias("period")), factors=factors.with_columns(conv.alias("period")),
              factor_cols=FACTORS, chars=["size"])
    oracles.compare_frames(res.lambdas.drop("period"), reference_lambdas(data), ["period_index"],
                           ["const", *FACTORS, "size", "r2", "n"], label="pass2 betas+chars vs numpy lstsq")


def test_text_labels_refused(fit, data):
    """Text periods whose time order is unknown ('P001', 'P002', ...) are refused with the fix, not ordered as text."""
    panel, factors = data
    conv = pl.format("P{}", pl.col("period").cast(pl.Utf8).str.zfill(3))
    with pytest.raises(InputError, match="P001") as info:
        fit(returns=panel.with_columns(conv.alias("period")), factors=factors.with_columns(conv.alias("period")),
            factor_cols=FACTORS)
    assert "period" in str(info.value)


def reference_lambdas(data):
    panel, factors = data
    fits = oracles.pass1_full(panel, factors, FACTORS)
    return oracles.lambdas_frame(oracles.pass2(panel, factors, betas=oracles.betas_from(fits), factor_cols=FACTORS,
                                               chars=["size"]), ["const", *FACTORS, "size"]).drop("period")


def test_factor_period_column_name(fit, data):
    """Factors keyed by a differently named period column (``factor_period``) give the same λ_t."""
    panel, factors = data
    res = fit(returns=panel.rename({"period": "month", "asset": "permno", "ret": "r"}), asset="permno",
              period="month", ret="r", factors=factors.rename({"period": "yyyymm"}), factor_period="yyyymm",
              factor_cols=FACTORS, chars=["size"])
    oracles.compare_frames(res.lambdas.drop("period"), reference_lambdas(data), ["period_index"],
                           ["const", *FACTORS, "size", "r2", "n"], label="pass2 betas+chars vs numpy lstsq")


def test_pandas_index_levels_are_columns(fit, data, reference):
    """linearmodels wants a pandas panel indexed by (asset, period): such a frame (and factors indexed
    by period) is read as if reset_index() had been called, not refused for a missing --asset column."""
    panel, factors = data
    res = fit(returns=panel.to_pandas().set_index(["asset", "period"]),
              factors=factors.to_pandas().set_index("period"), factor_cols=FACTORS, chars=["size"])
    oracles.compare_frames(res.estimates, reference.estimates, ["term", "se_type"], ["estimate", "std_error"],
                           label="indexed pandas vs DataFrame run", rtol=1e-12, atol=1e-15)
    assert res.lambdas["period"].to_list() == reference.lambdas["period"].to_list()
