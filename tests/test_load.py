"""``fmduck load`` (fmduck/load.py): the same column types as DuckDB's read_csv (what ``--returns
file.csv`` reads), day/month dates only when the data decide, every text period format, units on
the named columns only, and the fixes the period-type error recommends actually working."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from fmduck import templates
from fmduck.alignment import period_type_mismatch
from fmduck.engine import DuckDBEngine
from fmduck.errors import InputError, SpecError
from fmduck.load import add_arguments, load, options_from_args, read_prepared
from period_cases import text_cases


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def direct_type(path: Path, column: str) -> str:
    """The column type ``--returns file.csv`` sees (the DuckDB engine's relation)."""
    return DuckDBEngine().relation(str(path), "returns").columns[column]


def loaded_type(path: Path, column: str, **options) -> tuple[str, pl.Series]:
    engine = DuckDBEngine()
    load(engine, path, "t", period=column, **options)
    types = dict(engine.query("DESCRIBE SELECT * FROM t").select("column_name", "column_type").iter_rows())
    return types[column], engine.query("SELECT * FROM t")[column]


# ------------------------------------------------------------------ types as read_csv
@pytest.mark.parametrize("values, kind", [
    (["2001-01-31", "2001-02-28"], "DATE"),
    (["01/31/2001", "02/28/2001"], "DATE"),          # a day above 12 decides MM/DD
    (["31/01/2001", "28/02/2001"], "DATE"),
    (["31.01.2001", "28.02.2001"], "DATE"),
    (["2001/01/31", "2001/02/28"], "DATE"),
    (["2001-1-5", "2001-12-25"], "DATE"),
    (["1/5/2001", "12/25/2001"], "DATE"),
    (["2001-01-31 10:00:00", "2001-02-28 16:30:00"], "TIMESTAMP"),
    (["2001-01", "2001-02"], "VARCHAR"),             # text in time order stays text, as read_csv has it
    (["2001Q1", "2001Q2"], "VARCHAR"),
])
def test_loaded_period_type_equals_read_csv(tmp_path, values, kind):
    path = write(tmp_path, "p.csv", "d,ret\n" + "".join(f"{v},0.5\n" for v in values))
    assert direct_type(path, "d") == kind
    got, series = loaded_type(path, "d")
    assert got == kind
    direct = duckdb.sql(f"SELECT d FROM read_csv({templates.literal(str(path))})").pl()["d"]
    assert series.to_list() == direct.to_list()


@pytest.mark.parametrize("values, first", [
    (["1/2001", "12/2001"], date(2001, 1, 1)),       # read_csv: VARCHAR; fmduck reads the same as at run time
    (["Jan 2001", "Dec 2001"], date(2001, 1, 1)),
    (["2001m1", "2001m12"], date(2001, 1, 1)),
])
def test_text_periods_read_csv_leaves_as_text_become_dates(tmp_path, values, first):
    path = write(tmp_path, "p.csv", "d,ret\n" + "".join(f"{v},0.5\n" for v in values))
    assert direct_type(path, "d") == "VARCHAR"
    got, series = loaded_type(path, "d")
    assert got == "DATE" and series[0] == first and series[1] == date(2001, 12, 1)


def test_yyyymm_integers_are_the_first_day_of_the_month(tmp_path):
    """Kept from before: read_csv sees BIGINT, fmduck load a DATE (documented); --freq month then
    maps it to the month's end."""
    path = write(tmp_path, "f.csv", ",MktRF\n194901,0.23\n194912,1.5\n")
    assert direct_type(path, "column0") == "BIGINT"
    got, series = loaded_type(path, "period")
    assert got == "DATE" and series.to_list() == [date(1949, 1, 1), date(1949, 12, 1)]
    path = write(tmp_path, "d.csv", "day,x\n19490131,1\n19491230,2\n")
    assert loaded_type(path, "day")[1].to_list() == [date(1949, 1, 31), date(1949, 12, 30)]
    assert loaded_type(path, "day", period_format="none")[1].to_list() == [19490131, 19491230]
    with pytest.raises(InputError, match=r"period column 'm': 1 distinct value\(s\) are not YYYYMM, e.g. 200113"):
        loaded_type(write(tmp_path, "bad.csv", "m,x\n200101,1\n200113,2\n"), "m")


# ------------------------------------------------------------------ day/month order
def test_ambiguous_day_month_periods_are_refused_not_guessed(tmp_path):
    path = write(tmp_path, "amb.csv", "date,ret\n01/02/2001,0.1\n02/03/2001,0.2\n")
    direct = duckdb.sql(f"SELECT date FROM read_csv({templates.literal(str(path))})").fetchall()
    assert direct[0][0] == date(2001, 2, 1)  # what read_csv guesses (DD/MM), silently
    with pytest.raises(InputError) as info:
        loaded_type(path, "date")
    msg = str(info.value)
    assert "read as MM/DD/YYYY and as DD/MM/YYYY (no day above 12)" in msg
    assert "--period-format MM/DD/YYYY or --period-format DD/MM/YYYY" in msg
    assert msg.startswith(f"{path}: period column 'date'")
    assert loaded_type(path, "date", period_format="MM/DD/YYYY")[1].to_list() == [date(2001, 1, 2), date(2001, 2, 3)]
    assert loaded_type(path, "date", period_format="dd/mm/yyyy")[1].to_list() == [date(2001, 2, 1), date(2001, 3, 2)]


def test_other_day_month_columns_are_dates_when_decided_else_text(tmp_path):
    path = write(tmp_path, "x.csv", "month,listed,ret\n200101,01/02/1990,0.1\n200102,03/04/1991,0.2\n")
    assert direct_type(path, "listed") == "DATE"  # read_csv guesses DD/MM
    notes: list[str] = []
    frame = read_prepared(path, period="month", notify=notes.append)
    assert frame.schema["month"] == pl.Date and frame.schema["listed"] == pl.String
    assert notes == [f"{path}: column 'listed': text periods like '01/02/1990', '03/04/1991' read as MM/DD/YYYY "
                     "and as DD/MM/YYYY (no day above 12); kept as text"]
    path = write(tmp_path, "y.csv", "month,listed,ret\n200101,01/13/1990,0.1\n200102,03/04/1991,0.2\n")
    frame = read_prepared(path, period="month")
    assert frame["listed"].to_list() == [date(1990, 1, 13), date(1991, 3, 4)]
    assert frame["listed"].to_list() == duckdb.sql(f"SELECT listed FROM read_csv({templates.literal(str(path))})").pl()[
        "listed"].to_list()


# ------------------------------------------------------------------ every text format
@pytest.mark.parametrize("fmt", list(text_cases()))
def test_period_format_reads_every_text_format(tmp_path, fmt):
    for i, (_, pairs) in enumerate(text_cases()[fmt]):
        path = tmp_path / f"v{i}.csv"
        pl.DataFrame({"period": [t for t, _ in pairs], "ret": [0.5] * len(pairs)}).write_csv(path)
        frame = read_prepared(path, period_format=fmt)
        assert frame["period"].to_list() == [d for _, d in pairs], (fmt, i)


def test_period_format_refuses_values_of_another_format(tmp_path):
    path = write(tmp_path, "p.csv", "period,ret\n01/31/2001,1\n2001-02-28,2\nJan 2001,3\n")
    with pytest.raises(InputError, match=r"2 distinct value\(s\) are not MM/DD/YYYY, e.g. '2001-02-28', 'Jan 2001'"):
        read_prepared(path, period_format="MM/DD/YYYY")
    path = write(tmp_path, "q.csv", "period,ret\n02/30/2001,1\n")
    with pytest.raises(InputError, match="not every value is a MM/DD/YYYY date"):
        read_prepared(path, period_format="MM/DD/YYYY")
    with pytest.raises(SpecError, match="period format must be auto, yyyymm, yyyymmdd, none or a text format"):
        read_prepared(path, period_format="YY/MM")


def test_unknown_text_periods_are_refused_with_the_fix(tmp_path):
    path = write(tmp_path, "p.csv", "period,ret\nFY2001,1\nFY2002,2\n")
    with pytest.raises(InputError, match="in no format fmduck reads as time.*--period-format none keeps the text"):
        read_prepared(path)
    assert read_prepared(path, period_format="none")["period"].to_list() == ["FY2001", "FY2002"]


# ------------------------------------------------------------------ units
def crsp_file(tmp_path: Path) -> Path:
    return write(tmp_path, "crsp.csv", "permno,date,ret,bm,me\n10001,2001-01-31,5.0,0.8,120.5\n"
                                       "10001,2001-02-28,-99.99,0.9,20.0\n10002,2001-01-31,,1.2,NA\n")


def test_percent_scales_only_the_named_columns(tmp_path):
    frame = read_prepared(crsp_file(tmp_path), period="date", unit="percent", percent_cols=["ret"])
    assert frame["ret"].to_list() == [5.0 / 100, -99.99 / 100, None]  # -99.99 is a return in a long file
    assert frame["permno"].to_list() == [10001, 10001, 10002] and frame["bm"].to_list() == [0.8, 0.9, 1.2]
    assert frame["me"].to_list() == [120.5, 20.0, None]
    bp = read_prepared(crsp_file(tmp_path), period="date", unit="bp", percent_cols=["ret", "bm"])
    assert bp["bm"].to_list() == [0.8 / 1e4, 0.9 / 1e4, 1.2 / 1e4] and bp["ret"][0] == 5.0 / 1e4


@pytest.mark.parametrize("options, error, says", [
    ({"unit": "percent"}, SpecError, "--unit percent on a long file needs --percent-cols naming the columns in "
                                     "percent (e.g. --percent-cols ret); identifiers and characteristics "
                                     "are never scaled"),
    ({"unit": "percent", "percent_cols": ["retx"]}, InputError, "--percent-cols retx not in the file"),
    ({"unit": "percent", "percent_cols": ["date"]}, InputError,
     "must name numeric value columns, not the period or text: date"),
    ({"percent_cols": ["ret"]}, SpecError,
     "--percent-cols names the columns --unit percent (or bp) divides; give --unit"),
    ({"unit": "percentage", "percent_cols": ["ret"]}, SpecError, "unit must be one of decimal, percent, bp"),
])
def test_unit_options_are_checked(tmp_path, options, error, says):
    with pytest.raises(error) as info:
        read_prepared(crsp_file(tmp_path), period="date", **options)
    assert says in str(info.value)


def test_wide_ken_french_file_scales_the_returns_only(tmp_path, data_dir):
    path = write(tmp_path, "kf.csv", ",S1V1,S1V3\n194901,-0.71,5.34\n194902,-99.99,-4.68\n")
    frame = read_prepared(path, wide=True, unit="percent")
    assert frame.columns == ["asset", "period", "ret"]
    assert frame.sort("asset", "period").rows() == [  # IEEE division, as numpy / pandas / SQL divide
        ("S1V1", date(1949, 1, 1), -0.71 / 100), ("S1V1", date(1949, 2, 1), None),  # -99.99: Ken French's missing
        ("S1V3", date(1949, 1, 1), 5.34 / 100), ("S1V3", date(1949, 2, 1), -4.68 / 100)]
    with pytest.raises(SpecError, match="--percent-cols is for long files"):
        read_prepared(path, wide=True, unit="percent", percent_cols=["S1V1"])
    factors = read_prepared(data_dir / "ff_factors_monthly.csv", unit="percent", percent_cols=["MktRF", "RF"])
    raw = pl.read_csv(data_dir / "ff_factors_monthly.csv")
    assert factors["MktRF"].to_list() == [v / 100 for v in raw["MktRF"].to_list()]
    assert factors["SMB"].to_list() == raw["SMB"].to_list()  # not named: not scaled


# ------------------------------------------------------------------ command line and engines
def test_command_line_options(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    path = write(tmp_path, "p.csv", "permno,period,ret,bm\n1,Jan 2001,5,0.5\n1,Feb 2001,-2,0.6\n")
    db = tmp_path / "x.duckdb"
    args = parser.parse_args([str(db), str(path), "--table", "panel", "--unit", "percent", "--percent-cols", "ret",
                              "--period-format", "Mon YYYY"])
    options = options_from_args(args)
    engine = DuckDBEngine(db)
    assert load(engine, args.file, args.table, **options) == 2
    assert engine.query("SELECT * FROM panel ORDER BY period").rows() == [(1, date(2001, 1, 1), 0.05, 0.5),
                                                                         (1, date(2001, 2, 1), -0.02, 0.6)]
    engine.close()


def test_load_into_postgres(pg, tmp_path):
    path = write(tmp_path, "p.csv", "permno,date,ret\n1,01/31/2001,5\n1,02/28/2001,-2\n")
    assert load(pg, path, "panel", period="date", unit="percent", percent_cols=["ret"]) == 2
    rel = pg.relation("panel", "returns")
    assert rel.columns["date"] == "DATE"
    assert pg.query("SELECT date, ret FROM panel ORDER BY date").rows() == [(date(2001, 1, 31), 0.05),
                                                                           (date(2001, 2, 28), -0.02)]


# ------------------------------------------------------------------ the period-type error's fixes work
def _command(message: str) -> list[str]:
    return shlex.split(re.search(r"with (fmduck load .*?) \(", message).group(1))


def _run_view(message: str, frame: pl.DataFrame) -> pl.Series:
    view = re.search(r"(CREATE VIEW v AS SELECT .*? FROM) \.\.\.", message).group(1)
    con = duckdb.connect()
    con.register("t", frame.to_arrow())
    con.execute(f"{view} t")
    return con.sql("SELECT * FROM v").pl()[frame.columns[0]]


def test_period_type_error_for_yyyymm_numbers_recommends_what_works(tmp_path):
    path = write(tmp_path, "ff.csv", "period,MktRF\n200101,1.0\n200102,2.0\n")
    msg = period_type_mismatch(f"returns file {path}", "period", "BIGINT", [200101, 200102],
                               "table crsp", "date", "DATE", [date(2001, 1, 31)])
    assert msg.startswith(f"period columns do not match: returns file {path}.period is BIGINT (e.g. 200101, 200102) "
                          "but table crsp.date is DATE (e.g. 2001-01-31); load ")
    assert msg.endswith("then --freq month meets month-end and trading-day dates")
    cmd = _command(msg)
    assert cmd[:4] == ["fmduck", "load", "DB", str(path)] and cmd[-2:] == ["--period-format", "yyyymm"]
    assert read_prepared(path, period_format=cmd[-1])["period"].to_list() == [date(2001, 1, 1), date(2001, 2, 1)]
    assert _run_view(msg, pl.DataFrame({"period": [200101, 200112]})).to_list() == [date(2001, 1, 1), date(2001, 12, 1)]


@pytest.mark.parametrize("values, expected", [
    (["Jan 2001", "Dec 2001"], [date(2001, 1, 1), date(2001, 12, 1)]),
    (["01/31/2001", "12/31/2001"], [date(2001, 1, 31), date(2001, 12, 31)]),
    (["31.01.2001", "31.12.2001"], [date(2001, 1, 31), date(2001, 12, 31)]),
    (["2001-01", "2001-12"], [date(2001, 1, 1), date(2001, 12, 1)]),
    (["2001Q1", "2001Q4"], [date(2001, 1, 1), date(2001, 10, 1)]),
])
def test_period_type_error_for_text_recommends_what_works(tmp_path, values, expected):
    path = tmp_path / "p.csv"
    pl.DataFrame({"period": values, "ret": [1.0, 2.0]}).write_csv(path)
    msg = period_type_mismatch("table ff", "date", "DATE", [date(2001, 1, 31)], f"returns file {path}", "period",
                               "VARCHAR", values)
    cmd = _command(msg)
    assert read_prepared(path, period_format=cmd[-1])["period"].to_list() == expected
    assert _run_view(msg, pl.DataFrame({"period": values})).to_list() == expected
    table_msg = period_type_mismatch("table ff", "date", "DATE", [], "table p", "period", "VARCHAR", values)
    assert "read table p.period in a view" in table_msg
    assert _run_view(table_msg, pl.DataFrame({"period": values})).to_list() == expected


def test_period_type_error_other_cases():
    digits = period_type_mismatch("table p", "period", "BIGINT", [1, 2], "table f", "period", "VARCHAR", ["1", "2"])
    assert digits.endswith('cast table f.period to integers (CAST("period" AS INTEGER) in a view)')
    plain = period_type_mismatch("table p", "period", "INTEGER", [1, 2], "table f", "period", "DATE",
                                 [date(2001, 1, 1)])
    assert plain.endswith("give both the same type (integers, or dates; a view can convert one side)")
    amb = period_type_mismatch("table p", "d", "VARCHAR", ["01/02/2001"], "table f", "d", "TIMESTAMP",
                               [datetime(2001, 1, 2)])
    assert "read as MM/DD/YYYY and as DD/MM/YYYY" in amb and "--period-format" not in amb  # fmduck run has none
    assert _run_views(amb, ["01/02/2001"]) == {"MM/DD/YYYY": [date(2001, 1, 2)], "DD/MM/YYYY": [date(2001, 2, 1)]}


def _run_views(message: str, values: list[str]) -> dict[str, list[date]]:
    """Each view of a message for an ambiguous column d, run as printed on ``values`` (its table t)."""
    out = {}
    for view, fmt in re.findall(r"(CREATE VIEW v AS SELECT .*? FROM t) \((\S+)\)", message):
        con = duckdb.connect()
        con.register("t", pl.DataFrame({"d": values}).to_arrow())
        con.execute(view)
        out[fmt] = con.sql("SELECT d FROM v").pl()["d"].to_list()
    return out


def test_ambiguous_text_periods_of_a_run_get_fixes_that_work(tmp_path, con):
    """fmduck run has no --period-format: an ambiguous table is converted by the views the message gives,
    a file by the `fmduck load` commands it gives (the column named with --period-name)."""
    from fmduck import FamaMacBeth, Spec
    from fmduck.periods import classify_text_periods, format_option

    values = ["01/02/2001", "03/04/2001"]
    panel = pl.DataFrame({"id": ["a", "a", "b", "b"], "d": values * 2, "r": [0.1, 0.2, 0.3, 0.5],
                          "x": [1.0, 2, 2.5, 3]})
    con.register("p", panel.to_arrow())
    with pytest.raises(InputError, match="read as MM/DD/YYYY and as DD/MM/YYYY") as info:
        FamaMacBeth(Spec(name="amb", returns="p", asset="id", period="d", ret="r", chars=["x"]), con).fit()
    assert "--period-format" not in str(info.value)
    assert _run_views(str(info.value), values) == {"MM/DD/YYYY": [date(2001, 1, 2), date(2001, 3, 4)],
                                                   "DD/MM/YYYY": [date(2001, 2, 1), date(2001, 4, 3)]}
    path = tmp_path / "p.csv"  # DuckDB's read_csv would take these as dates: the classification of a file's text
    panel.write_csv(path)
    label = f"returns file {path}"
    message = classify_text_periods(values, "d", f"{label}.d", format_option(label, "d")).message
    commands = [shlex.split(c) for c in re.findall(r"fmduck load DB \S+ --table NAME --period-name d --period-format "
                                                    r"[^\s,]+", message)]
    assert [c[3] for c in commands] == [str(path)] * 2
    read = {c[-1]: read_prepared(path, period=c[c.index("--period-name") + 1], period_format=c[-1])["d"].to_list()
            for c in commands}
    assert read == {"MM/DD/YYYY": [date(2001, 1, 2), date(2001, 3, 4)] * 2,
                    "DD/MM/YYYY": [date(2001, 2, 1), date(2001, 4, 3)] * 2}


# ------------------------------------------------------------------ through the real entry point
def fmduck(*args) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fmduck", *map(str, args)], capture_output=True, text=True)


def test_cli_load(tmp_path):
    """Needs fmduck/cli.py to build `fmduck load` from fmduck.load.add_arguments / options_from_args."""
    db = tmp_path / "c.duckdb"
    path = write(tmp_path, "p.csv", "permno,period,ret,bm\n10001,Jan 2001,5,0.5\n10001,Feb 2001,-2,0.6\n")
    out = fmduck("load", db, path, "--table", "panel", "--unit", "percent")
    assert out.returncode == 2 and "fmduck: error: --unit percent on a long file needs --percent-cols" in out.stderr
    out = fmduck("load", db, path, "--table", "panel", "--unit", "percent", "--percent-cols", "ret",
                 "--period-format", "Mon YYYY")
    assert out.returncode == 0, out.stderr
    con = duckdb.connect(str(db), read_only=True)
    assert con.sql("SELECT permno, period, ret, bm FROM panel ORDER BY period").fetchall() == [
        (10001, date(2001, 1, 1), 5 / 100, 0.5), (10001, date(2001, 2, 1), -2 / 100, 0.6)]
    con.close()
    amb = write(tmp_path, "a.csv", "date,listed,ret\n1,01/02/1990,0.1\n2,03/04/1991,0.2\n")
    out = fmduck("load", db, amb, "--table", "a", "--period-name", "date")
    assert out.returncode == 0 and "fmduck: note: " in out.stderr
    assert "'listed'" in out.stderr and "kept as text" in out.stderr


@pytest.mark.parametrize(("header", "example"), [
    ("permno,date,ret,retx,size,bm", "--percent-cols ret,retx"),
    ("permno,date,size,DLRET,vwretd,log_me", "--percent-cols DLRET,vwretd"),
    ("permno,date,me,bm", "--percent-cols ret"),  # nothing named like a return: a placeholder
])
def test_unit_on_a_long_file_suggests_the_return_columns_only(tmp_path, header, example):
    """The example of --percent-cols names the columns that look like returns, never the identifiers,
    the period or the characteristics."""
    row = ",".join(["10001", "2001-01-31"] + ["1.5"] * (header.count(",") - 1))
    path = write(tmp_path, "p.csv", f"{header}\n{row}\n")
    with pytest.raises(SpecError) as info:
        read_prepared(path, period="date", unit="percent")
    assert str(info.value) == (f"--unit percent on a long file needs --percent-cols naming the columns in percent "
                               f"(e.g. {example}); identifiers and characteristics are never scaled")


def test_ken_french_layout_without_unit_says_it_kept_percent(tmp_path):
    """A Ken French file loaded without --unit keeps its values and says so, with their typical size and
    the fix; --unit decimal is the explicit choice (no note); --unit percent divides."""
    db = tmp_path / "kf.duckdb"
    path = write(tmp_path, "F-F.csv", ",Mkt-RF,SMB,RF\n199501,7.13,1.87,0.26\n199502,-0.82,1.99,0.25\n")
    out = fmduck("load", db, path, "--table", "ff")
    assert out.returncode == 0, out.stderr
    note = [ln for ln in out.stderr.splitlines() if ln.startswith("fmduck: note: ")]
    # the median |x| of 7.13, 1.87, 0.26, 0.82, 1.99, 0.25
    assert len(note) == 1 and "loaded as they are (typical |x| 1.35)" in note[0] and "--unit percent" in note[0]
    out = fmduck("load", db, path, "--table", "ff2", "--unit", "decimal")
    assert out.returncode == 0 and "note" not in out.stderr
    wide = write(tmp_path, "ports.csv", ",S1V1,S1V3\n194901,-0.71,5.34\n194902,2.5,-4.68\n")
    out = fmduck("load", db, wide, "--table", "p", "--wide")
    assert "typical |x| 3.59" in out.stderr  # median of 0.71, 2.5, 4.68, 5.34
    out = fmduck("load", db, wide, "--table", "p2", "--wide", "--unit", "percent")
    assert out.returncode == 0 and "note" not in out.stderr
    con = duckdb.connect(str(db), read_only=True)
    assert con.sql("SELECT \"Mkt-RF\" FROM ff ORDER BY period").fetchall() == [(7.13,), (-0.82,)]
    rets = con.sql("SELECT ret FROM p2 WHERE asset = 'S1V1' ORDER BY period").fetchall()
    assert rets == [(-0.71 / 100,), (2.5 / 100,)]
    con.close()


def test_yyyymm_factors_beside_dated_returns_the_suggested_fixes_work(tmp_path, capsys):
    """Integer YYYYMM factor periods beside DATE panel periods are refused; the view the message gives
    for a table runs in DuckDB as printed, and the `fmduck load` command and run options it gives for a
    file work: each rerun (with --freq month) gives the estimates of factors dated in the first place."""
    import gc

    import oracles
    from fmduck.cli import main

    def cli(*args) -> tuple[int, str]:
        capsys.readouterr()
        code = main([str(a) for a in args])
        gc.collect()
        return code, capsys.readouterr().err

    panel, factors = oracles.synthetic_panel(seed=81, n_assets=8, n_periods=30)
    first_day = pl.date(2001, 1, 1).dt.offset_by(pl.format("{}mo", pl.col("period") - 1))
    panel = panel.with_columns(first_day.dt.month_end().alias("period"))
    yyyymm = factors.with_columns((first_day.dt.year() * 100 + first_day.dt.month()).cast(pl.Int32).alias("period"))
    db, csv = tmp_path / "p.duckdb", tmp_path / "F-F.csv"
    yyyymm.rename({"period": ""}).write_csv(csv)  # Ken French's layout: a blank first header
    with duckdb.connect(str(db)) as con:
        dated = factors.with_columns(first_day.alias("period"))
        for name, frame in (("crsp", panel), ("ffint", yyyymm), ("ffdate", dated)):
            con.register("src", frame.to_arrow())
            con.execute(f"CREATE TABLE {name} AS FROM src")
            con.unregister("src")
    run = ["run", db, "--returns", "crsp", "--ret", "ret", "--factor-cols", "mkt,smb", "-q"]

    code, err = cli(*run, "--factors", "ffint", "--name", "t")
    assert code == 2 and "table ffint.period is INTEGER (e.g. 200101, 200102, 200103)" in err
    view = re.search(r"(CREATE VIEW v AS SELECT .*? FROM) \.\.\.", err).group(1)
    with duckdb.connect(str(db)) as con:
        con.execute(f"{view} ffint")
    assert cli(*run, "--factors", "v", "--freq", "month", "--name", "view") == (0, "")

    code, err = cli(*run, "--factors", csv, "--factor-period", "column0", "--name", "t")
    assert code == 2
    load_command = [str(db) if a == "DB" else "ffl" if a == "NAME" else a for a in _command(err)]
    assert cli(*load_command[1:], "-q")[0] == 0
    rerun = shlex.split(re.search(r" and run with (.*?);", err).group(1))
    assert rerun == ["--factors", "NAME", "--factor-period", "period"]
    assert cli(*run, "--factors", "ffl", *rerun[2:], "--freq", "month", "--name", "loaded") == (0, "")

    assert cli(*run, "--factors", "ffdate", "--freq", "month", "--name", "dated") == (0, "")
    with duckdb.connect(str(db), read_only=True) as con:
        est = {name: con.sql(f"SELECT estimate FROM fmduck.estimates WHERE run_name = '{name}' ORDER BY term, "
                             "se_type").fetchnumpy()["estimate"] for name in ("view", "loaded", "dated")}
    assert len(est["dated"]) > 0
    for name in ("view", "loaded"):
        np.testing.assert_allclose(est[name], est["dated"], rtol=1e-12)
