"""Seeded fuzz over identifiers (issue 14): table, column, asset, run and schema names built from quotes,
``;``, ``$``, ``%``, ``\\``, braces, unicode, SQL / LaTeX / HTML / Jinja payloads and 200 characters, put
through ``fmduck run``, ``show``, ``sql`` and ``report`` (HTML and LaTeX) by the real entry point.

Every case either works with the right numbers (the estimates of the same panel under clean names, and
the same numbers printed by ``show``) or is refused with exit code 2 — never a traceback, never an
executed payload: a canary table must survive (payloads ``DROP`` it), no file appears where a payload
``COPY``s or ``\\write``s one, the LaTeX holds only fmduck's control words, the HTML no tag from the
data. At least half the cases must work, so the fuzz cannot pass by refusing everything. DuckDB: 20
cases, half given as flags and half in a TOML file; PostgreSQL: 6 cases; and raw (unquoted) table names
through ``load`` and ``run``.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from hardening_cases import CLEAN, Case, assert_same_numbers, cli, stored_estimates, write_duckdb, write_postgres
from test_report_escaping import FORBIDDEN, allowed_words, control_words

SEED = 20140614
PIECES = ['"', "'", ";", "$", "%", "\\", "{", "}", "{}", "四", "é", "Ω", "🙂", " ", "--", "/*", "`", "|", "&", "_",
          "#", "^", "~", "<", ">", "[", "]", "(", ")", ":", "@", "?", ".", "\t", "\x1b[2J", "\x07", "\n"]
TERMINAL = ("\x1b", "\x07")  # what a name must not send to a terminal through stderr or `show`


def payloads(tmp: Path) -> list[str]:
    pwned = tmp / "pwned"
    return ['"; DROP TABLE main.canary; --', "'); DROP TABLE main.canary; --", "x\"; DROP TABLE main.canary;--",
            f"'); COPY (SELECT 1) TO '{pwned}.csv'; --", f"\";COPY main.canary TO '{pwned}2.csv';--",
            "$1", "$name", "%s", "%(x)s", "%%", "\\input{/etc/passwd}", f"\\immediate\\write18{{touch {pwned}3}}",
            "\\end{verbatim}\\catcode", "</td><script>alert(1)</script>", "{{ 7*7 }}", "{% raw %}", "${x}",
            "$$x$$", "a\\", "\\'", "`rm -rf x`", "x;y"]


def hostile(rng: random.Random, tmp: Path, used: set[str]) -> str:
    while True:
        parts = [rng.choice(payloads(tmp))] if rng.random() < 0.6 else []
        parts += [rng.choice(PIECES) for _ in range(rng.randint(1, 4))]
        rng.shuffle(parts)
        name = "n" + "".join(parts) + "z"  # letters at both ends: surrounding spaces are an other test's story
        if rng.random() < 0.15:
            name = (name + "L" * 200)[:200]
        key = name.casefold()
        if key not in used:  # DuckDB names are case-insensitive
            used.add(key)
            return name


def make_case(rng: random.Random, tmp: Path) -> tuple[Case, str, str]:
    used: set[str] = set()
    names = {k: (hostile(rng, tmp, used) if rng.random() < 0.7 else v) for k, v in CLEAN.items()}
    if names["schema"] == "main":
        names["schema"] = hostile(rng, tmp, used)
    assets = {f"A{i:03d}": f"{hostile(rng, tmp, used)}{i}" for i in range(12)} if rng.random() < 0.5 else None
    run = hostile(rng, tmp, used) if rng.random() < 0.2 else f"fuzz_{rng.randrange(10**6)}"
    results = hostile(rng, tmp, used) if rng.random() < 0.5 else "fmduck"
    return Case(names=names, assets=assets), run, results


def toml_args(case: Case, run: str, results: str, path: Path) -> list[str]:
    n = case.names
    spec = {"name": run, "returns": case.table("panel"), "factors": case.table("factors"), "asset": n["asset"],
            "period": n["period"], "ret": n["ret"], "chars": [n["size"]], "factor_cols": [n["mkt"], n["smb"]],
            "nw_lags": 2, "threads": 1, "schema": results}
    path.write_text("".join(f"{k} = {json.dumps(v, ensure_ascii=False)}\n" for k, v in spec.items()), encoding="utf-8")
    return ["--config", path]


def numbers(show: str) -> list[str]:
    """The numbers of a printed run's tables (below the header, which may hold names with '|'): what
    stands right of the last '|' of each table line."""
    lines = show.splitlines()
    start = next(i for i, line in enumerate(lines) if line and set(line) == {"-"})
    return [tok for line in lines[start:] if "|" in line
            for tok in re.findall(r"-?\.?\d[\d.,e+-]*", line.rsplit("|", 1)[1])]


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The clean run: its stored estimates, its show numbers, its HTML tags."""
    tmp = tmp_path_factory.mktemp("fuzz_clean")
    db = tmp / "clean.duckdb"
    write_duckdb(db, Case())
    assert cli("run", db, *Case().run_args("clean"), "-q").code == 0
    with duckdb.connect(str(db), read_only=True) as con:
        estimates = stored_estimates(con, "fmduck", "clean", Case())
    assert cli("report", db, "clean", "-o", tmp / "c.html", "--no-plots", "-q").code == 0
    tags = Tags()
    tags.feed((tmp / "c.html").read_text(encoding="utf-8"))
    return {"estimates": estimates, "show": numbers(cli("show", db, "clean").out), "tags": tags.tags}


def check_reports(db: object, run: str, results: str, tmp: Path, clean: dict, compile_tex: bool) -> None:
    res = cli("report", db, run, f"--schema={results}", "-o", tmp / "r.html", "--no-plots", "-q")
    assert res.code == 0, res.text
    tags = Tags()
    tags.feed((tmp / "r.html").read_text(encoding="utf-8"))
    assert tags.tags <= clean["tags"], tags.tags - clean["tags"]
    res = cli("report", db, run, f"--schema={results}", "-o", tmp / "r.tex", "--no-plots", "-q")
    assert res.code == 0, res.text
    tex = "".join(p.read_text(encoding="utf-8") for p in tmp.glob("r*.tex"))
    words = control_words(tex)
    assert words <= allowed_words() and not words & set(FORBIDDEN) - allowed_words(), words - allowed_words()
    pdflatex = shutil.which("pdflatex")
    if compile_tex and pdflatex:
        done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "r.tex"],
                              cwd=tmp, capture_output=True, text=True, errors="replace", timeout=180, check=False)
        assert done.returncode == 0, done.stdout[-2000:]


def check_case(db: object, case: Case, run: str, results: str, argv: list, tmp: Path, clean: dict,
               read, compile_tex: bool) -> bool:
    """One case through run, show, sql and report; True when it ran (False: refused with exit 2)."""
    res = cli("run", db, *argv, "-q")
    assert res.code in (0, 2) and "Traceback" not in res.text, res.text
    assert res.code == 0 or len(res.err.strip().splitlines()) == 1, res.err
    for piece in (cli("sql", db, *argv), cli("sql", db, *argv, "--dialect", "postgres", "--inline")):
        assert piece.code == res.code or (piece.code == 2 and "already exists" not in piece.err), piece.text
        assert not any(c in piece.err for c in TERMINAL), piece.err
    if res.code == 2:
        for later in (cli("show", db, run, f"--schema={results}"),
                      cli("report", db, run, f"--schema={results}", "-o", tmp / "x.html", "--no-plots")):
            assert later.code == 2 and "Traceback" not in later.text, later.text
        return False
    assert_same_numbers(read(results, run, case), clean["estimates"])
    shown = cli("show", db, run, f"--schema={results}")
    assert shown.code == 0 and numbers(shown.out) == clean["show"], shown.text
    assert not any(c in shown.text + res.err for c in TERMINAL), shown.text
    listed = cli("show", db, f"--schema={results}")
    assert listed.code == 0 and run in listed.out
    check_reports(db, run, results, tmp, clean, compile_tex)
    return True


def assert_no_payload_ran(tmp: Path, canary_rows: list) -> None:
    assert canary_rows == [(1, "alive")]
    assert not list(tmp.glob("pwned*"))


def test_fuzz_duckdb(clean, tmp_path):
    rng = random.Random(SEED)
    worked = 0
    for i in range(20):
        tmp = tmp_path / f"case{i}"
        tmp.mkdir()
        case, run, results = make_case(rng, tmp)
        db = tmp / "fuzz.duckdb"
        write_duckdb(db, case)
        with duckdb.connect(str(db)) as con:
            con.execute("CREATE TABLE main.canary (id INTEGER, note VARCHAR); "
                        "INSERT INTO main.canary VALUES (1, 'alive')")
        argv = case.run_args(run, f"--schema={results}") if i % 2 else toml_args(case, run, results, tmp / "s.toml")

        def read(schema, name, case, db=db):
            with duckdb.connect(str(db), read_only=True) as con:
                return stored_estimates(con, schema, name, case)

        try:
            worked += check_case(db, case, run, results, argv, tmp, clean, read, compile_tex=worked < 2)
        except AssertionError as exc:
            raise AssertionError(f"case {i}: names {case.names}, assets {case.assets}, run {run!r}, schema "
                                 f"{results!r}") from exc
        with duckdb.connect(str(db), read_only=True) as con:
            assert_no_payload_ran(tmp, con.execute("SELECT * FROM main.canary").fetchall())
    assert worked >= 10, f"only {worked} of 20 cases ran"


def test_fuzz_postgres(clean, pg_url, tmp_path):
    import psycopg

    rng = random.Random(SEED + 1)
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute("CREATE SCHEMA main; CREATE TABLE main.canary (id INTEGER, note TEXT); "
                    "INSERT INTO main.canary VALUES (1, 'alive')")
    worked = 0
    for i in range(6):
        tmp = tmp_path / f"case{i}"
        tmp.mkdir()
        case, run, results = make_case(rng, tmp)
        write_postgres(pg_url, case)
        argv = case.run_args(run, f"--schema={results}") if i % 2 else toml_args(case, run, results, tmp / "s.toml")

        def read(schema, name, case):
            with psycopg.connect(pg_url) as con:
                return stored_estimates(con, schema, name, case)

        try:
            worked += check_case(pg_url, case, run, results, argv, tmp, clean, read, compile_tex=False)
        except AssertionError as exc:
            raise AssertionError(f"case {i}: names {case.names}, assets {case.assets}, run {run!r}, schema "
                                 f"{results!r}") from exc
        with psycopg.connect(pg_url) as con:
            assert_no_payload_ran(tmp, con.execute("SELECT * FROM main.canary").fetchall())
    assert worked >= 3, f"only {worked} of 6 cases ran"


def test_raw_table_names_through_load_and_run(tmp_path):
    """Table names typed without quotes (as a user would): ``load --table RAW`` then ``run --returns RAW``
    either round-trip to the same table (the numbers of the clean run) or are refused with exit 2."""
    from hardening_cases import data

    rng = random.Random(SEED + 2)
    db = tmp_path / "raw.duckdb"
    panel, _ = data()
    panel.write_csv(tmp_path / "panel.csv")
    args = ["--chars=size", "--threads=1", "--nw-lags=2"]
    assert cli("load", db, tmp_path / "panel.csv", "--table", "clean", "-q").code == 0
    assert cli("run", db, "--returns=clean", *args, "--name=clean", "-q").code == 0
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE main.canary (id INTEGER, note VARCHAR); INSERT INTO main.canary VALUES (1, 'alive')")
        want = con.execute("SELECT se_type, estimate, std_error FROM fmduck.estimates WHERE run_name = 'clean' "
                           "AND term = 'size' ORDER BY se_type").fetchall()
    raw = [*payloads(tmp_path)[::2], "a.b", "a.b.c.d", '"a"."b', "a b", "x(1)", "read_csv('x.csv')", "s.t; select 1"]
    loaded = 0
    for i in range(len(raw) + 2):
        name = raw[i] if i < len(raw) else hostile(rng, tmp_path, set())
        res = cli("load", db, tmp_path / "panel.csv", "--table", name, "-q")
        assert res.code in (0, 2) and "Traceback" not in res.text, (name, res.text)
        ran = cli("run", db, f"--returns={name}", *args, f"--name=raw{i}", "-q")
        assert ran.code in (0, 2) and "Traceback" not in ran.text, (name, ran.text)
        if res.code == 0:
            assert ran.code == 0, (name, ran.text)  # what load created, run reads
            loaded += 1
        if ran.code == 0:
            with duckdb.connect(str(db), read_only=True) as con:
                got = con.execute("SELECT se_type, estimate, std_error FROM fmduck.estimates WHERE run_name = ? "
                                  "AND term = 'size' ORDER BY se_type", [f"raw{i}"]).fetchall()
            assert [g[0] for g in got] == [w[0] for w in want], name
            assert [g[1:] for g in got] == [pytest.approx(w[1:], rel=1e-10) for w in want], name
    with duckdb.connect(str(db), read_only=True) as con:
        assert_no_payload_ran(tmp_path, con.execute("SELECT * FROM main.canary").fetchall())
    assert loaded >= 6
