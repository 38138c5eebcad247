"""Ken French's files as downloaded (fmduck/french.py through fmduck/load.py): description lines, a
header starting with a comma, a monthly block of space-padded rows, an annual block, a copyright line,
CRLF line ends; files of several titled blocks (25 portfolios) and ``--block``; -99.99 / -999 as NULL.

Oracle: the files are written here from known numbers; every loaded value is compared exactly with
``float(cell) / 100`` (IEEE division, as fmduck divides) and every period with the date it names.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pytest

from fmduck import french
from fmduck.errors import SpecError
from fmduck.load import read_prepared

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTION = ["This file was created by CMPT_ME_BEME_RETS using the 202412 CRSP database.",
               "The 1-month TBill rate data until 202405 come from Ibbotson Associates.",
               "The 1-month TBill rate data starting from 202406 come from ICE BofA US 3-Month Treasury Bill Index."]
COPYRIGHT = "Copyright 2024 Eugene F. Fama and Kenneth R. French"
FACTORS = ["Mkt-RF", "SMB", "HML", "RF"]
PORTFOLIOS = [f"ME{i} BM{j}" for i in range(1, 6) for j in range(1, 6)]
PORTFOLIOS[0], PORTFOLIOS[4], PORTFOLIOS[20], PORTFOLIOS[24] = "SMALL LoBM", "SMALL HiBM", "BIG LoBM", "BIG HiBM"


def months(first: int = 192607, last: int = 202412) -> list[int]:
    out, y, m = [], first // 100, first % 100
    while y * 100 + m <= last:
        out.append(y * 100 + m)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def cells(rng: np.random.Generator, rows: int, cols: int) -> list[list[str]]:
    """Returns in percent as Ken French writes them: two decimals, padded to 8 characters."""
    return [[f"{v:8.2f}" for v in row] for row in rng.normal(0.8, 5.0, (rows, cols)).round(2)]


def block(title: str | None, names: list[str], periods: list[int], values: list[list[str]]) -> list[str]:
    head = [title] if title is not None else []
    return [*head, "," + ",".join(names), *(f"{p}," + ",".join(row) for p, row in zip(periods, values))]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())  # CRLF, as the library's files
    return path


def factors_file(folder: Path) -> tuple[Path, list[list[str]]]:
    """F-F_Research_Data_Factors.CSV as downloaded: 3 description lines, 1,182 months 192607-202412, the
    annual block 1927-2024, the copyright line. Returns the path and the monthly cells."""
    rng = np.random.default_rng(7)
    monthly = cells(rng, 1182, 4)
    lines = [*DESCRIPTION, "", *block(None, FACTORS, months(), monthly), "",
             *block(" Annual Factors: January-December ", FACTORS, list(range(1927, 2025)), cells(rng, 98, 4)),
             "", COPYRIGHT]
    return write_lines(folder / "F-F_Research_Data_Factors.CSV", lines), monthly


def portfolios_file(folder: Path) -> tuple[Path, list[list[list[str]]]]:
    """25_Portfolios_5x5.CSV-like: 4 description lines, value-weighted and equal-weighted monthly returns,
    annual returns, numbers of firms; 26 cells of the equal-weighted block are -99.99 and 3 counts -999."""
    rng = np.random.default_rng(11)
    vw, ew, firms = cells(rng, 1182, 25), cells(rng, 1182, 25), [[f"{n:6d}" for n in row] for row in
                                                                 rng.integers(1, 900, (1182, 25))]
    for k in range(26):
        ew[k][3 + k % 2] = "  -99.99"
    for k in range(3):
        firms[k][7] = "  -999"
    lines = ["  This file was created by CMPT_ME_BEME_RETS using the 202412 CRSP database.",
             "  It contains value- and equal-weighted returns for portfolios formed on ME and BE/ME.",
             "  The portfolios are constructed at the end of June.",
             "  Missing data are indicated by -99.99 or -999.", "", "",
             *block("  Average Value Weighted Returns -- Monthly", PORTFOLIOS, months(), vw), "", "",
             *block("  Average Equal Weighted Returns -- Monthly", PORTFOLIOS, months(), ew), "", "",
             *block("  Average Value Weighted Returns -- Annual", PORTFOLIOS, list(range(1927, 2025)),
                    cells(rng, 98, 25)), "", "",
             *block("  Number of Firms in Portfolios", PORTFOLIOS, months(), firms), "", COPYRIGHT]
    return write_lines(folder / "25_Portfolios_5x5.CSV", lines), [vw, ew, firms]


def fmduck(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fmduck", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=120, check=False)


# ------------------------------------------------------------------ the factor file
def test_the_downloaded_factor_file_loads_its_monthly_block(tmp_path):
    path, monthly = factors_file(tmp_path)
    notes: list[str] = []
    frame = read_prepared(path, unit="percent", describe=notes.append)
    assert frame.columns == ["period", *FACTORS]
    assert frame.height == 1182
    assert frame["period"][0] == date(1926, 7, 1) and frame["period"][-1] == date(2024, 12, 1)
    for j, name in enumerate(FACTORS):
        assert frame[name].to_list() == [float(row[j]) / 100 for row in monthly], name
    assert notes == [f"{path}: Ken French layout: read block 1 (monthly, 1,182 rows, 192607–202412); skipped 3 "
                     'description lines, block 2 "Annual Factors: January-December" (annual, 98 rows) and 1 other '
                     f"line ({COPYRIGHT}); --block N or --block TITLE reads another block"]
    annual = read_prepared(path, block="annual factors: january-december", unit="percent")
    assert annual.height == 98 and annual["period"].to_list() == list(range(1927, 2025))  # YYYY stays an integer


def test_the_command_says_what_it_read_and_q_silences_it(tmp_path):
    factors_file(tmp_path)
    out = fmduck("load", "f.duckdb", "F-F_Research_Data_Factors.CSV", "--table", "ff", "--unit", "percent",
                 cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert lines[0].startswith("fmduck: note: F-F_Research_Data_Factors.CSV: Ken French layout: read block 1 "
                               "(monthly, 1,182 rows, 192607–202412); skipped 3 description lines")
    assert lines[-1] == "loaded 1,182 rows into ff"
    quiet = fmduck("load", "f.duckdb", "F-F_Research_Data_Factors.CSV", "--table", "ff2", "--unit", "percent", "-q",
                   cwd=tmp_path)
    assert quiet.returncode == 0 and "Ken French layout" not in quiet.stderr and "loaded" not in quiet.stderr
    con = duckdb.connect(str(tmp_path / "f.duckdb"), read_only=True)
    got = con.sql('SELECT COUNT(*), MIN(period), MAX(period), COUNT("Mkt-RF") FROM ff2').fetchall()
    assert got == [(1182, date(1926, 7, 1), date(2024, 12, 1), 1182)]
    con.close()


def test_a_header_on_the_first_line_still_cuts_the_annual_block(tmp_path):
    """Without the description lines the annual rows (YYYY) are not read as more periods."""
    path, monthly = factors_file(tmp_path)
    lines = path.read_text().splitlines()
    trimmed = write_lines(tmp_path / "header_first.csv", lines[4:])
    notes: list[str] = []
    frame = read_prepared(trimmed, unit="percent", describe=notes.append)
    assert frame.height == 1182 and frame["RF"].to_list() == [float(row[3]) / 100 for row in monthly]
    assert "skipped block 2" in notes[0] and "description" not in notes[0]


# ------------------------------------------------------------------ several blocks
def test_several_blocks_first_by_default_others_by_number_or_title(tmp_path):
    path, (vw, ew, firms) = portfolios_file(tmp_path)
    notes: list[str] = []
    first = read_prepared(path, wide=True, unit="percent", describe=notes.append)
    assert first.height == 1182 * 25 and first["ret"].null_count() == 0
    assert first.filter(first["asset"] == "BIG HiBM")["ret"].to_list() == [float(r[24]) / 100 for r in vw]
    assert notes[0].startswith(f'{path}: Ken French layout: read block 1 "Average Value Weighted Returns -- '
                               'Monthly" (monthly, 1,182 rows, 192607–202412); skipped 4 description lines, block 2')
    assert "-99.99" not in notes[0]  # none in this block

    notes.clear()
    equal = read_prepared(path, wide=True, unit="percent", block="Average Equal Weighted Returns -- Monthly",
                          describe=notes.append)
    assert equal.equals(read_prepared(path, wide=True, unit="percent", block=2))
    assert equal["ret"].null_count() == 26  # -99.99: missing
    got = equal.filter(equal["asset"] == "ME1 BM4")["ret"].to_list()
    assert got == [None if r[3].strip() == "-99.99" else float(r[3]) / 100 for r in ew]
    assert notes[0].endswith("; 26 values of -99.99 or -999 (missing) read as NULL")

    counts = read_prepared(path, wide=True, block="number of firms")  # a part of a title will do
    assert counts["ret"].dtype.is_integer() and counts["ret"].null_count() == 3
    assert counts.filter(counts["asset"] == "SMALL LoBM")["ret"].to_list() == [int(r[0]) for r in firms]
    with pytest.raises(SpecError, match='block 4 "Number of Firms in Portfolios" holds no returns; --unit percent'):
        read_prepared(path, wide=True, block=4, unit="percent")
    annual = read_prepared(path, wide=True, block=3, unit="percent")
    assert sorted(set(annual["period"].to_list())) == list(range(1927, 2025))


def test_a_block_that_is_not_there_is_refused_with_the_list(tmp_path):
    path, _ = portfolios_file(tmp_path)
    for wrong in ("5", "Monthly", "Average Market Cap"):
        with pytest.raises(SpecError) as info:
            read_prepared(path, wide=True, block=wrong)
        assert str(info.value) == (
            f"{path}: --block {wrong!r} names no block; it has block 1 \"Average Value Weighted Returns -- Monthly\" "
            "(monthly, 1,182 rows); block 2 \"Average Equal Weighted Returns -- Monthly\" (monthly, 1,182 rows); "
            "block 3 \"Average Value Weighted Returns -- Annual\" (annual, 98 rows); block 4 \"Number of Firms in "
            "Portfolios\" (monthly, 1,182 rows)")
    plain = tmp_path / "plain.csv"
    plain.write_text("asset,period,ret\nA,200101,0.1\n")
    with pytest.raises(SpecError, match="--block picks a block of a Ken French file"):
        read_prepared(plain, block=1)


def test_ordinary_files_are_not_taken_for_the_layout(tmp_path):
    """Rows above a line with an empty first cell, or numbers in it, make an ordinary file."""
    above = tmp_path / "above.csv"
    above.write_text("id,a,b\n199901,1,2\n,x,y\n199902,3,4\n")
    assert french.layout(above) is None
    null_id = tmp_path / "null_id.csv"
    null_id.write_text("permno,period,ret\n,200101,0.5\n10001,200102,0.1\n")
    assert french.layout(null_id) is None
    assert read_prepared(null_id, period="period")["permno"].to_list() == [None, 10001]


# ------------------------------------------------------------------ the README's example
def readme_loads() -> list[tuple[list[str], list[str]]]:
    """The `fmduck load` commands of README's "Bringing your own data" block that read a Ken French file,
    each with the notes written under it (wrapped lines joined)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Bringing your own data"):]
    start = section.index("```sh\n") + len("```sh\n")
    lines = section[start:section.index("```", start)].replace("\\\n", " ").splitlines()
    out: list[tuple[list[str], list[str]]] = []
    current: list[str] | None = None  # the notes of the command above, while its comment lines last
    for line in lines:
        if line.startswith("fmduck load") and ("F-F_Research" in line or "25_Portfolios" in line):
            out.append((shlex.split(line, comments=True), []))
            current = out[-1][1]
        elif current is not None and line.startswith("# fmduck: note: "):
            current.append(line[2:])
        elif current is not None and current and line.startswith("#   "):
            current[-1] += " " + line[4:]
        else:
            current = None
    return out


def test_the_readme_example_works_as_printed(tmp_path):
    factors_file(tmp_path)
    portfolios_file(tmp_path)
    loads = readme_loads()
    assert [cmd[3] for cmd, _ in loads] == ["F-F_Research_Data_Factors.CSV", "25_Portfolios_5x5.CSV"]
    for cmd, notes in loads:
        assert cmd[:2] == ["fmduck", "load"] and notes
        out = fmduck(*cmd[1:], cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert [ln for ln in out.stderr.splitlines() if ln.startswith("fmduck: note: ")] == notes
    con = duckdb.connect(str(tmp_path / "panel.duckdb"), read_only=True)
    assert con.sql("SELECT COUNT(*), COUNT(ret) FROM ports25").fetchall() == [(1182 * 25, 1182 * 25 - 26)]
    assert con.sql("SELECT COUNT(*) FROM ff3").fetchall() == [(1182,)]
    con.close()
