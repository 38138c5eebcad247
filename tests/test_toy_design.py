"""A design added from outside fmduck (tests/toy_design.py, registered here) works end to end through
the command line: its option flag, ``fmduck run --design toy``, its rows in the results tables
including its own table, its SE type and summary hook in ``fmduck show``, its plan in ``fmduck sql``,
a report with its SE type. Oracle: polars on the same panel. fmduck/ itself never names the toy."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from fmduck import cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def toy():
    """The toy design registered for one test (and removed after, with its SE type)."""
    import toy_design
    from fmduck import covariance, designs

    designs.register(toy_design.DESIGN)
    yield toy_design
    designs.registry().pop("toy", None)
    covariance.REGISTRY.pop("toy_iid", None)


@pytest.fixture
def db(tmp_path: Path) -> tuple[Path, pl.DataFrame]:
    rng = np.random.default_rng(17)
    rows = [{"firm": f"f{a:02d}", "month": 200 + t, "r": float(rng.normal(0.01 * (a % 3), 0.05))}
            for a in range(20) for t in range(60) if rng.random() > 0.1]
    panel = pl.DataFrame(rows).with_columns(pl.when(pl.int_range(pl.len()) % 37 == 0).then(None).otherwise(pl.col("r"))
                                            .alias("r"))
    path = tmp_path / "toy.duckdb"
    con = duckdb.connect(str(path))
    con.register("p", panel.to_arrow())
    con.execute("CREATE TABLE panel AS SELECT * FROM p")
    con.close()
    return path, panel


def run_cli(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


BASE = ["--design", "toy", "--returns", "panel", "--asset", "firm", "--period", "month", "--ret", "r"]


def read(path: Path, sql: str) -> pl.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql(sql).pl()
    finally:
        con.close()


def test_toy_design_end_to_end(toy, db):
    path, panel = db
    code, out, err = run_cli("run", path, *BASE, "--toy-scale", "2.5", "--name", "toy_run", "-q")
    assert code == 0, err
    assert out.startswith(toy.Toy.title) and f"{toy.HOOK} 2.5; 20 assets in fmduck.toy_assets" in out

    # λ_t: the cross-sectional mean of r × 2.5 per period
    oracle = (panel.drop_nulls("r").group_by("month").agg((pl.col("r") * 2.5).mean().alias("lam"), pl.len().alias("n"))
              .sort("month"))
    lam = read(path, "SELECT period_int, estimate, n FROM fmduck.lambdas WHERE run_name = 'toy_run' AND term = 'const' "
                     "ORDER BY period_index")
    assert lam["period_int"].to_list() == oracle["month"].to_list() and lam["n"].to_list() == oracle["n"].to_list()
    np.testing.assert_allclose(lam["estimate"].to_numpy(), oracle["lam"].to_numpy(), rtol=1e-12)

    # pass 3 from fmduck's registry (fm, nw) and the design's own SE type
    x = oracle["lam"].to_numpy()
    est = read(path, "SELECT se_type, estimate, std_error FROM fmduck.estimates WHERE run_name = 'toy_run' "
                     "ORDER BY se_type")
    assert est["se_type"].to_list() == ["fm", "nw", "toy_iid"]
    np.testing.assert_allclose(est["estimate"].to_numpy(), x.mean(), rtol=1e-12)
    fm, toy_iid = est.row(0, named=True), est.row(2, named=True)
    assert fm["std_error"] == pytest.approx(x.std(ddof=1) / np.sqrt(x.size), rel=1e-12)
    assert toy_iid["std_error"] == pytest.approx(x.std(ddof=0) / np.sqrt(x.size), rel=1e-12)

    # its own table, with the typed asset keys
    assets = read(path, "SELECT asset, asset_int, mean_ret, n_periods FROM fmduck.toy_assets "
                        "WHERE run_name = 'toy_run' ORDER BY asset")
    want = panel.drop_nulls("r").group_by("firm").agg((pl.col("r") * 2.5).mean(), pl.len()).sort("firm")
    assert assets["asset"].to_list() == want["firm"].to_list() and assets["asset_int"].null_count() == 20
    assert assets["n_periods"].to_list() == want["len"].to_list()
    np.testing.assert_allclose(assets["mean_ret"].to_numpy(), want["r"].to_numpy(), rtol=1e-12)

    # fmduck show: the design's title, its SE block and the summary hook, from the stored run
    code, shown, _ = run_cli("show", path, "toy_run", "-q")
    assert code == 0
    assert shown.splitlines()[0].startswith(toy.Toy.title) and "Run: toy_run  (toy, duckdb)" in shown
    assert re.search(rf"Number of obs += +{oracle['n'].sum():,}\n", shown)
    assert "Toy: iid standard error of the pooled mean" in shown and f"{toy.HOOK} 2.5; 20 assets" in shown
    code, block, _ = run_cli("show", path, "toy_run", "--se", "toy_iid", "-q")
    assert code == 0 and "Toy: iid standard error of the pooled mean" in block and "Newey-West" not in block
    code, _, _ = run_cli("report", path, "toy_run", "--se", "toy_iid", "-o", path.parent / "toy.txt", "-q")
    assert code == 0 and "const" in (path.parent / "toy.txt").read_text()


def test_toy_option_flag_and_checks(toy, db):
    path, _ = db
    code, help_text, _ = run_cli("run", "--help")
    assert code == 0 and "--toy-scale X" in help_text and toy.Toy.help in " ".join(help_text.split())
    assert run_cli("run", path, *BASE, "--name", "one", "-q")[0] == 0  # the declared default: 1.0
    assert run_cli("run", path, *BASE, "--toy-scale", "3", "--name", "three", "-q")[0] == 0
    lam = read(path, "SELECT run_name, estimate FROM fmduck.lambdas ORDER BY run_name, period_index")
    one = lam.filter(pl.col("run_name") == "one")["estimate"].to_numpy()
    three = lam.filter(pl.col("run_name") == "three")["estimate"].to_numpy()
    np.testing.assert_allclose(three, 3.0 * one, rtol=1e-13)
    toml = path.parent / "toy.toml"
    toml.write_text('name = "from_toml"\ndesign = "toy"\nreturns = "panel"\nasset = "firm"\nperiod = "month"\n'
                    'ret = "r"\ntoy_scale = 3.0\n')
    assert run_cli("run", path, "--config", toml, "-q")[0] == 0
    again = read(path, "SELECT estimate FROM fmduck.lambdas WHERE run_name = 'from_toml' ORDER BY period_index")
    np.testing.assert_array_equal(again["estimate"].to_numpy(), three)
    for args, message in ((["--toy-scale", "-1"], "--toy-scale must be positive, got -1.0"),
                          (["--chars", "r"], "design toy takes no factors or characteristics"),
                          (["--toy-scale", "abc"],
                           "argument --toy-scale: wants a number, got 'abc' (fmduck run --help lists the options)")):
        code, _, err = run_cli("run", path, *BASE, "--name", "bad", *args, "-q")
        assert code == 2 and err.strip().splitlines()[-1].endswith(message), err


def test_toy_plan_prints_without_running(toy, db):
    path, _ = db
    code, sql, err = run_cli("sql", path, *BASE, "--toy-scale", "2", "--name", "s", "--inline", "-q")
    assert code == 0 and err == ""
    assert "-- toy: mean scaled return per period\n" in sql and "-- toy: lambda_t\n" in sql
    assert "$toy_scale" not in sql and "CAST('2.0' AS DOUBLE)" in sql
    assert read(path, "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'fmduck'")["n"][0] == 0


def test_the_toy_is_not_known_to_fmduck_itself():
    """The design needed no edit in the package: fmduck/ never names it, its option, table or SE type."""
    pattern = re.compile(r"toy_(scale|iid|assets|design)|['\"]toy['\"]")
    named = [str(p.relative_to(ROOT)) for p in (ROOT / "fmduck").rglob("*.py") if pattern.search(p.read_text())]
    assert named == []
    from fmduck import designs

    assert "toy" not in designs.registry()  # registered by the fixture only
