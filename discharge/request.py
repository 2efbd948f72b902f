"""What the user asks for, validated: one patient's discharge, from any front end.

Every user-supplied field (a command-line option, a CSV cell, a web form field) is parsed and
checked here, by the same code, so the command line, a batch row and the web form can never
disagree about what is valid. Nothing here knows about click, CSV or HTTP.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, time
from typing import Any, TypeVar

from discharge.config import PAPER_SIZES
from discharge.errors import FieldErrors, InputError

# Longest values that still fit their table cell on one page; longer ones are typing accidents.
MAX_LENGTH = {"patient name": 500, "clinician": 300, "hospital number (MRN)": 64}
_FIELD_NAMES = {"patient": "patient name", "clinician": "clinician", "mrn": "hospital number (MRN)"}
_T = TypeVar("_T")
# The clinician's notes: about ten pages of text, far above any real note. A limit keeps a
# pasted document (or a runaway cell) from making a PDF of hundreds of pages, and rendering
# time stays linear below it (render._notes breaks long paragraphs into bounded pieces).
MAX_NOTES = 20_000
# Medicines: one line each, "medicine | how to take it | for how long", printed as written.
MAX_MEDICINES = 30
MAX_MEDICINE_LINE = 300
MAX_PLACE = 300
_ISO_DATE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$")
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
_CLOCK = re.compile(r"^\s*(\d{1,2})[:.](\d{2})\s*$")
_MOMENT = re.compile(r"^\s*(\S+?)(?:[T\s]+(\S+))?\s*$")
# Control characters would print as boxes or confuse the PDF; keep only line breaks and tabs.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
# Deliberately plain: one mailbox, no display name, no comments, no quoting. A typo should be
# caught here, before a PDF goes anywhere; an address this refuses can be written more simply.
_ADDRESS = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


@dataclass(frozen=True)
class Patient:
    name: str
    dob: date | None = None
    mrn: str = ""

    @property
    def marker(self) -> str:
        """Who the PDF is for, as a digest written into the PDF (``/DischargePatient``), so
        ``generate`` can tell another patient's file from a regenerated one before replacing
        it. The hospital number identifies the patient where there is one, else the name and
        date of birth. It reveals nothing the document does not print."""
        import hashlib

        if self.mrn:
            who = "mrn\x1f" + self.mrn.strip().casefold()
        else:
            born = self.dob.isoformat() if self.dob else ""
            who = "name\x1f" + " ".join(self.name.casefold().split()) + "\x1f" + born
        return hashlib.sha256(("discharge-patient\x1f" + who).encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Medicine:
    """One medicine to take at home, in the clinician's words: printed exactly as written."""

    name: str
    how: str = ""  # how to take it: "3 times a day with food"
    how_long: str = ""  # for how long: "for 3 days"


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
    large_print: bool | None = None  # None: the clinic's default
    language: str = ""  # the language to print in ("es"); "": the clinic's own
    follow_up: date | None = None  # the next appointment's day
    follow_up_at: time | None = None  # and its time, when known
    follow_up_place: str = ""
    medicines: tuple[Medicine, ...] = ()


def parse_date(text: str, field: str = "date") -> date:
    """A strict ISO date (YYYY-MM-DD); anything else is an InputError naming the field."""
    # The value is never repeated in a message: in a schedule it may be a name in the wrong
    # column, and messages end up in terminals, logs and the manifest.
    match = _ISO_DATE.match(text or "")
    if not match:
        raise InputError(f"{field} is not a date in the form YYYY-MM-DD")
    try:
        return date(*map(int, match.groups()))
    except ValueError:
        raise InputError(f"{field} is not a real calendar date (expected YYYY-MM-DD)") from None


def parse_time(text: str, field: str = "time") -> time:
    match = _CLOCK.match(text or "")
    if match:
        hour, minute = map(int, match.groups())
        if hour < 24 and minute < 60:
            return time(hour, minute)
    raise InputError(f"{field} is not a time of day in the form HH:MM (24-hour clock)")


def parse_moment(text: str, field: str) -> tuple[date, time | None]:
    """``2026-12-14 10:00`` (or ``2026-12-14T10:00``, as a browser sends it), or a day alone."""
    match = _MOMENT.match(text or "")
    if not match:
        raise InputError(f"{field} is not a date in the form YYYY-MM-DD or YYYY-MM-DD HH:MM")
    day_text, clock = match.groups()
    try:
        day = parse_date(day_text, field)
        at = parse_time(clock, field) if clock else None
    except InputError:
        raise InputError(
            f"{field} is not a date and time in the form YYYY-MM-DD HH:MM "
            "(the time may be left out)"
        ) from None
    return day, at


def parse_medicines(text: str | list[str] | tuple[str, ...] | None) -> tuple[Medicine, ...]:
    """One medicine a line (or a list of lines): ``medicine | how to take it | for how long``.

    Each part is kept exactly as written (only spaces around the bars are dropped): a dose is
    never read, converted or checked, so what prints is what the clinician wrote.
    """
    lines = text.split("\n") if isinstance(text, str) else list(text or ())
    medicines = []
    for number, raw in enumerate(lines, 1):  # a line's number, blank lines counted
        line = clean_text(raw)
        if not line:
            continue
        where = f"medicine {number}"
        if len(line) > MAX_MEDICINE_LINE:
            raise InputError(
                f"{where} is {len(line)} characters long (expected at most {MAX_MEDICINE_LINE})"
            )
        parts = [part.strip() for part in line.split("|")]
        if len(parts) > 3 or not parts[0]:
            raise InputError(
                f"{where} is not in the form 'medicine | how to take it | for how long' "
                "(at most two | marks, the medicine's name first)"
            )
        medicines.append(Medicine(*parts))
    if len(medicines) > MAX_MEDICINES:
        raise InputError(f"there are {len(medicines)} medicines (expected at most {MAX_MEDICINES})")
    return tuple(medicines)


def clean_text(text: str | None, *, multiline: bool = False) -> str:
    """NFC-normalise, drop control characters, and (for one-line fields) fold whitespace."""
    text = unicodedata.normalize("NFC", text or "")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    if multiline:
        return text.replace("\t", "    ").strip("\n")
    return " ".join(text.split())


def check_email(text: str | None, field: str = "email") -> str:
    """'' when empty, else one plain address such as name@example.org; the one rule for every
    address a patient's email goes to (``email --to``, the batch ``email`` column, the web form)
    and for the clinic's own sender addresses."""
    address = (text or "").strip()
    if not address:
        return ""
    if not _ADDRESS.match(address) or ".." in address or address.startswith("."):
        # The value is not repeated: in a schedule it may be a name in the wrong column.
        raise InputError(
            f"{field} is not an email address (expected one address such as name@example.org)"
        )
    return address


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
    large_print: str | bool | None = None,
    language: str | None = None,
    follow_up: str | None = None,
    follow_up_place: str | None = None,
    medicines: str | list[str] | tuple[str, ...] | None = None,
) -> DischargeRequest:
    """Validate raw text fields (from options, a CSV row or a form) into a DischargeRequest.

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

    procedure_id = clean_text(procedure).lower()
    if not procedure_id:
        problems["procedure"] = "procedure is empty (expected a procedure id such as hsg)"
    name = clean_text(patient)
    if not name:
        problems["patient"] = "patient name is empty (expected the patient's full name)"
    day = check("date", lambda: parse_date(date, "date"))
    birth = None
    if dob and dob.strip():
        birth = check("dob", lambda: parse_date(dob or "", "date of birth"))
    if birth and day and birth > day:
        problems["dob"] = "date of birth is after the procedure date"
    at = check("time", lambda: parse_time(time or "", "time")) if time and time.strip() else None
    values = {"patient": name, "clinician": clean_text(clinician), "mrn": clean_text(mrn)}
    for field, value in values.items():
        longest = MAX_LENGTH[_FIELD_NAMES[field]]
        if len(value) > longest:
            problems.setdefault(
                field,
                f"{_FIELD_NAMES[field]} is {len(value)} characters long (expected at most "
                f"{longest})",
            )
    clean_notes = clean_text(notes, multiline=True)
    if len(clean_notes) > MAX_NOTES:
        problems["notes"] = (
            f"notes are {len(clean_notes):,} characters long "
            f"(expected at most {MAX_NOTES:,} characters)"
        )
    paper_size = (paper or "").strip().lower() or None
    if paper_size and paper_size not in PAPER_SIZES:
        problems["paper"] = "paper is not a paper size (expected a4 or letter)"
    large = check("large_print", lambda: parse_yes_no(large_print, "large print"))
    language_code = clean_text(language).lower()
    if language_code and not _LANGUAGE_CODE.match(language_code):
        # Whether the procedure has this language is the template's question (guidance/loading.py).
        problems["language"] = "language is not a language code (expected a code such as en or es)"
    follow_day, follow_at = None, None
    if follow_up and follow_up.strip():
        moment = check("follow_up", lambda: parse_moment(follow_up or "", "follow-up appointment"))
        if moment:
            follow_day, follow_at = moment
            if day and follow_day < day:
                problems["follow_up"] = "follow-up appointment is before the procedure date"
    place = clean_text(follow_up_place)
    if len(place) > MAX_PLACE:
        problems["follow_up_place"] = (
            f"follow-up place is {len(place)} characters long (expected at most {MAX_PLACE})"
        )
    elif place and follow_day is None and "follow_up" not in problems:
        problems["follow_up_place"] = (
            "follow-up place is given without its appointment (expected a follow-up date too)"
        )
    pills = check("medicines", lambda: parse_medicines(medicines)) or ()
    if problems or day is None:
        raise FieldErrors(problems)
    return DischargeRequest(
        procedure=procedure_id,
        day=day,
        at=at,
        patient=Patient(name=name, dob=birth, mrn=values["mrn"]),
        clinician=values["clinician"],
        notes=clean_notes,
        paper=paper_size,
        variant=clean_text(variant).lower(),
        large_print=large,
        language=language_code,
        follow_up=follow_day,
        follow_up_at=follow_at,
        follow_up_place=place,
        medicines=pills,
    )


_YES = ("yes", "y", "true", "1")
_NO = ("no", "n", "false", "0")


def parse_yes_no(value: str | bool | None, field: str) -> bool | None:
    """True or False from yes/no, true/false, 1/0, y/n (any case); None when empty."""
    if value is None or isinstance(value, bool):
        return value
    text = value.strip().lower()
    if not text:
        return None
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise InputError(f"{field} is not yes or no (expected yes/no, true/false, 1/0, or empty)")
