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

    with pytest.raises(SpecError, match="--table must be one of runs, run_history, first_pass_terms"):
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
    assert done.returncode == 2 and "invalid choice 'nosuch'" in done.stderr


def test_every_results_table_exports_the_runs_rows(demo_db, tmp_path):
    """``--table`` takes every relation of the results schema (store.contract()); each export holds the
    run's stored rows (comparisons: those naming the run on either side)."""
    import shutil

    from fmduck import store
    from fmduck.export import export, known_tables

    assert known_tables() == list(store.contract())
    assert {"run_history", "first_pass_terms", "first_pass_windows", "input_fingerprints", "comparisons"} <= set(
        known_tables())
    db = tmp_path / "demo.duckdb"
    shutil.copy(demo_db, db)
    con = duckdb.connect(str(db))
    for a, b in (("ff3", "other"), ("other", "ff3"), ("x", "y")):
        con.execute("INSERT INTO fmduck.comparisons VALUES (?, ?, 'ia', 'ib', TIMESTAMP '2024-01-01', 'ols', "
                    "'r2_diff', 0.5, 0.1, NULL, NULL, 0.2, 'n')", [a, b])
    con.close()

    def exported(table: str) -> pl.DataFrame:
        return pl.read_csv(io.StringIO(export(db, "ff3", "csv", table=table)), infer_schema_length=None)

    for table, query in (("run_history", "SELECT * FROM fmduck.run_history WHERE run_name = 'ff3' ORDER BY version"),
                         ("first_pass_terms", "SELECT * FROM fmduck.first_pass_terms WHERE run_name = 'ff3' "
                                              "ORDER BY term_index"),
                         ("input_fingerprints", "SELECT * FROM fmduck.input_fingerprints WHERE run_name = 'ff3'")):
        got, want = exported(table), stored(db, query)
        assert got.columns == want.columns and got.height == want.height > 0, table
        assert got["run_id"].to_list() == want["run_id"].to_list(), table
    assert exported("first_pass_terms")["term"].to_list() == ["const", "MktRF", "a|b\nc *d* <x>", "HML"]
    assert exported("input_fingerprints")["fingerprint"].cast(pl.Utf8).sort().to_list() == stored(
        db, "SELECT fingerprint FROM fmduck.input_fingerprints WHERE run_name = 'ff3'")["fingerprint"].sort().to_list()
    comparisons = exported("comparisons")
    assert sorted(zip(comparisons["run_a"], comparisons["run_b"])) == [("ff3", "other"), ("other", "ff3")]

    windows = exported("first_pass_windows")  # one row per asset and window, a column per term
    flat = stored(db, "SELECT asset, estimate, std_error FROM fmduck.first_pass_windows WHERE run_name = 'ff3' "
                      "ORDER BY asset")
    assert windows.height == flat.height == 30
    windows = windows.sort("asset")
    assert windows["MktRF"].to_list() == [e[1] for e in flat["estimate"].to_list()]
    assert windows["se_HML"].to_list() == [s[3] for s in flat["std_error"].to_list()]


def test_an_output_suffix_that_is_no_format_is_refused(demo_db, tmp_path):
    """-o x.xlsx would hold CSV text: refused, naming the formats; --format or a known suffix writes."""
    xlsx = tmp_path / "x.xlsx"
    done = run_cli("export", str(demo_db), "ff3", "-o", str(xlsx))
    assert done.returncode == 2 and not xlsx.exists()
    assert done.stderr == ("fmduck: error: cannot tell the format from 'x.xlsx': fmduck export writes csv, md, json "
                           "(-o FILE.csv, .md or .json, or --format)\n")
    for name in ("x.markdown", "plain"):
        done = run_cli("export", str(demo_db), "ff3", "-o", str(tmp_path / name), "-q")
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "x.markdown").read_text().startswith("| run\\_name |")
    assert (tmp_path / "plain").read_text().startswith("run_name,run_id,term")  # no suffix: csv


def test_csv_cells_a_spreadsheet_would_evaluate_are_shown_as_text(tmp_path):
    """Text starting with = + - @ (or a tab/CR) gets a leading ' in CSV; numbers and other text are unchanged."""
    from fmduck.export import write_frame

    hostile = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\tz", "ok", "a=b", None]
    frame = pl.DataFrame({"asset": hostile, "alpha": [-1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]})
    back = pl.read_csv(io.StringIO(write_frame(frame, "csv")))
    assert back["asset"].to_list() == ["'" + h if h and h[0] in "=+-@\t" else h for h in hostile]
    assert back["alpha"].to_list() == frame["alpha"].to_list()  # a negative number is not text
