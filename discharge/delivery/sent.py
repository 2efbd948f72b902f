"""The clinic's record of what was emailed to whom: once-only that outlives any output folder.

One question decides whether a message goes: *was this patient's sheet for this procedure and
date already emailed to this address?* The answer is kept in the clinic's data folder
(``email-sent.sqlite3`` beside the clinic's secret, see ``clinic_data``), not in a batch's
output folder, so deleting a folder, re-saving its manifest from a spreadsheet or re-sorting a
schedule changes nothing. ``discharge email``, ``batch --email`` and the web form all ask it.

- **Who**: the hospital number where there is one, else the name and date of birth (spaces and
  case folded); **what**: the procedure and its date; **where**: the address, case-insensitive.
  These are stored only as an HMAC under the clinic's secret (``keyed_digest``): the file holds
  no name, hospital number or address, and nobody without the secret can test a guess.
- **Which version**: a digest of the PDF's bytes. The same patient, procedure, date and address
  with a different PDF (a corrected template, a new clinic phone number) is ``changed``: it is
  reported and sent only when asked.
- **Crash safety**: the intent (``sending``) is committed before the SMTP transaction starts and
  the outcome (``sent``, ``failed``, ``unknown``) after it. An intent with no outcome (the process
  died, or another one is sending right now) counts as ``unknown``: the server may have the
  message, so it is never sent again without being asked. Checking and recording the intent is
  one transaction, so two processes (a batch and the web form) cannot both send.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from discharge.clinic_data import data_dir, immediate_transaction, keyed_digest, open_record
from discharge.errors import DeliveryError
from discharge.request import DischargeRequest

JOURNAL_NAME = "email-sent.sqlite3"
BUSY_TIMEOUT = 30.0  # seconds a writer waits for another one (a batch and the web form)

# What the record says about a send key, from the point of view of a new message:
NEW = "new"  # never sent (or only failed): send it
SENT = "sent"  # this very document went to this address: do not send again
CHANGED = "changed"  # an earlier version went: send this one only when asked
UNKNOWN = "unknown"  # a message went to the server and no answer came: it may have it
# An attempt's outcome, as recorded:
SENDING, FAILED = "sending", "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sends (
    key TEXT PRIMARY KEY,        -- who, procedure, date and address (keyed digest)
    version TEXT NOT NULL,       -- the latest attempt's document (keyed digest of the PDF)
    state TEXT NOT NULL,         -- the latest attempt: sending, sent, failed or unknown
    message_id TEXT NOT NULL,    -- the latest attempt's Message-ID
    time_utc TEXT NOT NULL,      -- the latest attempt's time
    delivered TEXT NOT NULL,     -- the version the patient has (or may have); '' none
    delivered_state TEXT NOT NULL,  -- sent or unknown, for that version
    delivered_utc TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class SendKey:
    """One message's place in the record: ``key`` who/what/when/where, ``version`` the PDF."""

    key: str
    version: str

    @property
    def message_id_part(self) -> str:
        """The left part of a Message-ID that is the same for the same document and address,
        so a mail client can drop a duplicate too."""
        return keyed_digest("message-id", self.key, self.version)


def send_key(request: DischargeRequest, address: str, pdf_sha256: str) -> SendKey:
    """The record's key for sending this patient's PDF (by its sha256) to ``address``."""
    patient = request.patient
    if patient.mrn:
        who: tuple[str, ...] = ("mrn", _fold(patient.mrn))
    else:
        born = patient.dob.isoformat() if patient.dob else ""
        who = ("name", _fold(patient.name), born)
    key = keyed_digest(
        "email-sent/v1", *who, request.procedure, request.day.isoformat(), _fold(address)
    )
    return SendKey(key, keyed_digest("email-version/v1", pdf_sha256))


def message_id(key: SendKey, domain: str) -> str:
    return f"<{key.message_id_part}@{domain}>"


def same_patient(request: DischargeRequest, hospital_number: str) -> bool:
    """Whether ``hospital_number`` (as a user types it for ``--resend``) is this patient's."""
    return bool(request.patient.mrn) and _fold(request.patient.mrn) == _fold(hospital_number)


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


@dataclass(frozen=True)
class Previous:
    """What the record says before a message goes: ``status`` is NEW, SENT, CHANGED or UNKNOWN;
    ``when`` (UTC) and ``message_id`` are those of the send it refers to."""

    status: str
    when: datetime | None = None
    message_id: str = ""

    def when_text(self, tz: ZoneInfo) -> str:
        return self.when.astimezone(tz).strftime("%Y-%m-%d %H:%M") if self.when else ""


def journal_path() -> Path:
    return data_dir() / JOURNAL_NAME


class SentJournal:
    """The open record. ``SentJournal.open()``; use as a context manager."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, path: Path | None = None) -> SentJournal:
        path = path or journal_path()
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
            f"cannot use the clinic's record of emails sent {path}: {why}; the message was not sent"
        )

    def __enter__(self) -> SentJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def previous(self, key: SendKey) -> Previous:
        try:
            row = self._conn.execute(
                "SELECT version, state, message_id, time_utc, delivered, delivered_state, "
                "delivered_utc FROM sends WHERE key = ?",
                (key.key,),
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._error(self.path, exc) from None
        return _previous(key, row)

    def claim(self, key: SendKey, message_id: str, *, allow: Collection[str] = ()) -> Previous:
        """Record the intent to send ``key`` now, unless the record says it went (or may have):
        then nothing is recorded and that is returned. ``allow``: statuses to send anyway
        (``--resend``: SENT, CHANGED and UNKNOWN; ``--resend-changed``: CHANGED).

        Returns ``Previous(NEW)`` (or an allowed status) once the intent is committed.
        """
        now = _now()
        try:
            with immediate_transaction(self._conn):
                row = self._conn.execute(
                    "SELECT version, state, message_id, time_utc, delivered, delivered_state, "
                    "delivered_utc FROM sends WHERE key = ?",
                    (key.key,),
                ).fetchone()
                found = _previous(key, row)
                if found.status != NEW and found.status not in allow:
                    return found
                self._conn.execute(
                    "INSERT INTO sends (key, version, state, message_id, time_utc, delivered, "
                    "delivered_state, delivered_utc) VALUES (?, ?, ?, ?, ?, '', '', '') "
                    "ON CONFLICT (key) DO UPDATE SET version = excluded.version, "
                    "state = excluded.state, message_id = excluded.message_id, "
                    "time_utc = excluded.time_utc",
                    (key.key, key.version, SENDING, message_id, now),
                )
        except sqlite3.Error as exc:
            raise self._error(self.path, exc) from None
        return Previous(NEW) if found.status == NEW else found

    def finish(self, key: SendKey, outcome: str, message_id: str = "") -> None:
        """The outcome of the attempt ``claim`` recorded: SENT, FAILED or UNKNOWN."""
        assert outcome in (SENT, FAILED, UNKNOWN)
        now = _now()
        try:
            with immediate_transaction(self._conn):
                if outcome == FAILED:  # nothing reached the patient: what they had, they have
                    self._conn.execute(
                        "UPDATE sends SET state = ?, time_utc = ? WHERE key = ?",
                        (FAILED, now, key.key),
                    )
                else:
                    self._conn.execute(
                        "UPDATE sends SET state = ?, time_utc = ?, message_id = "
                        "coalesce(nullif(?, ''), message_id), delivered = ?, "
                        "delivered_state = ?, delivered_utc = ? WHERE key = ?",
                        (outcome, now, message_id, key.version, outcome, now, key.key),
                    )
        except sqlite3.Error as exc:
            raise DeliveryError(
                f"the email was {'sent' if outcome == SENT else 'not confirmed'}, but the "
                f"clinic's record of emails sent {self.path} could not be updated: {exc}"
            ) from None


def _previous(key: SendKey, row: tuple[str, ...] | None) -> Previous:
    if row is None:
        return Previous(NEW)
    version, state, msg_id, time_utc, delivered, delivered_state, delivered_utc = row
    if state in (SENDING, UNKNOWN):  # died mid-send, another process is sending, or no reply
        return Previous(UNKNOWN, _time(time_utc), msg_id)
    if not delivered:
        return Previous(NEW)
    when = _time(delivered_utc)
    if delivered_state == UNKNOWN:
        return Previous(UNKNOWN, when, msg_id)
    return Previous(SENT if delivered == key.version else CHANGED, when, msg_id)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
