"""`fmduck report`: HTML / LaTeX / text rendered from the stored result tables of the demo database.

Oracles: the numbers are read back from fmduck.estimates / fmduck.lambdas with plain SQL (not through
load_run), the average excess returns of the security-market-line picture are recomputed with pandas
from the input tables, the LaTeX is compiled by pdflatex and read back by pdftotext, and the HTML is
rendered by headless Chromium and parsed from its DOM.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import numpy as np
import pytest

from fmduck.formatting import fmt

ROOT = Path(__file__).resolve().parent.parent
RUNS = ["ff3", "ff3_rolling"]
LABELS = {"MktRF": "β_MKT", "SMB": "β_SMB", "HML": "β_HML"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PDFLATEX = shutil.which("pdflatex")
PDFTOTEXT = shutil.which("pdftotext")


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    from fmduck.demo import run_demo

    path = tmp_path_factory.mktemp("report_db") / "demo.duckdb"
    run_demo(path)
    return path


@pytest.fixture(scope="module")
def html_report(demo_db, tmp_path_factory):
    from fmduck.report import report

    out = tmp_path_factory.mktemp("report_html") / "report.html"
    result = report(demo_db, RUNS, "html", out, se_type="nw", labels=LABELS)
    return result


def sql(db: Path, query: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


def stored_estimates(db: Path, se_type: str) -> dict[tuple[str, str], tuple[float, float, float, float]]:
    rows = sql(db, "SELECT run_name, term, estimate, std_error, t_stat, p_value FROM fmduck.estimates "
                   "WHERE se_type = ?", [se_type])
    return {(r[0], r[1]): r[2:] for r in rows}


def run_main(capsys, *args: str) -> tuple[int, str]:
    """``fmduck.cli.main`` in-process (what ``python -m fmduck`` calls): exit code and stderr."""
    from fmduck.cli import main

    code = main(list(args))
    return code, capsys.readouterr().err


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "fmduck", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120, check=False)


class Cells(HTMLParser):
    """Collect <td data-*> cells of the main table and the rows of the λ_t tables."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str]] = []
        self.lambda_rows: list[list[str]] = []
        self._cell: dict[str, str] | None = None
        self._in_lambdas = 0
        self._row: list[str] | None = None
        self._td = False
        self.svgs = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "svg":
            self.svgs += 1
        if tag == "table" and "lambdas" in (attrs.get("class") or ""):
            self._in_lambdas += 1
        if tag == "tr" and self._in_lambdas:
            self._row = []
        if tag == "td":
            self._td = True
            if self._row is not None:
                self._row.append("")
            if "data-value" in attrs:
                self._cell = {**attrs, "text": ""}

    def handle_endtag(self, tag):
        if tag == "td":
            self._td = False
            if self._cell is not None:
                self.cells.append(self._cell)
                self._cell = None
        if tag == "tr" and self._row is not None:
            if self._row:
                self.lambda_rows.append(self._row)
            self._row = None
        if tag == "table" and self._in_lambdas:
            self._in_lambdas -= 1

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        if self._td and self._row is not None:
            self._row[-1] += data


def parse(html: str) -> Cells:
    parser = Cells()
    parser.feed(html)
    return parser


# ---------------------------------------------------------------- HTML
def check_main_table(html: str, db: Path, se_type: str) -> None:
    """Every estimate and t-stat in the page equals fmduck.estimates (exactly in data-value, as text via fmt)."""
    stored = stored_estimates(db, se_type)
    cells = parse(html).cells
    seen = set()
    for cell in cells:
        key = (cell["data-run"], cell["data-term"])
        estimate, _std_error, t_stat, p_value = stored[key]
        if cell["data-kind"] == "estimate":
            assert float(cell["data-value"]) == estimate
            assert cell["text"] == fmt(estimate, 4, p_value=p_value)
            number = float(cell["text"].rstrip("*"))
            assert abs(number - estimate) <= 0.5e-4 + 1e-15
            expected_stars = 3 if p_value < 0.01 else 2 if p_value < 0.05 else 1 if p_value < 0.10 else 0
            assert cell["text"].count("*") == expected_stars
        else:
            assert cell["data-kind"] == "t_stat"
            assert float(cell["data-value"]) == t_stat
            assert cell["text"] == f"({t_stat:.2f})"
        seen.add((*key, cell["data-kind"]))
    assert seen == {(*key, kind) for key in stored for kind in ("estimate", "t_stat")}


def test_html_numbers_equal_stored_estimates(html_report, demo_db):
    html = html_report.output.read_text(encoding="utf-8")
    check_main_table(html, demo_db, "nw")
    # footer rows from fmduck.runs
    for name, n_periods in sql(demo_db, "SELECT run_name, n_periods FROM fmduck.runs"):
        assert f">{n_periods:,}<" in html or f">{n_periods}<" in html, name
    assert "Newey-West (L=6)" in html


def test_html_lambda_table_equals_stored_lambdas(html_report, demo_db):
    html = html_report.output.read_text(encoding="utf-8")
    rows = parse(html).lambda_rows
    stored = sql(demo_db, "SELECT period, term, estimate FROM fmduck.lambdas WHERE run_name = 'ff3'")
    terms = ["const", "MktRF", "SMB", "HML"]
    by_period: dict[str, dict[str, float]] = {}
    for period, term, estimate in stored:
        by_period.setdefault(period, {})[term] = estimate
    ff3_rows = rows[: len(by_period)]  # the first run's table comes first
    assert len(ff3_rows) == len(by_period) == 819
    for row in ff3_rows:
        period, *cells = row
        assert cells[:4] == [fmt(by_period[period][t], 4) for t in terms]


def test_html_is_self_contained(html_report):
    html = html_report.output.read_text(encoding="utf-8")
    assert "<script" not in html.lower() and "<link" not in html.lower() and "<img" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.IGNORECASE)
    assert not re.search(r"""url\(\s*["']?(?!#)""", html)  # only in-document references: url(#clip-id)
    assert '<meta name="viewport"' in html and "@media print" in html
    # four figures per run, inline and saved next to the report
    assert parse(html).svgs == 4 * len(RUNS)
    svg_files = [p for p in html_report.files if p.suffix == ".svg"]
    assert len(svg_files) == 4 * len(RUNS) and all(p.stat().st_size > 1000 for p in svg_files)
    assert all(p.parent == html_report.output.parent / "report_files" for p in svg_files)
    # reproducibility appendix: the stored SQL and the versions
    assert "The SQL that ran" in html and "-- pass 1: full-sample time-series regressions on MktRF, SMB, HML" in html
    assert "DuckDB " + duckdb.__version__ in html and "Python " in html


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs Debian's chromium)")
def test_html_renders_in_headless_chromium(html_report, demo_db, tmp_path):
    url = html_report.output.resolve().as_uri()
    shot = tmp_path / "shot.png"
    done = chromium(["--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "--window-size=390,1400",
                     "--hide-scrollbars", url], tmp_path / "profile1")
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    dom = chromium(["--dump-dom", url], tmp_path / "profile2")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="main-table"' in dom.stdout
    check_main_table(dom.stdout, demo_db, "nw")


# ---------------------------------------------------------------- LaTeX
def _tex_numbers(db: Path, se_type: str) -> list[str]:
    out = []
    for estimate, _se, t_stat, _p in stored_estimates(db, se_type).values():
        out += [fmt(estimate, 4), fmt(t_stat, 2, parens=True)]
    return [s.replace("-", "\u2212") for s in out]  # $-$ comes back from the PDF as a minus sign


def _pdftext(pdf: Path, *pages: str) -> str:
    return subprocess.run([PDFTOTEXT, *pages, "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout


def _pdflatex(tex: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", tex.name], cwd=tex.parent,
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.skipif(PDFLATEX is None or PDFTOTEXT is None,
                    reason="pdflatex/pdftotext not installed (.ci/run installs texlive-latex-* and poppler-utils)")
def test_latex_compiles_standalone_and_as_fragment(demo_db, tmp_path):
    from fmduck.report import report

    out = tmp_path / "paper" / "fm.tex"
    result = report(demo_db, RUNS, "tex", out, se_type="shanken", labels=LABELS)
    fragment = out.with_name("fm-table.tex")
    assert fragment in result.files and fragment.exists()
    assert sum(p.suffix == ".pdf" for p in result.files) == 4 * len(RUNS)
    source = fragment.read_text(encoding="utf-8")
    assert r"\toprule" in source and r"\midrule" in source and r"\bottomrule" in source
    assert r"\documentclass" not in source

    done = _pdflatex(out)
    assert done.returncode == 0, done.stdout[-3000:]
    text = _pdftext(out.with_suffix(".pdf"), "-f", "1", "-l", "1")
    for number in _tex_numbers(demo_db, "shanken"):
        assert number in text, number
    assert "Shanken" in text and "819" in text and "783" in text

    wrapper = tmp_path / "paper" / "wrapper.tex"
    wrapper.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                       "\\input{fm-table}\n\\end{document}\n", encoding="utf-8")
    done = _pdflatex(wrapper)
    assert done.returncode == 0, done.stdout[-3000:]
    text = _pdftext(wrapper.with_suffix(".pdf"))
    for number in _tex_numbers(demo_db, "shanken"):
        assert number in text, number


def test_latex_escapes_labels_and_text():
    from fmduck.report import tex_escape, tex_label, tex_number

    assert tex_label("β_MKT") == r"$\beta_{\mathrm{MKT}}$"
    assert tex_label("size_t") == r"size$_{\mathrm{t}}$"
    assert tex_label("log_me_x") == r"log$_{\mathrm{me\_x}}$"
    assert tex_escape("ff3_rolling & 5% #1 {x}") == r"ff3\_rolling \& 5\% \#1 \{x\}"
    assert tex_number("-0.0066***") == "$-$0.0066$^{***}$"
    assert tex_number("(-2.68)") == "($-$2.68)"
    assert tex_number("") == ""


# ---------------------------------------------------------------- text, plots
def test_text_report(demo_db, tmp_path):
    from fmduck.report import report

    out = tmp_path / "fm.txt"
    report(demo_db, RUNS, "txt", out, se_type="fm", stat="se", order=["HML"], plots=False)
    text = out.read_text(encoding="utf-8")
    stored = stored_estimates(demo_db, "fm")
    lines = text.splitlines()
    first_term = next(i for i, line in enumerate(lines) if line.startswith(("HML", "Constant", "MktRF", "SMB")))
    assert lines[first_term].startswith("HML")  # --order puts HML first
    for estimate, std_error, _t, p_value in stored.values():
        assert fmt(estimate, 4, p_value=p_value) in text
        assert fmt(std_error, 4, parens=True) in text
    assert "Fama-MacBeth (1973) two-pass procedure" in text  # the xtfmb block of each run
    assert "The SQL that ran" in text


def test_sml_points_match_average_returns_from_the_inputs(demo_db):
    """With full-sample betas on a balanced panel, λ̄'β_i + α_i is the average excess return of asset i."""
    from fmduck.engine import DuckDBEngine
    from fmduck.plots import sml_points
    from fmduck.store import load_run

    con = duckdb.connect(str(demo_db), read_only=True)
    try:
        run = load_run(DuckDBEngine(con), "ff3")
        points = sml_points(run)  # the stored first pass is read lazily: while the connection is open
        panel = con.sql("SELECT p.asset, p.period, p.ret - f.RF AS y FROM ff_portfolios p "
                        "JOIN ff_factors f USING (period)").df()
    finally:
        con.close()
    expected = panel.groupby("asset")["y"].mean()
    assert points.height == expected.size == 30
    got = dict(zip(points["asset"].to_list(), points["average"].to_list()))
    np.testing.assert_allclose([got[a] for a in expected.index], expected.to_numpy(), rtol=1e-9, atol=1e-12)


def test_lambda_figure_draws_the_stored_numbers(demo_db):
    """The λ_t line, the mean line and the ±2 SE band of each panel are the stored λ_t and estimates."""
    from fmduck.engine import DuckDBEngine
    from fmduck.plots import lambda_figure
    from fmduck.store import load_run

    con = duckdb.connect(str(demo_db), read_only=True)
    try:
        run = load_run(DuckDBEngine(con), "ff3_rolling")
    finally:
        con.close()
    stored = stored_estimates(demo_db, "nw")
    lambdas = sql(demo_db, "SELECT term, estimate FROM fmduck.lambdas WHERE run_name = 'ff3_rolling' "
                           "ORDER BY period_index")
    fig = lambda_figure(run, "nw", {})
    for ax, term in zip(fig.axes, ["const", "MktRF", "SMB", "HML"]):
        estimate, std_error, _t, _p = stored[("ff3_rolling", term)]
        line, mean = ax.lines[0], ax.lines[1]
        np.testing.assert_array_equal(line.get_ydata(), [e for t, e in lambdas if t == term])
        assert list(mean.get_ydata()) == [estimate, estimate]
        (band,) = [p for p in ax.patches if p.get_label() == "mean ± 2 SE (nw)"]
        np.testing.assert_allclose([band.get_y(), band.get_y() + band.get_height()],
                                   [estimate - 2 * std_error, estimate + 2 * std_error], rtol=1e-12)


# ---------------------------------------------------------------- CLI and errors
def test_cli_report_through_entry_point(demo_db, tmp_path):
    out = tmp_path / "cli" / "report.html"
    done = run_cli("report", str(demo_db), "ff3", "ff3_rolling", "--format", "html", "-o", str(out), "--se", "nw",
                   "--labels", "MktRF=β_MKT,SMB=β_SMB", "--order", "MktRF,SMB", "--no-plots")
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout.splitlines()
    html = out.read_text(encoding="utf-8")
    assert "β<sub>MKT</sub>" in html
    assert html.index('data-term="MktRF"') < html.index('data-term="SMB"') < html.index('data-term="const"')
    check_main_table(html, demo_db, "nw")


def test_cli_missing_run_through_entry_point(demo_db, tmp_path):
    done = run_cli("report", str(demo_db), "ff3", "nosuch", "-o", str(tmp_path / "r.html"), "--no-plots")
    assert done.returncode == 2
    assert "fmduck: error: no run named 'nosuch' in schema 'fmduck' (stored runs: ff3, ff3_rolling)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "r.html").exists()


def test_cli_format_from_suffix(demo_db, tmp_path, capsys):
    out = tmp_path / "t.tex"
    code, err = run_main(capsys, "report", str(demo_db), "ff3", "-o", str(out), "--no-plots", "--stat", "se")
    assert code == 0, err
    assert out.exists() and out.with_name("t-table.tex").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch"], "no run named 'nosuch'"),
        (["ff3", "--se", "bogus"], "has no 'bogus' standard errors"),
        (["ff3", "--order", "MktRF,Nope"], "--order names term(s) Nope"),
        (["ff3", "--labels", "MktRF"], "--labels wants TERM=LABEL"),
    ],
)
def test_cli_errors_are_clear(demo_db, tmp_path, capsys, args, message):
    code, err = run_main(capsys, "report", str(demo_db), *args, "-o", str(tmp_path / "r.html"), "--no-plots")
    assert code == 2
    assert message in err


def test_missing_database_and_unknown_format(tmp_path, demo_db, capsys):
    code, err = run_main(capsys, "report", str(tmp_path / "none.duckdb"), "ff3", "-o", str(tmp_path / "r.html"))
    assert code == 2 and f"database file {tmp_path / 'none.duckdb'} does not exist; check the path" in err
    code, err = run_main(capsys, "report", str(demo_db), "ff3", "-o", str(tmp_path / "r.docx"))
    assert code == 2 and "give --format html|tex|txt" in err


def test_older_schema_run_is_refused(demo_db, tmp_path, capsys):
    old = tmp_path / "old.duckdb"
    shutil.copy(demo_db, old)
    con = duckdb.connect(str(old))
    con.execute("UPDATE fmduck.runs SET schema_version = 0 WHERE run_name = 'ff3'")
    con.close()
    code, err = run_main(capsys, "report", str(old), "ff3", "-o", str(tmp_path / "r.html"), "--no-plots")
    assert code == 2
    assert "run 'ff3' was stored with results schema version 0" in err

    from fmduck.errors import FmduckError
    from fmduck.report import load_runs

    with pytest.raises(FmduckError, match="version 0"):
        load_runs(old, ["ff3"])
    assert [r.name for r in load_runs(old, ["ff3_rolling"])] == ["ff3_rolling"]
