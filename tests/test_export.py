"""`fmduck export`: a stored run's estimates (or any results table) as CSV, Markdown or JSON.

Oracle: the stored tables read with plain SQL; every exported number is read back (polars CSV reader,
a Markdown pipe-table parser, json) and compared exactly (the exports write round-trip floats).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from fmduck.errors import FmduckError, SpecError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    from fmduck.demo import run_demo

    path = tmp_path_factory.mktemp("export_db") / "demo.duckdb"
    run_demo(path)
    con = duckdb.connect(str(path))
    for table in ("first_pass_terms", "lambdas", "estimates"):  # the first_pass view reads first_pass_terms
        con.execute(f"UPDATE fmduck.{table} SET term = 'a|b\nc *d* <x>' WHERE term = 'SMB' AND run_name = 'ff3'")
    con.close()
    return path


def stored(db: Path, query: str) -> pl.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql(query).pl()
    finally:
        con.close()


def estimates(db: Path) -> pl.DataFrame:
    return stored(db, "SELECT * FROM fmduck.estimates WHERE run_name = 'ff3' ORDER BY se_type, term")


def md_rows(text: str) -> list[list[str]]:
    """Cells of a Markdown pipe table (split on unescaped |, backslash escapes removed); the rule row as is."""
    rows = []
    for line in text.strip().splitlines():
        if re.fullmatch(r"\|(-+:?\|)+", line):
            rows.append([line])
            continue
        assert line.startswith("| ") and line.endswith(" |"), line
        cells = re.split(r"(?<!\\) \| ", line[2:-2])
        rows.append([re.sub(r"\\(.)", r"\1", c) for c in cells])
    return rows


def test_csv_round_trip_equals_stored_estimates(demo_db):
    from fmduck.export import export

    text = export(demo_db, "ff3", "csv")
    got = pl.read_csv(io.StringIO(text)).sort("se_type", "term")
    want = estimates(demo_db)
    # 4 terms x 5 SE types: fm, nw, shanken and (full-sample betas, balanced: KRS 2013) eiv_robust, misspec_robust
    assert set(want["se_type"]) == {"fm", "nw", "shanken", "eiv_robust", "misspec_robust"}
    assert got.columns == want.columns and got.height == want.height == 20
    for col in ("estimate", "std_error", "t_stat", "p_value", "ci_lower", "ci_upper", "avg_r2"):
        assert got[col].to_list() == want[col].to_list(), col  # exact: shortest round-trip floats
    assert got["term"].to_list() == want["term"].to_list()  # the quoted field with | and a line break


def test_markdown_round_trip_and_escaping(demo_db):
    from fmduck.export import export

    text = export(demo_db, "ff3", "md")
    rows = md_rows(text)
    header, rule = rows[0], text.splitlines()[1]
    body = rows[2:]
    want = estimates(demo_db)
    assert header == want.columns
    assert rule.count("|") == len(want.columns) + 1 and "---:" in rule
    assert "a\\|b c \\*d\\* \\<x\\>" in text  # one line, specials escaped
    assert "sd(lambda" in text and "\\(" not in text  # plain punctuation stays readable
    got = sorted(body, key=lambda r: (r[header.index("se_type")], r[header.index("term")]))
    for row, expected in zip(got, want.iter_rows(named=True)):
        assert len(row) == len(header)
        assert row[header.index("term")] == expected["term"].replace("\n", " ")
        for col in ("estimate", "std_error", "t_stat", "p_value"):
            assert float(row[header.index(col)]) == expected[col], col


def test_json_records_and_other_tables(demo_db, tmp_path):
    from fmduck.export import export

    out = tmp_path / "lambdas.json"
    assert export(demo_db, "ff3_rolling", "json", table="lambdas", output=out) is None
    records = json.loads(out.read_text(encoding="utf-8"))
    want = stored(demo_db, "SELECT * FROM fmduck.lambdas WHERE run_name = 'ff3_rolling'")
    assert len(records) == want.height == 783 * 4
    got = {(r["period_index"], r["term"]): r["estimate"] for r in records}
    assert got == {(r["period_index"], r["term"]): r["estimate"] for r in want.iter_rows(named=True)}
    assert set(records[0]) == set(want.columns)

    runs = json.loads(export(demo_db, "ff3", "json", table="runs"))
    (record,) = runs
    spec = stored(demo_db, "SELECT spec FROM fmduck.runs WHERE run_name = 'ff3'")["spec"][0]
    assert json.loads(record["spec"]) == json.loads(spec) and record["avg_r2"] == stored(
        demo_db, "SELECT avg_r2 FROM fmduck.runs WHERE run_name = 'ff3'")["avg_r2"][0]

    pe = pl.read_csv(io.StringIO(export(demo_db, "ff3", "csv", table="pricing_errors"))).sort("asset")
    want = stored(demo_db, "SELECT * FROM fmduck.pricing_errors WHERE run_name = 'ff3' ORDER BY asset")
    assert pe["alpha"].to_list() == want["alpha"].to_list() and pe["asset"].to_list() == want["asset"].to_list()


def test_export_errors(demo_db, tmp_path):
    from fmduck.export import export

    with pytest.raises(SpecError, match="--table must be one of runs, first_pass"):
        export(demo_db, "ff3", "csv", table="nosuch")
    with pytest.raises(SpecError, match="--format must be one of csv, md, json"):
        export(demo_db, "ff3", "xlsx")
    # a design table the run has no rows in (KRS covariance prices: full-sample betas only)
    with pytest.raises(FmduckError, match="run 'ff3_rolling' has no rows in table 'covariance_prices'"):
        export(demo_db, "ff3_rolling", "csv", table="covariance_prices")
    with pytest.raises(FmduckError, match="no run named 'nope'"):
        export(demo_db, "nope")
    with pytest.raises(FmduckError, match="is a folder"):
        export(demo_db, "ff3", "csv", output=tmp_path)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "fmduck", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120, check=False)


def test_cli_export(demo_db, tmp_path):
    done = run_cli("export", str(demo_db), "ff3", "--format", "md")
    assert done.returncode == 0, done.stderr
    assert md_rows(done.stdout)[0] == estimates(demo_db).columns

    out = tmp_path / "e.json"
    done = run_cli("export", str(demo_db), "ff3", "-o", str(out), "--table", "estimates")
    assert done.returncode == 0 and done.stderr.strip() == str(out)  # format from the suffix
    assert len(json.loads(out.read_text(encoding="utf-8"))) == estimates(demo_db).height == 20
    done = run_cli("export", str(demo_db), "ff3", "-o", str(tmp_path / "e.csv"), "-q")
    assert done.returncode == 0 and done.stderr == "" and done.stdout == ""
    done = run_cli("export", str(demo_db), "nope")
    assert done.returncode == 2 and done.stderr.startswith("fmduck: error: no run named 'nope'")
    done = run_cli("export", str(demo_db), "ff3", "--table", "nosuch")
    assert done.returncode == 2 and "invalid choice: 'nosuch'" in done.stderr


def test_csv_cells_a_spreadsheet_would_evaluate_are_shown_as_text(tmp_path):
    """Text starting with = + - @ (or a tab/CR) gets a leading ' in CSV; numbers and other text are unchanged."""
    from fmduck.export import write_frame

    hostile = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\tz", "ok", "a=b", None]
    frame = pl.DataFrame({"asset": hostile, "alpha": [-1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]})
    back = pl.read_csv(io.StringIO(write_frame(frame, "csv")))
    assert back["asset"].to_list() == ["'" + h if h and h[0] in "=+-@\t" else h for h in hostile]
    assert back["alpha"].to_list() == frame["alpha"].to_list()  # a negative number is not text
