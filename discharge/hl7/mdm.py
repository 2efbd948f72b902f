"""The MDM^T02 message that files a patient's sheet into their record (HL7 v2.5.1 by default).

One message per sheet: ``MSH`` (sending application ``DISCHARGE``, MSH-18 ``UNICODE UTF-8``),
``EVN``, ``PID`` (the patient's identifiers as the scheduling feed gave them), ``PV1``
(required by the MDM_T02 structure: an outpatient visit, its number when known), ``TXA`` (the
document's type, activity date, unique number, completion and availability status), ``OBX|1``
with the PDF base64-encoded as ED (``^application^pdf^Base64^...``) and, when the text
rendering is given, ``OBX|2`` with it as FT.

Every value that comes from the patient or the clinic goes through ``escape``: the five
delimiters become ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``, a line break ``\\.br\\`` in text (a space in
a name), control characters are dropped. A name can therefore never add a field, a component,
a segment, or the MLLP framing bytes. Non-ASCII stays as it is: the message is UTF-8 and says
so in MSH-18 (python-hl7's own ``escape`` writes ``\\Xhh\\`` for it, which breaks above U+00FF).

The text of a message is ready to be framed (``\\r`` after each segment); this module does no
I/O. ``filing.py`` decides the numbers (control id, document number) and sends it.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

SENDING_APPLICATION = "DISCHARGE"
VERSION = "2.5.1"
CHARSET = "UNICODE UTF-8"  # MSH-18 (HL7 table 0211)
# TXA-2 is HL7 table 0270, which each site defines. Its suggested "DI" means *diagnostic
# imaging*, so it is not our default; "DS" (discharge summary) is the nearest suggested code.
# The clinic's interface team names theirs in the settings.
DOCUMENT_TYPE = "DS"
# TXA-17 (table 0271): "DO" documented. "AU" (authenticated) would claim a clinician signed
# this very document; a sheet made from a template and the booking has no such signature.
COMPLETION_STATUS = "DO"
AVAILABILITY = "AV"  # TXA-19 (table 0273): available for patient care
PDF_CODE = "DISCHARGE-PDF"  # OBX-3, local code (coding system "L"); its text is the title
TEXT_CODE = "DISCHARGE-TEXT"

_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}
_SPECIAL = re.compile(r"[\\|^&~]")
_LINE_BREAK = re.compile(r"\r\n|[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # tab kept (it is text)


def escape(value: str, *, text: bool = False) -> str:
    """``value`` as an HL7 field value: delimiters escaped, NFC; line breaks ``\\.br\\`` when
    ``text`` (an FT field), else a space; other control characters dropped."""
    value = unicodedata.normalize("NFC", value)
    value = _SPECIAL.sub(lambda m: _ESCAPES[m.group()], value)
    value = _LINE_BREAK.sub("\\\\.br\\\\" if text else " ", value)
    value = _CONTROL.sub("", value)
    return value if text else value.replace("\t", " ").strip()


@dataclass(frozen=True)
class Identifier:
    """One of the patient's identifiers (PID-3, CX): the value and, as the feed gave them,
    the assigning authority (CX-4) and the identifier type (CX-5, e.g. ``MR``)."""

    value: str
    authority: str = ""
    type_code: str = ""


@dataclass(frozen=True)
class PatientIdentity:
    """Who the document is for, as the scheduling message named them (PID-3, -5, -7, -8)."""

    identifiers: tuple[Identifier, ...]
    family_name: str
    given_name: str = ""
    birth_date: date | None = None
    sex: str = ""  # PID-8 as given (table 0001: F, M, O, U...)
    visit_number: str = ""  # PV1-19, when the booking carried one
    # The hospital number and the name the sheet was made with (its request's): the filing's
    # audit record names the patient as the sheet's "made" record does.
    hospital_number: str = field(kw_only=True)
    display_name: str = field(kw_only=True)

    def values(self) -> tuple[str, ...]:
        """Every patient value the message carries (to keep them out of what we record)."""
        born = self.birth_date
        values = [self.family_name, self.given_name, self.visit_number]
        values += [identifier.value for identifier in self.identifiers]
        values += [born.isoformat(), born.strftime("%Y%m%d")] if born else []
        return tuple(value.strip() for value in values if value.strip())


@dataclass(frozen=True)
class MdmHeader:
    """What the message says about itself and where it goes (from the clinic's settings)."""

    control_id: str  # MSH-10: the same for a retry of the same message (at most 20 characters)
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    version: str = VERSION
    processing_id: str = "P"  # MSH-11: P production, T training, D debugging


@dataclass(frozen=True)
class MdmDocument:
    """The document: its TXA values and its content."""

    number: str  # TXA-12, unique for each version of the sheet
    activity: date | datetime  # TXA-4: the appointment the sheet is for
    title: str  # OBX-3's text
    pdf: bytes
    text: str | None = None  # the plain-text rendering, when there is one
    parent: str = ""  # TXA-13: the number of the version this one replaces
    document_type: str = DOCUMENT_TYPE
    completion_status: str = COMPLETION_STATUS
    made: datetime | None = None  # TXA-6 origination; None: now


def build_mdm(
    patient: PatientIdentity,
    document: MdmDocument,
    header: MdmHeader,
    *,
    now: datetime | None = None,
) -> str:
    """The MDM^T02 message as text, segments ended by ``\\r``."""
    now = now or datetime.now(UTC).astimezone()
    version = header.version
    message_type = "MDM^T02^MDM_T02" if version >= "2.3.1" else "MDM^T02"
    e = escape
    segments = [
        [
            "MSH", "^~\\&", SENDING_APPLICATION, e(header.sending_facility),
            e(header.receiving_application), e(header.receiving_facility), _dtm(now), "",
            message_type, e(header.control_id), e(header.processing_id), e(version),
            "", "", "", "", "", CHARSET,
        ],
        ["EVN", "T02", _dtm(now)],
        [
            "PID", "1", "", "~".join(_cx(i) for i in patient.identifiers), "",
            f"{e(patient.family_name)}^{e(patient.given_name)}".rstrip("^"), "",
            patient.birth_date.strftime("%Y%m%d") if patient.birth_date else "", e(patient.sex),
        ],
        ["PV1", "1", "O", *[""] * 16, e(patient.visit_number)],
        [
            "TXA", "1", e(document.document_type), "AP", _dtm(document.activity), "",
            _dtm(document.made or now), "", "", "", "", "",
            f"{e(document.number)}^{SENDING_APPLICATION}",
            f"{e(document.parent)}^{SENDING_APPLICATION}" if document.parent else "",
            "", "", "", e(document.completion_status), "", AVAILABILITY,
        ],
        [
            "OBX", "1", "ED", f"{PDF_CODE}^{e(document.title)}^L", "",
            "^application^pdf^Base64^" + base64.b64encode(document.pdf).decode("ascii"),
            "", "", "", "", "", "F",
        ],
    ]  # fmt: skip
    if document.text is not None:
        segments.append(
            [
                "OBX",
                "2",
                "FT",
                f"{TEXT_CODE}^{e(document.title)}^L",
                "",
                e(document.text.rstrip("\n"), text=True),
                "",
                "",
                "",
                "",
                "",
                "F",
            ]  # fmt: skip
        )
    # MSH-1 is the field separator itself: MSH's first element is joined without one.
    lines = ["MSH|" + "|".join(segments[0][1:]).rstrip("|")]
    lines += ["|".join(fields).rstrip("|") for fields in segments[1:]]
    return "\r".join(lines) + "\r"


def _cx(identifier: Identifier) -> str:
    parts = [escape(identifier.value), "", "", escape(identifier.authority)]
    parts.append(escape(identifier.type_code))
    return "^".join(parts).rstrip("^")


def _dtm(moment: date | datetime) -> str:
    """HL7 DTM: YYYYMMDD for a day, YYYYMMDDHHMM[SS][+ZZZZ] for a moment."""
    if not isinstance(moment, datetime):
        return moment.strftime("%Y%m%d")
    text = moment.strftime("%Y%m%d%H%M%S" if moment.second else "%Y%m%d%H%M")
    return text + moment.strftime("%z") if moment.tzinfo else text
