"""The timeline's milestones as an RFC 5545 calendar (.ics) for the patient's phone.

Day milestones become all-day events; a milestone an hour offset put at a clock time becomes a
timed event in the clinic's time zone, with its VTIMEZONE. Each event's UID is an HMAC (under
the clinic's secret) of the patient, the procedure, its date and the milestone, so importing a
corrected or re-sent copy updates the events already in the patient's calendar instead of
adding them a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from discharge.document import FollowUp, Milestone
from discharge.request import DischargeRequest

PRODID = "-//discharge//after-care instructions//EN"


@dataclass(frozen=True)
class CalendarEvent:
    uid: str
    start: date | datetime
    end: date | datetime | None  # exclusive; None for an instant
    summary: str
    description: str
    location: str = ""
    busy: bool = False  # an appointment the patient goes to; a milestone only marks a date


def milestone_uid(request: DischargeRequest, milestone_key: str, domain: str) -> str:
    """A UID that is the same every time this patient's milestone is sent, and no one else's.

    The hospital number identifies the patient where there is one (a name can be spelt two
    ways). It goes through an HMAC under the clinic's own random secret
    (``discharge.clinic_data``): a plain hash of a hospital number, procedure and date could be
    reversed by trying every likely value.
    """
    from discharge.clinic_data import keyed_digest

    patient = request.patient.mrn or request.patient.name.casefold()
    key = "|".join((patient, request.procedure, request.day.isoformat(), milestone_key))
    return f"{keyed_digest(key)}@{domain}"


def milestone_events(
    request: DischargeRequest,
    milestones: Iterable[Milestone],
    domain: str,
    summary: Callable[[Milestone], str],
    description: Callable[[Milestone], str],
) -> list[CalendarEvent]:
    """One event per distinct date or range, as the printed timeline has one row for each.

    Milestones that share a date are joined into one (keys joined with "+", labels with a
    space), so the patient's calendar does not show the same title twice on one day.
    """
    groups: dict[tuple[date | datetime, date | datetime | None], list[Milestone]] = {}
    for m in milestones:
        groups.setdefault((m.start, m.end), []).append(m)
    events = []
    for (start, end), group in groups.items():
        first = group[0]
        merged = Milestone(
            key="+".join(m.key for m in group),
            start=start,
            end=end,
            when=first.when,
            label=" ".join(m.label for m in group),
        )
        event_start, event_end = _span(start, end)
        uid = milestone_uid(request, merged.key, domain)
        events.append(
            CalendarEvent(uid, event_start, event_end, summary(merged), description(merged))
        )
    return events


def follow_up_event(
    request: DischargeRequest, follow_up: FollowUp, domain: str, summary: str, description: str
) -> CalendarEvent:
    """The follow-up appointment: at its time (or all day), where it is, the patient busy.

    Its UID is made as a milestone's, so a corrected appointment replaces the one sent before.
    """
    start, end = _span(follow_up.start, None)
    if isinstance(start, datetime):
        end = None  # its length is not known: an event at the appointment's time
    uid = milestone_uid(request, "follow-up", domain)
    return CalendarEvent(uid, start, end, summary, description, follow_up.place, busy=True)


def build_calendar(request: DischargeRequest, events: Iterable[CalendarEvent]) -> bytes:
    """The events as an iCalendar file (METHOD:PUBLISH: for adding, not an invitation)."""
    from icalendar import Calendar, Event

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    # DTSTAMP is fixed to the procedure date so the same request always gives the same file.
    stamp = datetime.combine(request.day, time(0), tzinfo=UTC)
    last = request.day
    for item in events:
        event = Event()
        event.add("uid", item.uid)
        event.add("dtstamp", stamp)
        event.add("dtstart", item.start)
        if item.end is not None:
            event.add("dtend", item.end)
        event.add("summary", item.summary)
        if item.description:
            event.add("description", item.description)
        if item.location:
            event.add("location", item.location)
        # A milestone does not make the patient "busy"; an appointment does.
        event.add("transp", "OPAQUE" if item.busy else "TRANSPARENT")
        calendar.add_component(event)
        for moment in (item.start, item.end):
            if moment is not None:
                last = max(last, moment.date() if isinstance(moment, datetime) else moment)
    # Only the years the events need: the library's default VTIMEZONE spans 1970 to 2038.
    calendar.add_missing_timezones(
        first_date=request.day - timedelta(days=366), last_date=last + timedelta(days=366)
    )
    return bytes(calendar.to_ical())


def _span(
    start: date | datetime, end: date | datetime | None
) -> tuple[date | datetime, date | datetime | None]:
    """Start and exclusive end of the event for a milestone's start and (inclusive) end."""
    if isinstance(start, datetime):
        if end is None:
            return start, None
        if isinstance(end, datetime):
            return start, end
        # From a clock time until the end of a day: to midnight after it, on the clinic's clock.
        return start, datetime.combine(end + timedelta(days=1), time(0), tzinfo=start.tzinfo)
    last = end.date() if isinstance(end, datetime) else (end or start)
    return start, last + timedelta(days=1)
