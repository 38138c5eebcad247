"""The demo: bundled Ken French monthly data, three-factor Fama-MacBeth, full-sample and rolling betas."""

from __future__ import annotations

from pathlib import Path

from fmduck import load as loader
from fmduck.engine import DuckDBEngine
from fmduck.model import FamaMacBeth, Progress
from fmduck.results import FamaMacBethResults
from fmduck.spec import Spec
from fmduck.templates import template_dirs

PORTFOLIOS = "ff_portfolios_monthly.csv"
FACTORS = "ff_factors_monthly.csv"
FACTOR_COLUMNS = ["MktRF", "SMB", "HML", "Mom", "RF"]  # in percent, as the portfolios


def data_dir() -> Path:
    """The bundled data folder (repo ``data/`` or the packaged copy)."""
    for folder in template_dirs("data"):
        if (folder / PORTFOLIOS).exists():
            return folder
    raise FileNotFoundError("bundled data not found (data/ff_portfolios_monthly.csv)")


def demo_specs() -> list[Spec]:
    common = dict(returns="ff_portfolios", asset="asset", period="period", ret="ret", rf="RF",
                  factors="ff_factors", factor_cols=["MktRF", "SMB", "HML"], replace=True)
    return [
        Spec(name="ff3", **common),
        Spec(name="ff3_rolling", window=60, min_obs=36, beta_lag=1, **common),
    ]


def run_demo(path: str | Path = "fmduck-demo.duckdb", progress: Progress | None = None) -> list[FamaMacBethResults]:
    """Load the bundled data into ``path`` and run the demo specifications."""
    engine = DuckDBEngine(path)
    folder = data_dir()
    loader.load(engine, folder / PORTFOLIOS, "ff_portfolios", wide=True, unit="percent", replace=True)
    loader.load(engine, folder / FACTORS, "ff_factors", unit="percent", percent_cols=FACTOR_COLUMNS, replace=True)
    out = [FamaMacBeth(spec, engine).fit(progress=progress) for spec in demo_specs()]
    engine.close()
    return out
