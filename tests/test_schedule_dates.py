"""Dates written with slashes in a schedule: read when they can only mean one thing, else
explained once for the whole file, never by repeating the value."""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path

import pytest

from discharge.batch import DateOrders, read_date
from discharge.errors import InputError
from tests.helpers import pdf_text, run_discharge


def test_a_date_real_in_only_one_order_is_not_ambiguous() -> None:
    assert read_date("13/02/2026", None, "date") == "2026-02-13"  # only day/month
    assert read_date("02/13/2026", None, "date") == "2026-02-13"  # only month/day
    assert read_date("05/05/2026", None, "date") == "2026-05-05"  # the same either way
    with pytest.raises(InputError) as ambiguous:
        read_date("03/04/2026", None, "date")
    assert str(ambiguous.value).startswith("date could be day/month or month/day")


@pytest.mark.parametrize("order", [None, "ymd"])
def test_a_date_real_in_no_order_is_not_a_real_date(order: str | None) -> None:
    with pytest.raises(InputError) as caught:
        read_date("31/02/2026", order, "date of birth")
    assert str(caught.value) == "date of birth is not a real calendar date"


def test_messages_name_the_column_never_the_value() -> None:
    for text, order in [("03/04/2026", None), ("31/02/2026", None), ("11/21/2026", "dmy")]:
        with pytest.raises(InputError) as caught:
            read_date(text, order, "date")
        assert text not in str(caught.value) and text[:5] not in str(caught.value)


def test_the_dates_of_a_file_are_counted() -> None:
    dates = DateOrders()
    for text in [
        "03/04/2026",
        "13/02/2026",
        "01/02/1990",
        "31/02/2026",
        "2026-04-03",
        "05/05/2026",
    ]:
        with contextlib.suppress(InputError):
            read_date(text, None, "date", dates)
    assert (dates.either, dates.day_first, dates.month_first, dates.alike) == (2, 1, 0, 1)
    assert dates.looks_like() == "dmy"


def _run(tmp_path: Path, lines: list[str], *args: str) -> tuple[int, list[str], Path]:
    schedule = tmp_path / "s.csv"
    schedule.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = run_discharge("batch", schedule, "--out-dir", out, *args)
    return result.code, result.stderr.splitlines(), out


def test_forty_day_month_dates_are_explained_once(tmp_path: Path) -> None:
    days = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]  # each could be a day or a month (11/11 is both)
    rows = [f"Patient {n},hsg,{days[n % 11]:02d}/11/2026" for n in range(39)]
    rows.append("Day First,hsg,21/11/2026")  # only day/month: read, and it shows the order
    code, stderr, out = _run(tmp_path, ["patient_name,procedure,date", *rows])
    assert code == 1
    problems = [line for line in stderr if not line.startswith(("see ", "warning:"))]
    assert problems == [
        "rows 2-40: all 40 dates look like DD/MM/YYYY: add --date-order dmy or date_order in "
        "the clinic config"
    ]
    with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as handle:
        entries = {int(e["row"]): e for e in csv.DictReader(handle)}
    assert entries[41]["status"] == "ok"
    assert "Saturday 21 November 2026" in pdf_text(out / entries[41]["file"])
    assert entries[2]["error"].startswith("date could be day/month or month/day")
    assert not any("/11/2026" in e["error"] for e in entries.values())

    code, stderr, out = _run(
        tmp_path, ["patient_name,procedure,date", *rows], "--date-order", "dmy"
    )
    assert code == 0, stderr


def test_month_day_dates_name_the_other_order(tmp_path: Path) -> None:
    rows = ["Ann,hsg,03/04/2026", "Bea,hsg,11/21/2026", "Cy,hsg,2026-11-21,", "Di,hsg,04/05/2026"]
    code, stderr, _ = _run(tmp_path, ["patient_name,procedure,date", *rows])
    assert code == 1
    assert "rows 2, 5: all 3 dates look like MM/DD/YYYY: add --date-order mdy" in stderr[0]


def test_dates_that_do_not_tell_the_order_say_so(tmp_path: Path) -> None:
    code, stderr, _ = _run(tmp_path, ["patient_name,procedure,date", "Ann,hsg,03/04/2026"])
    assert code == 1
    assert stderr[0] == (
        "row 2: 1 date could be day/month or month/day: add --date-order dmy or --date-order "
        "mdy, or date_order in the clinic config"
    )
    rows = ["Ann,hsg,03/04/2026", "Bea,hsg,11/21/2026", "Cy,hsg,21/11/2026"]
    code, stderr, _ = _run(tmp_path, ["patient_name,procedure,date", *rows])
    assert "row 2: 1 date could be day/month or month/day, and the other dates are written both " \
        "ways: write the dates as YYYY-MM-DD" in stderr  # fmt: skip


def test_a_date_error_does_not_hide_the_rows_other_problems(tmp_path: Path) -> None:
    lines = ["patient_name,procedure,date,dob,email,paper",
             "Ann,hsgg,03/04/2026,31/02/1990,ann@,a5"]  # fmt: skip
    code, stderr, _ = _run(tmp_path, lines, "--check")
    assert code == 1
    (line,) = [line for line in stderr if line.startswith("row 2:")]
    for problem in ["date could be day/month or month/day", "date of birth is not a real calendar date",
                    "unknown procedure: did you mean 'hsg'?", "email", "paper is not a paper size"]:  # fmt: skip
        assert problem in line, problem
    assert "03/04" not in line and "31/02" not in line
    # With the order given, the same row still reports everything else.
    code, stderr, _ = _run(tmp_path, lines, "--check", "--date-order", "dmy")
    (line,) = [line for line in stderr if line.startswith("row 2:")]
    assert "could be day/month" not in line
    assert "date of birth is not a real calendar date (read as day/month/year)" in line
    assert "unknown procedure" in line and "paper is not a paper size" in line
