"""Checks shared by tests/test_real_data.py: the CLI in-process, stored runs against the CRSP oracle
(tests/oracle_crsp.py) at 1e-10, stored periods as calendar months, and coverage counts in
``fmduck.skipped``."""

from __future__ import annotations

import contextlib
import io
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd

import oracles
from oracle_crsp import OracleFM

RTOL = 1e-10  # relative; plus RTOL x the column's median |value| absolute, for values that cross zero


def cli(*args: str) -> SimpleNamespace:
    """``fmduck.cli.main`` in-process: exit code, stdout, stderr (argparse's SystemExit included)."""
    from fmduck.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
    return SimpleNamespace(code=code, out=out.getvalue(), err=err.getvalue())



def close(actual, expected, *, label: str, what: str = "", rtol: float = RTOL) -> None:
    """Relative ``rtol``, and ``rtol`` x the median |expected| absolute: an intercept or λ_t near zero
    is compared on the scale of its column (cancellation makes its own relative error meaningless)."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.median(np.abs(expected[np.isfinite(expected)]))) if expected.size else 0.0
    oracles.assert_close(actual, expected, label=label, what=what, rtol=rtol, atol=rtol * scale)


def months(values) -> pd.PeriodIndex:
    """Stored periods ('YYYY-MM-DD', 'YYYYMM', dates ...) -> calendar months."""
    values = pd.Series(values).astype(str)
    digits = {v: re.sub(r"\D", "", v)[:6] for v in values.unique()}
    of = {v: pd.Period(year=int(d[:4]), month=int(d[4:6]), freq="M") for v, d in digits.items()}
    return pd.PeriodIndex(values.map(of))


def compare_run(res, oracle: OracleFM, label: str) -> None:
    """Estimates (every SE type of the oracle), λ_t per month, N_t, R²_t and the first pass: 1e-10."""
    est = res.estimates.to_pandas().set_index(["term", "se_type"])
    want = oracle.estimates.set_index(["term", "se_type"])
    missing = sorted(set(want.index) - set(est.index))
    assert not missing, f"{label}: fmduck has no {missing}"
    for col in ("estimate", "std_error"):
        close(est.loc[want.index, col].to_numpy(), want[col].to_numpy(), label=label, what=col)
    lam = res.lambdas.to_pandas()
    lam.index = months(lam["period"])
    assert list(lam.index) == list(oracle.lambdas.index), f"{label}: the months with a λ_t differ"
    assert (lam["n"].to_numpy() == oracle.lambdas["n"].to_numpy()).all(), f"{label}: N_t differ"
    for col in [*oracle.terms, "r2"]:
        close(lam[col].to_numpy(), oracle.lambdas[col].to_numpy(), label=label, what=f"lambda {col}")
    if oracle.first_pass.empty:
        return
    rolling = oracle.first_pass["month"].notna().any()
    base = oracle.first_pass.dropna(subset=["const"])
    want = pd.concat([base[["permno", "month", "nobs"]].assign(term=t, estimate=base[t], std_error=base.get(f"se_{t}"))
                      for t in oracle.terms])
    want["asset"] = want["permno"].astype(str)
    got = res.first_pass.to_pandas()
    keys = ["asset", "term", "month"] if rolling else ["asset", "term"]
    if rolling:
        got["month"] = months(got["period"])
    both = want.merge(got[[*keys, "estimate", "std_error", "nobs"]], on=keys, how="outer", suffixes=("", "_fmduck"),
                      indicator=True)
    assert (both["_merge"] == "both").all(), (
        f"{label}: first-pass regressions differ: {both[both['_merge'] != 'both'].head()}")
    assert (both["nobs"] == both["nobs_fmduck"]).all(), f"{label}: first-pass nobs differ"
    cols = ["estimate"] if rolling else ["estimate", "std_error"]
    for col in cols:
        close(both[f"{col}_fmduck"].to_numpy(), both[col].to_numpy(np.float64), label=label, what=f"first pass {col}")


WINDOWS_REASON = "first-pass windows with fewer than"


def skipped_count(res, keyword: str, *, first_pass: bool = False) -> int:
    """Rows left out under reasons containing ``keyword``: pass-1 regressions are counted one per row (an
    aggregate row without an asset by its nobs); coverage rows by their ``nobs`` or one per row when NULL."""
    sk = res.skipped.to_pandas()
    windows = sk["reason"].str.startswith(WINDOWS_REASON)  # pass 'coverage', nobs = a count of windows
    sk = sk[((sk["pass"] == "first_pass") | windows) == first_pass]
    sk = sk[sk["reason"].str.contains(keyword, case=False, regex=False)]
    if first_pass:  # one row per regression, or one aggregate row (no asset) carrying the count in nobs
        return int(sk["asset"].notna().sum() + sk.loc[sk["asset"].isna(), "nobs"].fillna(0).sum())
    return int(sk["nobs"].fillna(1).sum())
