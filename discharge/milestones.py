"""Milestone arithmetic: when is "24 hours", "5 days" or "3 months" after a procedure?

Pure functions, no I/O, no formatting. The rules (also in templates/README.md):

- Hours, with a procedure time: elapsed hours on the clock in the clinic's time zone, so
  24 hours after 10:00 on the day the clocks go forward is 11:00 the next day.
- Hours, without a time: whole days, rounded up (never print a date earlier than advised).
- Days and weeks: calendar days after the procedure date.
- Months: the same day of the month, clamped to the end of a shorter month
  (31 August + 6 months is 28 February, or 29 February in a leap year).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Unit = Literal["h", "d", "w", "m"]
_OFFSET = re.compile(r"^\s*(\d{1,4})\s*([hdwm])\s*$")


@dataclass(frozen=True)
class Offset:
    amount: int
    unit: Unit

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def parse_offset(text: str) -> Offset:
    """Parse ``"24h"``, ``"5d"``, ``"2w"`` or ``"3m"``; raise ValueError otherwise."""
    match = _OFFSET.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"expected a number and a unit such as 24h, 5d, 2w or 3m, got {text!r}")
    return Offset(int(match.group(1)), match.group(2))  # type: ignore[arg-type]


def add_months(day: date, months: int) -> date:
    """``day`` plus whole calendar months, clamped to the last day of the target month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def apply_offset(day: date, at: time | None, tz: ZoneInfo, offset: Offset) -> date | datetime:
    """When ``offset`` after a procedure on ``day`` (at ``at``, if known) falls.

    Returns an aware ``datetime`` in ``tz`` for an hour offset when the time is known,
    otherwise a ``date``.
    """
    if offset.unit == "h":
        if at is None:
            return day + timedelta(days=-(-offset.amount // 24))
        start = datetime.combine(day, at, tzinfo=tz)
        # Aware arithmetic in Python is wall-clock arithmetic; go through UTC for elapsed time.
        return (start.astimezone(UTC) + timedelta(hours=offset.amount)).astimezone(tz)
    if offset.unit == "d":
        return day + timedelta(days=offset.amount)
    if offset.unit == "w":
        return day + timedelta(weeks=offset.amount)
    return add_months(day, offset.amount)
