"""Reports of many assets (issue 19): a 2,000-asset rolling run renders into a small HTML and a short
LaTeX document, with distributions instead of per-asset tables and plots.

The run is built by fmduck itself on a seeded synthetic panel (2,000 assets x 120 months, factors
with known betas, window 60) in a temporary DuckDB file. Oracles: plain SQL on the stored tables
(AVG per asset, DuckDB's quantile_cont per period, ORDER BY |alpha|) and numpy quantiles; pdflatex
and pdfinfo for the page count; headless Chromium for the page.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from fmduck.formatting import fmt

N_ASSETS, N_MONTHS, WINDOW = 2000, 120, 60
RUN = "stocks"
PDFLATEX = shutil.which("pdflatex")
PDFINFO = shutil.which("pdfinfo")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def stock_db(tmp_path_factory) -> Path:
    from fmduck import FamaMacBeth, Spec

    rng = np.random.default_rng(20240601)
    f = rng.normal(0.005, 0.04, size=(N_MONTHS, 3))
    beta = rng.normal(1.0, 0.4, size=(N_ASSETS, 3))
    alpha = rng.normal(0.0, 0.002, size=N_ASSETS)
    r = alpha[:, None] + beta @ f.T + rng.normal(0.0, 0.08, size=(N_ASSETS, N_MONTHS))
    assets = [f"P{i:05d}" for i in range(N_ASSETS)]
    panel = pl.DataFrame({"asset": np.repeat(assets, N_MONTHS), "period": np.tile(np.arange(N_MONTHS), N_ASSETS),
                          "ret": r.ravel()})
    factors = pl.DataFrame({"period": np.arange(N_MONTHS), "mkt": f[:, 0], "smb": f[:, 1], "hml": f[:, 2]})
    path = tmp_path_factory.mktemp("stocks") / "stocks.duckdb"
    con = duckdb.connect(str(path))
    con.register("panel_frame", panel.to_arrow())
    con.register("factor_frame", factors.to_arrow())
    con.execute("CREATE TABLE panel AS SELECT * FROM panel_frame")
    con.execute("CREATE TABLE factors AS SELECT * FROM factor_frame")
    FamaMacBeth(Spec(name=RUN, returns="panel", factors="factors", factor_cols=["mkt", "smb", "hml"],
                     window=WINDOW, min_obs=36), con).fit()
    con.close()
    return path


def sql(db: Path, query: str) -> pl.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql(query).pl()
    finally:
        con.close()


class Tables(HTMLParser):
    """Rows (cell texts) of every <table> with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._id: str | None = None
        self._row: list[str] | None = None
        self._cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._id = attrs.get("id") or f"table-{len(self.tables)}"
            self.tables[self._id] = []
        if tag == "tr" and self._id:
            self._row = []
        if tag in ("td", "th") and self._row is not None:
            self._row.append("")
            self._cell = True

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cell = False
        if tag == "tr" and self._row is not None and self._id:
            self.tables[self._id].append(self._row)
            self._row = None
        if tag == "table":
            self._id = None

    def handle_data(self, data):
        if self._cell and self._row is not None:
            self._row[-1] += data


@pytest.fixture(scope="module")
def rendered(stock_db, tmp_path_factory):
    from fmduck.report import report

    folder = tmp_path_factory.mktemp("stock_report")
    out = {}
    for fmt_name in ("html", "tex"):
        start = time.perf_counter()
        result = report(stock_db, [RUN], fmt_name, folder / f"stocks.{fmt_name}", se_type="nw")
        out[fmt_name] = (result, time.perf_counter() - start)
    return out


def test_html_is_small_and_fast(rendered):
    result, seconds = rendered["html"]
    assert seconds <= 10, seconds
    size = result.output.stat().st_size
    assert size <= 1_000_000, size
    html = result.output.read_text(encoding="utf-8")
    # no per-asset table or labels: the asset ids appear only in the largest-|alpha| table (10 rows)
    ids = set(re.findall(r"P\d{5}", html))
    assert 0 < len(ids) <= 10
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.DOTALL)
    assert len(svgs) == 5 and not any(re.search(r"P\d{5}", s) for s in svgs)


@pytest.mark.skipif(PDFLATEX is None or PDFINFO is None, reason="pdflatex/pdfinfo not installed")
def test_tex_compiles_to_at_most_six_pages(rendered):
    result, seconds = rendered["tex"]
    assert seconds <= 10, seconds
    tex = result.output
    done = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", tex.name], cwd=tex.parent,
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    info = subprocess.run([PDFINFO, str(tex.with_suffix(".pdf"))], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert pages <= 6, pages


def per_asset_oracle(db: Path) -> pl.DataFrame:
    """Per asset and term: the average of the stored rolling estimates and t-statistics (SQL)."""
    return sql(db, f"SELECT asset, term, AVG(estimate) AS b, AVG(t_stat) AS t, COUNT(*) AS windows "
                   f"FROM fmduck.first_pass WHERE run_name = '{RUN}' GROUP BY asset, term ORDER BY asset, term")


def test_csv_next_to_report_equals_sql_averages(rendered, stock_db):
    result, _ = rendered["html"]
    (csv,) = [p for p in result.files if p.suffix == ".csv"]
    assert csv.parent == result.output.parent / "stocks_files"
    table = pl.read_csv(csv)
    assert table.height == N_ASSETS and table["asset"].to_list() == sorted(table["asset"].to_list())
    oracle = per_asset_oracle(stock_db)
    for term in ("const", "mkt", "smb", "hml"):
        want = oracle.filter(pl.col("term") == term).sort("asset")
        np.testing.assert_allclose(table[f"b_{term}"].to_numpy(), want["b"].to_numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(table[f"t_{term}"].to_numpy(), want["t"].to_numpy(), rtol=1e-12, atol=1e-15)
    assert table["windows"].to_list() == oracle.filter(pl.col("term") == "mkt").sort("asset")["windows"].to_list()
    pe = sql(stock_db, f"SELECT asset, alpha, t_stat FROM fmduck.pricing_errors WHERE run_name = '{RUN}' "
                       "ORDER BY asset")
    np.testing.assert_allclose(table["pe_alpha"].to_numpy(), pe["alpha"].to_numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(table["pe_t"].to_numpy(), pe["t_stat"].to_numpy(), rtol=1e-12, atol=1e-15)


def test_summary_table_and_largest_alphas_equal_oracles(rendered, stock_db):
    result, _ = rendered["html"]
    tables = Tables()
    tables.feed(result.output.read_text(encoding="utf-8"))
    summary = tables.tables["first-pass-summary-1"]
    header, rows = summary[0], {row[0]: row[1:] for row in summary[1:]}
    assert header[2:] == ["mean", "sd", "min", "5%", "25%", "median", "75%", "95%", "max"]
    oracle = per_asset_oracle(stock_db)
    for term, label in (("const", "α"), ("mkt", "β mkt"), ("hml", "β hml")):
        v = oracle.filter(pl.col("term") == term)["b"].to_numpy()
        expected = [v.mean(), v.std(ddof=1), v.min(), *np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95]), v.max()]
        assert rows[label] == [fmt(N_ASSETS), *[fmt(float(x), 4) for x in expected]], label
    top = sql(stock_db, f"SELECT asset, alpha, t_stat FROM fmduck.pricing_errors WHERE run_name = '{RUN}' "
                        "ORDER BY abs(alpha) DESC, asset LIMIT 10")
    (shown,) = [t for t in tables.tables.values() if t and t[0] == ["asset", "α", "t"]]
    assert shown[1:] == [[a, fmt(x, 4), fmt(t, 2)] for a, x, t in top.iter_rows()]


def test_rolling_quantiles_and_sml_groups_equal_oracles(stock_db):
    from fmduck import plots
    from fmduck.report import assets, load_runs, loading
    from fmduck.store_aggregates import StoredFirstPass

    (run,) = load_runs(stock_db, [RUN])
    got = assets.period_quantiles(run, ["mkt"]).sort("period_index")
    want = sql(stock_db, f"SELECT period_index, quantile_cont(estimate, 0.05) AS q05, quantile_cont(estimate, 0.5) "
                         f"AS q50, quantile_cont(estimate, 0.95) AS q95, COUNT(*) AS n FROM fmduck.first_pass "
                         f"WHERE run_name = '{RUN}' AND term = 'mkt' GROUP BY 1 ORDER BY 1")
    assert got["period_index"].to_list() == want["period_index"].to_list()
    for col in ("q05", "q50", "q95"):
        np.testing.assert_allclose(got[col].to_numpy(), want[col].to_numpy(), rtol=1e-12)
    assert got["n"].to_list() == want["n"].to_list()
    # the same from SQL on the results engine (what a report of a stored run uses)
    engine = loading.open_results(stock_db)
    stored = assets.FirstPass(run, StoredFirstPass(engine, RUN)).period_quantiles(["mkt"])
    assert stored["period_index"].to_list() == want["period_index"].to_list()
    assert stored["n"].to_list() == want["n"].to_list()
    for col in ("q05", "q50", "q95"):
        np.testing.assert_allclose(stored[col].to_numpy(), want[col].to_numpy(), rtol=1e-12)
    fig = plots.quantile_bands_figure(got, ["mkt"], {}, RUN)
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), want["q50"].to_numpy())

    # SML groups: assets sorted by predicted λ̄'β_i (SQL averages of the rolling betas), 20 equal groups
    lam = dict(sql(stock_db, f"SELECT term, estimate FROM fmduck.estimates WHERE run_name = '{RUN}' "
                             "AND se_type = 'fm'").iter_rows())
    betas = per_asset_oracle(stock_db).pivot(on="term", index="asset", values="b").sort("asset")
    alpha = sql(stock_db, f"SELECT asset, alpha FROM fmduck.pricing_errors WHERE run_name = '{RUN}' ORDER BY asset")
    predicted = lam["const"] + sum(betas[t].to_numpy() * lam[t] for t in ("mkt", "smb", "hml"))
    average = predicted + alpha["alpha"].to_numpy()
    order = np.lexsort((betas["asset"].to_numpy(), predicted))
    groups = assets.sml_groups(plots.sml_points(run), 20)
    assert groups["n"].to_list() == [100] * 20
    for k, idx in enumerate(np.array_split(order, 20)):
        np.testing.assert_allclose(groups["predicted"][k], predicted[idx].mean(), rtol=1e-10)
        np.testing.assert_allclose(groups["average"][k], average[idx].mean(), rtol=1e-10)
        np.testing.assert_allclose(groups["q25"][k], np.quantile(average[idx], 0.25), rtol=1e-10)


def test_report_never_reads_the_long_first_pass(rendered, stock_db, tmp_path, monkeypatch):
    """The first-pass aggregates come from SQL (fmduck.store_aggregates): reading the long first pass fails here."""
    from fmduck.report import report
    from fmduck.results import FamaMacBethResults

    def refuse(*_args, **_kwargs):
        raise AssertionError("the report read the long first pass into Python")

    monkeypatch.setattr(FamaMacBethResults, "first_pass", property(refuse))
    monkeypatch.setattr(FamaMacBethResults, "first_pass_pieces", refuse)
    result = report(stock_db, [RUN], "html", tmp_path / "stocks.html", se_type="nw")
    (csv,) = [p for p in result.files if p.suffix == ".csv"]
    (before,) = [p for p in rendered["html"][0].files if p.suffix == ".csv"]
    assert csv.read_bytes() == before.read_bytes()
    small = report(stock_db, [RUN], "txt", tmp_path / "full.txt", asset_limit=5000, sections="first-pass")
    assert len(set(re.findall(r"P\d{5}", small.output.read_text(encoding="utf-8")))) == N_ASSETS


def test_asset_limit_switches_layout(stock_db, tmp_path):
    from fmduck.report import report

    # the same run with a limit above its size: per-asset table, bars, labelled points (the portfolio layout)
    result = report(stock_db, [RUN], "html", tmp_path / "full.html", asset_limit=5000, sections="first-pass")
    html = result.output.read_text(encoding="utf-8")
    assert len(set(re.findall(r"P\d{5}", html))) == N_ASSETS
    assert not any(p.suffix == ".csv" for p in result.files)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_stock_report_renders_in_chromium(rendered, tmp_path):
    result, _ = rendered["html"]
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'p'}",
         "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "--window-size=900,2000", "--hide-scrollbars",
         result.output.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
