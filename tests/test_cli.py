"""The command line through its real entry point (``python -m fmduck``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from fmduck import Spec, FamaMacBeth
from fmduck.demo import data_dir

DATA = data_dir()


def fmduck(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fmduck", *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("cli") / "panel.duckdb"
    out = fmduck("load", db, DATA / "ff_portfolios_monthly.csv", "--table", "ports", "--wide", "--unit", "percent")
    assert out.returncode == 0, out.stderr
    out = fmduck("load", db, DATA / "ff_factors_monthly.csv", "--table", "factors", "--unit", "percent",
                 "--percent-cols", "MktRF,SMB,HML,Mom,RF")
    assert out.returncode == 0, out.stderr
    return db


def test_load_wide_ken_french_layout(loaded: Path) -> None:
    wide = pl.read_csv(DATA / "ff_portfolios_monthly.csv")
    first = wide.columns[0]
    con = duckdb.connect(str(loaded), read_only=True)
    long = con.sql("SELECT asset, period, ret FROM ports").pl()
    assert long.height == wide.height * (wide.width - 1)
    assert long["period"].dtype == pl.Date
    row = long.filter((pl.col("asset") == "S1V1") & (pl.col("period") == pl.date(1949, 2, 1)))
    expected = wide.filter(pl.col(first) == 194902)["S1V1"].item() / 100
    assert row["ret"].item() == pytest.approx(expected, rel=1e-15)
    fac = con.sql("SELECT * FROM factors ORDER BY period").pl()
    assert fac.columns == ["period", "MktRF", "SMB", "HML", "Mom", "RF"]
    assert fac["RF"][0] == pytest.approx(pl.read_csv(DATA / "ff_factors_monthly.csv")["RF"][0] / 100)
    con.close()


def test_run_stores_the_same_numbers_as_the_api(loaded: Path, tmp_path: Path) -> None:
    args = ["--returns", "ports", "--asset", "asset", "--period", "period", "--ret", "ret", "--rf", "RF",
            "--factors", "factors", "--factor-cols", "MktRF,SMB,HML", "--nw-lags", "4"]
    out = fmduck("run", loaded, *args, "--name", "cli_ff3", "-q")
    assert out.returncode == 0, out.stderr
    assert "Fama-MacBeth" in out.stdout and "MktRF" in out.stdout
    con = duckdb.connect(str(loaded))
    stored = con.sql("SELECT term, se_type, estimate, std_error FROM fmduck.estimates "
                     "WHERE run_name = 'cli_ff3' ORDER BY se_type, term").pl()
    spec = Spec(name="api_ff3", returns="ports", asset="asset", period="period", ret="ret", rf="RF",
                factors="factors", factor_cols=["MktRF", "SMB", "HML"], nw_lags=4)
    api = FamaMacBeth(spec, con).fit(write=False).estimates.sort("se_type", "term")
    con.close()
    np.testing.assert_allclose(stored["estimate"].to_numpy(), api["estimate"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(stored["std_error"].to_numpy(), api["std_error"].to_numpy(), rtol=1e-12)
    # the same run again is refused, --replace replaces it
    again = fmduck("run", loaded, *args, "--name", "cli_ff3", "-q")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert fmduck("run", loaded, *args, "--name", "cli_ff3", "--replace", "-q").returncode == 0
    # show prints the stored run
    shown = fmduck("show", loaded, "cli_ff3")
    assert shown.returncode == 0 and "Newey-West" in shown.stdout


def test_toml_config_equals_flags(loaded: Path, tmp_path: Path) -> None:
    toml = tmp_path / "spec.toml"
    toml.write_text('name = "toml_run"\nreturns = "ports"\nrf = "RF"\nfactors = "factors"\n'
                    'factor_cols = ["MktRF", "SMB"]\nwindow = 60\nmin_obs = 36\n')
    out = fmduck("run", loaded, "--config", toml, "-q")
    assert out.returncode == 0, out.stderr
    out = fmduck("run", loaded, "--returns", "ports", "--rf", "RF", "--factors", "factors", "--factor-cols",
                 "MktRF,SMB", "--window", "60", "--min-obs", "36", "--name", "flag_run", "-q")
    assert out.returncode == 0, out.stderr
    con = duckdb.connect(str(loaded), read_only=True)
    est = con.sql("SELECT run_name, term, se_type, estimate, std_error FROM fmduck.estimates "
                  "WHERE run_name IN ('toml_run', 'flag_run') ORDER BY se_type, term, run_name").pl()
    con.close()
    a, b = est.filter(pl.col("run_name") == "flag_run"), est.filter(pl.col("run_name") == "toml_run")
    assert a.height == 9
    # same spec, same numbers (up to the summation order of parallel aggregates)
    np.testing.assert_allclose(a["estimate"].to_numpy(), b["estimate"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(a["std_error"].to_numpy(), b["std_error"].to_numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--returns", "ports", "--chars", "size", "--name", "x"], "missing column(s) --chars size 'size'"),
        (["--returns", "nope", "--chars", "x", "--name", "x"], "table nope does not exist"),
        (["--returns", "ports", "--name", "x"], "nothing to estimate"),
        (["--chars", "ret"], "missing required option(s): --name, --returns"),
        (["--returns", "ports", "--factor-cols", "MktRF", "--factors", "factors", "--window", "2", "--name", "x"],
         "window 2 is too short"),
    ],
)
def test_errors_are_clear_with_exit_code_2(loaded: Path, args: list[str], message: str) -> None:
    out = fmduck("run", loaded, *args, "-q")
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_show_missing_run_and_database(loaded: Path, tmp_path: Path) -> None:
    out = fmduck("show", loaded, "no_such_run")
    assert out.returncode == 2 and "no run named 'no_such_run'" in out.stderr
    out = fmduck("show", tmp_path / "missing.duckdb", "x")
    assert out.returncode == 2 and "database not found" in out.stderr


def test_help_and_version() -> None:
    out = fmduck("--help")
    assert out.returncode == 0 and "run" in out.stdout and "load" in out.stdout
    assert fmduck("run", "--help").returncode == 0
    assert fmduck().returncode == 2  # a command is required


@pytest.mark.parametrize("dialect, marker", [("duckdb", "$shift_0"), ("postgres", "%(shift_0)s"), ("spark", ":shift_0")])
def test_sql_prints_each_dialect(loaded: Path, dialect: str, marker: str) -> None:
    out = fmduck("sql", loaded, "--returns", "ports", "--rf", "RF", "--factors", "factors",
                 "--factor-cols", "MktRF", "--name", "s", "--dialect", dialect, "-q")
    assert out.returncode == 0, out.stderr
    assert "-- pass 1 moments" in out.stdout and "-- pass 2 moments" in out.stdout
    assert marker in out.stdout


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = fmduck("demo", "-o", tmp_path / "demo.duckdb", "-q", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Run: ff3 " in out.stdout and "Run: ff3_rolling" in out.stdout
    con = duckdb.connect(str(tmp_path / "demo.duckdb"), read_only=True)
    runs = con.sql("SELECT run_name FROM fmduck.runs ORDER BY run_name").pl()["run_name"].to_list()
    assert runs == ["ff3", "ff3_rolling"]
    # the printed MktRF coefficient is the stored one
    est = con.sql("SELECT estimate FROM fmduck.estimates WHERE run_name='ff3' AND term='MktRF' AND se_type='fm'").fetchall()[0][0]
    con.close()
    line = next(l for l in out.stdout.splitlines() if l.strip().startswith("MktRF"))
    printed = float(line.split("|")[1].split()[0])
    assert printed == pytest.approx(est, rel=1e-5)
