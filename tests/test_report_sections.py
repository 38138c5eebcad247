"""Report sections (``--sections``), raw names without subscripts, ``-q``, and the LaTeX preamble.

Oracles: an HTML parser for which parts are present; pdflatex for the documents of each selection.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from fmduck.errors import SpecError

ROOT = Path(__file__).resolve().parent.parent
PDFLATEX = shutil.which("pdflatex")


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    from fmduck.demo import run_demo

    path = tmp_path_factory.mktemp("sections_db") / "demo.duckdb"
    run_demo(path)
    con = duckdb.connect(str(path))
    for table in ("first_pass_terms", "lambdas", "estimates"):  # a raw name with an underscore, no label
        con.execute(f"UPDATE fmduck.{table} SET term = 'log_size' WHERE term = 'HML' AND run_name = 'ff3'")
    con.close()
    return path


def parts(html: str) -> dict[str, bool]:
    return {
        "estimates": 'id="main-table"' in html,
        "first-pass": "First pass:" in html,
        "lambdas": "Second pass:" in html,
        "plots": "<svg" in html,
        "appendix": "Reproducibility appendix" in html,
    }


@pytest.mark.parametrize("sections", ["estimates", "estimates,lambdas", "first-pass,appendix", "plots",
                                      "estimates,first-pass,lambdas,plots,appendix"])
def test_sections_pick_the_parts(demo_db, tmp_path, sections):
    from fmduck.report import report

    result = report(demo_db, ["ff3"], "html", tmp_path / "r.html", sections=sections)
    wanted = sections.split(",")
    assert parts(result.output.read_text(encoding="utf-8")) == {k: k in wanted for k in parts("")}
    assert any(p.suffix == ".svg" for p in result.files) == ("plots" in wanted)


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex not installed")
@pytest.mark.parametrize("sections", ["estimates", "lambdas,appendix"])
def test_section_documents_compile(demo_db, tmp_path, sections):
    from fmduck.report import report

    result = report(demo_db, ["ff3"], "tex", tmp_path / "r.tex", sections=sections, plots=False)
    assert (tmp_path / "r-table.tex").exists() == ("estimates" in sections)
    done = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "r.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    source = result.output.read_text(encoding="utf-8")
    assert "\\usepackage[T1]{fontenc}" in source and "textasciicircum" not in source


def test_unknown_section_is_refused(demo_db, tmp_path):
    from fmduck.report import report

    with pytest.raises(SpecError, match="--sections takes a comma-separated list of estimates, first-pass, "
                                        "lambdas, plots, appendix; got tables"):
        report(demo_db, ["ff3"], "html", tmp_path / "r.html", sections="estimates,tables")
    assert not (tmp_path / "r.html").exists()


def test_raw_names_print_as_they_are(demo_db, tmp_path):
    from fmduck.report import report

    html = report(demo_db, ["ff3"], "html", tmp_path / "r.html", plots=False).output.read_text(encoding="utf-8")
    assert ">log_size<" in html and "β log_size<" in html and "<sub>size" not in html
    report(demo_db, ["ff3"], "tex", tmp_path / "r.tex", plots=False, labels={"MktRF": "β_{MKT}"})
    tex = (tmp_path / "r-table.tex").read_text(encoding="utf-8")
    assert "log\\_size &" in tex and "_{\\mathrm{size}}" not in tex
    assert "$\\beta_{\\mathrm{MKT}}$ &" in tex  # an explicit subscript from --labels


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "fmduck", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120, check=False)


def test_cli_sections_and_quiet(demo_db, tmp_path):
    out = tmp_path / "r.txt"
    done = run_cli("report", str(demo_db), "ff3", "-o", str(out), "--sections", "estimates,lambdas", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
    text = out.read_text(encoding="utf-8")
    assert "ESTIMATES" in text and "lambda_t per period" in text
    assert "First pass" not in text and "The SQL that ran" not in text and "Figures:" not in text
    done = run_cli("report", str(demo_db), "ff3", "-o", str(out), "--sections", "bogus")
    assert done.returncode == 2 and "--sections takes a comma-separated list" in done.stderr
    assert re.search(r"--sections SECTIONS\s+comma-separated parts",
                     run_cli("report", "--help").stdout.replace("\n", " "))
