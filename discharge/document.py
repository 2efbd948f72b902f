"""From a validated request to the document model: every string that will be printed.

Data flows one way: request -> Document -> PDF bytes. The renderer only lays the Document out,
so almost everything a patient reads can be tested here, without a PDF.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Literal

from discharge.config import PAPER_SIZES, Clinic, Config
from discharge.dates import format_day, format_moment, format_short_day
from discharge.errors import InputError
from discharge.milestones import apply_offset
from discharge.procedures import HelpLevelSpec, Procedure, items_for, load_procedure

# Longest values that still fit their table cell on one page; longer ones are typing accidents.
MAX_LENGTH = {"patient name": 500, "clinician": 300, "hospital number (MRN)": 64}
_ISO_DATE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$")
_CLOCK = re.compile(r"^\s*(\d{1,2})[:.](\d{2})\s*$")
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
    variant: str = ""  # the template's variant ("medical", "sterilisation-check"); "": its default


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
    variant: str | None = None,
) -> DischargeRequest:
    """Validate raw text fields (from options or a CSV row) into a DischargeRequest."""
    name = clean_text(patient)
    if not name:
        raise InputError("patient name is empty (expected the patient's full name)")
    day = parse_date(date, "date")
    birth = parse_date(dob, "date of birth") if dob and dob.strip() else None
    if birth and birth > day:
        raise InputError(f"date of birth {dob!r} is after the procedure date {date!r}")
    values = {
        "patient name": name,
        "clinician": clean_text(clinician),
        "hospital number (MRN)": clean_text(mrn),
    }
    for field, value in values.items():
        if len(value) > MAX_LENGTH[field]:
            raise InputError(
                f"{field} is {len(value)} characters long (expected at most {MAX_LENGTH[field]})"
            )
    paper_size = (paper or "").strip().lower() or None
    if paper_size and paper_size not in PAPER_SIZES:
        raise InputError(f"paper {paper!r} is not a paper size (expected a4 or letter)")
    return DischargeRequest(
        procedure=clean_text(procedure).lower(),
        day=day,
        at=parse_time(time, "time") if time and time.strip() else None,
        patient=Patient(name=name, dob=birth, mrn=values["hospital number (MRN)"]),
        clinician=values["clinician"],
        notes=clean_text(notes, multiline=True),
        paper=paper_size,
        variant=clean_text(variant).lower(),
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


# Whom to call, worded in one place: the template says when to call, the model says whom.
# The clinic's own number is labelled with the clinic's name.
EMERGENCY_LABEL = "Emergency"
OUT_OF_HOURS_LABEL = "Evenings, nights and weekends"
DEFAULT_DATE_LABEL = "Date"


@dataclass(frozen=True)
class Contact:
    label: str  # "Emergency", the clinic's name, "Evenings, nights and weekends"
    number: str  # as dialled: "999", "020 7946 0000"


@dataclass(frozen=True)
class HelpLevel:
    """One level of the help box: what to do (heading), whom to call, then the signs."""

    heading: str  # "Call 999 now if you have any of these:"
    intro: str
    signs: tuple[str, ...]
    contacts: tuple[Contact, ...]


@dataclass(frozen=True)
class TeachBack:
    """Questions the nurse asks before the patient leaves, each printed with a tick box."""

    heading: str
    intro: str
    questions: tuple[str, ...]


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
    help_urgent: HelpLevel  # "Call 999 now": the signs that cannot wait
    help_clinic: HelpLevel  # "Call the clinic": the rest, with day and out-of-hours numbers
    teach_back: TeachBack | None
    sections: tuple[Section, ...]
    notes: str  # verbatim, line breaks kept
    sources: tuple[str, ...]  # as a patient reads them: "Cleveland Clinic: Hysterosalpingogram"
    footer_ids: str  # date of birth and hospital number: always printed whole
    footer_template: str
    patient_name: str  # also in every footer, shortened there if it does not fit
    variant: str  # the template variant used ("" when the template has none)
    variant_label: str
    date_label: str  # the patient block's label for the date the timeline counts from
    # --- compatibility shim: the one-level help box the current renderer draws. ---------
    # Filled from help_urgent and help_clinic by build_document; remove once render.py draws
    # the two levels (and the teach-back) itself.
    help_heading: str
    help_intro: str
    help_signs: tuple[str, ...]
    help_contacts: tuple[tuple[str, str], ...]


def build_document(
    request: DischargeRequest, config: Config, procedure: Procedure | None = None
) -> Document:
    clinic = config.clinic
    procedure = procedure or load_procedure(request.procedure, config.templates_dir)
    variant = procedure.variant(request.variant)
    name = variant.name if variant else None
    context, milestones = _context(procedure, request.day, request.at, clinic, name)
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
    date_label = (variant.date_label if variant else "") or DEFAULT_DATE_LABEL
    rows.append((date_label, when))
    if request.clinician:
        rows.append(("Clinician", request.clinician))

    footer = []
    if patient.dob:
        footer.append(f"Born {format_short_day(patient.dob, clinic.locale)}")
    if patient.mrn:
        footer.append(f"Hospital number {patient.mrn}")

    emergency = (Contact(EMERGENCY_LABEL, clinic.emergency_number),)
    clinic_contacts = [Contact(clinic.name, clinic.phone)]
    if clinic.after_hours_phone:
        clinic_contacts.append(Contact(OUT_OF_HOURS_LABEL, clinic.after_hours_phone))

    def level(spec: HelpLevelSpec, contacts: tuple[Contact, ...]) -> HelpLevel:
        return HelpLevel(
            heading=render(spec.heading, context),
            intro=render(spec.intro, context) if spec.intro else "",
            signs=tuple(render(sign, context) for sign in items_for(spec.signs, name)),
            contacts=contacts,
        )

    urgent = level(procedure.help_urgent, emergency)
    call_us = level(procedure.help_clinic, tuple(clinic_contacts))
    teach_back = None
    if procedure.teach_back:
        spec = procedure.teach_back
        teach_back = TeachBack(
            heading=render(spec.heading, context),
            intro=render(spec.intro, context) if spec.intro else "",
            questions=tuple(render(q, context) for q in items_for(spec.questions, name)),
        )
    intro = variant.intro if variant and variant.intro else procedure.intro
    footer_template = f"{procedure.id} v{procedure.version}"
    if variant and len(procedure.variants) > 1:
        footer_template += f" ({variant.name})"

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
        intro=parse_blocks(render(intro, context)) if intro else (),
        milestones=dated,
        timeline=group_timeline(dated),
        help_urgent=urgent,
        help_clinic=call_us,
        teach_back=teach_back,
        sections=tuple(
            Section(render(s.heading, context), parse_blocks(render(s.body, context)))
            for s in procedure.sections_for(name)
        ),
        notes=request.notes,
        sources=tuple(source.printed for source in procedure.sources),
        footer_ids="  ·  ".join(footer),
        footer_template=footer_template,
        patient_name=patient.name,
        variant=name or "",
        variant_label=variant.label if variant else "",
        date_label=date_label,
        **_one_level_help(urgent, call_us),  # compatibility shim, see below
    )


def _one_level_help(urgent: HelpLevel, call_us: HelpLevel) -> dict[str, Any]:
    """Compatibility shim for the current renderer's one-level box: both levels in order,
    each led by its heading, then every number. Remove with the Document's help_* fields."""
    signs = (*urgent.signs, call_us.heading, *call_us.signs, *filter(None, [call_us.intro]))
    contacts = [(c.label, c.number) for c in (*call_us.contacts, *urgent.contacts)]
    contacts[-1] = (contacts[-1][0], f"call {contacts[-1][1]}")
    return {
        "help_heading": "When to get help",
        "help_intro": " ".join(filter(None, (urgent.heading, urgent.intro))),
        "help_signs": signs,
        "help_contacts": tuple(contacts),
    }


def group_timeline(milestones: tuple[Milestone, ...]) -> tuple[TimelineRow, ...]:
    """One table row per distinct date (or range), in template order."""
    rows: dict[str, list[str]] = {}
    for m in milestones:
        rows.setdefault(m.when, []).append(m.label)
    return tuple(TimelineRow(when, tuple(labels)) for when, labels in rows.items())


def _context(
    procedure: Procedure, day: date, at: time | None, clinic: Clinic, variant: str | None
) -> tuple[dict[str, Any], list[tuple[Any, date | datetime, date | datetime | None]]]:
    tz = clinic.tz
    computed = []
    dated: dict[str, dict[str, str]] = {}
    for spec in procedure.milestones_for(variant):
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
        "variant": variant or "",
        "clinic": {
            "name": clinic.name,
            "phone": clinic.phone,
            "after_hours_phone": clinic.after_hours_phone,
            "emergency_number": clinic.emergency_number,
        },
    }
    return context, computed


def sample_context(procedure: Procedure, day: date, variant: str | None = None) -> dict[str, Any]:
    """The context a template sees, with the demo clinic: used to check templates on load."""
    return _context(procedure, day, None, Clinic(), variant)[0]


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
