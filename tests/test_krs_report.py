"""The Kan-Robotti-Shanken (2013) layout in the text summary and the reports (HTML, LaTeX, text).

Data: the Ken French 30 industry portfolios and the FF3 factors (data/ff_*.csv), loaded with the
real ``fmduck load`` command (``--wide --unit percent`` for the portfolios, ``--unit percent
--percent-cols`` for the factors), fitted by fmduck with full-sample betas (OLS and GLS CSR) and
rolling betas (no KRS rows). Oracle: the stored rows of fmduck.estimates and fmduck.tests read with
plain SQL; every number shown must equal them (exactly in the HTML data-krs-value attributes, as
``fmt`` text elsewhere; pdftotext for the compiled LaTeX).
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
import pytest

from fmduck.formatting import fmt

ROOT = Path(__file__).resolve().parent.parent
PDFLATEX = shutil.which("pdflatex")
PDFTOTEXT = shutil.which("pdftotext")
FACTORS = ["MktRF", "SMB", "HML"]
T_TYPES = {"t_FM": "fm", "t_S": "shanken", "t_JW": "eiv_robust", "t_KRS": "misspec_robust"}


def fmduck_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "fmduck", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300, check=False)


@pytest.fixture(scope="module")
def ff_db(tmp_path_factory) -> Path:
    from fmduck import FamaMacBeth, Spec

    path = tmp_path_factory.mktemp("krs") / "ff.duckdb"
    done = fmduck_cli("load", path, ROOT / "data" / "ff_portfolios_monthly.csv", "--table", "ports", "--wide",
                      "--unit", "percent", "-q")
    assert done.returncode == 0, done.stderr
    done = fmduck_cli("load", path, ROOT / "data" / "ff_factors_monthly.csv", "--table", "factors", "--unit",
                      "percent", "--percent-cols", "MktRF,SMB,HML,Mom,RF", "-q")
    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(path))
    common = {"returns": "ports", "factors": "factors", "factor_cols": FACTORS, "rf": "RF"}
    FamaMacBeth(Spec(name="ff3", **common), con).fit()
    FamaMacBeth(Spec(name="ff3_gls", csr="gls", **common), con).fit()
    FamaMacBeth(Spec(name="ff3_rolling", window=60, min_obs=36, **common), con).fit()
    con.close()
    return path


def stored(db: Path, run: str) -> tuple[dict, dict, dict]:
    """(estimates by (se_type, term), tests by name, run record) with plain SQL."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        est = {(s, t): (e, ts, lags) for s, t, e, ts, lags in con.execute(
            "SELECT se_type, term, estimate, t_stat, nw_lags FROM fmduck.estimates WHERE run_name = ?",
            [run]).fetchall()}
        tests = {name: (stat, se, p) for name, stat, se, p in con.execute(
            "SELECT test, statistic, std_error, p_value FROM fmduck.tests WHERE run_name = ?", [run]).fetchall()}
        n_periods, avg_n = con.execute("SELECT n_periods, avg_n FROM fmduck.runs WHERE run_name = ?", [run]).fetchone()
    finally:
        con.close()
    return est, tests, {"n_periods": n_periods, "avg_n": avg_n}


@pytest.mark.parametrize("run", ["ff3", "ff3_gls"])
def test_layout_equals_stored_rows(ff_db, run):
    from fmduck.krs_layout import heading, krs_table
    from fmduck.report import load_runs

    est, tests, record = stored(ff_db, run)
    (loaded,) = load_runs(ff_db, [run])  # read-only
    table = krs_table(loaded)
    assert [r["term"] for r in table["rows"]] == ["const", *FACTORS]
    for row in table["rows"]:
        assert row["gamma"] == est[("misspec_robust", row["term"])][0]
        for header, se_type in T_TYPES.items():
            assert row["t"][header] == est[(se_type, row["term"])][1], (header, row["term"])
    assert (table["r2"], table["r2_se"]) == tests["csr_r2"][:2]
    assert table["p_r2_eq_1"] == tests["r2_eq_1"][2] and table["p_r2_eq_0"] == tests["r2_eq_0"][2]
    assert 0 < table["r2"] < 1 and table["r2_se"] > 0 and 0 <= table["p_r2_eq_1"] < 0.01  # FF3 is rejected
    lags = est[("misspec_robust", "const")][2]
    weighting = "GLS" if run == "ff3_gls" else "OLS"
    assert heading(table) == (f"Kan-Robotti-Shanken (2013): {weighting} CSR, N = 30, "
                              f"T = {record['n_periods']:,}, Newey-West L = {lags}")
    # the robust SEs are not the classical ones (the t-ratios differ), and KRS's are the widest here
    assert all(abs(r["t"]["t_KRS"]) < abs(r["t"]["t_FM"]) for r in table["rows"])


def krs_lines(summary: str) -> tuple[str, list[str], str]:
    lines = summary.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Kan-Robotti-Shanken (2013):"))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("CSR R-squared"))
    return lines[start], lines[start + 3:end], lines[end]


def test_summary_block_prints_the_stored_numbers(ff_db):
    from fmduck.report import load_runs

    est, tests, record = stored(ff_db, "ff3")
    summary = load_runs(ff_db, ["ff3"])[0].summary
    head, rows, r2_line = krs_lines(summary)
    assert head.startswith(f"Kan-Robotti-Shanken (2013): OLS CSR, N = 30, T = {record['n_periods']:,}, ")
    header_line = summary.splitlines()[summary.splitlines().index(head) + 1]
    assert header_line.split("|")[1].split() == ["gamma", "t_FM", "t_S", "t_JW", "t_KRS"]
    assert len(rows) == 4
    for line, term in zip(rows, ["const", *FACTORS]):
        name, _, cells = line.partition(" |")
        assert name.strip() == ("_cons" if term == "const" else term)
        expected = [fmt(est[("misspec_robust", term)][0], 6, significant=True)]
        expected += [fmt(est[(se_type, term)][1], 2) for se_type in T_TYPES.values()]
        assert cells.split() == expected
    stat, se, _ = tests["csr_r2"]
    assert r2_line == (f"CSR R-squared = {fmt(stat, 4)} (SE {fmt(se, 4)});  p(R2 = 1) = {fmt(tests['r2_eq_1'][2], 4)};"
                       f"  p(R2 = 0) = {fmt(tests['r2_eq_0'][2], 4)}")
    # the KRS block comes after the five SE blocks and before the tests block
    assert summary.index("Misspecification-robust (Kan-Robotti-Shanken 2013)") < summary.index(head) < summary.index(
        "Tests of the model")


def test_no_block_without_misspec_robust_rows(ff_db, tmp_path):
    from fmduck.krs_layout import krs_table
    from fmduck.report import load_runs, report

    (run,) = load_runs(ff_db, ["ff3_rolling"])
    assert "misspec_robust" not in run.se_types and krs_table(run) is None
    assert "Kan-Robotti-Shanken (2013):" not in run.summary
    html = report(ff_db, ["ff3_rolling"], "html", tmp_path / "r.html", plots=False).output.read_text(encoding="utf-8")
    assert 'class="reg small krs"' not in html


class KrsCells(HTMLParser):
    """data-krs-* cells of the tables with class krs (data-value is the main table's)."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str]] = []
        self._in = False
        self._cell: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "krs" in (attrs.get("class") or "").split():
            self._in = True
        if self._in and tag == "td" and "data-krs-value" in attrs:
            self._cell = {**attrs, "text": ""}

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append(self._cell)
            self._cell = None
        if tag == "table":
            self._in = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data


def test_html_table_equals_stored_rows(ff_db, tmp_path):
    from fmduck.report import report

    out = report(ff_db, ["ff3", "ff3_rolling", "ff3_gls"], "html", tmp_path / "r.html", plots=False)
    parser = KrsCells()
    parser.feed(out.output.read_text(encoding="utf-8"))
    seen = set()
    for cell in parser.cells:
        run = cell["data-run"]
        est, tests, _ = stored(ff_db, run)
        kind, value = cell["data-krs"], float(cell["data-krs-value"])
        if kind == "gamma":
            assert value == est[("misspec_robust", cell["data-term"])][0]
            assert cell["text"] == fmt(value, 4)
        elif kind in T_TYPES:
            assert value == est[(T_TYPES[kind], cell["data-term"])][1]
            assert cell["text"] == fmt(value, 2)
        else:
            want = {"R²": tests["csr_r2"][0], "SE of R²": tests["csr_r2"][1], "p(R² = 1)": tests["r2_eq_1"][2],
                    "p(R² = 0)": tests["r2_eq_0"][2]}
            assert value == want[kind], kind
            assert cell["text"] == fmt(value, 4)
        seen.add((run, cell.get("data-term"), kind))
    assert {r for r, _, _ in seen} == {"ff3", "ff3_gls"}  # the rolling run has no KRS table
    assert len(seen) == 2 * (4 * 5 + 4)


@pytest.mark.skipif(PDFLATEX is None or PDFTOTEXT is None, reason="pdflatex/pdftotext not installed")
def test_latex_table_compiles_with_the_stored_numbers(ff_db, tmp_path):
    from fmduck.report import report

    out = tmp_path / "k.tex"
    report(ff_db, ["ff3"], "tex", out, plots=False, sections="estimates")
    done = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", out.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    text = subprocess.run([PDFTOTEXT, "-layout", str(out.with_suffix(".pdf")), "-"], capture_output=True, text=True,
                          check=True).stdout
    est, tests, _ = stored(ff_db, "ff3")
    table = text[text.index("Kan-Robotti-Shanken (2013)"):]
    for term, label in (("const", "Constant"), *((f, f) for f in FACTORS)):
        line = next(line for line in table.splitlines() if line.strip().startswith(label))
        cells = line.split()[1:]
        expected = [fmt(est[("misspec_robust", term)][0], 4)] + [fmt(est[(s, term)][1], 2) for s in T_TYPES.values()]
        assert cells == [c.replace("-", "\u2212") for c in expected], term
    for value in (tests["csr_r2"][0], tests["csr_r2"][1], tests["r2_eq_0"][2]):
        assert fmt(value, 4) in table


def test_text_report_has_the_block(ff_db, tmp_path):
    from fmduck.report import report

    out = tmp_path / "r.txt"
    report(ff_db, ["ff3"], "txt", out, plots=False, sections="estimates")
    text = out.read_text(encoding="utf-8")
    est, _, _ = stored(ff_db, "ff3")
    assert re.search(r"^Kan-Robotti-Shanken \(2013\): OLS CSR, N = 30, ", text, flags=re.MULTILINE)
    assert re.search(r"^\s+\|\s+gamma\s+t_FM\s+t_S\s+t_JW\s+t_KRS$", text, flags=re.MULTILINE)
    assert fmt(est[("misspec_robust", "MktRF")][1], 2) in text
