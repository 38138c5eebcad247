"""``fmduck update``: a stored run brought up to date equals a fresh run on the final data.

For rolling-beta, full-sample-beta and characteristic runs: run on periods 1..T−1, change the inputs
(append period T; append 12 periods; restate one return in the middle; add an asset; delete a row),
update, and compare every results table with a fresh run of the same spec on the final data: the same
rows and keys, numbers to 1e-12 (relative, or absolute at 1e-12 of the column's scale — the stored
windows keep the shifts of the run that computed them, so the last bits may differ). Also: nothing
changed -> nothing done; the version history; --as NEW keeps the old run; a design without an
incremental update recomputes in full and says so; the same on PostgreSQL.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest

import oracles
from fmduck import FamaMacBeth, Spec, load_run
from fmduck.cli import main
from fmduck.errors import RunExistsError

T = 60
SPECS = {
    "rolling": {"factor_cols": ["mkt", "smb"], "window": 24, "min_obs": 12, "nw_lags": 3},
    "full": {"factor_cols": ["mkt", "smb"], "nw_lags": 3},
    "chars": {"chars": ["size"], "char_lag": 1, "nw_lags": 3},
    "rolling_chars": {"factor_cols": ["mkt", "smb"], "chars": ["size"], "char_lag": 1, "window": 24, "min_obs": 12,
                      "beta_max_age": 3, "nw_lags": 3},
}


def _data(late: bool = False):
    """The panel (periods 1..T+11) and factors; ``late``: two more assets that start just before T — LATE
    at T−13 (its first window, W = 24 and min_obs 12, ends at T−2: one pass-2 residual before T) and LAST
    at T−2 (one lagged-characteristic residual before T) — whose stored pricing errors have one period."""
    panel, factors = oracles.synthetic_panel(seed=5, n_assets=12, n_periods=T + 12, missing=0.1, null_ret=0.02,
                                             chars=["size"])
    if late:  # every period present: r = 0.1 + mkt + 0.5 smb + noise
        rng = np.random.default_rng(11)
        extra = []
        for name, start in (("LATE", T - 13), ("LAST", T - 2)):
            f = factors.filter(pl.col("period") >= start)
            noise = 2.0 * rng.standard_normal(f.height)
            extra.append(f.select(pl.lit(name).alias("asset"), pl.col("period"),
                                  (0.1 + pl.col("mkt") + 0.5 * pl.col("smb") + pl.Series(noise)).alias("ret"),
                                  pl.Series("size", rng.standard_normal(f.height))))
        panel = pl.concat([panel, *extra])
    return panel, factors


def _load(con, panel: pl.DataFrame, factors: pl.DataFrame) -> None:
    con.register("p_src", panel.to_arrow())
    con.register("f_src", factors.to_arrow())
    con.execute("CREATE OR REPLACE TABLE panel AS SELECT * FROM p_src; "
                "CREATE OR REPLACE TABLE facs AS SELECT * FROM f_src")
    con.unregister("p_src")
    con.unregister("f_src")


def _spec(name: str, kind: str) -> Spec:
    options = dict(SPECS[kind])
    factors = "facs" if options.get("factor_cols") else None
    return Spec(name=name, returns="panel", factors=factors, **options)


def _close(x: pl.DataFrame, y: pl.DataFrame, keys: list[str], label: str) -> None:
    drop = ["run_name", "run_id"]
    x = x.drop(drop, strict=False).sort(keys, nulls_last=True)
    y = y.drop(drop, strict=False).sort(keys, nulls_last=True)
    assert x.columns == y.columns, label
    assert x.height == y.height, f"{label}: {x.height} rows after the update, {y.height} in a fresh run"
    assert x.select(keys).equals(y.select(keys)), f"{label}: keys differ"
    for col in x.columns:
        if col in keys:
            continue
        if x[col].dtype.is_float():
            a, b = x[col].to_numpy(), y[col].to_numpy()
            assert np.array_equal(np.isfinite(a), np.isfinite(b)), f"{label}.{col}: missing values differ"
            m = np.isfinite(b)
            scale = float(np.median(np.abs(b[m]))) if m.any() else 0.0
            np.testing.assert_allclose(a[m], b[m], rtol=1e-12, atol=1e-12 * scale, err_msg=f"{label}.{col}")
        elif col not in ("note", "convention"):
            assert x[col].equals(y[col]), f"{label}.{col}"


def same_run(con, updated: str, fresh: str) -> None:
    a, b = load_run(con, updated), load_run(con, fresh)
    _close(a.first_pass, b.first_pass, ["asset", "period_index", "term"], "first_pass")
    _close(a.lambdas, b.lambdas, ["period_index"], "lambdas")
    _close(a.estimates, b.estimates, ["term", "se_type"], "estimates")
    _close(a.pricing_errors, b.pricing_errors, ["asset"], "pricing_errors")
    _close(a.skipped.drop("nobs"), b.skipped.drop("nobs"), ["pass", "reason", "asset", "period"], "skipped")
    assert a.skipped["nobs"].sort().equals(b.skipped["nobs"].sort())
    _close(a.extra["tests"], b.extra["tests"], ["test", "se_type", "distribution"], "tests")
    assert a.run["coverage"] == b.run["coverage"]


def _append(panel, factors, until: int):
    return panel.filter(pl.col("period") <= until), factors.filter(pl.col("period") <= until)


def _change(kind: str, panel: pl.DataFrame, factors: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The final data of a scenario (the run saw periods < T of the original)."""
    base_p, base_f = _append(panel, factors, T - 1)
    if kind == "append1":
        return _append(panel, factors, T)
    if kind == "append12":
        return _append(panel, factors, T + 11)
    if kind == "restate":
        row = base_p.filter((pl.col("period") == 30) & pl.col("ret").is_not_null()).row(0, named=True)
        return base_p.with_columns(pl.when((pl.col("asset") == row["asset"]) & (pl.col("period") == 30))
                                   .then(pl.col("ret") + 0.05).otherwise(pl.col("ret")).alias("ret")), base_f
    if kind == "new_asset":
        donor = base_p.filter((pl.col("asset") == base_p["asset"][0]) & pl.col("period").is_between(20, 45))
        return pl.concat([base_p, donor.with_columns(pl.lit("NEW").alias("asset"), pl.col("ret") * 1.1)]), base_f
    if kind == "delete":
        row = base_p.filter(pl.col("period") == 40).row(0, named=True)
        return base_p.filter(~((pl.col("asset") == row["asset"]) & (pl.col("period") == 40))), base_f
    raise KeyError(kind)


@pytest.mark.parametrize("scenario", ["append1", "append12", "restate", "new_asset", "delete"])
@pytest.mark.parametrize("kind", ["rolling", "full", "chars", "rolling_chars"])
def test_update_equals_a_fresh_run(kind, scenario):
    panel, factors = _data()
    con = duckdb.connect()
    _load(con, *_append(panel, factors, T - 1))
    FamaMacBeth(_spec("r", kind), con).fit()
    _load(con, *_change(scenario, panel, factors))
    out = FamaMacBeth(_spec("r", kind), con).update()
    assert out is not None
    FamaMacBeth(_spec("fresh", kind), con).fit()
    same_run(con, "r", "fresh")
    recomputed = out.run["recomputed"]
    assert recomputed["mode"] == ("full" if kind == "full" else "incremental")
    if kind == "full":
        assert "full-sample betas" in recomputed["reason"]
    if kind == "rolling" and scenario == "append1":  # only the new period's windows and cross-section
        assert recomputed["window_ends"].endswith("(1)") and recomputed["cross_sections"] == 1
    if kind != "full":  # an append merges pricing errors and coverage with the stored run's; history: every period
        merged = recomputed["pricing_errors_and_coverage"].startswith("the appended periods")
        assert merged == scenario.startswith("append"), recomputed


@pytest.mark.parametrize("scenario", ["append1", "restate"])
def test_update_with_winsorized_characteristics_equals_a_fresh_run(scenario):
    """Rolling betas beside winsorized characteristics: pass 1 on the windows, pass 2, pricing errors and
    coverage of the update all read the prepared panel (its winsorizing levels bound in each)."""
    panel, factors = _data()
    con = duckdb.connect()
    spec = lambda name: Spec(name=name, returns="panel", factors="facs", **SPECS["rolling_chars"],  # noqa: E731
                             winsorize=0.1)
    _load(con, *_append(panel, factors, T - 1))
    FamaMacBeth(spec("r"), con).fit()
    _load(con, *_change(scenario, panel, factors))
    out = FamaMacBeth(spec("r"), con).update()
    assert out.run["recomputed"]["mode"] == "incremental"
    FamaMacBeth(spec("fresh"), con).fit()
    same_run(con, "r", "fresh")
    assert "size winsorized at 0.1/0.9 quantiles" in out.summary


@pytest.mark.parametrize("kind", ["rolling", "chars", "rolling_chars"])
def test_append_solves_again_the_assets_with_one_stored_period(kind):
    """LATE / LAST have one pass-2 residual in the stored run: their stored α is NULL (no s.e. from one
    period), so nothing to merge — their pricing errors are solved again over all their periods."""
    panel, factors = _data(late=True)
    con = duckdb.connect()
    _load(con, *_append(panel, factors, T - 1))
    FamaMacBeth(_spec("r", kind), con).fit()
    single = load_run(con, "r").pricing_errors.filter(pl.col("asset").is_in(["LATE", "LAST"]))
    assert single.filter(pl.col("n_periods") == 1).height >= 1 and single["alpha"].null_count() >= 1
    _load(con, *_append(panel, factors, T))
    out = FamaMacBeth(_spec("r", kind), con).update()
    assert "solved again" in out.run["recomputed"]["pricing_errors_and_coverage"]
    FamaMacBeth(_spec("fresh", kind), con).fit()
    same_run(con, "r", "fresh")
    assert load_run(con, "r").pricing_errors.filter(pl.col("asset").is_in(["LATE", "LAST"]))["alpha"].null_count() \
        < single["alpha"].null_count()


@pytest.mark.parametrize("kind", ["rolling", "chars"])
def test_append_of_factors_for_panel_rows_stored_outside_the_calendar(kind):
    """The panel had period T's rows when the run was stored, the factors did not (those rows counted as
    'no factor row'): the factors of T arrive, and the append counts those rows again."""
    panel, factors = _data()
    con = duckdb.connect()
    spec_kind = kind if kind != "chars" else "rolling_chars"
    _load(con, panel.filter(pl.col("period") <= T), factors.filter(pl.col("period") <= T - 1))
    FamaMacBeth(_spec("r", spec_kind), con).fit()
    assert load_run(con, "r").run["coverage"].get("no_period", 0) > 0
    _load(con, *_append(panel, factors, T))
    out = FamaMacBeth(_spec("r", spec_kind), con).update()
    assert out.run["recomputed"]["pricing_errors_and_coverage"].startswith("the appended periods")
    FamaMacBeth(_spec("fresh", spec_kind), con).fit()
    same_run(con, "r", "fresh")
    assert load_run(con, "r").run["coverage"].get("no_period", 0) == 0


@pytest.mark.parametrize("period", [T, 30])
def test_update_refuses_a_repeated_key_like_a_fresh_run(period):
    """The key check of an update looks at the periods whose fingerprint changed only: a repeated (asset,
    period) row appended (period T) or slipped into the stored history (period 30) is refused all the same,
    with the message a fresh run gives; a NULL period is refused too."""
    from fmduck.errors import InputError

    panel, factors = _data()
    con = duckdb.connect()
    _load(con, *_append(panel, factors, T - 1))
    FamaMacBeth(_spec("r", "rolling"), con).fit()
    final_p, final_f = _append(panel, factors, T)
    row = final_p.filter((pl.col("period") == period) & pl.col("ret").is_not_null()).head(1)
    _load(con, pl.concat([final_p, row]), final_f)
    with pytest.raises(InputError, match="duplicate") as update_error:
        FamaMacBeth(_spec("r", "rolling"), con).update()
    with pytest.raises(InputError, match="duplicate") as fresh_error:
        FamaMacBeth(_spec("fresh", "rolling"), con).fit()
    assert str(update_error.value) == str(fresh_error.value)
    _load(con, pl.concat([final_p, row.with_columns(pl.lit(None, pl.Int64).alias("period"))]), final_f)
    with pytest.raises(InputError, match="NULL"):
        FamaMacBeth(_spec("r", "rolling"), con).update()


def test_pricing_combine_equals_the_moments_of_all_periods():
    """pricing.combine against numpy over the concatenated residuals: α = mean, se = sd(ddof=1)/√n, t, n;
    an asset without new residuals keeps its stored row bit for bit; a new asset; one stored period -> redo."""
    from fmduck.passes import pricing

    rng = np.random.default_rng(3)
    res = {"A": rng.normal(0.01, 0.1, 37), "B": rng.normal(-0.02, 0.2, 5), "C": rng.normal(0, 0.1, 9),
           "D": rng.normal(0.5, 1e-3, 1)}
    new = {"A": rng.normal(0.01, 0.1, 1), "B": rng.normal(0, 0.2, 12), "E": rng.normal(0, 0.1, 3),
           "D": rng.normal(0.5, 1e-3, 2)}

    def row(e):
        n = len(e)
        if n < 2:
            return {"alpha": None, "std_error": None, "t_stat": None, "n_periods": n}
        se = float(np.std(e, ddof=1) / np.sqrt(n))
        return {"alpha": float(np.mean(e)), "std_error": se, "t_stat": float(np.mean(e)) / se, "n_periods": n}

    old = pl.DataFrame([{"asset": a, "asset_int": None, **row(e)} for a, e in res.items()], schema=pricing.SCHEMA)
    moments = pl.DataFrame([{"asset": a, "asset_int": None, "n": len(e), "mean": float(np.mean(e)),
                             "m2": float(np.sum((e - np.mean(e)) ** 2))} for a, e in new.items()])
    out, redo = pricing.combine(old, moments)
    assert redo == ["D"] and "D" not in out["asset"].to_list()
    assert out.filter(pl.col("asset") == "C").row(0) == old.filter(pl.col("asset") == "C").row(0)
    for a in ("A", "B", "E"):
        want = row(np.concatenate([res.get(a, np.empty(0)), new[a]]))
        got = out.filter(pl.col("asset") == a).row(0, named=True)
        assert got["n_periods"] == want["n_periods"]
        for col in ("alpha", "std_error", "t_stat"):
            np.testing.assert_allclose(got[col], want[col], rtol=1e-13, err_msg=f"{a}.{col}")


def test_nothing_changed_does_nothing_and_history_lists_versions(tmp_path, capsys):
    panel, factors = _data()
    db = tmp_path / "u.duckdb"
    con = duckdb.connect(str(db))
    _load(con, *_append(panel, factors, T - 1))
    FamaMacBeth(_spec("r", "rolling"), con).fit()
    assert FamaMacBeth(_spec("r", "rolling"), con).update() is None
    _load(con, *_append(panel, factors, T))
    con.close()
    assert main(["update", str(db), "r", "-q"]) == 0
    assert main(["update", str(db), "r", "-q"]) == 0
    out = capsys.readouterr().out
    assert "nothing changed" in out
    assert main(["show", str(db), "r", "--history"]) == 0
    history = capsys.readouterr().out.splitlines()
    assert len(history) == 3 and "incremental" in history[2]
    con = duckdb.connect(str(db))
    versions = con.execute("SELECT version, parent_run_id FROM fmduck.runs WHERE run_name = 'r'").fetchall()
    first = con.execute("SELECT run_id FROM fmduck.run_history WHERE run_name = 'r' AND version = 1").fetchall()
    assert versions == [(2, first[0][0])]


def test_replace_is_the_next_version_in_the_history():
    """A new run under a stored name (--replace) is that name's next version, its parent the run it
    replaced, its record saying so; an update after it continues the numbering."""
    panel, factors = _data()
    con = duckdb.connect()
    _load(con, *_append(panel, factors, T - 1))
    first = FamaMacBeth(_spec("r", "rolling"), con).fit().run["run_id"]
    second = FamaMacBeth(_spec("r", "rolling").replace_with(replace=True), con).fit().run["run_id"]
    _load(con, *_append(panel, factors, T))
    FamaMacBeth(_spec("r", "rolling"), con).update()
    rows = con.execute("SELECT version, run_id, parent_run_id, recomputed->>'mode' FROM fmduck.run_history "
                       "WHERE run_name = 'r' ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3]
    assert rows[0][1:] == (first, None, None)
    assert rows[1][1:] == (second, first, "replaced")
    assert rows[2][2:] == (second, "incremental")
    assert con.execute("SELECT version FROM fmduck.runs WHERE run_name = 'r'").fetchall() == [(3,)]


def test_update_as_new_name_keeps_the_old_run():
    panel, factors = _data()
    con = duckdb.connect()
    _load(con, *_append(panel, factors, T - 1))
    FamaMacBeth(_spec("r", "rolling"), con).fit()
    before = load_run(con, "r")
    _load(con, *_append(panel, factors, T))
    FamaMacBeth(_spec("r", "rolling"), con).update(new_name="r2")
    FamaMacBeth(_spec("fresh", "rolling"), con).fit()
    same_run(con, "r2", "fresh")
    after = load_run(con, "r")
    assert after.run["run_id"] == before.run["run_id"]
    assert after.first_pass.drop("run_name", "run_id").equals(before.first_pass.drop("run_name", "run_id"))
    # the new name's history starts at version 1, its parent the run it was updated from
    assert con.execute("SELECT version, parent_run_id FROM fmduck.run_history WHERE run_name = 'r2'").fetchall() == [
        (1, before.run["run_id"])]
    # a name already stored is never replaced by an update --as
    fresh = load_run(con, "fresh").run["run_id"]
    with pytest.raises(RunExistsError, match="'fresh' already exists"):
        FamaMacBeth(_spec("r", "rolling"), con).update(new_name="fresh")
    assert load_run(con, "fresh").run["run_id"] == fresh


@pytest.mark.postgres
def test_update_on_postgres(pg):
    panel, factors = _data(late=True)  # LATE's pricing errors are solved again: that SQL runs on PostgreSQL too
    base_p, base_f = _append(panel, factors, T - 1)
    for name, frame in (("panel", base_p), ("facs", base_f)):
        pg.execute(f"DROP TABLE IF EXISTS {name}")
        pg.create_table(f'"{name}"', frame)
    FamaMacBeth(_spec("r", "rolling"), pg).fit()
    new_p, new_f = _append(panel, factors, T)
    pg.insert('"panel"', new_p.filter(pl.col("period") == T))
    pg.insert('"facs"', new_f.filter(pl.col("period") == T))
    out = FamaMacBeth(_spec("r", "rolling"), pg).update()
    assert out.run["recomputed"]["mode"] == "incremental"
    assert "solved again" in out.run["recomputed"]["pricing_errors_and_coverage"]
    FamaMacBeth(_spec("fresh", "rolling"), pg).fit()
    same_run(pg, "r", "fresh")


def test_returns_arriving_for_a_period_the_factors_had_recompute_every_period_and_say_why():
    """The factors define the calendar: returns for period T when the stored run's factors already had T
    are a change inside the stored calendar (not an append): pricing errors and coverage over every period."""
    panel, factors = _data()
    con = duckdb.connect()
    _load(con, _append(panel, factors, T - 1)[0], _append(panel, factors, T)[1])
    FamaMacBeth(_spec("r", "rolling"), con).fit()
    _load(con, *_append(panel, factors, T))
    FamaMacBeth(_spec("r", "rolling"), con).update()
    FamaMacBeth(_spec("fresh", "rolling"), con).fit()
    same_run(con, "r", "fresh")
    recomputed = load_run(con, "r").run["recomputed"]
    assert recomputed["mode"] == "incremental"
    assert recomputed["pricing_errors_and_coverage"] == "every period (changes inside the stored run's calendar)"
