"""Design ``mimicking``: mimicking-portfolio premia against a numpy reference on Ken French data,
the omitted-factor point of the study (seed section 五), storage and errors."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import polars as pl
import pytest

from fmduck import EstimationError, FamaMacBeth, InputError, Spec, SpecError, load_run
from fmduck import load as loader
from fmduck.designs.mimicking import Mimicking
from fmduck.engine import DuckDBEngine
from oracles import assert_close

TOL = 1e-10
BASIS = ["S1V1", "S1V3", "S1V5", "S3V1", "S3V3", "S3V5", "S5V1", "S5V3", "S5V5", "NoDur", "Durbl", "Enrgy", "Hlth"]


@pytest.fixture
def ff(con, data_dir):
    engine = DuckDBEngine(con)
    loader.load(engine, data_dir / "ff_portfolios_monthly.csv", "ff_portfolios", wide=True, unit="percent")
    loader.load(engine, data_dir / "ff_factors_monthly.csv", "ff_factors", unit="percent",
                percent_cols=["MktRF", "SMB", "HML", "Mom", "RF"])
    ports = pd.read_csv(data_dir / "ff_portfolios_monthly.csv", index_col=0) / 100.0
    facs = pd.read_csv(data_dir / "ff_factors_monthly.csv", index_col=0) / 100.0
    return engine, ports, facs


def _mimic(engine, name="mim", factors=("HML", "Mom"), **options):
    spec = Spec(name=name, returns="ff_portfolios", rf="RF", factors="ff_factors", factor_cols=list(factors),
                design="mimicking", **options)
    return Mimicking(spec, engine).fit()


def _reference(ports: pd.DataFrame, facs: pd.DataFrame, assets: list[str], factors: list[str], lags: int):
    """numpy: OLS of each factor on a constant and the excess returns (lstsq), r^g = R w, mean, SEs."""
    excess = ports[assets].to_numpy() - facs[["RF"]].to_numpy()
    g = facs[factors].to_numpy()
    t = excess.shape[0]
    design = np.column_stack([np.ones(t), excess])
    coef, *_ = np.linalg.lstsq(design, g, rcond=None)
    w = coef[1:]
    mimic = excess @ w
    premium = mimic.mean(axis=0)
    fm_se = mimic.std(axis=0, ddof=1) / math.sqrt(t)
    dev = mimic - premium
    gamma = (dev * dev).sum(axis=0)
    for lag in range(1, lags + 1):
        gamma += 2 * (1 - lag / (lags + 1)) * (dev[lag:] * dev[:-lag]).sum(axis=0)
    nw_se = np.sqrt(gamma) / t
    fitted = design @ coef
    r2 = 1 - ((g - fitted) ** 2).sum(axis=0) / ((g - g.mean(axis=0)) ** 2).sum(axis=0)
    return {"w": w, "mimic": mimic, "premium": premium, "fm": fm_se, "nw": nw_se, "r2": r2}


@pytest.mark.parametrize("basis", [None, BASIS])
def test_ken_french_equals_numpy(ff, basis):
    engine, ports, facs = ff
    factors = ["HML", "Mom"]
    res = _mimic(engine, basis=basis or [])
    assets = sorted(basis or ports.columns)
    lags = int(res.estimates.filter(pl.col("se_type") == "nw")["nw_lags"][0])
    assert lags == math.floor(4 * (len(ports) / 100) ** (2 / 9))
    ref = _reference(ports, facs, assets, factors, lags)
    label = "mimicking vs numpy (Ken French)"
    for se_type in ("fm", "nw"):
        tab = res.estimates.filter(pl.col("se_type") == se_type)
        assert tab["term"].to_list() == factors
        assert_close(tab["estimate"].to_numpy(), ref["premium"], label=label, rtol=TOL, atol=0, what="premium")
        assert_close(tab["std_error"].to_numpy(), ref[se_type], label=label, rtol=TOL, atol=0, what=f"{se_type} SE")
        assert_close(tab["avg_r2"].to_numpy(), ref["r2"], label=label, rtol=TOL, atol=0, what="R2")
    weights = res.extra["mimicking_weights"]
    for j, f in enumerate(factors):
        wf = weights.filter(pl.col("factor") == f).sort("asset")
        assert wf["asset"].to_list() == assets
        # normwise: each weight within 1e-10 of the largest one. Elementwise, a weight 1000 times smaller
        # than the largest carries cond(Var r)·eps ≈ 1e-13 of the largest, for numpy as for fmduck.
        w_ref = ref["w"][:, j]
        assert_close(wf["weight"].to_numpy(), w_ref, label=label, rtol=TOL, atol=TOL * np.abs(w_ref).max(),
                     what=f"weights {f}")
        m_ref = ref["mimic"][:, j]
        assert_close(res.lambdas[f].to_numpy(), m_ref, label=label, rtol=TOL, atol=TOL * np.abs(m_ref).max(),
                     what=f"r^g_t {f}")


def test_twopass_beside_equals_engine_run(ff):
    """The two-pass rows are the engine's two-pass run of the same factors on the same (basis) assets."""
    engine, _ports, _facs = ff
    res = _mimic(engine, basis=BASIS)
    engine.execute("CREATE TABLE ff_basis AS SELECT * FROM ff_portfolios WHERE asset IN ("
                   + ", ".join(f"'{a}'" for a in BASIS) + ")")
    tp = FamaMacBeth(Spec(name="tp", returns="ff_basis", rf="RF", factors="ff_factors", factor_cols=["HML", "Mom"]),
                     engine).fit(write=False)
    for se_type in ("fm", "nw", "shanken"):
        want = tp.estimates.filter((pl.col("se_type") == se_type) & (pl.col("term") != "const"))
        got = res.estimates.filter(pl.col("se_type") == f"twopass_{se_type}")
        assert got["term"].to_list() == want["term"].to_list()
        for col in ("estimate", "std_error"):
            assert_close(got[col].to_numpy(), want[col].to_numpy(), label="mimicking two-pass vs engine", rtol=1e-12,
                         what=f"{se_type} {col}")
    assert "HML: mimicking premium" in res.summary and "two-pass premium" in res.summary


def test_stored_tables(ff):
    engine, *_ = ff
    _mimic(engine, basis=BASIS)
    stored = load_run(engine, "mim")
    assert stored.run["design"] == "mimicking"
    assert {"fm", "nw", "twopass_fm", "twopass_shanken"} <= set(stored.se_types)
    n = engine.query("SELECT count(*) AS n FROM fmduck.mimicking_weights WHERE run_name = 'mim'")["n"][0]
    assert n == 2 * len(BASIS)
    long = engine.query("SELECT DISTINCT term FROM fmduck.lambdas WHERE run_name = 'mim' ORDER BY 1")
    assert long["term"].to_list() == ["HML", "Mom"]
    _mimic(engine, basis=BASIS[:5], replace=True)
    n = engine.query("SELECT count(*) AS n FROM fmduck.mimicking_weights WHERE run_name = 'mim'")["n"][0]
    assert n == 2 * 5


# ====================================================================== the study's point
def _omitted_factor_panel(seed: int):
    """r_t = β(γ + v_t) + u_t with two correlated factors (corr 0.6). 30 general assets span both
    factors; 20 'restricted' assets load on v1 - v2 only (β2 = -β1), so they cannot span v1."""
    rng = np.random.default_rng(seed)
    t, n_gen, n_res = 1200, 30, 20
    gamma = np.array([0.5, 1.0])
    cov = np.array([[1.0, 0.6], [0.6, 1.0]])
    v = rng.multivariate_normal(np.zeros(2), cov, size=t)
    b1 = rng.uniform(0.5, 1.5, size=n_gen + n_res)
    b2 = np.concatenate([rng.uniform(-1.0, 1.0, size=n_gen), -b1[n_gen:]])
    beta = np.column_stack([b1, b2])
    u = 0.05 * rng.normal(size=(t, n_gen + n_res))
    r = (gamma + v) @ beta.T + u
    assets = [f"g{i:02d}" for i in range(n_gen)] + [f"r{i:02d}" for i in range(n_res)]
    panel = pl.DataFrame({
        "asset": np.repeat(assets, t), "period": np.tile(np.arange(t), len(assets)), "ret": r.T.ravel(),
    })
    factors = pl.DataFrame({"period": np.arange(t), "g": v[:, 0], "v2": v[:, 1]})
    return panel, factors, gamma, v, assets[n_gen:]


def test_omitted_factor_bias(con):
    """Seed section 五: with v2 omitted the two-pass premium of g = v1 is biased; the mimicking premium
    is not when the basis is diversified and spans both factors, and is when the basis does not."""
    panel, factors, gamma, v, restricted = _omitted_factor_panel(2024)
    con.register("om_panel", panel.to_arrow())
    con.register("om_factors", factors.to_arrow())
    common = {"returns": "om_panel", "factors": "om_factors", "factor_cols": ["g"], "design": "mimicking"}
    full = Mimicking(Spec(name="om_full", **common), con).fit(write=False)
    part = Mimicking(Spec(name="om_part", basis=restricted, **common), con).fit(write=False)

    def premium(res, se_type):
        return res.estimates.filter(pl.col("se_type") == se_type)["estimate"][0]

    # the mimicking return is v1 + γ1 (plus noise): its mean is γ1 + v̄1 in the sample
    target = gamma[0] + v[:, 0].mean()
    assert abs(premium(full, "fm") - target) < 0.02
    # two-pass on g alone: the betas absorb v2 and the cross-section misses β2 γ2
    assert abs(premium(full, "twopass_fm") - target) > 0.15
    # restricted basis (spans only f = v1 - v2): premium = b (γ1 - γ2 + v̄1 - v̄2), b = cov(v1, f)/var(f)
    f = v[:, 0] - v[:, 1]
    b = np.cov(v[:, 0], f)[0, 1] / f.var(ddof=1)
    assert abs(premium(part, "fm") - target) > 0.15
    assert abs(premium(part, "fm") - b * (gamma[0] - gamma[1] + v[:, 0].mean() - v[:, 1].mean())) < 0.02
    # with both factors the two-pass premium of g is unbiased again (what the omission costs)
    both = FamaMacBeth(Spec(name="om_tp2", returns="om_panel", factors="om_factors", factor_cols=["g", "v2"]),
                       con).fit(write=False)
    assert abs(both.params["g"] - target) < 0.05


# ====================================================================== errors and CLI
def test_errors(ff, con):
    engine, *_ = ff
    with pytest.raises(SpecError, match="--factor-cols"):
        Mimicking(Spec(name="x", returns="ff_portfolios", chars=["ret"], design="mimicking"), engine)
    with pytest.raises(InputError, match="basis asset.*NOPE"):
        _mimic(engine, basis=["S1V1", "NOPE"])
    short = pl.DataFrame({"asset": np.repeat(["a", "b", "c", "d"], 5), "period": np.tile(np.arange(5), 4),
                          "ret": np.random.default_rng(0).normal(size=20)})
    con.register("short_panel", short.to_arrow())
    con.register("short_factors", pl.DataFrame({"period": np.arange(5), "g": np.arange(5.0)}).to_arrow())
    with pytest.raises(EstimationError, match="N = 4 assets needs at least N \\+ 2 = 6"):
        Mimicking(Spec(name="s", returns="short_panel", factors="short_factors", factor_cols=["g"],
                       design="mimicking"), con).fit(write=False)
    con.execute("CREATE TABLE dup_panel AS SELECT * FROM ff_portfolios UNION ALL "
                "SELECT 'S1V1copy' AS asset, period, ret FROM ff_portfolios WHERE asset = 'S1V1'")
    with pytest.raises(EstimationError, match="singular"):
        Mimicking(Spec(name="d", returns="dup_panel", rf="RF", factors="ff_factors", factor_cols=["HML"],
                       basis=["S1V1", "S1V1copy", "S5V5"], design="mimicking"), engine).fit(write=False)


def test_cli_mimicking(tmp_path, data_dir):
    db = str(tmp_path / "m.duckdb")
    run = [sys.executable, "-m", "fmduck"]
    for args in (["load", db, str(data_dir / "ff_portfolios_monthly.csv"), "--table", "ports", "--wide",
                  "--unit", "percent"],
                 ["load", db, str(data_dir / "ff_factors_monthly.csv"), "--table", "facs", "--unit", "percent",
                  "--percent-cols", "MktRF,SMB,HML,Mom,RF"]):
        out = subprocess.run(run + args, capture_output=True, text=True, cwd=data_dir.parent, check=False)
        assert out.returncode == 0, out.stderr
    out = subprocess.run(run + ["run", db, "--name", "m", "--returns", "ports", "--rf", "RF", "--factors", "facs",
                                "--factor-cols", "HML", "--basis", ",".join(BASIS), "--design", "mimicking", "-q"],
                         capture_output=True, text=True, cwd=data_dir.parent, check=False)
    assert out.returncode == 0, out.stderr
    assert "Mimicking portfolios" in out.stdout and "Two-pass, Shanken" in out.stdout


def test_basis_needs_mimicking_design():
    with pytest.raises(SpecError, match="--basis"):
        Spec(name="b", returns="t", factors="f", factor_cols=["g"], basis=["a"])
