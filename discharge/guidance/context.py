"""What a template's placeholders see (``templates/README.md`` lists them): one procedure's
milestones dated from the procedure's date, the clinic's numbers, the variant and the locale."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from discharge.config import Clinic
from discharge.dates import format_day, format_moment
from discharge.errors import InputError
from discharge.guidance.model import MilestoneSpec, Procedure
from discharge.i18n import N_, gettext, language_of
from discharge.milestones import apply_offset

# Translators: a range of dates: "Monday 23 November 2026 to Friday 27 November 2026".
RANGE = N_("{start} to {end}")


@dataclass(frozen=True, eq=False, repr=False)
class DatedMilestone:
    spec: MilestoneSpec
    start: date | datetime  # a datetime (aware, clinic time zone) only for hour offsets + time
    end: date | datetime | None
    start_text: str  # as printed: "Monday 23 November 2026" (or "... at 10:30")
    end_text: str  # "" without an end


@dataclass(frozen=True, eq=False, repr=False)
class TemplateContext:
    """What a template's placeholders see, and the milestones' dates it was made from."""

    values: dict[str, Any]
    milestones: tuple[DatedMilestone, ...]


def template_context(
    procedure: Procedure,
    day: date,
    at: time | None,
    clinic: Clinic,
    variant: str | None = None,
    locale: str | None = None,
) -> TemplateContext:
    """The placeholders of ``templates/README.md`` for one procedure date and variant, in the
    document's locale (default: the clinic's)."""
    locale = locale or clinic.locale
    joiner = gettext(language_of(locale), RANGE)
    dated: list[DatedMilestone] = []
    for spec in procedure.milestones_for(variant):
        try:
            start = apply_offset(day, at, clinic.tz, spec.start)
            end = apply_offset(day, at, clinic.tz, spec.end) if spec.end else None
        except (OverflowError, ValueError):
            raise InputError(
                f"date: the {procedure.id} timeline runs past the year 9999 "
                "(expected the date of a procedure, such as today's)"
            ) from None
        end_text = format_moment(end, locale) if end is not None else ""
        dated.append(DatedMilestone(spec, start, end, format_moment(start, locale), end_text))
    values = {
        "m": {
            d.spec.key: {
                "start": d.start_text,
                "end": d.end_text,
                "when": joiner.format(start=d.start_text, end=d.end_text)
                if d.end_text
                else d.start_text,
            }
            for d in dated
        },
        "procedure_date": format_day(day, locale),
        "locale": locale,
        "variant": variant or "",
        "clinic": {
            "name": clinic.name,
            "phone": clinic.phone,
            "after_hours_phone": clinic.after_hours_phone,
            "emergency_number": clinic.emergency_number,
        },
    }
    return TemplateContext(values, tuple(dated))
