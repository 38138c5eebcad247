"""The peers as a user runs them: one process that reads the bench panel's Parquet files, estimates
and writes its estimates as JSON. ``bench.process`` times the whole process (interpreter start,
imports, reading, estimation, writing), as it times ``fmduck run``.

    python -m bench.peers rolling SIZE OUT.json     statsmodels RollingOLS on every asset, then
                                                    linearmodels FamaMacBeth (kernel and unadjusted)
    python -m bench.peers chars-linearmodels SIZE OUT.json
    python -m bench.peers chars-byu SIZE OUT.json   finance-byu fama_macbeth_numba (FM standard errors;
                                                    it has no Newey-West)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data import CHARS, FACTORS, SIZES, Size


def _linearmodels(frame: pd.DataFrame, y: str, xs: list[str], lags: int) -> dict[str, list[float]]:
    from linearmodels import FamaMacBeth

    frame = frame.set_index(["asset", "pidx"])
    exog = frame[xs].copy()
    exog.insert(0, "const", 1.0)
    model = FamaMacBeth(frame[y], exog)
    kernel = model.fit(cov_type="kernel", kernel="bartlett", bandwidth=lags)
    plain = model.fit()
    return {"estimate": kernel.params.tolist(), "nw": kernel.std_errors.tolist(), "fm": plain.std_errors.tolist()}


def rolling(size: Size) -> dict[str, list[float]]:
    """statsmodels RollingOLS per asset on its own calendar span (gaps as missing rows, windows of
    ``size.window`` calendar periods, at least ``size.min_obs`` observations), betas lagged one
    period, then linearmodels FamaMacBeth on the cross sections."""
    from statsmodels.regression.rolling import RollingOLS

    returns = pd.read_parquet(size.returns_path, columns=["asset", "period", "ret"])
    factors = pd.read_parquet(size.factors_path).sort_values("period")
    periods = factors["period"].to_numpy()
    fx = factors[FACTORS].to_numpy()
    parts = []
    for asset, g in returns.groupby("asset", sort=True):
        pos = np.searchsorted(periods, g["period"].to_numpy())
        lo, hi = pos.min(), pos.max()
        y = np.full(hi - lo + 1, np.nan)
        y[pos - lo] = g["ret"].to_numpy()
        x = np.column_stack([np.ones(hi - lo + 1), fx[lo:hi + 1]])
        params = RollingOLS(y, x, window=size.window, min_nobs=size.min_obs, missing="drop",
                            expanding=True).fit(params_only=True).params
        keep = ~np.isnan(y) & ~np.isnan(params[:, 1])
        pidx = np.arange(lo, hi + 1)[keep] + 1
        parts.append(pd.DataFrame({"asset": asset, "bpidx": pidx, **{f"b{j}": params[keep, j + 1] for j in range(3)}}))
    betas = pd.concat(parts, ignore_index=True)
    calendar = pd.DataFrame({"period": periods, "pidx": np.arange(1, len(periods) + 1)})
    panel = returns.merge(calendar, on="period")
    panel["bpidx"] = panel["pidx"] - 1
    panel = panel.merge(betas, on=["asset", "bpidx"])
    return _linearmodels(panel, "ret", ["b0", "b1", "b2"], size.nw_lags)


def _chars_panel(size: Size) -> pd.DataFrame:
    frame = pd.read_parquet(size.returns_path, columns=["asset", "period", "ret", *CHARS]).dropna()
    return frame.rename(columns={"period": "pidx"})


def chars_linearmodels(size: Size) -> dict[str, list[float]]:
    return _linearmodels(_chars_panel(size), "ret", CHARS, size.nw_lags)


def chars_byu(size: Size) -> dict[str, list[float]]:
    from finance_byu.fama_macbeth import fama_macbeth_numba, fm_summary

    frame = _chars_panel(size).sort_values("pidx")
    summary = fm_summary(fama_macbeth_numba(frame, "pidx", "ret", CHARS, intercept=True))
    return {"estimate": summary["mean"].tolist(), "fm": summary["std_error"].tolist()}


PEERS = {"rolling": rolling, "chars-linearmodels": chars_linearmodels, "chars-byu": chars_byu}


def main(argv: list[str]) -> None:
    peer, size, out = argv
    started = time.perf_counter()
    result = PEERS[peer](SIZES[size])
    # the estimation alone (reading the Parquet files included), for the fit-to-fit comparison
    result["in_process_s"] = time.perf_counter() - started
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
