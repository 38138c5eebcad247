"""Convention presets (fmduck/conventions.py): each reproduces its tool's Newey-West numbers.

- linearmodels: ``FamaMacBeth.fit(cov_type="kernel")`` itself, automatic bandwidth and fixed, to 1e-10.
- sandwich: R is not available here; the oracle below is a line-by-line transcription of
  sandwich 3.x ``NeweyWest``/``bwNeweyWest``/``meatHAC`` (R/vcovHAC.R) and ``stats::ar.ols``
  for ``lm(lambda ~ 1)``, written independently of fmduck's code (hand formula, not a printout).
- stata: the published ``asreg, fmb`` printout on Stata's Grunfeld data (FM part), and the
  Newey-West formula by hand (Γ/(T(T−1)), lags in calendar periods).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.api as sm
from linearmodels import FamaMacBeth as LMFamaMacBeth

import oracles
from fmduck.errors import SpecError


def ar1_panel(seed: int, n_assets: int = 30, n_periods: int = 80, gap: int | None = None) -> pl.DataFrame:
    """Characteristics panel whose slopes are autocorrelated over time (so lags matter)."""
    rng = np.random.default_rng(seed)
    slope = np.zeros((n_periods, 2))
    for t in range(1, n_periods):
        slope[t] = 0.6 * slope[t - 1] + rng.normal(size=2)
    rows = []
    for t in range(n_periods):
        x = rng.normal(size=(n_assets, 2))
        y = 0.3 + x @ (slope[t] + np.array([0.5, -0.2])) + rng.normal(size=n_assets)
        n_keep = 1 if gap is not None and t == gap else n_assets  # one row: no usable cross-section
        for i in range(n_keep):
            rows.append({"asset": f"a{i:02d}", "period": 2000 + t, "ret": y[i], "x1": x[i, 0], "x2": x[i, 1]})
    return pl.DataFrame(rows)


def _lm_fit(panel: pl.DataFrame, **fit_options):
    data = panel.to_pandas().set_index(["asset", "period"]).sort_index()
    return LMFamaMacBeth(data["ret"], sm.add_constant(data[["x1", "x2"]])).fit(**fit_options)


def _nw(res) -> pl.DataFrame:
    return res.estimates.filter(pl.col("se_type") == "nw")


# ====================================================================== linearmodels
@pytest.mark.parametrize("gap", [None, 37])
@pytest.mark.parametrize("bandwidth", [None, 3])
def test_linearmodels_preset_matches_kernel_covariance(fit, gap, bandwidth):
    panel = ar1_panel(seed=5, gap=gap)
    res = fit(returns=panel, chars=["x1", "x2"], conventions="linearmodels",
              nw_lags="auto" if bandwidth is None else bandwidth)
    lm = _lm_fit(panel, cov_type="kernel", kernel="bartlett", bandwidth=bandwidth)
    got = _nw(res)
    names = ["const", "x1", "x2"]
    assert res.lambdas.height == (79 if gap else 80)
    oracles.assert_close(got["estimate"].to_numpy(), lm.params[names].to_numpy(), label="linearmodels preset",
                         rtol=1e-10, what="estimate")
    oracles.assert_close(got["std_error"].to_numpy(), lm.std_errors[names].to_numpy(),
                         label="linearmodels preset (kernel cov)", rtol=1e-10, what="se")
    oracles.assert_close(got["p_value"].to_numpy(), lm.pvalues[names].to_numpy(), label="linearmodels preset",
                         rtol=1e-9, atol=1e-14, what="p")
    lm_bw = bandwidth
    if bandwidth is None:  # linearmodels' own bandwidth rule, on what FamaMacBethCovariance feeds it
        from linearmodels.iv.covariance import kernel_optimal_bandwidth

        e = lm.all_params.dropna().to_numpy() - lm.params.to_numpy()[None, :]
        lm_bw = kernel_optimal_bandwidth(np.sum(e / e.std(0)[None, :], 1), "bartlett")
    assert got["nw_lags"].to_list() == [lm_bw] * 3
    if bandwidth is None:
        assert lm_bw != oracles.nw_auto_lag(res.lambdas.height)  # the plug-in is not the rule of thumb here


def test_linearmodels_preset_differs_from_fmduck(fit):
    """Guard: the preset changes the numbers (divisor T−1 and the plug-in lag)."""
    panel = ar1_panel(seed=6)
    a = _nw(fit(returns=panel, chars=["x1", "x2"]))["std_error"].to_numpy()
    b = _nw(fit(returns=panel, chars=["x1", "x2"], conventions="linearmodels"))["std_error"].to_numpy()
    assert not np.allclose(a, b, rtol=1e-6)


# ====================================================================== sandwich (R), by hand
def _r_ar_ols(u: np.ndarray) -> tuple[float, np.ndarray]:
    """stats::ar.ols(u, order.max = 1, aic = FALSE, demean = FALSE): rescaled OLS, residuals rescaled back."""
    sc = u.std(ddof=1)
    x = u / sc
    X, Y = x[:-1, None], x[1:]
    a = float(np.linalg.lstsq(X, Y, rcond=None)[0][0])
    return a, (Y - a * x[:-1]) * sc


def _r_bw_newey_west(u: np.ndarray) -> float:
    n = len(u)
    m = math.floor(3 * (n / 100) ** (2 / 9))  # prewhite = 1
    _, umat = _r_ar_ols(u)
    n = n - 1
    sigma = [sum(umat[i] * umat[i + j] for i in range(n - j)) / n for j in range(m + 1)]
    s0 = sigma[0] + 2 * sum(sigma[1:])
    s1 = 2 * sum((j + 1) * s for j, s in enumerate(sigma[1:]))
    return 1.1447 * ((s1 / s0) ** 2) ** (1 / 3) * (n + 1) ** (1 / 3)


def _r_newey_west(u: np.ndarray, lag: int | None = None) -> tuple[float, int]:
    """vcov of the intercept of lm(lambda ~ 1) by sandwich::NeweyWest(fit, lag) with its defaults."""
    n_orig = len(u)
    if lag is None:
        lag = math.floor(_r_bw_newey_west(u))
    weights = [1 - i / (lag + 1) for i in range(lag + 2)]  # seq(1, 0, by = -1/(lag+1))
    a, umat = _r_ar_ols(u)
    n = n_orig - 1
    weights = weights[:n]
    utu = 0.5 * float(umat @ umat) * weights[0]
    for ii in range(2, len(weights) + 1):
        utu += weights[ii - 1] * float(umat[: n - ii + 1] @ umat[ii - 1:])
    utu = utu + utu
    d = 1 / (1 - a)
    meat = d * utu * d / n_orig
    bread = 1.0  # (X'X/n)^-1 for X = 1
    return bread * meat * bread / n_orig, lag


@pytest.mark.parametrize("nw_lags", ["auto", 2])
def test_sandwich_preset_by_hand(fit, nw_lags):
    panel = ar1_panel(seed=8, n_periods=120)
    res = fit(returns=panel, chars=["x1", "x2"], conventions="sandwich", nw_lags=nw_lags)
    lam = res.lambdas.select(["const", "x1", "x2"]).to_numpy()
    got = _nw(res)
    want, lags = [], []
    for j in range(3):
        var, lag = _r_newey_west(lam[:, j] - lam[:, j].mean(), None if nw_lags == "auto" else nw_lags)
        want.append(math.sqrt(var))
        lags.append(lag)
    oracles.assert_close(got["std_error"].to_numpy(), np.array(want), label="sandwich preset by hand", rtol=1e-10,
                         what="se")
    assert got["nw_lags"].to_list() == lags
    t = lam.shape[0]
    oracles.assert_close(got["p_value"].to_numpy(),
                         oracles.t_inference(lam.mean(0), np.array(want), t - 1)["p_value"],
                         label="sandwich preset by hand", rtol=1e-9, what="p")
    # prewhitening matters: the plain T-divisor NW with the same lags differs
    plain = np.array([oracles.nw_se(lam[:, [j]], lags[j], "T")[0] for j in range(3)])
    assert not np.allclose(plain, want, rtol=1e-4)


# ====================================================================== Stata
@pytest.fixture
def grunfeld() -> pl.DataFrame:
    """Stata's ``webuse grunfeld`` (10 firms x 1935-54) = statsmodels' Grunfeld data without American Steel."""
    data = sm.datasets.grunfeld.load_pandas().data
    data = data[data["firm"] != "American Steel"].astype({"year": "int64"})
    return pl.from_pandas(pd.DataFrame({"company": data["firm"].astype(str), "year": data["year"],
                                        "invest": data["invest"], "mvalue": data["value"],
                                        "kstock": data["capital"]}))


def test_stata_preset_published_asreg_printout(fit, grunfeld):
    """``asreg invest mvalue kstock, fmb`` on ``webuse grunfeld`` (published output):
    mvalue .1306047 (Std. Err. .0093422), kstock .0729575 (.0277398), 20 periods, 200 obs.

    Source: A. Shah, "Fama and MacBeth (1973) fastest regression in Stata", fintechprofessor.com,
    2017-12-10 (https://fintechprofessor.com/2017/12/10/fama-and-macbeth-1973-fastest-regression-in-stata/).
    """
    res = fit(returns=grunfeld, asset="company", period="year", ret="invest", chars=["mvalue", "kstock"],
              conventions="stata")
    fm = res.estimates.filter(pl.col("se_type") == "fm")
    row = {r["term"]: r for r in fm.iter_rows(named=True)}
    for term, coef, se in (("mvalue", 0.1306047, 0.0093422), ("kstock", 0.0729575, 0.0277398)):
        assert abs(row[term]["estimate"] - coef) <= 1e-7  # printed to 7 digits
        assert abs(row[term]["std_error"] - se) <= 1e-7
    assert row["mvalue"]["n_periods"] == 20 and row["mvalue"]["df"] == 19
    assert res.run["input_fingerprint"]["pass2_rows"] == 200


def _stata_nw_by_hand(lam: np.ndarray, years: np.ndarray, lag: int) -> np.ndarray:
    """Γ/(T(T−1)) with Γ over calendar lags: L.e is missing across a gap (products dropped)."""
    t = len(lam)
    e = lam - lam.mean(axis=0)
    by_year = {int(y): e[i] for i, y in enumerate(years)}
    gamma = e.T @ e
    for lg in range(1, lag + 1):
        w = 1 - lg / (lag + 1)
        for y, cur in by_year.items():
            prev = by_year.get(y - lg)
            if prev is not None:
                gamma += w * (np.outer(cur, prev) + np.outer(prev, cur))
    return np.sqrt(np.diag(gamma) / (t * (t - 1)))


@pytest.mark.parametrize("gap", [None, 20])
def test_stata_preset_newey_west_by_hand(fit, gap):
    panel = ar1_panel(seed=9, n_periods=60, gap=gap)
    res = fit(returns=panel, chars=["x1", "x2"], conventions="stata", nw_lags=3)
    lam = res.lambdas.select(["const", "x1", "x2"]).to_numpy()
    years = res.lambdas["period"].cast(pl.Int64).to_numpy()
    want = _stata_nw_by_hand(lam, years, 3)
    oracles.assert_close(_nw(res)["std_error"].to_numpy(), want, label="stata preset NW by hand", rtol=1e-10,
                         what="se")
    if gap is not None:  # the calendar rule differs from counting over estimated periods
        compress = oracles.nw_se(lam, 3, "T-1")
        assert not np.allclose(compress, want, rtol=1e-6)


# ====================================================================== notes and errors
def test_preset_is_stated(fit):
    res = fit(returns=ar1_panel(seed=10, n_periods=30), chars=["x1", "x2"], conventions="linearmodels")
    assert "Conventions preset: linearmodels" in res.summary
    assert all(c.startswith("[linearmodels] ") for c in res.estimates["convention"].to_list())
    default = fit(returns=ar1_panel(seed=10, n_periods=30), chars=["x1", "x2"])
    assert "Conventions preset: fmduck" in default.summary


def test_bad_preset_values():
    from fmduck import Spec

    with pytest.raises(SpecError, match="conventions.* must be one of fmduck, stata, linearmodels, sandwich, got "
                                        ".eviews."):
        Spec(name="x", returns="t", chars=["a"], conventions="eviews")
    with pytest.raises(SpecError, match="conflicts with the 'sandwich' preset"):
        Spec(name="x", returns="t", chars=["a"], conventions="sandwich", nw_divisor="T-1")


def test_sandwich_bandwidth_by_hand():
    """The unfloored bwNeweyWest value, so a change in the rule shows even where ⌊·⌋ would hide it."""
    from fmduck.conventions import sandwich_bandwidth

    rng = np.random.default_rng(3)
    for n in (40, 120, 333):
        u = np.convolve(rng.normal(size=n + 3), [1.0, 0.7, 0.4, 0.2], mode="valid")
        e = u - u.mean()
        oracles.assert_close(sandwich_bandwidth(e), _r_bw_newey_west(e), label="sandwich bwNeweyWest by hand",
                             rtol=1e-10)
