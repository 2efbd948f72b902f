"""Filing a made sheet into the patient's record: an MDM^T02 over MLLP, acknowledged, once only.

``file_sheet(sheet, settings, audit=...)`` sends one ``Sheet`` to the record system at
``settings.host:settings.port`` and waits for its acknowledgement:

- **AA / CA**: filed. **AE / AR / CE / CR**: refused; the reason recorded is the receiver's
  code, the segment and field it names and its text, with any of the patient's values in it
  blanked out. **No answer** within ``settings.timeout`` (or the connection dropped after the
  message went): unknown, since the receiver may have filed it.
- **Retries**: a connection that fails, or an answer that does not come, is tried again
  ``settings.attempts`` times in all, ``settings.backoff`` seconds apart, doubling. A retry sends
  the *same* message (same MSH-10), so a receiver that got the first copy can drop the second.
- **Once only**: a record in the clinic's data folder (``hl7-filed.sqlite3``, 0600, beside the
  clinic's secret; like ``delivery/sent.py`` it holds only keyed digests) says, per appointment
  (``Sheet.key``), which version of the sheet (a digest of its PDF and text) the record has.
  The same sheet again sends nothing (``already-filed``). The intent (``filing``) is committed
  before anything is sent; an attempt with no outcome (the process died) or an unknown outcome
  is never sent again on its own (``held``): ``resend_unknown=True`` does it on request. A
  refused or failed attempt is tried again by the next call.
- **Versions**: a remade sheet for the same appointment (SIU S13/S14) is a new version, filed
  as a new MDM^T02: TXA-12 (unique document number) is ``<appointment digest>-<n>`` for
  version *n* (1, 2, ...), and TXA-13 (parent document number) names the version it replaces.
  (We chose a plain T02 over a T10 "replacement": every receiver files a T02.)
- **Audit**: every attempt's outcome is one record, ``filed``, ``file-failed`` (refused or
  never delivered; ``detail`` says which) or ``file-unknown``, with the destination, the
  document number, the message control id and the reason in ``detail``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sqlite3
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

from discharge.audit import AuditError, AuditLog, AuditRecord, count_pages
from discharge.channels import Actions, Handout, Recorder, register
from discharge.clinic_data import data_dir, immediate_transaction, keyed_digest, open_record
from discharge.errors import ConfigError, DeliveryError, InputError
from discharge.hl7.mdm import (
    COMPLETION_STATUS,
    DOCUMENT_TYPE,
    VERSION,
    MdmDocument,
    MdmHeader,
    PatientIdentity,
    build_mdm,
)

__all__ = [
    "ALREADY_FILED", "FAILED", "FILED", "HELD", "REFUSED", "UNKNOWN", "FilingJournal",
    "FilingResult", "FilingSettings", "Sheet", "file_sheet", "parse_destination",
]  # fmt: skip

JOURNAL_NAME = "hl7-filed.sqlite3"
BUSY_TIMEOUT = 30.0
ACK_LIMIT = 1 << 20  # bytes: an acknowledgement is a few hundred

# The audit actions of the ``file`` delivery channel (FileChannel, below): it was filed, it
# surely was not (refused or failed: ``detail.outcome`` says which), it may have been.
FILED, FILE_FAILED, FILE_UNKNOWN = "filed", "file-failed", "file-unknown"

# FilingResult.outcome (FILED is also the audit action):
ALREADY_FILED = "already-filed"  # this very version is in the record: nothing sent
HELD = "held"  # an earlier attempt's outcome is unknown: not sent again without being asked
REFUSED = "refused"  # the receiver answered AE/AR (CE/CR)
FAILED = "failed"  # nothing reached the receiver
UNKNOWN = "unknown"  # sent, no answer: the receiver may have filed it
_FILING = "filing"  # the journal's intent, before the outcome


@dataclass(frozen=True)
class Sheet:
    """One patient's sheet to file."""

    patient: PatientIdentity
    procedure: str  # the procedure id ("hsg"), for the audit log
    appointment: date | datetime  # TXA-4; a naive datetime is sent without an offset
    key: str  # the appointment, stable across S12/S13/S14 (e.g. the SIU's SCH-2 filler id)
    pdf: bytes
    title: str  # what the record shows as the document's name (OBX-3)
    text: str | None = None  # the plain-text rendering (render_text), sent as a second OBX
    clinician: str = ""  # for the audit log only


@dataclass(frozen=True)
class FilingSettings:
    """Where and how to file (the listener fills it from ``[hl7]``)."""

    host: str
    port: int
    timeout: float = 30.0  # seconds to connect, and then to wait for the acknowledgement
    attempts: int = 3  # sends in all, before the outcome is failed or unknown
    backoff: float = 2.0  # seconds before the second attempt; doubled for each one after
    document_type: str = DOCUMENT_TYPE  # TXA-2 (the site's table 0270 code)
    completion_status: str = COMPLETION_STATUS  # TXA-17
    sending_facility: str = ""  # MSH-4
    receiving_application: str = ""  # MSH-5
    receiving_facility: str = ""  # MSH-6
    version: str = VERSION  # MSH-12
    processing_id: str = "P"  # MSH-11

    @property
    def destination(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_destination(text: str, setting: str = "hl7.file_to") -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:2575"`` for IPv6) as (host, port); else a ConfigError."""
    host, sep, port = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f'{setting} must be host:port (e.g. "interface-engine:2576")')
    return host, int(port)


@dataclass(frozen=True)
class FilingResult:
    """What happened to one sheet. ``reason`` never holds a patient value."""

    outcome: str  # FILED, ALREADY_FILED, HELD, REFUSED, FAILED or UNKNOWN
    document_number: str  # TXA-12 of the version this call was about
    control_id: str = ""  # MSH-10 of the message sent ("" when nothing was sent)
    attempts: int = 0  # sends made by this call
    replaces: str = ""  # TXA-13: the version this one replaces, if any
    reason: str = ""
    ack_code: str = ""  # MSA-1 as received

    @property
    def filed(self) -> bool:
        return self.outcome in (FILED, ALREADY_FILED)


# --- the once-only record -----------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS filings (
    key TEXT PRIMARY KEY,          -- the appointment (keyed digest of Sheet.key)
    version TEXT NOT NULL,         -- the latest attempt's sheet (keyed digest of PDF and text)
    number INTEGER NOT NULL,       -- the latest attempt's version number (TXA-12)
    tries INTEGER NOT NULL,        -- 1 + the refusals: part of the MSH-10
    state TEXT NOT NULL,           -- the latest attempt: filing, filed, refused, failed, unknown
    control_id TEXT NOT NULL,      -- the latest attempt's MSH-10
    time_utc TEXT NOT NULL,
    filed TEXT NOT NULL,           -- the version the record has (or may have); '' none
    filed_number INTEGER NOT NULL,
    filed_state TEXT NOT NULL,     -- filed or unknown, for that version
    filed_utc TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class _Claim:
    key: str
    version: str
    number: int
    parent: int  # 0: none
    tries: int
    held: str = ""  # ALREADY_FILED or HELD: nothing to send


class FilingJournal:
    """The open once-only record. ``FilingJournal.open()``; a context manager."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, path: Path | None = None) -> FilingJournal:
        path = path or data_dir() / JOURNAL_NAME
        keyed_digest("check")  # makes the data folder (0700) and the secret, or says why not
        try:
            conn = open_record(path, _SCHEMA, busy_timeout=BUSY_TIMEOUT)
        except (OSError, sqlite3.Error) as exc:
            raise cls._error(path, exc) from None
        return cls(path, conn)

    @staticmethod
    def _error(path: Path, exc: BaseException) -> DeliveryError:
        why = getattr(exc, "strerror", None) or str(exc)
        return DeliveryError(
            f"cannot use the clinic's record of sheets filed {path}: {why}; nothing was filed"
        )

    def __enter__(self) -> FilingJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def claim(self, key: str, version: str, *, resend_unknown: bool = False) -> _Claim:
        """Record the intent to file ``version`` for ``key`` now, unless the record has it or
        may have it (then ``held`` says which and nothing is recorded)."""
        now = _now()
        try:
            with immediate_transaction(self._conn):
                row = self._conn.execute(
                    "SELECT version, number, tries, state, filed, filed_number, filed_state "
                    "FROM filings WHERE key = ?",
                    (key,),
                ).fetchone()
                if row is None:
                    number, parent, tries = 1, 0, 1
                else:
                    last, last_number, tries, state, filed, filed_number, filed_state = row
                    if filed == version and filed_state == FILED:
                        return _Claim(key, version, filed_number, 0, tries, ALREADY_FILED)
                    maybe = (last == version and state in (_FILING, UNKNOWN)) or (
                        filed == version and filed_state == UNKNOWN
                    )
                    if maybe and not resend_unknown:
                        return _Claim(key, version, last_number, 0, tries, HELD)
                    if last == version:
                        number = last_number
                    elif filed == version:
                        number = filed_number
                    else:
                        number = max(last_number, filed_number) + 1
                    parent = filed_number if filed and filed != version else 0
                    # A new MSH-10 only after a refusal (the receiver keeps its answer to an
                    # id); a message that never arrived, or may have, is sent as it was.
                    tries += state == REFUSED
                self._conn.execute(
                    "INSERT INTO filings (key, version, number, tries, state, control_id, "
                    "time_utc, filed, filed_number, filed_state, filed_utc) "
                    "VALUES (?, ?, ?, ?, ?, '', ?, '', 0, '', '') "
                    "ON CONFLICT (key) DO UPDATE SET version = excluded.version, "
                    "number = excluded.number, tries = excluded.tries, state = excluded.state, "
                    "time_utc = excluded.time_utc",
                    (key, version, number, tries, _FILING, now),
                )
        except sqlite3.Error as exc:
            raise self._error(self.path, exc) from None
        return _Claim(key, version, number, parent, tries)

    def finish(self, claim: _Claim, outcome: str, control_id: str) -> None:
        """The outcome of the attempt ``claim`` recorded: FILED, REFUSED, FAILED or UNKNOWN."""
        now = _now()
        try:
            with immediate_transaction(self._conn):
                if outcome in (FILED, UNKNOWN):
                    self._conn.execute(
                        "UPDATE filings SET state = ?, control_id = ?, time_utc = ?, "
                        "filed = ?, filed_number = ?, filed_state = ?, filed_utc = ? "
                        "WHERE key = ?",
                        (outcome, control_id, now, claim.version, claim.number, outcome, now,
                         claim.key),
                    )  # fmt: skip
                else:  # nothing was filed: what the record had, it has
                    self._conn.execute(
                        "UPDATE filings SET state = ?, control_id = ?, time_utc = ? WHERE key = ?",
                        (outcome, control_id, now, claim.key),
                    )
        except sqlite3.Error as exc:
            raise DeliveryError(
                f"the sheet's filing ended {outcome}, but the clinic's record of sheets filed "
                f"{self.path} could not be updated: {exc}"
            ) from None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- filing -------------------------------------------------------------------------------


def file_sheet(
    sheet: Sheet,
    settings: FilingSettings,
    *,
    audit: AuditLog,
    journal: FilingJournal | None = None,
    channel: str = "hl7",
    resend_unknown: bool = False,
) -> FilingResult:
    """File ``sheet`` (see the module's docstring); not from inside a running event loop.
    Raises AuditError if the outcome cannot be recorded in the audit log, DeliveryError if the
    once-only record cannot be used."""
    if not sheet.key.strip() or not sheet.pdf or not sheet.patient.identifiers:
        raise InputError("a sheet to file needs its appointment key, a PDF and a patient id")
    with FilingJournal.open() if journal is None else contextlib.nullcontext(journal) as used:
        return asyncio.run(_file(sheet, settings, audit, used, channel, resend_unknown))


async def _file(
    sheet: Sheet,
    settings: FilingSettings,
    audit: AuditLog,
    journal: FilingJournal,
    channel: str,
    resend_unknown: bool,
) -> FilingResult:
    key = keyed_digest("hl7-filed/v1", sheet.key)
    text_sha = hashlib.sha256(sheet.text.encode("utf-8")).hexdigest() if sheet.text else ""
    version = keyed_digest("hl7-version/v1", hashlib.sha256(sheet.pdf).hexdigest(), text_sha)
    claim = journal.claim(key, version, resend_unknown=resend_unknown)
    base = keyed_digest("hl7-document/v1", sheet.key, length=16)
    number = f"{base}-{claim.number}"
    parent = f"{base}-{claim.parent}" if claim.parent else ""
    if claim.held:
        return FilingResult(claim.held, number)
    control_id = keyed_digest("hl7-control/v1", key, version, str(claim.tries), length=20)
    message = build_mdm(
        sheet.patient,
        MdmDocument(
            number=number, activity=sheet.appointment, title=sheet.title, pdf=sheet.pdf,
            text=sheet.text, parent=parent, document_type=settings.document_type,
            completion_status=settings.completion_status,
        ),
        MdmHeader(
            control_id=control_id, sending_facility=settings.sending_facility,
            receiving_application=settings.receiving_application,
            receiving_facility=settings.receiving_facility, version=settings.version,
            processing_id=settings.processing_id,
        ),
    )  # fmt: skip
    result = FilingResult(UNKNOWN, number, control_id, 0, parent, "stopped while sending")
    try:
        result = await _deliver(message.encode("utf-8"), result, settings, sheet.patient)
    finally:  # also when cancelled or interrupted: the message may have gone
        _record(sheet, settings, result, audit, journal, claim, channel)
    return result


async def _deliver(
    data: bytes, result: FilingResult, settings: FilingSettings, patient: PatientIdentity
) -> FilingResult:
    maybe_sent = False
    reason = ""
    attempts = max(1, settings.attempts)
    for attempt in range(1, attempts + 1):
        outcome, code, reason = await _send_once(data, result.control_id, settings)
        if outcome in (FILED, REFUSED):
            reason = _scrub(reason, patient)
            return replace(result, outcome=outcome, attempts=attempt, reason=reason,
                           ack_code=code)  # fmt: skip
        maybe_sent = maybe_sent or outcome == UNKNOWN
        if attempt < attempts:
            await asyncio.sleep(settings.backoff * 2 ** (attempt - 1))
    return replace(
        result, outcome=UNKNOWN if maybe_sent else FAILED, attempts=attempts, reason=reason
    )


async def _send_once(data: bytes, control_id: str, s: FilingSettings) -> tuple[str, str, str]:
    """One connection, one message, its acknowledgement: (outcome, MSA-1, reason)."""
    from hl7.mllp import open_hl7_connection  # the listener's start-up need not pay for it

    try:
        reader, writer = await asyncio.wait_for(
            open_hl7_connection(s.host, s.port, limit=ACK_LIMIT, encoding="utf-8"), s.timeout
        )
    except (OSError, TimeoutError) as exc:
        why = getattr(exc, "strerror", None) or "no answer"
        return FAILED, "", f"cannot connect to {s.destination}: {why}"
    from hl7.mllp import InvalidBlockError

    try:
        writer.writeblock(data)
        await asyncio.wait_for(writer.drain(), s.timeout)
        async with asyncio.timeout(s.timeout):
            while True:
                block = await reader.readblock()
                code, reason, answers = _read_ack(block, control_id)
                if answers:
                    break
    except TimeoutError:
        return UNKNOWN, "", f"no acknowledgement from {s.destination} within {s.timeout:g} s"
    except (OSError, EOFError, ValueError, InvalidBlockError) as exc:  # closed, reset, not MLLP
        why = getattr(exc, "strerror", None) or "the connection closed"
        return UNKNOWN, "", f"no acknowledgement from {s.destination}: {why}"
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
    if code in ("AA", "CA"):
        return FILED, code, ""
    if code in ("AE", "AR", "CE", "CR"):
        return REFUSED, code, f"{s.destination} refused it ({code}){reason}"
    return UNKNOWN, code, f"{s.destination} answered with an unknown code"


def _read_ack(block: bytes, control_id: str) -> tuple[str, str, bool]:
    """(MSA-1, the receiver's reason, whether it answers ``control_id``)."""
    import hl7

    try:
        ack = hl7.parse(block.decode("utf-8", "replace"))
        if str(ack["MSA.2"]) != control_id:
            return "", "", False
        code = str(ack["MSA.1"]).strip().upper()
        parts = [str(ack["MSA.3"])]
        for n in range(1, len(ack.segments("ERR")) + 1 if _has(ack, "ERR") else 1):
            # v2.5's ERR-2 (segment^sequence^field) and ERR-3 (code^text); v2.3's ERR-1
            where = "-".join(p for p in (_part(ack, n, 2, 1), _part(ack, n, 2, 3)) if p)
            error = " ".join(p for p in (_part(ack, n, 3, 1), _part(ack, n, 3, 2)) if p)
            if not where:  # v2.3: ERR-1 is segment^sequence^field^code&text
                where = "-".join(p for p in (_part(ack, n, 1, 1), _part(ack, n, 1, 3)) if p)
                error = error or " ".join(
                    p for p in (_part(ack, n, 1, 4, 1), _part(ack, n, 1, 4, 2)) if p
                )
            parts += [f"at {where}" if where else "", error, _part(ack, n, 8, 1)]
    except Exception:  # a malformed acknowledgement is no answer; the parser's errors vary
        return "", "", False
    said = "; ".join(" ".join(p.split()) for p in parts if p.strip())
    return code, f": {said}" if said else "", True


def _part(message: object, n: int, field: int, component: int, sub: int = 1) -> str:
    """ERR segment ``n``'s field and component, unescaped; "" when it is not there."""
    try:
        value = message.extract_field("ERR", n, field, 1, component, sub)  # type: ignore[attr-defined]
    except IndexError:
        return ""
    return str(value)


def _has(message: object, segment: str) -> bool:
    try:
        message.segments(segment)  # type: ignore[attr-defined]
    except KeyError:
        return False
    return True


def _scrub(reason: str, patient: PatientIdentity) -> str:
    """The receiver's words may quote the patient: blank out every value we sent of theirs."""
    for value in sorted(patient.values(), key=len, reverse=True):
        if len(value) >= 2:
            reason = _replace_folded(reason, value, "…")
    return reason[:300]


def _replace_folded(text: str, value: str, by: str) -> str:
    folded, needle = text.casefold(), value.casefold()
    if len(folded) != len(text):  # casefold changed lengths (ß): fall back to exact matches
        return text.replace(value, by)
    out, start = [], 0
    while (found := folded.find(needle, start)) >= 0:
        out += [text[start:found], by]
        start = found + len(needle)
    return "".join(out) + text[start:]


def _record(
    sheet: Sheet,
    settings: FilingSettings,
    result: FilingResult,
    audit: AuditLog,
    journal: FilingJournal,
    claim: _Claim,
    channel: str,
) -> None:
    problems: list[DeliveryError | AuditError] = []
    try:
        journal.finish(claim, result.outcome, result.control_id)
    except DeliveryError as exc:
        problems.append(exc)
    action = {FILED: FILED, UNKNOWN: FILE_UNKNOWN}.get(result.outcome, FILE_FAILED)
    detail = {
        "to": settings.destination, "outcome": result.outcome, "document": result.document_number,
        "replaces": result.replaces, "attempts": result.attempts, "ack": result.ack_code,
        "reason": result.reason,
    }  # fmt: skip
    entry = AuditRecord(
        action=action,
        procedure=sheet.procedure,
        pdf_sha256=hashlib.sha256(sheet.pdf).hexdigest(),
        pages=count_pages(sheet.pdf),
        mrn=sheet.patient.hospital_number,
        patient_name=sheet.patient.display_name,
        clinician=sheet.clinician,
        channel=channel,
        message_id=result.control_id,
        detail=json.dumps({k: v for k, v in detail.items() if v}, ensure_ascii=False),
    )
    try:
        audit.record(entry)
    except AuditError as exc:
        problems.append(AuditError(f"{exc}; the sheet's filing ended {result.outcome}"))
    if problems:
        raise problems[-1]


@register
class FileChannel:
    """Filing as a delivery channel (discharge.channels): ``deliver(handout, pdf,
    FileChannel(settings, sheet), audit=log)`` files ``sheet`` (whose ``pdf`` is the one
    handed out) and records it under ``filed``/``file-failed``/``file-unknown``, with the
    destination, document number and acknowledgement in the record's detail."""

    name = "file"
    actions = Actions(FILED, FILE_FAILED, FILE_UNKNOWN)

    def __init__(
        self, settings: FilingSettings, sheet: Sheet, *, journal: FilingJournal | None = None
    ) -> None:
        self.settings = settings
        self.sheet = sheet
        self.journal = journal

    def send(self, handout: Handout, pdf: bytes, recorder: Recorder) -> FilingResult:
        sheet = self.sheet if self.sheet.pdf == pdf else replace(self.sheet, pdf=pdf)
        return file_sheet(
            sheet, self.settings, audit=recorder.log, journal=self.journal,
            channel=handout.front_end,
        )  # fmt: skip
