"""From a validated request to the document model: every string that will be printed.

Data flows one way: request -> Document -> PDF bytes. The renderer only lays the Document out,
so everything a patient reads (headings, labels and the signature statement included) is made
here and can be tested here, without a PDF.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Literal

from discharge.config import Clinic, Config
from discharge.dates import format_day, format_moment, format_short_day
from discharge.guidance.context import DatedMilestone, template_context
from discharge.guidance.loading import load_procedure
from discharge.guidance.model import HelpLevelSpec, Procedure, items_for
from discharge.i18n import N_, gettext, language_of, locale_for
from discharge.request import DischargeRequest


@dataclass(frozen=True)
class Labels:
    """The fixed wording of the page: one place for every heading and label.

    Written in English and marked with ``N_`` for the message catalogue (``discharge/locale``);
    :func:`labels_for` gives them in a patient's language.
    """

    metadata_title: str = N_("Discharge instructions")  # the PDF's subject: what it is
    timeline: str = N_("Your recovery timeline")
    help: str = N_("When to get help")
    timeline_when: str = N_("When")
    timeline_what: str = N_("What to expect and what you can do")
    notes: str = N_("Notes from your care team")
    notes_continued: str = N_("Notes from your care team (continued)")  # atop a later page
    before_you_go: str = N_("Before you go home")
    support: str = N_("Support and further reading")
    scan: str = N_("Scan the code with your phone's camera to open the page.")
    # Translators: a QR code described for a screen reader; {url} is the address it opens.
    qr_alt: str = N_("QR code: {url}")
    statement: str = N_("I have read these instructions. My questions have been answered.")
    signatures: tuple[str, ...] = (
        N_("Patient signature"), N_("Date"), N_("Nurse or clinician signature"), N_("Date"),
    )  # fmt: skip
    sources: str = N_("This guidance is based on:")
    name: str = N_("Name")
    date_of_birth: str = N_("Date of birth")
    hospital_number: str = N_("Hospital number")
    procedure: str = N_("Procedure")
    date: str = N_(
        "Date"
    )  # unless the template's variant names the date ("Date of your procedure")
    clinician: str = N_("Clinician")
    phone: str = N_("Phone")
    # Translators: the one wording, page header, help box and email alike.
    after_hours: str = N_("Out of hours")
    emergency: str = N_("Emergency")
    born: str = N_("Born")
    # Translators: the bullet of a list; change it only if your script's lists use another mark.
    bullet: str = N_("\u2022")
    # Translators: the second line of a range of dates: "to Friday 27 November 2026".
    range_to: str = N_("to")
    # Translators: what the patient block's "Procedure" row drops from the template's title
    # ("After your HSG" -> "HSG"); keep the trailing space.
    title_prefix: str = N_("After your ")
    # The follow-up appointment: a row of the timeline, and a box of its own by the help box.
    next_appointment: str = N_("Your next appointment")
    where: str = N_("Where")
    # The medicines to take at home: a table, each row exactly as the clinician wrote it.
    medicines: str = N_("Your medicines")
    medicine: str = N_("Medicine")
    medicine_how: str = N_("How to take it")
    medicine_how_long: str = N_("For how long")
    page_format: str = N_("Page {number} of {total}")
    # Translators: on every page of a sheet whose wording no clinician has approved yet.
    draft: str = N_("Draft: not yet approved by {clinic}")
    # Translators: after a resource whose page is only in English, on a sheet in your language.
    english_only: str = N_("(in English)")
    # Translators: the clinic's logo, described for a screen reader.
    logo_alt: str = N_("{clinic} logo")

    def page(self, number: int, total: int) -> str:
        return self.page_format.format(number=number, total=total)


LABELS = Labels()


@cache
def labels_for(language: str) -> Labels:
    """The labels in ``language`` from its message catalogue (English where it has none)."""

    def translate(value: object) -> object:
        if isinstance(value, tuple):
            return tuple(gettext(language, item) for item in value)
        return gettext(language, str(value))

    return Labels(
        **{f.name: translate(getattr(LABELS, f.name)) for f in dataclasses.fields(Labels)}  # type: ignore[arg-type]
    )


# --- the document model -----------------------------------------------------------------


# The records below are built, read and cached, never compared or printed: eq=False and
# repr=False spare every start the methods a dataclass would generate for that (about 5 ms
# of a cold `discharge generate` over the package).
@dataclass(frozen=True, eq=False, repr=False)
class Block:
    kind: Literal["para", "bullets"]
    items: tuple[str, ...]


@dataclass(frozen=True, eq=False, repr=False)
class Section:
    heading: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True, eq=False, repr=False)
class Milestone:
    key: str
    start: date | datetime  # a datetime (aware, clinic time zone) only for hour offsets + time
    end: date | datetime | None
    when: str  # as printed: "Monday 23 November 2026" or "... to ..."
    label: str
    when_lines: tuple[str, ...] = ()  # the same, a line each: ("Monday ...", "to Friday ...")


@dataclass(frozen=True, eq=False, repr=False)
class TimelineRow:
    when: tuple[str, ...]  # as printed, a line each: ("Monday 23 November 2026", "to ...")
    labels: tuple[str, ...]  # milestones that fall on the same date share one row


@dataclass(frozen=True, eq=False, repr=False)
class Contact:
    who: str
    number: str


@dataclass(frozen=True, eq=False, repr=False)
class HelpLevel:
    """One level of the help box: what to do (heading), then the signs, then whom to call."""

    heading: str  # "Call 999 now if you have any of these:"
    intro: str
    signs: tuple[str, ...]
    contacts: tuple[Contact, ...]


@dataclass(frozen=True, eq=False, repr=False)
class SupportItem:
    """A place to turn to, with a QR code for its web page."""

    name: str
    phone: str
    url: str
    language: str = ""  # the language of its name (the clinic's), where the document's differs
    note: str = ""  # after the name, in the document's language: "(in English)"


@dataclass(frozen=True, eq=False, repr=False)
class TeachBack:
    """Questions the nurse asks before the patient leaves, each printed with a tick box."""

    heading: str
    intro: str
    questions: tuple[str, ...]


@dataclass(frozen=True, eq=False, repr=False)
class FollowUp:
    """The patient's next appointment, as printed; ``start`` is for the calendar file."""

    start: date | datetime  # a datetime (aware, clinic time zone) when the time is known
    when: str  # as printed: "Monday 14 December 2026, 10:00"
    place: str  # as the clinician wrote it; "" when not given


@dataclass(frozen=True, eq=False, repr=False)
class MedicineRow:
    """One medicine, its three cells exactly as written (never read or converted)."""

    name: str
    how: str
    how_long: str


@dataclass(frozen=True, eq=False, repr=False)
class Footer:
    """What every page's footer says; the renderer adds the page numbers."""

    patient_name: str  # shortened to fit if need be
    ids: str  # date of birth and hospital number: always printed whole
    clinic_line: str
    template: str  # which template and version made this document


@dataclass(frozen=True, repr=False)
class Letterhead:
    """The clinic as its sheets name it: the header's name, address and logo, and the numbers the
    email's texts may quote. Only what is printed, not the clinic's settings."""

    name: str
    address: tuple[str, ...]  # a line each, printed joined by commas
    phone: str
    after_hours_phone: str  # "" when the clinic has none
    emergency_number: str
    logo: Path | None = None  # a PNG or JPEG, already checked when the settings were loaded

    @classmethod
    def of(cls, clinic: Clinic) -> Letterhead:
        return cls(clinic.name, clinic.address, clinic.phone, clinic.after_hours_phone,
                   clinic.emergency_number, clinic.logo)  # fmt: skip


@dataclass(frozen=True, eq=False, repr=False)
class Document:
    """Every string that will be printed, already personalised. Plain text, never markup."""

    paper: str
    labels: Labels
    letterhead: Letterhead  # the clinic's name, address, numbers and logo
    procedure_id: str
    procedure_version: str  # the template's version (in the footer, and in the audit log)
    title: str
    subtitle: str
    header_contacts: tuple[str, ...]  # beside the clinic's name: "Phone 0113 496 0000"
    patient_rows: tuple[tuple[str, str], ...]
    intro: tuple[Block, ...]
    milestones: tuple[Milestone, ...]
    timeline: tuple[TimelineRow, ...]
    help_heading: str  # the box's heading: "When to get help"
    help_urgent: HelpLevel  # "Call 999 now": the signs that cannot wait
    help_clinic: HelpLevel  # "Call the clinic": the rest, with day and out-of-hours numbers
    teach_back: TeachBack | None
    support: tuple[SupportItem, ...]  # the clinic's resources for this procedure
    sections: tuple[Section, ...]
    notes: str  # verbatim, line breaks kept
    sources: str  # one line naming the sources, as a patient reads them
    footer: Footer
    language: str = "en"  # the language it is written in ("es"), from the request or the clinic
    locale: str = "en_GB"  # Babel's locale for its dates and numbers, and the PDF's /Lang
    variant: str = ""  # the template variant used ("" when the template has none)
    variant_label: str = ""
    date_label: str = ""  # the patient block's label for the date the timeline counts from
    large_print: bool = False  # the large-print layout (body text at least 18 pt)
    follow_up: FollowUp | None = None  # also a row of ``timeline``
    medicines: tuple[MedicineRow, ...] = ()
    owner: str = ""  # Patient.marker: not printed, written in the PDF's metadata
    draft: str = ""  # "Draft: not yet approved by ...", on every page; "" once approved

    @property
    def patient_name(self) -> str:
        return self.footer.patient_name

    @property
    def sheet_title(self) -> str:
        """The sheet's own title, for a title bar, a browser tab and a screen reader ("After
        your HSG – Riverside Clinic"): the procedure and the clinic, never the patient."""
        return f"{self.title} \u2013 {self.letterhead.name}"


def build_document(
    request: DischargeRequest, config: Config, procedure: Procedure | None = None
) -> Document:
    clinic = config.clinic
    clinic_language = language_of(clinic.locale)
    language = request.language or clinic_language
    locale = locale_for(language, clinic.locale)
    labels = labels_for(language)
    procedure = procedure or load_procedure(
        request.procedure, config.templates_dir, language, default_language=clinic_language
    )
    variant = procedure.variant(request.variant)
    name = variant.name if variant else None
    context = template_context(procedure, request.day, request.at, clinic, name, locale)
    values = context.values
    render = procedure.render

    patient = request.patient
    when = format_day(request.day, locale)
    if request.at is not None:
        when = format_moment(datetime.combine(request.day, request.at), locale)
    rows = [(labels.name, patient.name)]
    if patient.dob:
        rows.append((labels.date_of_birth, format_short_day(patient.dob, locale)))
    if patient.mrn:
        rows.append((labels.hospital_number, patient.mrn))
    short = procedure.title.removeprefix(labels.title_prefix).strip()
    rows.append((labels.procedure, short[:1].upper() + short[1:]))
    date_label = (variant.date_label if variant else "") or labels.date
    rows.append((date_label, when))
    if request.clinician:
        rows.append((labels.clinician, request.clinician))

    ids = []
    if patient.dob:
        ids.append(f"{labels.born} {format_short_day(patient.dob, locale)}")
    if patient.mrn:
        ids.append(f"{labels.hospital_number} {patient.mrn}")

    # Whom to call is worded here, once; the template says when to call.
    header = [f"{labels.phone} {clinic.phone}"]
    clinic_contacts = [Contact(clinic.name, clinic.phone)]
    if clinic.after_hours_phone:
        header.append(f"{labels.after_hours} {clinic.after_hours_phone}")
        clinic_contacts.append(Contact(labels.after_hours, clinic.after_hours_phone))
    emergency = (Contact(labels.emergency, clinic.emergency_number),)

    def level(spec: HelpLevelSpec, contacts: tuple[Contact, ...]) -> HelpLevel:
        return HelpLevel(
            heading=render(spec.heading, values),
            intro=render(spec.intro, values) if spec.intro else "",
            signs=tuple(render(sign, values) for sign in items_for(spec.signs, name)),
            contacts=contacts,
        )

    teach_back = None
    if procedure.teach_back:
        spec = procedure.teach_back
        teach_back = TeachBack(
            heading=render(spec.heading, values),
            intro=render(spec.intro, values) if spec.intro else "",
            questions=tuple(render(q, values) for q in items_for(spec.questions, name)),
        )
    intro = variant.intro if variant and variant.intro else procedure.intro
    template = f"{procedure.id} v{procedure.version}"
    if variant and len(procedure.variants) > 1:
        template += f" ({variant.name})"
    sources = "; ".join(source.printed for source in procedure.sources)
    if not sources.endswith((".", "?", "!")):
        sources += "."

    dated = tuple(_milestone(d, render(d.spec.label, values), labels) for d in context.milestones)
    timeline = group_timeline(dated)
    follow_up = None
    if request.follow_up is not None:
        start: date | datetime = request.follow_up
        if request.follow_up_at is not None:
            start = datetime.combine(request.follow_up, request.follow_up_at, tzinfo=clinic.tz)
        follow_up = FollowUp(start, format_moment(start, locale), request.follow_up_place)
        timeline = _with_follow_up(timeline, dated, follow_up, labels)
    return Document(
        paper=request.paper or clinic.paper,
        labels=labels,
        letterhead=Letterhead.of(clinic),
        procedure_id=procedure.id,
        procedure_version=procedure.version,
        title=procedure.title,
        subtitle=procedure.subtitle,
        header_contacts=tuple(header),
        patient_rows=tuple(rows),
        intro=parse_blocks(render(intro, values)) if intro else (),
        milestones=dated,
        timeline=timeline,
        help_heading=labels.help,
        help_urgent=level(procedure.help_urgent, emergency),
        help_clinic=level(procedure.help_clinic, tuple(clinic_contacts)),
        teach_back=teach_back,
        support=_support(clinic, procedure.id, name, language, labels),
        sections=tuple(
            Section(render(s.heading, values), parse_blocks(render(s.body, values)))
            for s in procedure.sections_for(name)
        ),
        notes=request.notes,
        sources=f"{labels.sources} {sources}",
        footer=Footer(
            patient_name=patient.name,
            ids="  ·  ".join(ids),
            clinic_line=f"{clinic.name}  ·  {clinic.phone}",
            template=template,
        ),
        language=language,
        locale=locale,
        variant=name or "",
        variant_label=variant.label if variant else "",
        date_label=date_label,
        large_print=clinic.large_print if request.large_print is None else request.large_print,
        follow_up=follow_up,
        medicines=tuple(MedicineRow(m.name, m.how, m.how_long) for m in request.medicines),
        owner=patient.marker,
        draft="" if procedure.approved else labels.draft.format(clinic=clinic.name),
    )


def _support(
    clinic: Clinic, procedure_id: str, variant: str | None, language: str, labels: Labels
) -> tuple[SupportItem, ...]:
    """The clinic's resources that fit this sheet: its procedure and variant, and a page in
    the sheet's language (``url_es``) or, failing that, the page marked as being in English."""
    items = []
    for r in clinic.resources:
        if r.procedures and procedure_id not in r.procedures:
            continue
        if r.variants and variant not in r.variants:
            continue
        url = dict(r.urls).get(language, r.url)
        note = ""
        page_language = r.language or language_of(clinic.locale)
        if r.url and url == r.url and page_language != language and page_language == "en":
            note = labels.english_only
        # The clinic names its resources in its own language: say so where it differs.
        name_language = language_of(clinic.locale)
        name_language = name_language if name_language != language else ""
        items.append(SupportItem(r.name, r.phone, url, name_language, note))
    return tuple(items)


def _milestone(dated: DatedMilestone, label: str, labels: Labels) -> Milestone:
    lines: tuple[str, ...] = (dated.start_text,)
    if dated.end_text:
        lines += (f"{labels.range_to} {dated.end_text}",)
    return Milestone(dated.spec.key, dated.start, dated.end, " ".join(lines), label, lines)


def group_timeline(milestones: tuple[Milestone, ...]) -> tuple[TimelineRow, ...]:
    """One table row per distinct date (or range), in template order."""
    rows: dict[tuple[date | datetime, date | datetime | None], list[Milestone]] = {}
    for m in milestones:
        rows.setdefault((m.start, m.end), []).append(m)
    return tuple(
        TimelineRow(group[0].when_lines, tuple(m.label for m in group)) for group in rows.values()
    )


def _with_follow_up(
    timeline: tuple[TimelineRow, ...],
    milestones: tuple[Milestone, ...],
    follow_up: FollowUp,
    labels: Labels,
) -> tuple[TimelineRow, ...]:
    """The timeline with the follow-up appointment as a row of its own, in date order (after
    the milestones that start the same day)."""

    def day(value: date | datetime) -> date:
        return value.date() if isinstance(value, datetime) else value

    starts = list(dict.fromkeys((m.start, m.end) for m in milestones))  # group_timeline's rows
    when = day(follow_up.start)
    index = next((i for i, (start, _) in enumerate(starts) if day(start) > when), len(starts))
    what = (labels.next_appointment, follow_up.place)
    row = TimelineRow((follow_up.when,), what if follow_up.place else what[:1])
    return (*timeline[:index], row, *timeline[index:])


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


def printed_text(document: Document) -> Iterator[str]:
    """Every string the renderer will draw (to check, before drawing, that fonts can print it)."""
    yield from _strings(document)
    for number in (1, 9):
        yield document.labels.page(number, number)


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _strings(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            if field.name not in ("start", "end", "logo", "templates_dir"):
                yield from _strings(getattr(value, field.name))
