"""Milestone arithmetic: month ends, leap years, clock changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from discharge.milestones import Offset, add_months, apply_offset, parse_offset

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2026, 8, 31), 6, date(2027, 2, 28)),  # clamps to a short February
        (date(2027, 8, 31), 6, date(2028, 2, 29)),  # ... or a leap-year February
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2026, 3, 31), 1, date(2026, 4, 30)),
        (date(2026, 11, 30), 3, date(2027, 2, 28)),  # crosses the year
        (date(2026, 11, 21), 6, date(2027, 5, 21)),
        (date(2028, 2, 29), 12, date(2029, 2, 28)),
    ],
)
def test_add_months_clamps_to_month_end(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", Offset(24, "h")),
        ("5d", Offset(5, "d")),
        (" 2w ", Offset(2, "w")),
        ("3m", Offset(3, "m")),
    ],
)
def test_parse_offset(text: str, expected: Offset) -> None:
    assert parse_offset(text) == expected


@pytest.mark.parametrize("text", ["", "24", "h", "2 weeks", "-1d", "1.5d", "3y"])
def test_parse_offset_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected a number and a unit"):
        parse_offset(text)


def test_hours_are_elapsed_time_across_spring_clock_change() -> None:
    # UK clocks go forward at 01:00 on Sunday 29 March 2026: 24 hours later reads 11:00.
    start = datetime(2026, 3, 28, 10, 0, tzinfo=LONDON)
    end = apply_offset(date(2026, 3, 28), time(10, 0), LONDON, Offset(24, "h"))
    assert isinstance(end, datetime)
    assert (end.date(), end.hour, end.minute) == (date(2026, 3, 29), 11, 0)
    # Same-zone subtraction in Python is wall-clock time; compare in UTC for elapsed time.
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=24)


def test_hours_are_elapsed_time_across_autumn_clock_change() -> None:
    # UK clocks go back on Sunday 25 October 2026: 48 hours after 10:00 Saturday is 09:00 Monday.
    end = apply_offset(date(2026, 10, 24), time(10, 0), LONDON, Offset(48, "h"))
    assert (end.date(), end.hour) == (date(2026, 10, 26), 9)


def test_hours_in_another_time_zone() -> None:
    # US clocks go forward on Sunday 8 March 2026.
    end = apply_offset(date(2026, 3, 7), time(20, 30), NEW_YORK, Offset(24, "h"))
    assert (end.date(), end.hour, end.minute) == (date(2026, 3, 8), 21, 30)


@pytest.mark.parametrize(("hours", "days"), [(0, 0), (1, 1), (6, 1), (24, 1), (25, 2), (48, 2)])
def test_hours_without_time_round_up_to_whole_days(hours: int, days: int) -> None:
    got = apply_offset(date(2026, 12, 31), None, LONDON, Offset(hours, "h"))
    assert got == date(2026, 12, 31) + timedelta(days=days)
    assert not isinstance(got, datetime)


def test_days_and_weeks_are_calendar_days_even_with_a_time() -> None:
    assert apply_offset(date(2026, 3, 28), time(23, 0), LONDON, Offset(5, "d")) == date(2026, 4, 2)
    assert apply_offset(date(2028, 2, 20), None, LONDON, Offset(2, "w")) == date(2028, 3, 5)
