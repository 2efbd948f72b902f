"""The calendar's date spans: how a milestone's start and (inclusive) end become an event."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from discharge.delivery.ics import _span

LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # A day: an all-day event ends (exclusively) on the next day.
        (date(2026, 11, 21), None, (date(2026, 11, 21), date(2026, 11, 22))),
        # A range of days includes its last day.
        (date(2026, 11, 21), date(2026, 11, 23), (date(2026, 11, 21), date(2026, 11, 24))),
        # Across the end of a year.
        (date(2026, 12, 31), None, (date(2026, 12, 31), date(2027, 1, 1))),
    ],
)
def test_all_day_spans(start: date, end: date | None, expected: tuple[date, date]) -> None:
    assert _span(start, end) == expected


def test_a_moment_is_an_instant() -> None:
    moment = datetime(2026, 11, 22, 10, 30, tzinfo=LONDON)
    assert _span(moment, None) == (moment, None)


def test_between_two_moments() -> None:
    a = datetime(2026, 11, 22, 10, 30, tzinfo=LONDON)
    b = datetime(2026, 11, 23, 10, 30, tzinfo=LONDON)
    assert _span(a, b) == (a, b)


def test_from_a_moment_to_the_end_of_a_day_on_the_clinic_clock() -> None:
    # The clocks go back on 25 October 2026: midnight after the 25th is still local midnight.
    a = datetime(2026, 10, 24, 10, 0, tzinfo=LONDON)
    start, end = _span(a, date(2026, 10, 25))
    assert start == a
    assert end == datetime(2026, 10, 26, 0, 0, tzinfo=LONDON)
