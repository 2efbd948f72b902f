"""From a validated request to the document model: every string that will be printed.

Data flows one way: request -> Document -> PDF bytes. The renderer only lays the Document out,
so almost everything a patient reads can be tested here, without a PDF.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Literal, TypeVar

from discharge.config import PAPER_SIZES, Clinic, Config
from discharge.dates import format_day, format_moment, format_short_day
from discharge.errors import FieldErrors, InputError
from discharge.milestones import apply_offset
from discharge.procedures import Procedure, load_procedure

# Longest values that still fit their table cell on one page; longer ones are typing accidents.
MAX_LENGTH = {"patient name": 500, "clinician": 300, "hospital number (MRN)": 64}
_ISO_DATE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$")
_CLOCK = re.compile(r"^\s*(\d{1,2})[:.](\d{2})\s*$")
_T = TypeVar("_T")
# Control characters would print as boxes or confuse the PDF; keep only line breaks and tabs.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


# --- the request ------------------------------------------------------------------------


@dataclass(frozen=True)
class Patient:
    name: str
    dob: date | None = None
    mrn: str = ""


@dataclass(frozen=True)
class DischargeRequest:
    """One patient's discharge, validated: what `generate` and each batch row produce."""

    procedure: str
    day: date
    patient: Patient
    at: time | None = None
    clinician: str = ""
    notes: str = ""
    paper: str | None = None  # None: the clinic's default


def parse_date(text: str, field: str = "date") -> date:
    """A strict ISO date (YYYY-MM-DD); anything else is an InputError naming the field."""
    match = _ISO_DATE.match(text or "")
    if not match:
        raise InputError(f"{field} {text!r} is not a date in the form YYYY-MM-DD")
    try:
        return date(*map(int, match.groups()))
    except ValueError:
        raise InputError(f"{field} {text!r} is not a real calendar date (YYYY-MM-DD)") from None


def parse_time(text: str, field: str = "time") -> time:
    match = _CLOCK.match(text or "")
    if match:
        hour, minute = map(int, match.groups())
        if hour < 24 and minute < 60:
            return time(hour, minute)
    raise InputError(f"{field} {text!r} is not a time of day in the form HH:MM (24-hour clock)")


def clean_text(text: str | None, *, multiline: bool = False) -> str:
    """NFC-normalise, drop control characters, and (for one-line fields) fold whitespace."""
    text = unicodedata.normalize("NFC", text or "")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    if multiline:
        return text.replace("\t", "    ").strip("\n")
    return " ".join(text.split())


def parse_request(
    *,
    procedure: str,
    date: str | Any,
    patient: str,
    time: str | None = None,
    dob: str | None = None,
    mrn: str | None = None,
    clinician: str | None = None,
    notes: str | None = None,
    paper: str | None = None,
) -> DischargeRequest:
    """Validate raw text fields (from options or a CSV row) into a DischargeRequest.

    Every field is checked; all problems are raised together as one FieldErrors (an
    InputError), keyed by this function's parameter names, so a form can show each beside its
    field while the command line still prints one line.
    """
    problems: dict[str, str] = {}

    def check(field: str, parse: Callable[[], _T]) -> _T | None:
        try:
            return parse()
        except InputError as exc:
            problems.setdefault(field, str(exc))
            return None

    name = clean_text(patient)
    if not name:
        problems["patient"] = "patient name is empty (expected the patient's full name)"
    day = check("date", lambda: parse_date(date, "date"))
    birth = None
    if dob and dob.strip():
        birth = check("dob", lambda: parse_date(dob or "", "date of birth"))
    if birth and day and birth > day:
        problems["dob"] = f"date of birth {dob!r} is after the procedure date {date!r}"
    values = {
        "patient name": name,
        "clinician": clean_text(clinician),
        "hospital number (MRN)": clean_text(mrn),
    }
    keys = {"patient name": "patient", "clinician": "clinician", "hospital number (MRN)": "mrn"}
    for field, value in values.items():
        if len(value) > MAX_LENGTH[field]:
            problems.setdefault(
                keys[field],
                f"{field} is {len(value)} characters long (expected at most {MAX_LENGTH[field]})",
            )
    paper_size = (paper or "").strip().lower() or None
    if paper_size and paper_size not in PAPER_SIZES:
        problems["paper"] = f"paper {paper!r} is not a paper size (expected a4 or letter)"
    at = check("time", lambda: parse_time(time or "", "time")) if time and time.strip() else None
    if problems or day is None:
        raise FieldErrors(problems)
    return DischargeRequest(
        procedure=clean_text(procedure).lower(),
        day=day,
        at=at,
        patient=Patient(name=name, dob=birth, mrn=values["hospital number (MRN)"]),
        clinician=values["clinician"],
        notes=clean_text(notes, multiline=True),
        paper=paper_size,
    )


# --- the document model -----------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    kind: Literal["para", "bullets"]
    items: tuple[str, ...]


@dataclass(frozen=True)
class Section:
    heading: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Milestone:
    key: str
    start: date | datetime  # a datetime (aware, clinic time zone) only for hour offsets + time
    end: date | datetime | None
    when: str  # as printed: "Monday 23 November 2026" or "... to ..."
    label: str


@dataclass(frozen=True)
class TimelineRow:
    when: str
    labels: tuple[str, ...]  # milestones that fall on the same date share one row


@dataclass(frozen=True)
class Document:
    """Every string that will be printed, already personalised. Plain text, never markup."""

    paper: str
    clinic: Clinic
    procedure_id: str
    procedure_version: str
    title: str
    subtitle: str
    patient_rows: tuple[tuple[str, str], ...]
    intro: tuple[Block, ...]
    milestones: tuple[Milestone, ...]
    timeline: tuple[TimelineRow, ...]
    help_heading: str
    help_intro: str
    help_signs: tuple[str, ...]
    help_contacts: tuple[tuple[str, str], ...]
    sections: tuple[Section, ...]
    notes: str  # verbatim, line breaks kept
    sources: tuple[str, ...]
    footer_ids: str  # date of birth and hospital number: always printed whole
    footer_template: str
    patient_name: str  # also in every footer, shortened there if it does not fit


def build_document(
    request: DischargeRequest, config: Config, procedure: Procedure | None = None
) -> Document:
    clinic = config.clinic
    procedure = procedure or load_procedure(request.procedure, config.templates_dir)
    context, milestones = _context(procedure, request.day, request.at, clinic)
    render = procedure.render

    patient = request.patient
    when = format_day(request.day, clinic.locale)
    if request.at is not None:
        when = format_moment(datetime.combine(request.day, request.at), clinic.locale)
    rows = [("Name", patient.name)]
    if patient.dob:
        rows.append(("Date of birth", format_short_day(patient.dob, clinic.locale)))
    if patient.mrn:
        rows.append(("Hospital number", patient.mrn))
    short = procedure.title.removeprefix("After your ").strip()
    rows.append(("Procedure", short[:1].upper() + short[1:]))
    rows.append(("Date", when))
    if request.clinician:
        rows.append(("Clinician", request.clinician))

    footer = []
    if patient.dob:
        footer.append(f"Born {format_short_day(patient.dob, clinic.locale)}")
    if patient.mrn:
        footer.append(f"Hospital number {patient.mrn}")

    contacts = [(f"{clinic.name}", clinic.phone)]
    if clinic.after_hours_phone:
        contacts.append(("Evenings, nights and weekends", clinic.after_hours_phone))
    contacts.append(("Emergency", f"call {clinic.emergency_number}"))

    dated = tuple(
        Milestone(m.key, start, end, context["m"][m.key]["when"], render(m.label, context))
        for m, start, end in milestones
    )
    return Document(
        paper=request.paper or clinic.paper,
        clinic=clinic,
        procedure_id=procedure.id,
        procedure_version=procedure.version,
        title=procedure.title,
        subtitle=procedure.subtitle,
        patient_rows=tuple(rows),
        intro=parse_blocks(render(procedure.intro, context)) if procedure.intro else (),
        milestones=dated,
        timeline=group_timeline(dated),
        help_heading=procedure.help_heading,
        help_intro=render(procedure.help_intro, context) if procedure.help_intro else "",
        help_signs=tuple(render(sign, context) for sign in procedure.help_signs),
        help_contacts=tuple(contacts),
        sections=tuple(
            Section(render(s.heading, context), parse_blocks(render(s.body, context)))
            for s in procedure.sections
        ),
        notes=request.notes,
        sources=procedure.sources,
        footer_ids="  ·  ".join(footer),
        footer_template=f"{procedure.id} v{procedure.version}",
        patient_name=patient.name,
    )


def group_timeline(milestones: tuple[Milestone, ...]) -> tuple[TimelineRow, ...]:
    """One table row per distinct date (or range), in template order."""
    rows: dict[str, list[str]] = {}
    for m in milestones:
        rows.setdefault(m.when, []).append(m.label)
    return tuple(TimelineRow(when, tuple(labels)) for when, labels in rows.items())


def _context(
    procedure: Procedure, day: date, at: time | None, clinic: Clinic
) -> tuple[dict[str, Any], list[tuple[Any, date | datetime, date | datetime | None]]]:
    tz = clinic.tz
    computed = []
    dated: dict[str, dict[str, str]] = {}
    for spec in procedure.milestones:
        start = apply_offset(day, at, tz, spec.start)
        end = apply_offset(day, at, tz, spec.end) if spec.end else None
        start_text = format_moment(start, clinic.locale)
        end_text = format_moment(end, clinic.locale) if end is not None else ""
        dated[spec.key] = {
            "start": start_text,
            "end": end_text,
            "when": f"{start_text} to {end_text}" if end_text else start_text,
        }
        computed.append((spec, start, end))
    context = {
        "m": dated,
        "procedure_date": format_day(day, clinic.locale),
        "locale": clinic.locale,
        "clinic": {
            "name": clinic.name,
            "phone": clinic.phone,
            "after_hours_phone": clinic.after_hours_phone,
            "emergency_number": clinic.emergency_number,
        },
    }
    return context, computed


def sample_context(procedure: Procedure, day: date) -> dict[str, Any]:
    """The context a template sees, with the demo clinic: used to check templates on load."""
    return _context(procedure, day, None, Clinic())[0]


def parse_blocks(text: str) -> tuple[Block, ...]:
    """Split template text into paragraphs (blank-line separated) and "- " bullet lists."""
    blocks: list[Block] = []
    para: list[str] = []
    bullets: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Block("para", (" ".join(para),)))
            para.clear()
        if bullets:
            blocks.append(Block("bullets", tuple(bullets)))
            bullets.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            flush()
        elif line.startswith(("- ", "* ", "• ")):
            if para:
                flush()
            bullets.append(line[2:].strip())
        elif bullets and raw[:1].isspace():
            bullets[-1] += " " + line  # a wrapped bullet continues on an indented line
        else:
            if bullets:
                flush()
            para.append(line)
    flush()
    return tuple(blocks)
