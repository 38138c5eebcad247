"""fmduck.krs_compare (KRS 2013 tests of equal R²) against tests/oracle_krs_compare.py on Ken French data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import oracle_krs_compare as oracle
from fmduck import krs, krs_compare
from fmduck.errors import InputError, SpecError
from oracles import MAX_REL_ERR

DATA = Path(__file__).resolve().parent.parent / "data"
NESTED_ROWS = ["r2_diff", "r2_equal", "wald_extra"]
NON_NESTED_ROWS = ["r2_diff", "sdf_equal", "r2_equal_sdf", "both_correct", "r2_equal_both_correct", "r2_equal_normal"]


@pytest.fixture(scope="module")
def ff():
    ports = pd.read_csv(DATA / "ff_portfolios_monthly.csv", index_col=0)
    facs = pd.read_csv(DATA / "ff_factors_monthly.csv", index_col=0)
    return ports.to_numpy() - facs[["RF"]].to_numpy(), facs


def _run(ff, a, b, **options):
    R, facs = ff
    rows = krs_compare.compare(R, facs[a].to_numpy(), a, facs[b].to_numpy(), b, **options)
    return {r["test"]: r for r in rows}, [r["test"] for r in rows]


def _check(rows, expected):
    for name, value in expected.items():
        stat, p = value if isinstance(value, tuple) else (value, None)
        err = abs(rows[name]["statistic"] - stat) / abs(stat)
        MAX_REL_ERR["krs_compare vs oracle (relative)"] = max(MAX_REL_ERR["krs_compare vs oracle (relative)"], err)
        assert err <= 1e-10, (name, rows[name]["statistic"], stat)
        if p is not None:
            perr = abs(rows[name]["p_value"] - p)
            MAX_REL_ERR["krs_compare p-values vs oracle (absolute)"] = max(
                MAX_REL_ERR["krs_compare p-values vs oracle (absolute)"], perr)
            assert perr <= 1e-6, (name, rows[name]["p_value"], p)


NESTED = [(["MktRF", "SMB", "HML"], ["MktRF"]), (["MktRF"], ["MktRF", "SMB", "HML", "Mom"])]


@pytest.mark.parametrize("weighting", ["ols", "gls"])
@pytest.mark.parametrize("lags", [0, 6])
@pytest.mark.parametrize("a,b", NESTED)
def test_nested_against_oracle(ff, a, b, weighting, lags):
    rows, order = _run(ff, a, b, weighting=weighting, lags=lags)
    assert order == NESTED_ROWS
    small, large = (b, a) if len(a) > len(b) else (a, b)
    R, facs = ff
    extra = [f for f in large if f not in small]
    ora = oracle.nested(R, facs[small].to_numpy(), facs[extra].to_numpy(), weighting, True, lags)
    sign = 1.0 if large is a else -1.0
    _check(rows, {"r2_diff": sign * ora["r2_diff"], "r2_equal": ora["r2_equal"], "wald_extra": ora["wald_extra"]})
    assert rows["wald_extra"]["df1"] == len(extra)
    # r2_diff is R²_A − R²_B of the two single-model fits
    r2 = [krs.fit(R, facs[m].to_numpy(), weighting=weighting).r2 for m in (a, b)]
    assert rows["r2_diff"]["statistic"] == pytest.approx(r2[0] - r2[1], rel=1e-12)


NON_NESTED = [(["MktRF", "SMB", "HML"], ["MktRF", "Mom"]), (["MktRF", "SMB"], ["MktRF", "HML"]),
              (["SMB", "HML"], ["MktRF", "Mom"])]


@pytest.mark.parametrize("weighting", ["ols", "gls"])
@pytest.mark.parametrize("lags", [0, 6])
@pytest.mark.parametrize("a,b", NON_NESTED)
def test_non_nested_against_oracle(ff, a, b, weighting, lags):
    rows, order = _run(ff, a, b, weighting=weighting, lags=lags)
    assert order == NON_NESTED_ROWS
    R, facs = ff
    shared = [f for f in a if f in b]
    F1 = facs[shared].to_numpy() if shared else np.empty((R.shape[0], 0))
    ora = oracle.non_nested(R, F1, facs[[f for f in a if f not in b]].to_numpy(),
                            facs[[f for f in b if f not in a]].to_numpy(), weighting, True, lags)
    _check(rows, {k: ora[k] for k in NON_NESTED_ROWS})
    assert rows["r2_diff"]["std_error"] == pytest.approx(ora["se"], rel=1e-10)
    assert rows["sdf_equal"]["df1"] == len(set(a) ^ set(b))


@pytest.mark.parametrize("a,b", [(["MktRF", "SMB", "HML"], ["MktRF"]), (["MktRF", "SMB"], ["MktRF", "HML"])])
def test_without_intercept_against_oracle(ff, a, b):
    rows, _ = _run(ff, a, b, weighting="gls", intercept=False, lags=3)
    R, facs = ff
    if set(b) < set(a):
        ora = oracle.nested(R, facs[b].to_numpy(), facs[[f for f in a if f not in b]].to_numpy(), "gls", False, 3)
        _check(rows, {k: ora[k] for k in NESTED_ROWS})
    else:
        ora = oracle.non_nested(R, facs[["MktRF"]].to_numpy(), facs[["SMB"]].to_numpy(), facs[["HML"]].to_numpy(),
                                "gls", False, 3)
        _check(rows, {k: ora[k] for k in NON_NESTED_ROWS})


def test_factor_order_and_model_order(ff):
    """Reordering factors changes nothing; swapping A and B flips r2_diff and keeps the p-values."""
    base, _ = _run(ff, ["MktRF", "SMB", "HML"], ["MktRF"], lags=2)
    perm, _ = _run(ff, ["HML", "MktRF", "SMB"], ["MktRF"], lags=2)
    swap, _ = _run(ff, ["MktRF"], ["SMB", "MktRF", "HML"], lags=2)
    for name in NESTED_ROWS:
        assert perm[name]["statistic"] == pytest.approx(base[name]["statistic"], rel=1e-10)
    assert swap["r2_diff"]["statistic"] == pytest.approx(-base["r2_diff"]["statistic"], rel=1e-10)
    for name in ("r2_equal", "wald_extra"):
        assert swap[name]["p_value"] == pytest.approx(base[name]["p_value"], abs=1e-12)
    nn, _ = _run(ff, ["MktRF", "SMB"], ["MktRF", "HML"], weighting="gls")
    nn_swap, _ = _run(ff, ["HML", "MktRF"], ["SMB", "MktRF"], weighting="gls")
    assert nn_swap["r2_diff"]["statistic"] == pytest.approx(-nn["r2_diff"]["statistic"], rel=1e-10)
    for name in ("sdf_equal", "r2_equal_sdf", "both_correct", "r2_equal_both_correct", "r2_equal_normal"):
        assert nn_swap[name]["p_value"] == pytest.approx(nn[name]["p_value"], abs=1e-9)


def test_refusals(ff):
    R, facs = ff
    F = facs[["MktRF", "SMB"]].to_numpy()
    with pytest.raises(SpecError, match="WLS"):
        krs_compare.compare(R, F, ["MktRF", "SMB"], F[:, :1], ["MktRF"], weighting="wls")
    with pytest.raises(SpecError, match="same factors"):
        krs_compare.compare(R, F, ["MktRF", "SMB"], F[:, ::-1], ["SMB", "MktRF"])
    with pytest.raises(InputError, match="'MktRF' has different values"):
        krs_compare.compare(R, F, ["MktRF", "SMB"], F[:, :1] + 1.0, ["MktRF"])
    with pytest.raises(SpecError, match="one distinct name per factor column"):
        krs_compare.compare(R, F, ["MktRF"], F[:, :1], ["MktRF"])
