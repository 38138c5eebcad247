"""The specification grid (fmduck/grid.py): one pass-2 scan, each member equal to its separate run.

Missing-value rule under test: a row with a NULL in a characteristic that a member does not use
still counts for that member (per-member listwise deletion = exactly the rows of a separate run).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import oracles
from fmduck import FamaMacBeth, Spec, load_run
from fmduck.cli import main
from fmduck.errors import RunExistsError, SpecError
from test_prepare import char_panel

GRID = [{"name": "size", "chars": ["size"]}, {"name": "size_mom", "chars": ["size", "mom"]},
        {"name": "all", "chars": ["size", "bm", "mom"]}]


def _separate(con, spec: Spec, member) -> object:
    return FamaMacBeth(Spec(**{**{k: v for k, v in spec.__dict__.items() if k != "grid"},
                               "name": "sep_" + member.name.replace(":", "_"), "chars": member.spec["chars"],
                               "winsorize": member.spec["winsorize"], "standardize": member.spec["standardize"],
                               "rank": member.spec["rank"]}), con).fit()


@pytest.mark.parametrize("options", [
    {},
    {"winsorize": {"size": 0.05}, "standardize": ["size"], "rank": ["bm"]},
    {"char_lag": 1, "conventions": "stata"},
    {"weights": "w", "winsorize": 0.05},
])
def test_grid_members_equal_separate_runs(con, options):
    rng = np.random.default_rng(0)
    panel = char_panel(seed=61)
    w = np.exp(rng.normal(size=panel.height))
    w[::17] = 0.0  # dropped rows, reported per member
    panel = panel.with_columns(pl.Series("w", w))
    spec = Spec(name="g", returns=panel, chars=["size", "bm", "mom"], grid=GRID, **options)
    grid = FamaMacBeth(spec, con).fit()
    assert [r.name for r in grid.runs] == ["g:size", "g:size_mom", "g:all"]
    for member in grid.runs:
        sep = _separate(con, spec, member)
        terms = sep.terms
        assert member.terms == terms
        oracles.compare_frames(member.lambdas, sep.lambdas, ["period_index"], [*terms, "r2", "adj_r2", "n"],
                               label="grid member vs separate run", rtol=1e-10)
        oracles.compare_frames(member.estimates, sep.estimates, ["term", "se_type"], ["estimate", "std_error"],
                               label="grid member vs separate run", rtol=1e-10)
        assert member.skipped.height == sep.skipped.height
    stored = con.execute("SELECT run_name FROM fmduck.runs WHERE run_name LIKE 'g:%' ORDER BY run_name").fetchall()
    assert [r[0] for r in stored] == ["g:all", "g:size", "g:size_mom"]
    # one scan: only the first member ran the union query, nobody ran a pass-2 moments query of its own
    texts = [r.run["sql_text"] for r in grid.runs]
    assert "-- grid: pass 2 moments of the union, by pattern" in texts[0]
    assert all("-- pass 2 moments\n" not in t for t in texts)
    assert all("-- grid: pass 2 moments" not in t for t in texts[1:])


def test_missing_value_rule(con):
    """Rows with mom NULL count for the size-only member; pandas counts the same rows."""
    panel = char_panel(seed=62)
    grid = FamaMacBeth(Spec(name="m", returns=panel, chars=["size", "bm", "mom"], grid=GRID), con).fit()
    df = panel.to_pandas()
    n_size = df.dropna(subset=["ret", "size"]).groupby("period").size().to_numpy()
    n_all = df.dropna(subset=["ret", "size", "bm", "mom"]).groupby("period").size().to_numpy()
    assert (n_size > n_all).any()  # the panel has NULL mom: the rule matters here
    assert grid.runs[0].lambdas["n"].to_list() == n_size.tolist()
    assert grid.runs[2].lambdas["n"].to_list() == n_all.tolist()


@pytest.mark.slow
def test_grid_with_betas(con):
    panel, factors = oracles.synthetic_panel(seed=63, n_assets=15, n_periods=36, chars=["c1", "c2"], missing=0.05)
    panel = panel.with_columns(pl.when(pl.col("asset") == "A002").then(None).otherwise(pl.col("c2")).alias("c2"))
    spec = Spec(name="b", returns=panel, factors=factors, factor_cols=["mkt", "smb"], chars=["c1", "c2"],
                grid=[{"name": "betas", "chars": []}, {"name": "c1", "chars": ["c1"]}, {"name": "both",
                                                                                          "chars": ["c1", "c2"]}])
    grid = FamaMacBeth(spec, con).fit()
    for member in grid.runs:
        sep = FamaMacBeth(Spec(name="sep_" + member.name.replace(":", "_"), returns=panel, factors=factors,
                               factor_cols=["mkt", "smb"], chars=member.spec["chars"]), con).fit()
        oracles.compare_frames(member.lambdas, sep.lambdas, ["period_index"], [*sep.terms, "n"],
                               label="grid member (betas) vs separate run", rtol=1e-10)
    assert "p wald_slopes" in grid.summary
    texts = [r.run["sql_text"] for r in grid.runs]  # pass 1 (the betas) ran once, for the first member
    assert "-- pass 1: full-sample" in texts[0] and all("-- pass 1: full-sample" not in t for t in texts[1:])


@pytest.mark.slow
def test_grid_from_toml_and_cli(tmp_path):
    db = tmp_path / "g.duckdb"
    csv = tmp_path / "panel.csv"
    char_panel(seed=64).write_csv(csv)
    toml = tmp_path / "spec.toml"
    toml.write_text(f'''[run]
name = "t"
returns = "{csv}"
chars = ["size", "bm", "mom"]
winsorize = {{size = 0.01}}

[[grid]]
name = "one"
chars = ["size"]

[[grid]]
name = "two"
chars = ["size", "bm"]
''')
    env = {"PYTHONPATH": str(oracles.__file__).rsplit("/tests/", 1)[0]}
    out = subprocess.run([sys.executable, "-m", "fmduck", "run", str(db), "--config", str(toml), "-q"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "one" in out.stdout and "two" in out.stdout
    out = subprocess.run([sys.executable, "-m", "fmduck", "run", str(db), "--name", "c", "--returns", str(csv),
                          "--chars", "size,bm,mom", "--grid", "size; size,mom", "--conventions", "linearmodels", "-q"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    import duckdb

    with duckdb.connect(str(db)) as con:
        names = [r[0] for r in con.execute("SELECT run_name FROM fmduck.runs ORDER BY run_name").fetchall()]
    assert names == ["c:m1", "c:m2", "t:one", "t:two"]


def _readme_grid_example() -> tuple[list[str], str, str, str]:
    """The README's `fmduck load` commands and its grid example: (load commands, python, toml, printed text)."""
    readme = (Path(oracles.__file__).parent.parent / "README.md").read_text()
    loads = [re.sub(r"\\\n\s*", "", m)
             for m in re.findall(r"^fmduck load panel\.duckdb data/ff_[^\n\\]*(?:\\\n[^\n\\]*)*", readme, flags=re.M)]
    section = readme.split("### A specification grid from one scan", 1)[1].split("\n### ", 1)[0]
    blocks = dict(re.findall(r"```(python|toml|text)\n(.*?)```", section, flags=re.S))
    return loads, blocks["python"], blocks["toml"], blocks["text"]


def test_readme_grid_example_runs_as_printed(tmp_path, monkeypatch, capsys):
    """The README's grid example (winsorized characteristics beside betas on MktRF, WLS) runs, prints what
    the README shows, and stores for each member the λ_t of numpy: per-period np.quantile (linear) and
    clip, full-sample pass-1 OLS, per-period WLS."""
    loads, python, toml, text = _readme_grid_example()
    assert len(loads) == 2
    monkeypatch.chdir(tmp_path)
    data = Path(oracles.__file__).parent.parent / "data"
    for command in loads:
        assert main([a.replace("data/", f"{data}/", 1) for a in shlex.split(command)[1:]] + ["-q"]) == 0
    scope: dict = {}
    exec(python, scope)  # noqa: S102 - the README's own code
    scope["con"].close()
    (tmp_path / "anom.toml").write_text(toml)
    shown = [part.split("\n", 1) for part in text.split("$ fmduck ")[1:]]
    assert shown[0][0] == "run panel.duckdb --config anom.toml -q"
    capsys.readouterr()
    assert main(["run", "panel.duckdb", "--config", "anom.toml", "-q"]) == 0
    printed = capsys.readouterr().out.splitlines()
    table = shown[0][1].strip("\n").splitlines()
    assert printed[:len(table)] == table
    assert shown[1][0].startswith("show panel.duckdb anom:all")
    assert main(["show", "panel.duckdb", "anom:all", "-q"]) == 0
    printed = capsys.readouterr().out.splitlines()
    block = shown[1][1].strip("\n").splitlines()
    start = printed.index(block[0])
    assert printed[start:start + len(block)] == block

    import duckdb

    with duckdb.connect("panel.duckdb", read_only=True) as con:
        panel = con.sql("SELECT * FROM ports_w").pl()
        factors = con.sql("SELECT * FROM factors").pl()
        runs = {name: load_run(con, f"anom:{name}") for name in ("beta", "mom", "mom_rev", "all")}
    chars = ["mom", "rev", "vol"]
    prepared = oracles.winsorize(panel, chars, 0.05)
    assert not prepared["mom"].equals(panel["mom"])  # guard: winsorizing bites
    betas = oracles.betas_from(oracles.pass1_full(panel, factors, ["MktRF"], rf="RF", ols=oracles.ols_numpy))
    rows = (prepared.join(factors.select("period", "RF"), on="period")
            .with_columns((pl.col("ret") - pl.col("RF")).alias("y"),
                          pl.col("asset").replace_strict({a: float(b[0]) for a, b in betas.items()},
                                                         default=None, return_dtype=pl.Float64).alias("MktRF")))
    for name, member in runs.items():
        terms = ["MktRF", *member.spec["chars"]]
        usable = rows.drop_nulls(["y", "w", *terms]).filter(pl.col("w") > 0).sort("period", "asset")
        want = []
        for (_period,), g in usable.group_by("period", maintain_order=True):
            sw = np.sqrt(g["w"].to_numpy())
            x = np.column_stack([np.ones(g.height), g.select(terms).to_numpy()]) * sw[:, None]
            want.append(np.linalg.lstsq(x, g["y"].to_numpy() * sw, rcond=None)[0])
        want = np.array(want)
        got = member.lambdas.sort("period_index").select(["const", *terms]).to_numpy()
        oracles.assert_close(got, want, label="README grid example vs numpy", rtol=1e-10, atol=1e-12,
                             what=f"{name} lambda_t")
        fm = member.estimates.filter(pl.col("se_type") == "fm")
        fm = dict(zip(fm["term"], fm["estimate"]))
        oracles.assert_close([fm[t] for t in ["const", *terms]], want.mean(axis=0),
                             label="README grid example vs numpy", rtol=1e-10, what=f"{name} lambda bar")


@pytest.mark.parametrize(("grid", "options", "message"), [
    ([{"name": "a", "chars": ["zz"]}], {}, "zz not among the characteristics"),
    ([{"name": "a", "chars": ["a"]}, {"name": "a", "chars": ["b"]}], {}, "grid names listed twice: a"),
    ([{"name": "a", "chars": ["a"], "factors": 1}], {}, "unknown key"),
    ([{"name": "a", "chars": ["a"]}], {"absorb": "w"}, "cannot use --absorb"),
    ([], {}, "non-empty list"),
])
def test_bad_grid(grid, options, message):
    with pytest.raises(SpecError, match=message):
        Spec(name="x", returns="t", chars=["a", "b"], grid=grid, **options)


def test_a_stored_member_is_refused_before_any_computation(con):
    """A grid stores name:member runs: one already stored is refused before pass 1 (nothing written), unless
    replace."""
    panel = char_panel(seed=62)
    FamaMacBeth(Spec(name="h:size_mom", returns=panel, chars=["size"]), con).fit()
    said: list[str] = []
    spec = Spec(name="h", returns=panel, chars=["size", "bm", "mom"], grid=GRID)
    with pytest.raises(RunExistsError, match="h:size_mom"):
        FamaMacBeth(spec, con).fit(progress=said.append)
    assert said == []  # refused before "checking inputs"
    assert con.execute("SELECT count(*) FROM fmduck.runs WHERE run_name LIKE 'h:%'").fetchone()[0] == 1
    grid = FamaMacBeth(spec.replace_with(replace=True), con).fit()
    assert [r.name for r in grid.runs] == ["h:size", "h:size_mom", "h:all"]
