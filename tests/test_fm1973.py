"""Design fm1973 (Fama and MacBeth 1973): portfolio formation and the γ_t path against an independent
pandas/numpy implementation of the paper's procedure; the tests C1-C3 and Sharpe-Lintner on simulated
panels where the CAPM holds and where it does not; the CLI and TOML paths."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.api as sm

from fmduck.designs.crsp_like import simulate_crsp_like
from fmduck.designs.fm1973 import FM1973, table3
from fmduck.errors import InputError, SpecError
from fmduck.spec import Spec

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
TOL = 1e-8


# ---------------------------------------------------------------------- the independent reference
def _ols(y: np.ndarray, x: np.ndarray) -> tuple[float, float, int] | None:
    ok = ~np.isnan(y) & ~np.isnan(x)
    n = int(ok.sum())
    if n < 3:
        return None
    design = np.column_stack([np.ones(n), x[ok]])
    coef, *_ = np.linalg.lstsq(design, y[ok], rcond=None)
    resid = y[ok] - design @ coef
    return float(coef[1]), float(np.sqrt(resid @ resid / (n - 2))), n


def reference(stocks: pd.DataFrame, market: pd.DataFrame, *, formation: int, estimation: int, testing: int,
              update: int, n_portfolios: int, min_obs: int, regressors: list[str]):
    """The paper's procedure written out with loops over cohorts, stocks and months (pandas + lstsq)."""
    cal = np.sort(market["date"].unique())
    t_all = len(cal)
    wide = stocks.pivot(index="date", columns="permno", values="ret").reindex(cal)
    mkt = market.set_index("date")["vwretd"].reindex(cal).to_numpy()
    r = wide.to_numpy()
    permnos = wide.columns.to_numpy()
    members, gammas = [], []
    cohort = 0
    while cohort * testing + formation + estimation < t_all:
        f0 = cohort * testing
        e0, t0 = f0 + formation, f0 + formation + estimation
        t1 = min(t0 + testing, t_all)
        rows = []
        for j, permno in enumerate(permnos):
            fit = _ols(r[f0:e0, j], mkt[f0:e0])
            if fit is None or fit[2] < min_obs:
                continue
            if np.isnan(r[e0:t0, j]).any() or np.isnan(r[t0, j]):
                continue
            rows.append((round(fit[0], 10), permno, j, fit[0]))
        rows.sort()
        n = len(rows)
        base, extra = divmod(n, n_portfolios)
        if base >= 1:
            sizes = [base + extra // 2] + [base] * (n_portfolios - 2) + [base + extra - extra // 2]
            port = np.repeat(np.arange(1, n_portfolios + 1), sizes)
            for rank, ((_rounded, permno, _j, beta), p) in enumerate(zip(rows, port), start=1):
                members.append({"cohort": cohort, "asset": str(permno), "portfolio": int(p), "formation_rank": rank,
                                "n_stocks": n, "formation_beta": beta})
            cols = np.array([row[2] for row in rows])
            cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
            for t in range(t0, t1):
                u = t0 + ((t - t0) // update) * update
                if u not in cache:
                    fits = [_ols(r[e0:u, j], mkt[e0:u]) for j in cols]
                    cache[u] = (np.array([f[0] for f in fits]), np.array([f[1] for f in fits]))
                b, s = cache[u]
                have = ~np.isnan(r[t, cols])
                frame = pd.DataFrame({"p": port[have], "ret": r[t, cols][have], "beta": b[have], "se": s[have]})
                g = frame.groupby("p").mean()
                x = {"beta": g["beta"], "beta2": g["beta"] ** 2, "se": g["se"]}
                design = np.column_stack([np.ones(len(g))] + [x[k].to_numpy() for k in regressors])
                coef, *_ = np.linalg.lstsq(design, g["ret"].to_numpy(), rcond=None)
                gammas.append([t + 1, *coef])
        cohort += 1
    return pd.DataFrame(members), pd.DataFrame(gammas, columns=["period_index", "const", *regressors])


def _small_panel(seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    sim = simulate_crsp_like(70, 110, missing=0.03, seed=seed)
    stocks = sim.stocks.to_pandas()
    # an exact beta tie: a copy of one stock under a larger permno (broken by asset id, both in SQL and here)
    first = stocks["permno"].min()
    twin = stocks[stocks["permno"] == first].assign(permno=99999)
    return pd.concat([stocks, twin], ignore_index=True), sim.market.to_pandas()


SMALL = {"formation": 12, "estimation": 18, "testing": 12, "n_portfolios": 6, "min_obs": 10}


def _fit(stocks, market, *, write=False, con=None, **options) -> FM1973:
    spec = Spec(name=options.pop("name", "fm73"), design="fm1973", returns=stocks, asset="permno", period="date",
                ret="ret", factors=market, market="vwretd", **options)
    return FM1973(spec, con if con is not None else duckdb.connect()).fit(write=write)


# ---------------------------------------------------------------------- formation and γ_t vs the reference
@pytest.mark.parametrize("update", [12, 5, 1])
def test_portfolios_and_gammas_match_reference(update):
    stocks, market = _small_panel()
    regs = ["beta", "beta2", "se"]
    res = _fit(stocks, market, beta_update=update, fm_regressors=regs, **SMALL)
    members, gammas = reference(stocks, market, formation=12, estimation=18, testing=12, update=update,
                                n_portfolios=6, min_obs=10, regressors=regs)
    got = res.portfolios.to_pandas().sort_values(["cohort", "formation_rank"]).reset_index(drop=True)
    ref = members.sort_values(["cohort", "formation_rank"]).reset_index(drop=True)
    assert len(ref) > 100 and ref["cohort"].nunique() >= 5
    # who is in which portfolio, with which rank, in cohorts of which size: identical
    for col in ("cohort", "asset", "portfolio", "formation_rank", "n_stocks"):
        assert got[col].astype(str).tolist() == ref[col].astype(str).tolist(), col
    np.testing.assert_allclose(got["formation_beta"], ref["formation_beta"], rtol=TOL, atol=TOL)
    # the tied twin sits right after its original
    tie = got[got["asset"].isin([str(stocks["permno"].min()), "99999"])].groupby("cohort")["formation_rank"]
    assert (tie.max() - tie.min() == 1).all()
    # portfolio sizes: N // P each, the left-over split between the extreme portfolios (one more in the top)
    for _, g in got.groupby("cohort"):
        n, p = len(g), 6
        sizes = g.groupby("portfolio").size().reindex(range(1, p + 1)).to_numpy()
        base, extra = divmod(n, p)
        assert sizes.tolist() == [base + extra // 2] + [base] * (p - 2) + [base + extra - extra // 2]
    lam = res.lambdas.to_pandas()
    assert lam["period_index"].tolist() == gammas["period_index"].tolist()
    for term in ("const", *regs):
        np.testing.assert_allclose(lam[term], gammas[term], rtol=TOL, atol=TOL, err_msg=term)


def test_inference_and_subperiods_match_numpy_and_statsmodels():
    stocks, market = _small_panel(seed=12)
    res = _fit(stocks, market, rf="rf", nw_lags=2, subperiods=3, **SMALL)
    lam = res.lambdas.to_pandas()
    rf = market.set_index("date")["rf"].to_numpy()[lam["period_index"].to_numpy() - 1]
    series = {t: lam[t].to_numpy() for t in ("const", "beta", "beta2", "se")}
    series["const_minus_rf"] = series["const"] - rf
    per = res.periods.to_pandas()
    blocks = np.array_split(np.arange(len(lam)), 3) + [np.arange(len(lam))]
    for b, idx in enumerate(blocks):
        sub = 0 if b == 3 else b + 1
        for term, values in series.items():
            row = per[(per["subperiod"] == sub) & (per["term"] == term)].iloc[0]
            v = values[idx]
            ols = sm.OLS(v, np.ones(len(v)))
            fm_se = v.std(ddof=1) / np.sqrt(len(v))
            nw = ols.fit(cov_type="HAC", cov_kwds={"maxlags": 2, "use_correction": False})
            np.testing.assert_allclose([row["mean"], row["std_dev"], row["fm_std_error"], row["nw_std_error"]],
                                       [v.mean(), v.std(ddof=1), fm_se, nw.bse[0]], rtol=TOL)
            assert row["n_periods"] == len(v)
            if term == "beta":  # C3 is one-sided
                assert row["fm_p"] == pytest.approx(1 - __import__("scipy").stats.t.cdf(v.mean() / fm_se, len(v) - 1),
                                                    rel=1e-10)
    est = res.estimates.filter(pl.col("se_type") == "fm").to_pandas().set_index("term")
    for term in ("const", "beta", "beta2", "se"):
        assert est.loc[term, "estimate"] == pytest.approx(series[term].mean(), rel=TOL)
        assert est.loc[term, "std_error"] == pytest.approx(series[term].std(ddof=1) / np.sqrt(len(lam)), rel=TOL)
    # Table 3: periods as rows (the sub-periods, then overall), γ̄, s(γ), t(γ̄) per gamma
    tab = table3(res)
    assert tab["period"].to_list()[-1] == "overall" and tab.height == 4
    assert tab["gamma_1"][-1] == pytest.approx(series["beta"].mean(), rel=TOL)
    assert tab["t(gamma_2)"][-1] == pytest.approx(series["beta2"].mean() / (
        series["beta2"].std(ddof=1) / np.sqrt(len(lam))), rel=TOL)


# ---------------------------------------------------------------------- the paper's tests on simulated panels
def _overall(res) -> dict[str, dict]:
    per = res.periods.filter(pl.col("subperiod") == 0)
    return {row["term"]: row for row in per.iter_rows(named=True)}


def _sim_fit(**kw):
    sim = simulate_crsp_like(1000, 348, seed=kw.pop("seed", 1), gamma2=kw.pop("gamma2", 0.0),
                             gamma3=kw.pop("gamma3", 0.0))
    return sim, _fit(sim.stocks, sim.market, rf="rf", **kw)


def test_capm_holds_tests_do_not_reject_and_gamma1_is_recovered():
    sim, res = _sim_fit()
    row = _overall(res)
    for term in ("beta2", "se", "const_minus_rf"):  # C1, C2, Sharpe-Lintner
        assert row[term]["reject_fm"] is False and row[term]["reject_nw"] is False, term
    # γ_1 alone (the paper's first panel): the market premium, within sampling error
    _, beta_only = _sim_fit(fm_regressors=["beta"])
    g1 = _overall(beta_only)["beta"]
    assert abs(g1["mean"] - sim.premium) < 3 * g1["fm_std_error"]
    # ... and month by month it tracks the realised market excess return
    lam = beta_only.lambdas.with_columns(pl.col("period").str.to_date().alias("date")).join(
        sim.market, on="date")
    excess = (lam["vwretd"] - lam["rf"]).to_numpy()
    assert np.corrcoef(lam["beta"].to_numpy(), excess)[0, 1] > 0.95
    assert _overall(beta_only)["const_minus_rf"]["reject_fm"] is False


@pytest.mark.parametrize("planted, term, value", [("gamma2", "beta2", -0.015), ("gamma3", "se", 0.4)])
def test_planted_nonlinearity_or_idiosyncratic_premium_is_rejected(planted, term, value):
    _, res = _sim_fit(**{planted: value})
    row = _overall(res)[term]
    assert row["reject_fm"] and row["reject_nw"]
    assert row["test"] == ("C1" if term == "beta2" else "C2")
    assert np.sign(row["mean"]) == np.sign(value)
    assert abs(row["mean"] - value) < 3 * row["fm_std_error"] or term == "se"  # s_p(e) is attenuated
    other = "se" if term == "beta2" else "beta2"
    assert not _overall(res)[other]["reject_fm"]


# ---------------------------------------------------------------------- storage, errors
def test_results_are_stored_and_queryable(tmp_path):
    stocks, market = _small_panel()
    con = duckdb.connect(str(tmp_path / "r.duckdb"))
    res = _fit(stocks, market, write=True, con=con, name="fm73", **SMALL)
    n = con.execute("SELECT COUNT(*) FROM fmduck.portfolios WHERE run_name = 'fm73'").fetchall()[0][0]
    assert n == res.portfolios.height
    who = con.execute("SELECT portfolio FROM fmduck.portfolios WHERE run_name = 'fm73' AND cohort = 0 "
                  "AND formation_rank = 1").fetchall()[0][0]
    assert who == 1
    terms = con.execute("SELECT DISTINCT term FROM fmduck.lambdas WHERE run_name = 'fm73' ORDER BY 1").fetchall()
    assert [t[0] for t in terms] == ["beta", "beta2", "const", "se"]
    assert con.execute("SELECT COUNT(*) FROM fmduck.fm1973_periods WHERE run_name = 'fm73'").fetchall()[0][0] > 0
    # replacing the run leaves one copy of every design table
    _fit(stocks, market, write=True, con=con, name="fm73", replace=True, **SMALL)
    assert con.execute("SELECT COUNT(*) FROM fmduck.portfolios").fetchall()[0][0] == n
    from fmduck.engine import DuckDBEngine
    from fmduck.store import load_run

    loaded = load_run(DuckDBEngine(con), "fm73")
    assert "Table 3 layout" in loaded.summary
    assert table3(loaded).height == table3(res).height


@pytest.mark.parametrize("options, message", [
    ({"market": None}, "--market"),
    ({"fm_regressors": ["beta2"]}, "fm_regressors"),
    ({"fm_regressors": ["beta", "size"]}, "fm_regressors"),
    ({"n_portfolios": 3}, "n_portfolios"),
    ({"formation": 2}, "formation"),
    ({"min_obs": 50}, "min_obs"),
    ({"factor_cols": ["vwretd"]}, "--factor-cols"),
    ({"subperiods": 0}, "subperiods"),
])
def test_spec_errors(options, message):
    base = {"name": "x", "design": "fm1973", "returns": "s", "factors": "m", "market": "vwretd"}
    with pytest.raises(SpecError, match=message):
        Spec(**{**base, **options})


def test_input_errors():
    stocks, market = _small_panel()
    with pytest.raises(InputError, match="market"):
        _fit(stocks, market.rename(columns={"vwretd": "mkt"}), **SMALL)
    with pytest.raises(InputError, match="at least formation"):
        _fit(stocks, market.iloc[:30], **SMALL)
    with pytest.raises(InputError, match="--rf 'nope'"):
        _fit(stocks, market, rf="nope", **SMALL)


# ---------------------------------------------------------------------- CLI and TOML
def _small_database(db):
    """A DuckDB file with the small panel as tables ``stocks`` and ``market``."""
    stocks, market = _small_panel()
    con = duckdb.connect(str(db))
    for name, frame in (("stocks", stocks), ("market", market)):
        con.register("frame", frame)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
        con.unregister("frame")
    con.close()
    return db


def test_cli_and_toml(tmp_path):
    db = _small_database(tmp_path / "cli.duckdb")
    env = {"PYTHONPATH": str(ROOT)}
    common = ["--returns", "stocks", "--asset", "permno", "--period", "date", "--factors", "market"]
    cli = subprocess.run(
        [sys.executable, "-m", "fmduck", "run", str(db), "-q", "--design", "fm1973", "--name", "cli", *common,
         "--market", "vwretd", "--rf", "rf", "--formation", "12", "--estimation", "18", "--testing", "12",
         "--n-portfolios", "6", "--min-obs", "10", "--fm-regressors", "beta,beta2", "--beta-update", "6"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert cli.returncode == 0, cli.stderr
    assert "Table 3 layout" in cli.stdout and "C1" in cli.stdout
    (tmp_path / "fm73.toml").write_text(
        '[run]\nname = "toml"\ndesign = "fm1973"\nreturns = "stocks"\nasset = "permno"\nperiod = "date"\n'
        'factors = "market"\nmarket = "vwretd"\nrf = "rf"\nformation = 12\nestimation = 18\ntesting = 12\n'
        'n_portfolios = 6\nmin_obs = 10\nfm_regressors = ["beta", "beta2"]\nbeta_update = 6\n')
    toml = subprocess.run([sys.executable, "-m", "fmduck", "run", str(db), "-q", "--config", "fm73.toml"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert toml.returncode == 0, toml.stderr
    con = duckdb.connect(str(db))
    a, b = (con.execute(f"SELECT term, estimate FROM fmduck.estimates WHERE run_name = '{n}' AND se_type = 'fm' "
                    "ORDER BY term").fetchall() for n in ("cli", "toml"))
    assert [t for t, _ in a] == [t for t, _ in b] and len(a) == 3
    # parallel sums in DuckDB are not bit-for-bit reproducible: equal up to rounding
    np.testing.assert_allclose([v for _, v in a], [v for _, v in b], rtol=1e-10)
    con.close()


def test_cli_error_names_the_missing_option(capsys, tmp_path):
    from fmduck.cli import main

    code = main(["run", str(tmp_path / "x.duckdb"), "-q", "--design", "fm1973", "--name", "x", "--returns", "s",
                 "--factors", "m"])
    assert code == 2 and "--market" in capsys.readouterr().err


def test_sql_command_lists_the_design_statements(capsys, tmp_path):
    from fmduck.cli import main

    db = _small_database(tmp_path / "sql.duckdb")
    code = main(["sql", str(db), "-q", "--design", "fm1973", "--name", "s", "--returns", "stocks", "--asset", "permno",
                 "--period", "date", "--factors", "market", "--market", "vwretd", "--formation", "12",
                 "--estimation", "18", "--testing", "12", "--n-portfolios", "6", "--min-obs", "10"])
    out = capsys.readouterr().out
    assert code == 0 and "-- portfolio formation" in out and "ROW_NUMBER() OVER (PARTITION BY f.cohort" in out


# ---------------------------------------------------------------------- the same run on PostgreSQL
@pytest.mark.postgres
def test_postgres_matches_duckdb(pg_url):
    pytest.importorskip("psycopg")
    from fmduck import templates
    from fmduck.engines.postgres import PostgresEngine

    stocks, market = _small_panel()
    pg = PostgresEngine(pg_url)
    try:
        for name, frame in (("fm73_stocks", stocks), ("fm73_market", market)):
            pg.create_table(templates.table(name), pl.from_pandas(frame), replace=True)
        spec = Spec(name="fm73_pg", design="fm1973", returns="fm73_stocks", asset="permno", period="date",
                    ret="ret", factors="fm73_market", market="vwretd", rf="rf", replace=True, **SMALL)
        got = FM1973(spec, pg).fit()
        stored = pg.query('SELECT COUNT(*) AS n FROM "fmduck"."portfolios" WHERE run_name = %(r)s', {"r": "fm73_pg"})
    finally:
        pg.close()
    want = _fit(stocks, market, rf="rf", **SMALL)
    assert stored["n"][0] == want.portfolios.height
    cols = ["cohort", "asset", "portfolio", "formation_rank"]
    assert got.portfolios.select(cols).rows() == want.portfolios.select(cols).rows()
    for term in ("const", "beta", "beta2", "se"):
        np.testing.assert_allclose(got.lambdas[term].to_numpy(), want.lambdas[term].to_numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.periods["fm_t"].to_numpy(), want.periods["fm_t"].to_numpy(), rtol=1e-9)
