"""Hostile names through reports (issue 14): LaTeX, HTML, matplotlib and the file system.

A demo run is rewritten in place (plain SQL UPDATEs of the result tables) so that its run name,
terms, assets, spec JSON and stored SQL carry quotes, ``;``, ``$``, ``%``, ``\\``, braces, ``^``,
``~``, ``#``, ``&``, brackets, CJK and 200-character names, plus LaTeX that would read a file or
run a shell if it were pasted in. Oracles: pdflatex compiles the document; a tokenizer finds every
control sequence of the .tex outside comments and checks it is one the templates or the escaping
function write; pdftotext shows the names literally; an HTML parser finds no tag from the data and
reads the attribute values back unchanged.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from fmduck import escape

ROOT = Path(__file__).resolve().parent.parent
PDFLATEX = shutil.which("pdflatex")
PDFTOTEXT = shutil.which("pdftotext")
VERBATIM = "x\\end{verbatim}\\input{/etc/passwd}\\begin{verbatim}"
TERMS = {"MktRF": VERBATIM, "SMB": "smb", "HML": "Size_$bn"}
ASSETS = [
    "$\\foo$", "<script>alert(1)</script>", "四五 Größe", "a\"b'c; DROP TABLE x;--", "100% & #1 ^~ {}",
    "\\write18{id}\\immediate\\def\\x{y}\\catcode`\\%=11\\openout\\read\\include{z}", "L" * 190 + "\\input{z}",
    "[opt]", "*star", "x_}",
]
RUN = "run \\input{/etc/passwd} $x$ 四 <b> 50% {"
LABELS = {"smb": "a_$input /etc/passwd$relax", "Size_$bn": "Size_$bn", VERBATIM: "x_}"}
SQL_TAIL = "\n-- \\end{verbatim}\\input{/etc/passwd}\\begin{verbatim} 四 </pre><script>x</script>"
FORBIDDEN = ("input", "write", "write18", "include", "openout", "catcode", "read", "immediate", "def", "edef",
             "gdef", "let", "csname", "usepackage", "verb")


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory) -> Path:
    from fmduck.demo import run_demo

    path = tmp_path_factory.mktemp("hostile") / "h.duckdb"
    run_demo(path)
    con = duckdb.connect(str(path))
    try:
        # the first pass is stored as first_pass_windows (assets) and first_pass_terms (terms); first_pass is a view
        for old, new in TERMS.items():
            for table in ("first_pass_terms", "lambdas", "estimates"):
                con.execute(f"UPDATE fmduck.{table} SET term = ? WHERE term = ? AND run_name = 'ff3'", [new, old])
        assets = [a for (a,) in con.execute(
            "SELECT DISTINCT asset FROM fmduck.first_pass_windows WHERE run_name = 'ff3' ORDER BY 1").fetchall()]
        for old, new in zip(assets, ASSETS):
            for table in ("first_pass_windows", "pricing_errors"):
                con.execute(f"UPDATE fmduck.{table} SET asset = ? WHERE asset = ? AND run_name = 'ff3'", [new, old])
        spec = json.loads(con.execute("SELECT spec FROM fmduck.runs WHERE run_name = 'ff3'").fetchall()[0][0])
        spec["factor_cols"] = [TERMS[c] for c in spec["factor_cols"]]
        con.execute("UPDATE fmduck.runs SET spec = ?, sql_text = sql_text || ? WHERE run_name = 'ff3'",
                    [json.dumps(spec), SQL_TAIL])
        tables = [t for (t,) in con.execute(  # every base table of the results schema that holds run rows
            "SELECT c.table_name FROM information_schema.columns AS c JOIN information_schema.tables AS t "
            "USING (table_schema, table_name) WHERE c.table_schema = 'fmduck' AND c.column_name = 'run_name' "
            "AND t.table_type = 'BASE TABLE'").fetchall()]
        assert {"runs", "first_pass_windows", "first_pass_terms", "lambdas", "estimates", "tests"} <= set(tables)
        for table in tables:
            con.execute(f"UPDATE fmduck.{table} SET run_name = ? WHERE run_name = 'ff3'", [RUN])
    finally:
        con.close()
    return path


# ---------------------------------------------------------------- LaTeX
def control_words(tex: str) -> set[str]:
    """Control words (``\\name``) outside comments; control symbols (``\\$``, ``\\\\``) are skipped."""
    words = set()
    for line in tex.splitlines():
        line = re.sub(r"(?<!\\)%.*$", "", line.replace("\\\\", "  "))  # row ends, then comments
        words.update(re.findall(r"\\([A-Za-z@]+)", line))
    return words


def allowed_words() -> set[str]:
    """What fmduck itself writes: the templates' control words and the escaping function's."""
    words = set()
    for name in ("report.tex.j2", "table.tex.j2"):
        words |= control_words((ROOT / "reports" / name).read_text(encoding="utf-8"))
    samples = "".join(["\\&%$#_{}~^<>|[]*", "αβγδελμπρστφωΓΔΛΣΩ±≥≤×·√°÷∞≠≈²", "⌊4(T/100)^(2/9)⌋", "é\x01四"])
    words |= control_words(escape.tex(samples) + escape.tex_label("β_x y") + escape.tex_label("a_b\\c")
                           + escape.tex_code("a  b"))
    return words


def test_tex_has_only_fmduck_control_words(hostile_db, tmp_path):
    from fmduck.report import report

    out = tmp_path / "r.tex"
    report(hostile_db, [RUN, "ff3_rolling"], "tex", out, labels=LABELS)
    document = out.read_text(encoding="utf-8")
    fragment = out.with_name("r-table.tex").read_text(encoding="utf-8")
    words = control_words(document) | control_words(fragment)
    assert words <= allowed_words(), words - allowed_words()
    body = control_words(document[document.index("\\begin{document}"):]) | control_words(fragment)
    assert not body & {*FORBIDDEN, "newcommand", "renewcommand"}, body & {*FORBIDDEN, "newcommand"}
    # no verbatim block: the SQL and the spec are escaped typewriter lines; the names escaped text
    code = "\n".join(re.sub(r"(?<!\\)%.*$", "", line) for line in (document + fragment).splitlines())
    assert "\\begin{verbatim}" not in code and "\\input" not in code
    assert escape.tex(ASSETS[5]) in document and escape.tex(RUN) in fragment


@pytest.mark.skipif(PDFLATEX is None or PDFTOTEXT is None, reason="pdflatex/pdftotext not installed")
def test_hostile_tex_compiles_and_shows_names_literally(hostile_db, tmp_path):
    from fmduck.report import report

    out = tmp_path / "r.tex"
    report(hostile_db, [RUN, "ff3_rolling"], "tex", out, labels=LABELS)
    done = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", out.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "(/etc/passwd" not in (tmp_path / "r.log").read_text(errors="replace")  # no file was read
    text = subprocess.run([PDFTOTEXT, "r.pdf", "-"], cwd=tmp_path, capture_output=True, text=True,
                          check=True).stdout
    flat = re.sub(r"\s+", "", text)
    for name in ("\\end{verbatim}\\input{/etc/passwd}\\begin{verbatim}", "$\\foo$", "<script>alert(1)</script>",
                 "a\"b'c;DROPTABLEx;-",  # (pdftotext joins a hyphen at a line end with the next line)
                 "\\write18{id}\\immediate\\def\\x{y}", "[opt]", "*star", "Size_$bn"):
        assert re.sub(r"\s+", "", name) in flat.replace("’", "'").replace("”", '"'), name
    assert "[U+56DB][U+4E94]" in flat  # CJK written as code points ...
    assert "Characters that pdfLaTeX cannot set" in text  # ... and the document says so
    assert "a$input/etc/passwd$relax" in flat and "\\relax" not in flat  # the label's subscript, literal


def test_labels_with_dollar_and_braces_are_escaped():
    # issue 14: `$` in a label left a bare backslash (\input /etc/passwd\relax); `Size_$bn` did not compile
    assert escape.tex_label("a_$input /etc/passwd$relax") == "a$_{\\mathrm{\\$input\\ /etc/passwd\\$relax}}$"
    assert escape.tex_label("Size_$bn") == "Size$_{\\mathrm{\\$bn}}$"
    assert escape.tex_label("x_}") == "x$_{\\mathrm{\\}}}$"
    assert escape.tex_label("r_{a b}") == "r$_{\\mathrm{a\\ b}}$"
    assert escape.tex_label("β_é~") == "$\\beta_{\\mbox{\\scriptsize é\\textasciitilde{}}}$"
    # raw names: no subscript, printed as they are
    assert escape.tex_label(escape.Label("log_size")) == "log\\_size"
    assert escape.tex("[a]*") == "{[}a{]}*" and escape.tex("*a") == "{}*a"
    assert escape.tex("--") == "-{}-" and escape.tex("\x00四") == "{[}U+0000{]}{[}U+56DB{]}"
    assert escape.tex("NW lag ⌊4(T/100)^(2/9)⌋") == "NW lag \\ensuremath{\\lfloor 4(T/100)^{2/9}\\rfloor}"
    assert "\\textasciicircum" not in escape.tex("⌊4(T/100)^(2/9)⌋")


# ---------------------------------------------------------------- HTML
class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data):
        self.text.append(data)


def test_html_has_no_markup_from_data(hostile_db, tmp_path):
    from fmduck.report import report

    out = tmp_path / "r.html"
    report(hostile_db, [RUN, "ff3_rolling"], "html", out, labels=LABELS)
    html = out.read_text(encoding="utf-8")
    parsed = Tags()
    parsed.feed(html)
    assert "script" not in parsed.tags and "b" not in parsed.tags  # <script> and <b> of the names stay text
    text = "".join(parsed.text)
    for name in ("<script>alert(1)</script>", RUN, "$\\foo$", "四五 Größe", "</pre><script>x</script>"):
        assert name in text, name
    runs = {value for key, value in parsed.attrs if key == "data-run"}
    terms = {value for key, value in parsed.attrs if key == "data-term"}
    assert RUN in runs and VERBATIM in terms and "Size_$bn" in terms  # attribute values read back unchanged
    assert "a<sub>$input /etc/passwd$relax</sub>" in html  # the label's subscript, its text escaped
    # the SVG text of matplotlib (tick labels of the betas figure): escaped by matplotlib
    svgs = "".join(re.findall(r"<svg.*?</svg>", html, flags=re.DOTALL))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svgs and "<script" not in svgs


# ---------------------------------------------------------------- matplotlib
def test_matplotlib_draws_hostile_names_literally():
    from fmduck import plots

    assert escape.mpl("$\\foo$") == "\\$\\foo\\$"
    assert escape.mpl_label("x_}") == "x_}"  # not mathtext: would not parse
    assert escape.mpl_label("β_MKT") == "β$_{\\mathrm{MKT}}$"
    assert escape.mpl("_hidden").startswith(" ")  # matplotlib hides legend labels starting with _
    fig = plots.new_figure((3, 2))
    ax = fig.subplots()
    with plots.drawing():
        ax.plot([0, 1], [0, 1], label=escape.mpl_label("x_}"))
        ax.set_title(escape.mpl("$\\foo$ \x01 {"))
        ax.legend()
        svg = plots.to_svg(fig)
    assert "$\\foo$ \\x01 {" in svg and "x_}" in svg


# ---------------------------------------------------------------- files and errors
def test_failed_render_leaves_no_partial_files(hostile_db, tmp_path, monkeypatch):
    from fmduck import plots
    from fmduck.report import report

    calls = []
    real_save = plots.save

    def failing_save(fig, path, fmt):
        calls.append(path)
        real_save(fig, path, fmt)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")

    monkeypatch.setattr(plots, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk on fire"):
        report(hostile_db, [RUN], "tex", tmp_path / "r.tex")
    assert len(calls) == 3 and all(not p.exists() for p in calls)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no r.tex, no r_files/, no staging folder


def run_cli(*args: str) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "fmduck", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120, check=False)


def test_output_folder_and_unwritable_paths_are_errors(hostile_db, tmp_path):
    folder = tmp_path / "somedir"
    folder.mkdir()
    done = run_cli("report", str(hostile_db), "ff3_rolling", "-o", f"{folder}/", "--no-plots")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"fmduck: error: -o {folder}/ is a folder; give a file name such as {folder / 'report.html'}"]
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    done = run_cli("report", str(hostile_db), "ff3_rolling", "-o", str(blocker / "r.html"), "--no-plots")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"fmduck: error: cannot write the report to {blocker / 'r.html'}: ")
    assert len(done.stderr.strip().splitlines()) == 1
    assert blocker.read_text() == "not a folder"
