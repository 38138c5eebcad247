"""The command line: through its real entry point (``python -m fmduck``) end to end, and through
``fmduck.cli.main`` in-process for every command (help, ``-q``, errors on one line with exit code 2,
internal errors with exit code 1)."""

from __future__ import annotations

import contextlib
import gc
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from fmduck import FamaMacBeth, Spec, cli
from fmduck.demo import data_dir

DATA = data_dir()
FF3 = ["--returns", "ports", "--asset", "asset", "--period", "period", "--ret", "ret", "--rf", "RF",
       "--factors", "factors", "--factor-cols", "MktRF,SMB,HML"]


def fmduck(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fmduck", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def one_line_error(stderr: str, message: str) -> None:
    """The error contract: exactly one line on stderr, ``fmduck: error: ...`` holding ``message``."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("fmduck: error: ") and message in lines[0], stderr


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> Path:
    """The Ken French portfolios and factors loaded by ``fmduck load`` (in this process: the entry point
    itself is exercised by the other commands)."""
    db = tmp_path_factory.mktemp("cli") / "panel.duckdb"
    for args in (["load", db, DATA / "ff_portfolios_monthly.csv", "--table", "ports", "--wide", "--unit", "percent"],
                 ["load", db, DATA / "ff_factors_monthly.csv", "--table", "factors", "--unit", "percent",
                  "--percent-cols", "MktRF,SMB,HML,Mom,RF"]):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main([*map(str, args), "-q"])
        gc.collect()  # the command's connection to the file closes with it
        assert code == 0 and out.getvalue() == "" and err.getvalue() == "", err.getvalue()
    shutil.copy(db, db.parent / "pristine.duckdb")  # before any run is stored (the fixture db copies it)
    return db


@pytest.fixture
def db(loaded: Path, tmp_path: Path) -> Path:
    """A private copy of the loaded panel, without stored runs, for in-process commands (each test its own file)."""
    path = tmp_path / "panel.duckdb"
    shutil.copy(loaded.parent / "pristine.duckdb", path)
    return path


@pytest.fixture
def run_cli(capsys):
    """``run_cli(*args)`` -> (exit code, stdout, stderr) of ``fmduck.cli.main`` in this process."""

    def call(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exc:  # argparse: --help, usage errors
            code = exc.code
        gc.collect()  # a command's engine closes with it (one process per command in real use)
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


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


@pytest.mark.slow
def test_run_stores_the_same_numbers_as_the_api(loaded: Path) -> None:
    args = [*FF3, "--nw-lags", "4"]
    out = fmduck("run", loaded, *args, "--name", "cli_ff3", "-q")
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # -q: no progress
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
    assert again.returncode == 2
    one_line_error(again.stderr, "already exists")
    assert fmduck("run", loaded, *args, "--name", "cli_ff3", "--replace", "-q").returncode == 0
    # show prints the stored run
    shown = fmduck("show", loaded, "cli_ff3")
    assert shown.returncode == 0 and "Newey-West" in shown.stdout


@pytest.mark.slow
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
@pytest.mark.slow
def test_errors_are_clear_with_exit_code_2(loaded: Path, args: list[str], message: str) -> None:
    out = fmduck("run", loaded, *args, "-q")
    assert out.returncode == 2
    one_line_error(out.stderr, message)
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_show_missing_run_and_database(loaded: Path, tmp_path: Path) -> None:
    out = fmduck("show", loaded, "no_such_run")
    assert out.returncode == 2
    one_line_error(out.stderr, "no run named 'no_such_run'")
    out = fmduck("show", tmp_path / "missing.duckdb", "x")
    assert out.returncode == 2
    one_line_error(out.stderr, f"database file {tmp_path / 'missing.duckdb'} does not exist; check the path")


def test_help_and_version() -> None:
    from fmduck import __version__

    out = fmduck("--help")
    assert out.returncode == 0 and all(c in out.stdout for c in cli.COMMANDS)
    assert fmduck("run", "--help").returncode == 0
    version = fmduck("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"fmduck {__version__}"
    assert fmduck().returncode == 2  # a command is required
    assert fmduck("nosuchcommand").returncode == 2


@pytest.mark.parametrize("dialect, marker", [("duckdb", "$window_preceding"), ("postgres", "%(window_preceding)s"),
                                             ("spark", ":window_preceding")])
def test_sql_prints_each_dialect(run_cli, db: Path, dialect: str, marker: str) -> None:
    args = ["--returns", "ports", "--rf", "RF", "--factors", "factors", "--factor-cols", "MktRF", "--window", "60",
            "--name", "s", "--dialect", dialect, "-q"]
    code, out, err = run_cli("sql", db, *args)
    assert code == 0 and err == ""
    assert "-- pass 1: rolling 60-period time-series regressions on MktRF\n" in out
    assert "-- pass 2: cross-sectional regressions per period\n" in out
    assert marker in out
    code, inline, err = run_cli("sql", db, *args, "--inline")
    assert code == 0 and err == ""
    assert marker not in inline and "-- pass 2: cross-sectional regressions per period\n" in inline


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = fmduck("demo", "-o", tmp_path / "demo.duckdb", "-q", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Run: ff3 " in out.stdout and "Run: ff3_rolling" in out.stdout
    con = duckdb.connect(str(tmp_path / "demo.duckdb"), read_only=True)
    runs = con.sql("SELECT run_name FROM fmduck.runs ORDER BY run_name").pl()["run_name"].to_list()
    assert runs == ["ff3", "ff3_rolling"]
    # the printed MktRF coefficient is the stored one
    est = con.sql("SELECT estimate FROM fmduck.estimates WHERE run_name='ff3' AND term='MktRF' AND se_type='fm'"
                  ).fetchall()[0][0]
    con.close()
    line = next(x for x in out.stdout.splitlines() if x.strip().startswith("MktRF"))
    printed = float(line.split("|")[1].split()[0])
    assert printed == pytest.approx(est, rel=1e-5)


# ====================================================================== every command, in-process
@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_command_has_help_and_quiet(run_cli, command: str) -> None:
    code, out, _ = run_cli(command, "--help")
    assert code == 0
    assert "-q, --quiet" in out


@pytest.mark.slow
def test_run_progress_goes_to_stderr_unless_quiet(run_cli, db: Path) -> None:
    code, out, err = run_cli("run", db, *FF3, "--name", "loud")
    assert code == 0 and "Run: loud" in out
    progress = err.strip().splitlines()
    assert len(progress) > 3 and all(line.startswith("[") for line in progress)
    assert any("pass 1" in line for line in progress) and not any("Run: loud" in line for line in progress)
    code, out, err = run_cli("run", db, *FF3, "--name", "quiet", "-q")
    assert code == 0 and "Run: quiet" in out and err == ""


@pytest.mark.slow
def test_show_lists_runs_history_and_blocks(run_cli, db: Path) -> None:
    code, out, err = run_cli("show", db, "-q")
    assert code == 0 and out.strip() == "stored runs: none"
    assert run_cli("run", db, *FF3, "--name", "a", "-q")[0] == 0
    code, out, err = run_cli("show", db, "-q")
    assert code == 0 and err == ""
    assert out.splitlines()[0].split()[:3] == ["run", "design", "engine"] and out.splitlines()[1].startswith("a ")
    code, out, _ = run_cli("show", db, "a", "--history", "-q")
    assert code == 0 and out.splitlines()[1].split()[0] == "1"
    code, out, _ = run_cli("show", db, "a", "--se", "shanken", "-q")
    assert code == 0 and "Shanken" in out and "Newey-West" not in out
    code, _, err = run_cli("show", db, "a", "--se", "white", "-q")
    assert code == 2
    one_line_error(err, "run 'a' has no white standard errors")


@pytest.mark.slow
def test_show_reinfers_like_a_fresh_run(run_cli, db: Path) -> None:
    """``fmduck show RUN --se nw --nw-lags 12`` (λ_t of a stored run re-inferred, no SQL) equals a fresh
    run with ``--nw-lags 12``: the printed block, and the numbers (to the bit on the same λ_t; two runs'
    λ_t differ in the last bits: DuckDB's parallel sums)."""
    from fmduck import store
    from fmduck.passes import pass3

    assert run_cli("run", db, *FF3, "--name", "auto", "-q")[0] == 0
    assert run_cli("run", db, *FF3, "--name", "fixed", "--nw-lags", "12", "-q")[0] == 0
    code, reinferred, err = run_cli("show", db, "auto", "--se", "nw", "--nw-lags", "12", "-q")
    assert code == 0 and err == ""
    code, fresh, _ = run_cli("show", db, "fixed", "--se", "nw", "-q")
    assert code == 0
    assert reinferred.splitlines()[0] == "Run: auto" and fresh.splitlines()[0] == "Run: fixed"
    assert reinferred.splitlines()[1:] == fresh.splitlines()[1:]
    assert "L = 12 (fixed)" in fresh
    code, stored_auto, _ = run_cli("show", db, "auto", "--se", "nw", "-q")
    assert stored_auto.splitlines()[1:] != fresh.splitlines()[1:]  # the automatic lag is not 12 here
    auto, fixed = store.load_run(str(db), "auto"), store.load_run(str(db), "fixed")
    theirs = fixed.estimates.filter(pl.col("se_type") == "nw").drop("run_name", "run_id")
    own = pass3.reinfer(fixed, nw_lags=12).filter(pl.col("se_type") == "nw")
    assert own.select(theirs.columns).equals(theirs)
    mine = pass3.reinfer(auto, nw_lags=12).filter(pl.col("se_type") == "nw").select(theirs.columns)
    assert mine.drop("estimate", "std_error", "t_stat", "p_value", "ci_lower", "ci_upper", "avg_r2").equals(
        theirs.drop("estimate", "std_error", "t_stat", "p_value", "ci_lower", "ci_upper", "avg_r2"))
    for col in ("estimate", "std_error", "t_stat", "p_value", "ci_lower", "ci_upper", "avg_r2"):
        np.testing.assert_allclose(mine[col].to_numpy(), theirs[col].to_numpy(), rtol=1e-12, err_msg=col)


@pytest.mark.slow
def test_delete_asks_unless_yes(run_cli, db: Path, monkeypatch) -> None:
    assert run_cli("run", db, *FF3, "--name", "gone", "-q")[0] == 0
    monkeypatch.setattr(sys, "stdin", open("/dev/null"))  # no terminal to ask on
    code, _, err = run_cli("delete", db, "gone")
    assert code == 2
    one_line_error(err, "confirm with --yes")
    code, out, err = run_cli("delete", db, "gone", "--yes", "-q")
    assert code == 0 and out == "" and err == ""
    code, _, err = run_cli("delete", db, "gone", "--yes", "-q")
    assert code == 2
    one_line_error(err, "no run named 'gone'")
    code, out, _ = run_cli("show", db, "-q")
    assert out.strip() == "stored runs: none"


@pytest.mark.slow
def test_export_and_report(run_cli, db: Path, tmp_path: Path) -> None:
    assert run_cli("run", db, *FF3, "--name", "ex", "-q")[0] == 0
    code, out, err = run_cli("export", db, "ex", "--format", "json", "-q")
    assert code == 0 and err == ""
    exported = pl.DataFrame(json.loads(out))
    con = duckdb.connect(str(db), read_only=True)
    stored = con.sql("SELECT term, se_type, estimate FROM fmduck.estimates WHERE run_name = 'ex'").pl()
    con.close()
    joined = stored.join(exported.select("term", "se_type", "estimate"), on=["term", "se_type"])
    assert joined.height == stored.height >= 12 and (joined["estimate"] == joined["estimate_right"]).all()
    target = tmp_path / "ex.txt"
    code, out, err = run_cli("report", db, "ex", "-o", target, "-q")
    assert code == 0 and out == "" and err == ""
    assert "MktRF" in target.read_text()
    code, out, _ = run_cli("report", db, "ex", "-o", tmp_path / "ex2.txt")
    assert code == 0 and str(tmp_path / "ex2.txt") in out  # without -q: the files written
    for command in (["export", db, "nope", "-q"], ["report", db, "nope", "-o", tmp_path / "n.txt", "-q"],
                    ["compare", db, "ex", "nope", "--no-write", "-q"]):
        code, _, err = run_cli(*command)
        assert code == 2
        one_line_error(err, "no run named 'nope'")


@pytest.mark.slow
def test_compare_two_stored_models(run_cli, db: Path) -> None:
    assert run_cli("run", db, *FF3, "--name", "m3", "-q")[0] == 0
    capm = [*FF3[:-1], "MktRF"]
    assert run_cli("run", db, *capm, "--name", "m1", "-q")[0] == 0
    code, out, err = run_cli("compare", db, "m1", "m3", "--no-write", "-q")
    assert code == 0 and err == "" and "r2_diff" in out
    code, _, err = run_cli("compare", db, "m1", "m3", "--no-write", "--bogus")
    one_line_error(err, "unknown option --bogus (fmduck compare --help lists the options)")


def test_load_errors_and_quiet(run_cli, tmp_path: Path) -> None:
    target = tmp_path / "new.duckdb"
    code, out, err = run_cli("load", target, DATA / "ff_factors_monthly.csv", "--table", "f", "--unit", "percent",
                             "--percent-cols", "MktRF,SMB,HML,Mom,RF")
    assert code == 0 and out == "" and err.strip().endswith("into f")
    code, out, err = run_cli("load", target, DATA / "ff_factors_monthly.csv", "--table", "f2", "-q")
    assert code == 0 and out == "" and err.startswith("fmduck: note: ") and "--unit percent" in err  # -q keeps notes
    code, out, err = run_cli("load", target, DATA / "ff_factors_monthly.csv",
                             "--table", "f3", "--unit", "decimal", "-q")
    assert code == 0 and out == "" and err == ""
    code, _, err = run_cli("load", target, tmp_path / "missing.csv", "--table", "g", "-q")
    assert code == 2
    one_line_error(err, "missing.csv")
    code, _, err = run_cli("load", target, DATA / "ff_factors_monthly.csv", "--table", "f", "-q")
    assert code == 2
    one_line_error(err, "f")


@pytest.mark.slow
def test_update_without_new_data_changes_nothing(run_cli, db: Path) -> None:
    assert run_cli("run", db, *FF3, "--name", "u", "-q")[0] == 0
    code, out, err = run_cli("update", db, "u", "-q")
    assert code == 0 and err == "" and out.strip() == "run 'u': nothing changed in its inputs; nothing to do"
    code, _, err = run_cli("update", db, "nope", "-q")
    assert code == 2
    one_line_error(err, "no run named 'nope'")


def test_internal_error_is_one_line_with_exit_1_and_debug_shows_the_traceback(run_cli, db: Path, monkeypatch) -> None:
    def broken(args):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(cli, "cmd_show", broken)
    code, _, err = run_cli("show", db)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fmduck: error: internal error (RuntimeError: boom)")
    assert "--debug" in lines[0]
    code, _, err = run_cli("--debug", "show", db)
    assert code == 1 and "Traceback" in err and "RuntimeError: boom" in err


def test_usage_errors_exit_2(run_cli, db: Path) -> None:
    code, _, err = run_cli("run", db, *FF3, "--name", "x", "--window", "abc")
    assert code == 2
    one_line_error(err, "argument --window: wants an integer, got 'abc' (fmduck run --help lists the options)")
    code, _, err = run_cli("sql", db, *FF3, "--name", "x", "--dialect", "oracle")
    assert code == 2
    one_line_error(err, "argument --dialect: invalid choice 'oracle'; choose from duckdb, postgres, spark")


def test_a_parse_error_is_one_line_with_the_near_option_and_where_the_help_is(run_cli, db: Path) -> None:
    """Not argparse's usage block: one ``fmduck: error:`` line, exit 2, a misspelt option or choice named
    with its nearest spelling, the option named once."""
    cases = [
        (["run", db, *FF3, "--name", "x", "--windw", "60"],
         "fmduck: error: unknown option --windw (did you mean --window?) (fmduck run --help lists the options)"),
        (["run", db, *FF3, "--name", "x", "--window", "sixty"],
         "fmduck: error: argument --window: wants an integer, got 'sixty' (fmduck run --help lists the options)"),
        (["run", db, *FF3, "--name", "x", "--window=99999999999999999999"],
         "fmduck: error: argument --window: 99999999999999999999 is out of range "
         "(fmduck run --help lists the options)"),
        (["show", db, "--nw-lags", "1.5"],
         "fmduck: error: argument --nw-lags: wants an integer, got '1.5' (fmduck show --help lists the options)"),
        (["rnu", db], "fmduck: error: argument COMMAND: invalid choice 'rnu' (did you mean run?); choose from "
                      + ", ".join(cli.COMMANDS) + " (fmduck --help lists the commands)"),
    ]
    for argv, line in cases:
        code, out, err = run_cli(*argv)
        assert (code, out, err) == (2, "", line + "\n"), argv
    code, _, err = run_cli("export", db, "ff3", "--table", "first_pass_window")
    assert code == 2
    one_line_error(err, "argument --table: invalid choice 'first_pass_window' (did you mean first_pass_windows?); "
                        "choose from runs, run_history, ")
    for command in cli.COMMANDS:  # every subcommand, whatever else is missing
        code, out, err = run_cli(command, "--bogus-option")
        assert code == 2 and out == "", command
        one_line_error(err, f"(fmduck {command} --help lists the options)")
        assert "usage:" not in err
