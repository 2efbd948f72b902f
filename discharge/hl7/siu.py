"""One scheduling message (SIU^S12-S15) read into a booking, and the acknowledgement to it.

Pure: no files, no network. The bytes of an MLLP frame are decoded in the character set the
message's MSH-18 names, parsed (and its escape sequences decoded) by python-hl7, and read
field by field into the same request ``discharge generate`` makes. A wrong field is a
``MessageError`` naming the segment, the field and the HL7 error code (table 0357), never its
value: acknowledgements and logs leave the hospital's systems, patient data must not.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import hl7

from discharge.config import Config
from discharge.errors import DischargeError, FieldErrors, InputError
from discharge.hl7.mdm import Identifier, PatientIdentity
from discharge.hl7.settings import Hl7Settings
from discharge.i18n import language_of
from discharge.request import DischargeRequest, check_email, parse_request

# python-hl7 logs a field's whole value when it meets an escape sequence it does not know
# (``Error decoding value [...]``): a patient's name in a log. Its records go nowhere.
_library_log = logging.getLogger("hl7")
_library_log.addHandler(logging.NullHandler())
_library_log.propagate = False

NEW, RESCHEDULED, MODIFIED, CANCELLED = "S12", "S13", "S14", "S15"
EVENTS = (NEW, RESCHEDULED, MODIFIED, CANCELLED)
ACCEPT, APP_ERROR, REJECT = "AA", "AE", "AR"

# HL7 table 0357, message error condition codes.
SEGMENT_SEQUENCE, REQUIRED_MISSING, DATA_TYPE, TABLE_VALUE = 100, 101, 102, 103
UNSUPPORTED_TYPE, UNSUPPORTED_EVENT, UNSUPPORTED_VERSION, INTERNAL = 200, 201, 203, 207
CODE_NAMES = {
    SEGMENT_SEQUENCE: "Segment sequence error",
    REQUIRED_MISSING: "Required field missing",
    DATA_TYPE: "Data type error",
    TABLE_VALUE: "Table value not found",
    UNSUPPORTED_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT: "Unsupported event code",
    UNSUPPORTED_VERSION: "Unsupported version id",
    INTERNAL: "Application internal error",
}

# MSH-18 (HL7 table 0211) -> Python codec. Empty: ASCII by the standard; UTF-8 is read too
# (it is what most engines send undeclared, and ASCII is a part of it).
CHARSETS = {
    "": "utf-8",
    "ASCII": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "UTF-8": "utf-8",
    "8859/1": "iso8859-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/7": "iso8859-7",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
}
# YYYYMMDD[HH[MM[SS[.S...]]]][+/-ZZZZ]
_DTM = re.compile(
    r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})?(?:\d{2}(?:\.\d{1,4})?)?)?([+-]\d{4})?$"
)
_VERSION = re.compile(r"^2\.\d")
# ISO 639-2 codes some systems send in PID-15, for the languages a clinic is likely to have.
_LANGUAGE_3 = {
    "eng": "en", "spa": "es", "fra": "fr", "fre": "fr", "deu": "de", "ger": "de", "ita": "it",
    "por": "pt", "pol": "pl", "vie": "vi", "ara": "ar", "zho": "zh", "chi": "zh", "rus": "ru",
    "tur": "tr", "urd": "ur", "pan": "pa", "ben": "bn", "som": "so", "ron": "ro", "rum": "ro",
}  # fmt: skip


@dataclass(frozen=True)
class Problem:
    """One wrong field: where it is (ERR-2) and what is wrong (ERR-3), in words without its
    value."""

    segment: str
    field: int
    code: int
    text: str
    sequence: int = 1  # the first segment of its kind
    component: int = 0  # 0: the whole field

    @property
    def where(self) -> str:
        part = f".{self.component}" if self.component else ""
        return f"{self.segment}-{self.field}{part}"


class MessageError(DischargeError):
    """The message cannot be done: ``ack`` is AE (bad data) or AR (not taken at all)."""

    def __init__(self, ack: str, problems: list[Problem]) -> None:
        self.ack = ack
        self.problems = problems
        super().__init__("; ".join(f"{p.where}: {p.text}" for p in problems))


@dataclass(frozen=True)
class Received:
    """A frame decoded and parsed. ``message`` is None when it is not an HL7 message at all."""

    message: hl7.Message | None
    codec: str  # for the reply
    problem: MessageError | None = None  # the frame's own problem (its character set)

    @property
    def control_id(self) -> str:
        return field_text(self.message, "MSH", 10) if self.message is not None else ""

    @property
    def sender(self) -> str:
        """The sending application and facility (MSH-3, MSH-4): control ids are theirs."""
        if self.message is None:
            return ""
        return f"{field_text(self.message, 'MSH', 3)}^{field_text(self.message, 'MSH', 4)}"

    @property
    def version(self) -> str:
        return field_text(self.message, "MSH", 12) if self.message is not None else ""


@dataclass(frozen=True)
class Booking:
    """What one SIU message asks for."""

    event: str  # S12, S13, S14 or S15
    placer: str  # SCH-1, the placer's appointment id
    filler: str  # SCH-2, the scheduling system's appointment id
    code: str = ""  # the appointment reason (SCH-7) or service (AIS-3) code that was mapped
    request: DischargeRequest | None = None  # None: cancelled, or a type the table does not map
    email: str = ""
    template: Path | None = None
    # Who, as the message names them (every PID-3 identifier as sent): for filing back.
    patient: PatientIdentity | None = None
    start: datetime | None = None  # the appointment's start (a date alone: midnight)

    @property
    def appointment(self) -> str:
        return self.filler or self.placer


def decode_frame(block: bytes) -> Received:
    """An MLLP frame's bytes as a parsed message, in the character set MSH-18 names.

    Segments may end in CR, CR LF or LF. Never raises: a frame that is no HL7 message comes
    back with ``message=None`` and its problem.
    """
    data = block.replace(b"\r\n", b"\r").replace(b"\n", b"\r").strip(b"\r\n\t \x00")
    if not data.startswith(b"MSH") or len(data) < 8:
        return Received(None, "ascii", _not_hl7())
    separator = data[3:4]
    first = data.split(b"\r", 1)[0].split(separator)
    declared = first[17] if len(first) > 17 else b""
    for mark in (data[4:5], data[5:6]):  # the component and repetition separators
        if mark:
            declared = declared.split(mark, 1)[0]
    charset = declared.decode("ascii", "replace").strip().upper()
    codec = CHARSETS.get(charset)
    problem = None
    if codec is None:
        problem = MessageError(
            APP_ERROR,
            [Problem("MSH", 18, TABLE_VALUE, "not a character set this listener reads (expected "
                     "UNICODE UTF-8, 8859/1 or ASCII)")],
        )  # fmt: skip
        codec = "iso8859-1"  # only to read the header and acknowledge it
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        problem = MessageError(
            APP_ERROR,
            [Problem("MSH", 18, DATA_TYPE, "the message's bytes are not valid in the character "
                     "set MSH-18 names (empty: ASCII or UTF-8)")],
        )  # fmt: skip
        codec = "iso8859-1"
        text = data.decode(codec)
    try:
        message = hl7.parse(text)
        message.segment("MSH")
    except Exception:  # noqa: BLE001 - python-hl7 raises several types for a damaged header
        return Received(None, "ascii", _not_hl7())
    return Received(message, "ascii" if codec == "utf-8" and text.isascii() else codec, problem)


def _not_hl7() -> MessageError:
    return MessageError(
        REJECT,
        [Problem("MSH", 1, SEGMENT_SEQUENCE, "the frame is not an HL7 message starting with "
                 "an MSH segment")],
    )  # fmt: skip


def check_header(received: Received) -> str:
    """The trigger event (S12-S15) of a message this listener takes; else a MessageError (AR)."""
    message = received.message
    assert message is not None
    if not received.control_id:
        raise MessageError(
            REJECT, [Problem("MSH", 10, REQUIRED_MISSING, "the message control id is missing")]
        )
    kind = field_text(message, "MSH", 9, 1, 1).upper()
    event = field_text(message, "MSH", 9, 1, 2).upper()
    if kind != "SIU":
        raise MessageError(
            REJECT,
            [Problem("MSH", 9, UNSUPPORTED_TYPE, "only scheduling messages (SIU) are taken",
                     component=1)],
        )  # fmt: skip
    if event not in EVENTS:
        raise MessageError(
            REJECT,
            [Problem("MSH", 9, UNSUPPORTED_EVENT, "only SIU events S12, S13, S14 and S15 are "
                     "taken", component=2)],
        )  # fmt: skip
    if not _VERSION.match(received.version):
        raise MessageError(
            REJECT,
            [Problem("MSH", 12, UNSUPPORTED_VERSION, "expected an HL7 version 2 message "
                     "(2.3 to 2.5.1)")],
        )  # fmt: skip
    if received.problem is not None:
        raise received.problem
    return event


def read_booking(received: Received, settings: Hl7Settings, config: Config) -> Booking:
    """The booking an SIU message describes; every wrong field at once in a MessageError (AE).

    An appointment type the table does not map comes back without a request: it is not this
    clinic's sheet to make.
    """
    message = received.message
    assert message is not None
    event = check_header(received)
    placer = field_text(message, "SCH", 1, 1, 1)
    filler = field_text(message, "SCH", 2, 1, 1)
    if not placer and not filler:
        raise MessageError(
            APP_ERROR,
            [Problem("SCH", 2, REQUIRED_MISSING, "the appointment has no id (SCH-2, or SCH-1)")],
        )
    if event == CANCELLED:
        return Booking(event, placer, filler)
    code, sheet = _sheet(message, settings)
    if sheet is None:
        return Booking(event, placer, filler)
    return _with_request(Booking(event, placer, filler, code), message, sheet, settings, config)


def _sheet(message: hl7.Message, settings: Hl7Settings) -> tuple[str, tuple[str, str] | None]:
    codes = [field_text(message, "SCH", 7, 1, 1)]
    codes += [field_text(segment, None, 3, 1, 1) for segment in _segments(message, "AIS")]
    for code in codes:
        sheet = settings.sheet_for(code)
        if sheet is not None:
            return code, sheet
    return "", None


def _with_request(
    booking: Booking,
    message: hl7.Message,
    sheet: tuple[str, str],
    settings: Hl7Settings,
    config: Config,
) -> Booking:
    problems: list[Problem] = []
    tz = config.clinic.tz
    where, start = _start(message)
    day = at = ""
    if not start:
        missing = "the appointment's start is missing (SCH-11.4, TQ1-7 or AIS-4)"
        problems.append(Problem("SCH", 11, REQUIRED_MISSING, missing, component=4))
    else:
        try:
            day, at = _moment(start, tz)
        except InputError as exc:
            problems.append(replace_text(where, str(exc)))
    dob_text = field_text(message, "PID", 7, 1, 1)
    dob = ""
    if dob_text:
        match = _DTM.match(dob_text)
        if not match:
            problems.append(Problem("PID", 7, DATA_TYPE, "the date of birth is not a date "
                                    "YYYYMMDD"))  # fmt: skip
        else:
            dob = f"{match[1]}-{match[2]}-{match[3]}"
    email_text = _email(message)
    email = ""
    try:
        email = check_email(email_text, "the email address")
    except InputError as exc:
        problems.append(Problem("PID", 13, DATA_TYPE, str(exc), component=4))
    language = _language(field_text(message, "PID", 15, 1, 1))
    procedure, variant = sheet
    fields = {
        "patient": Problem("PID", 5, DATA_TYPE, ""),
        "dob": Problem("PID", 7, DATA_TYPE, ""),
        "mrn": Problem("PID", 3, DATA_TYPE, ""),
        "clinician": Problem("AIP", 3, DATA_TYPE, ""),
        "date": where,
        "time": where,
        "language": Problem("PID", 15, TABLE_VALUE, ""),
        "variant": Problem("SCH", 7, TABLE_VALUE, ""),
        "procedure": Problem("SCH", 7, TABLE_VALUE, ""),
    }
    request = None
    try:
        request = parse_request(
            procedure=procedure,
            variant=variant or None,
            date=day or "2000-01-01",  # its own problem is reported above
            time=at or None,
            patient=_name(message),
            dob=dob or None,
            mrn=_mrn(message, settings.patient_id_type),
            clinician=_clinician(message),
            language=language or None,
        )
    except FieldErrors as exc:
        for key, text in exc.problems.items():
            if key == "dob" and not day:
                continue  # "after the procedure date": the start's own problem is reported
            base = fields.get(key, Problem("PID", 5, DATA_TYPE, ""))
            code = REQUIRED_MISSING if "is empty" in text else base.code
            problems.append(Problem(base.segment, base.field, code, text, component=base.component))
    template = None
    if request is not None and not problems:
        from discharge.guidance.loading import load_procedure

        try:
            loaded = load_procedure(
                procedure, config.templates_dir, request.language or None,
                default_language=language_of(config.clinic.locale),
            )  # fmt: skip
            loaded.variant(request.variant or None)
            template = loaded.path
        except DischargeError as exc:
            problems.append(Problem("PID", 15, TABLE_VALUE, str(exc)))
    if problems or request is None:
        raise MessageError(APP_ERROR, problems)
    start_at = datetime.combine(request.day, request.at) if request.at else None
    return Booking(
        booking.event, booking.placer, booking.filler, booking.code, request, email, template,
        _identity(message, request), start_at,
    )  # fmt: skip


def _identity(message: hl7.Message, request: DischargeRequest) -> PatientIdentity:
    identifiers = tuple(
        Identifier(
            field_text(message, "PID", 3, repetition, 1),
            field_text(message, "PID", 3, repetition, 4),
            field_text(message, "PID", 3, repetition, 5),
        )
        for repetition in range(1, _repetitions(message, "PID", 3) + 1)
        if field_text(message, "PID", 3, repetition, 1)
    )
    return PatientIdentity(
        identifiers=identifiers,
        family_name=field_text(message, "PID", 5, 1, 1),
        given_name=field_text(message, "PID", 5, 1, 2),
        birth_date=request.patient.dob,
        sex=field_text(message, "PID", 8, 1, 1),
        visit_number=field_text(message, "PV1", 19, 1, 1),
        hospital_number=request.patient.mrn,
        display_name=request.patient.name,
    )


def replace_text(problem: Problem, text: str) -> Problem:
    return Problem(problem.segment, problem.field, DATA_TYPE, text, component=problem.component)


def _start(message: hl7.Message) -> tuple[Problem, str]:
    """The appointment's start: TQ1-7 (2.5), else SCH-11.4 (the timing quantity), else AIS-4."""
    for segment in _segments(message, "TQ1"):
        value = field_text(segment, None, 7, 1, 1)
        if value:
            return Problem("TQ1", 7, DATA_TYPE, ""), value
    value = field_text(message, "SCH", 11, 1, 4)
    if value:
        return Problem("SCH", 11, DATA_TYPE, "", component=4), value
    for segment in _segments(message, "AIS"):
        value = field_text(segment, None, 4, 1, 1)
        if value:
            return Problem("AIS", 4, DATA_TYPE, ""), value
    return Problem("SCH", 11, REQUIRED_MISSING, "", component=4), ""


def _moment(text: str, tz: ZoneInfo) -> tuple[str, str]:
    """``YYYYMMDD[HHMM[SS]][+ZZZZ]`` as an ISO date and a clock time ("" without one), in the
    clinic's time zone when the value carries its own offset."""
    match = _DTM.match(text.replace(" ", ""))
    if not match:
        raise InputError("the appointment's start is not a date and time YYYYMMDDHHMM")
    year, month, day, hour, minute, offset = match.groups()
    try:
        when = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0))
    except ValueError:
        raise InputError("the appointment's start is not a real date and time") from None
    if offset and hour:
        sign = -1 if offset[0] == "-" else 1
        shift = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])) * sign
        when = when.replace(tzinfo=timezone(shift)).astimezone(tz).replace(tzinfo=None)
    clock = when.strftime("%H:%M") if hour else ""
    return date(when.year, when.month, when.day).isoformat(), clock


def _name(message: hl7.Message) -> str:
    """PID-5 (XPN): given names, then the family name; the first repetition with a name."""
    for repetition in range(1, _repetitions(message, "PID", 5) + 1):
        family = field_text(message, "PID", 5, repetition, 1)
        given = field_text(message, "PID", 5, repetition, 2)
        middle = field_text(message, "PID", 5, repetition, 3)
        name = " ".join(part for part in (given, middle, family) if part)
        if name:
            return name
    return ""


def _mrn(message: hl7.Message, id_type: str) -> str:
    """PID-3 (CX, repeated): the identifier of the clinic's type (CX.5), else the first."""
    count = _repetitions(message, "PID", 3)
    if id_type:
        for repetition in range(1, count + 1):
            if field_text(message, "PID", 3, repetition, 5).upper() == id_type:
                return field_text(message, "PID", 3, repetition, 1)
    return field_text(message, "PID", 3, 1, 1)


def _email(message: hl7.Message) -> str:
    """PID-13 (XTN, repeated): the email address (XTN.4; XTN.1 in older feeds that mark the
    repetition as Internet)."""
    for repetition in range(1, _repetitions(message, "PID", 13) + 1):
        address = field_text(message, "PID", 13, repetition, 4)
        if address:
            return address
        kind = field_text(message, "PID", 13, repetition, 2).upper()
        if kind == "NET" or field_text(message, "PID", 13, repetition, 3).upper() == "INTERNET":
            return field_text(message, "PID", 13, repetition, 1)
    return ""


def _clinician(message: hl7.Message) -> str:
    """AIP-3 (XCN) of the first AIP: prefix, given name, family name ("Dr Amara Okafor")."""
    for segment in _segments(message, "AIP"):
        family = field_text(segment, None, 3, 1, 2)
        given = field_text(segment, None, 3, 1, 3)
        prefix = field_text(segment, None, 3, 1, 6)
        name = " ".join(part for part in (prefix, given, family) if part)
        if name:
            return name
    return ""


def _language(code: str) -> str:
    code = code.strip().lower()
    return _LANGUAGE_3.get(code, code)


# --- reading fields -----------------------------------------------------------------------


def _segments(message: hl7.Message, name: str) -> list[Any]:
    return [segment for segment in message if str(segment[0]) == name]


def field_text(
    where: hl7.Message | Any,
    segment: str | None,
    number: int,
    repetition: int = 1,
    component: int = 1,
    subcomponent: int = 1,
) -> str:
    """One field's value (escape sequences decoded), "" when it is absent or the HL7 null."""
    try:
        found = where.segment(segment) if segment is not None else where
        value = found.extract_field(1, number, repetition, component, subcomponent)
    except (KeyError, IndexError):
        return ""
    text = str(value).strip()
    return "" if text == '""' else text


def _repetitions(message: hl7.Message, segment: str, number: int) -> int:
    try:
        return max(1, len(message.segment(segment)(number)))
    except (KeyError, IndexError, TypeError):
        return 1


# --- acknowledgements -----------------------------------------------------------------------


def make_ack(received: Received, ack: str, problems: list[Problem], text: str, ack_id: str) -> str:
    """The acknowledgement (original mode): MSH, MSA with ``ack`` and ``text`` (MSA-3), and one
    ERR per problem: ERR-2 the location and ERR-3 the code for version 2.5 and later, ERR-1
    before (where ERR-2 and ERR-3 do not exist yet). Never raises, whatever the message."""
    message = received.message
    if message is None:
        head = f"MSH|^~\\&|DISCHARGE||||{_now()}||ACK|{ack_id}|P|2.5.1"
        lines = [head, f"MSA|{ack}||{_plain(text)}"]
        lines += [_err(problem, "2.5.1", "|", "^", "&", _plain) for problem in problems]
        return "\r".join(lines) + "\r"
    # The message's own separators (segment, field, repetition, component, subcomponent).
    separators = message.separators
    f, c, s = separators[1], separators[3], separators[4]
    msh = _raw_fields(message)
    event = field_text(message, "MSH", 9, 1, 2)
    head = f.join([
        "MSH", msh[2] or "^~\\&", msh[5], msh[6], msh[3], msh[4], _now(), "",
        c.join(part for part in ("ACK", _escape(message, event), "ACK") if part), ack_id,
        msh[11] or "P", msh[12] or "2.5.1",
    ])  # fmt: skip
    status = [ack, _escape(message, received.control_id)]
    if text:
        status.append(_escape(message, text))
    lines = [head, f.join(["MSA", *status])]
    escape = lambda value: _escape(message, value)  # noqa: E731
    lines += [_err(problem, received.version, f, c, s, escape) for problem in problems]
    return "\r".join(lines) + "\r"


def _raw_fields(message: hl7.Message) -> list[str]:
    """MSH-0 to MSH-12 as sent (components and escapes kept), "" for those missing."""
    try:
        msh = message.segment("MSH")
        found = [str(msh[n]) if n < len(msh) else "" for n in range(13)]
    except Exception:  # noqa: BLE001 - a damaged header: answer without its values
        found = ["MSH", "|"] + [""] * 11
    # A value with the segment separator (a damaged message) must not end the segment early.
    return [value.replace("\r", " ").replace("\n", " ") for value in found]


def _escape(message: hl7.Message, value: str) -> str:
    try:
        return str(message.escape(value))
    except Exception:  # noqa: BLE001
        return _plain(value)


def _err(problem: Problem, version: str, f: str, c: str, s: str, escape: Any) -> str:
    name = CODE_NAMES.get(problem.code, "")
    if _version_tuple(version) >= (2, 5):
        location = c.join(
            [problem.segment, str(problem.sequence), str(problem.field), "1",
             str(problem.component or "")]
        ).rstrip(c)  # fmt: skip
        code = c.join([str(problem.code), name, "HL70357"])
        return f.join(["ERR", "", location, code, "E", "", "", "", escape(problem.text)])
    code = s.join([str(problem.code), name, "HL70357"])
    location = c.join([problem.segment, str(problem.sequence), str(problem.field), code])
    return f.join(["ERR", location])


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = re.findall(r"\d+", version)
    return tuple(int(p) for p in parts[:3]) or (2, 5)


def _plain(text: str) -> str:
    return re.sub(r"[|^~\\&\r\n]", " ", text).encode("ascii", "replace").decode("ascii")


def _now() -> str:
    return datetime.now().strftime("%Y%m%d%H%M%S")
