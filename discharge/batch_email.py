"""`discharge batch --email`: after the PDFs are made, email each row's PDF to its address.

It joins the two independent halves, ``batch`` (the schedule and the manifest) and
``delivery`` (composing and sending), in the parent process, once the render step has written
the manifest: the PDFs are kept whatever happens here, and one SMTP connection serves the run.

**At most once.** "Sent" means this document to this address. Each row is found by its key
(the patient, procedure and date), never by its position, so a re-sorted schedule sends nothing
again. Before a message goes, the intent is written to a journal on disk; after the server's
reply, the outcome. A message whose outcome is not known (the connection dropped after the whole
message went, or the process died) is ``unknown``: it may have been delivered, and is sent again
only with ``--resend ROW``. A corrected address, or a corrected row whose PDF changed, is sent.
Each message has a stable Message-ID (the same for this document to this address), so a mail
client can drop a duplicate too.

The manifest gains ``email_status`` (``sent``, ``failed``, ``unknown``, or ``none`` for a row
without an address), ``email_sent_to``, ``message_id`` and ``email_error``.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Protocol

from discharge.audit import AuditLog, AuditRecord, as_sent, describe_pdf
from discharge.batch import (
    EMAIL_FIELDS,
    FAILED,
    MANIFEST_NAME,
    NONE,
    OK,
    SENT,
    SKIPPED,
    UNKNOWN,
    ManifestWriter,
    Schedule,
    ScheduleRow,
    folder_salt,
    locked,
    read_manifest,
    read_rows,
    record_key,
)
from discharge.config import Config
from discharge.delivery import (
    EmailSettings,
    Mailer,
    MessageRejected,
    OutcomeUnknown,
    compose_email,
)
from discharge.delivery.settings import load_email_settings
from discharge.document import build_document
from discharge.errors import DeliveryError, InputError
from discharge.request import check_email

# Not a ".part" file: the render step removes those, and this one must survive a crash.
JOURNAL_NAME = f".{MANIFEST_NAME}.email-journal"
_JOURNAL_FIELDS = ["key", "sha256", *EMAIL_FIELDS]
_SENDING = "sending"  # in the journal only: the intent, written before the message goes


@dataclass
class BatchEmail:
    """What the email step needs, checked before any PDF is made."""

    mailer: Mailer
    settings: EmailSettings
    resend: Resend


@dataclass(frozen=True)
class Resend:
    """Which rows to email again although they were sent (or may have been): all, or some."""

    rows: frozenset[int] = frozenset()
    every: bool = False

    def __contains__(self, row: int) -> bool:
        return self.every or row in self.rows


def prepare_batch_email(config: Config, resend: Resend) -> BatchEmail:
    """Before anything is made: check the settings and that the password is there."""
    smtp, settings = load_email_settings(config)
    return BatchEmail(Mailer(smtp), settings, resend)


class EmailReporter(Protocol):
    def email_sent(self, row: int, address: str) -> None: ...

    def email_failed(self, row: int, address: str, message: str) -> None: ...

    def email_unknown(self, row: int, address: str, message: str) -> None: ...


class QuietEmailReporter:
    def email_sent(self, row: int, address: str) -> None:
        pass

    def email_failed(self, row: int, address: str, message: str) -> None:
        pass

    def email_unknown(self, row: int, address: str, message: str) -> None:
        pass


@dataclass(frozen=True)
class EmailSummary:
    sent: int
    failed: int
    unknown: int
    no_address: int
    already_sent: int


def email_batch(
    schedule: Schedule,
    config: Config,
    out_dir: str | os.PathLike[str],
    mailer: Mailer,
    settings: EmailSettings,
    *,
    resend: Resend | None = None,
    date_order: str | None = None,
    reporter: EmailReporter | None = None,
    checkpoint_seconds: float = 2.0,
) -> EmailSummary:
    """Email every made PDF of the manifest in ``out_dir`` that has not gone to its address.

    A DeliveryError other than MessageRejected (server unreachable or silent, TLS, login) stops
    the run at once; the manifest keeps every outcome recorded up to then.
    """
    resend = resend or Resend()
    reporter = reporter or QuietEmailReporter()
    out = Path(out_dir)
    counts = {SENT: 0, FAILED: 0, UNKNOWN: 0, NONE: 0, "already": 0}
    audit = AuditLog.open(config)  # before anything is sent
    batch_file = str(schedule.path.resolve())
    with locked(out), audit:
        salt = folder_salt(out)
        # The manifest holds a few short cells per row, no patient data: it is kept in memory
        # so that it can be republished while the rows are being worked through.
        entries = list(read_manifest(out))
        by_key = {e["key"]: e for e in entries if e.get("key") and e.get("status") in (OK, SKIPPED)}
        journal = _Journal(out / JOURNAL_NAME)
        _apply(by_key, journal.recovered())  # a run that was killed before publishing
        publish = _Publisher(out, entries, checkpoint_seconds)
        try:
            for item in _rows(read_rows(schedule, config, date_order)):
                entry = by_key.get(record_key(item.request, salt))
                if entry is None or not entry.get("file"):
                    continue  # its PDF was not made (the row's error is in the manifest)
                row = int(entry["row"])
                address = entry.get("email", "")
                if not address:
                    entry.update(email_status=NONE, email_sent_to="", message_id="")
                    entry["email_error"] = ""
                    counts[NONE] += 1
                    continue
                status = entry.get("email_status")
                if status in (SENT, UNKNOWN) and row not in resend:
                    if status == UNKNOWN:
                        counts[UNKNOWN] += 1
                        reporter.email_unknown(row, address, entry.get("email_error", ""))
                        continue
                    if entry.get("email_sent_to") == address:
                        counts["already"] += 1
                        continue
                before = {k: entry.get(k, "") for k in EMAIL_FIELDS}
                entry.update(email_status=_SENDING, email_sent_to=address, email_error="")
                entry["message_id"] = _message_id(salt, entry, mailer.settings.domain)
                journal.append(entry)  # the intent, on disk before the message goes
                try:
                    outcome, record = _send_row(
                        item, entry, config, out, mailer, settings, audit, batch_file
                    )
                except OutcomeUnknown as exc:
                    entry.update(email_status=UNKNOWN, email_error=str(exc))
                    journal.append(entry)
                    counts[UNKNOWN] += 1
                    reporter.email_unknown(row, address, str(exc))
                    if exc.stop:  # the row's line said why; this one says the run stopped
                        raise DeliveryError(
                            f"the email step stopped at row {row}: the SMTP server went silent"
                        ) from None
                    continue
                except DeliveryError:  # nothing reached the server: the run stops, as it was
                    entry.update(before)
                    journal.append(entry)
                    raise
                entry.update(outcome)
                journal.append(entry)
                if record is not None and outcome["email_status"] == SENT:
                    audit.record_sent(record)
                counts[outcome["email_status"]] += 1
                if outcome["email_status"] == SENT:
                    reporter.email_sent(row, address)
                else:
                    reporter.email_failed(row, address, outcome["email_error"])
                publish.maybe()
        finally:
            publish.now()
            journal.remove()
    return EmailSummary(
        counts[SENT], counts[FAILED], counts[UNKNOWN], counts[NONE], counts["already"]
    )


def _rows(items: Iterable[object]) -> Iterable[ScheduleRow]:
    return (item for item in items if isinstance(item, ScheduleRow))


def _message_id(salt: bytes, entry: Mapping[str, str], domain: str) -> str:
    """The same Message-ID each time this document goes to this address."""
    material = "\x1f".join((entry["key"], entry.get("sha256", ""), entry["email_sent_to"]))
    digest = hmac.new(salt, material.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def _send_row(
    item: ScheduleRow,
    entry: Mapping[str, str],
    config: Config,
    out: Path,
    mailer: Mailer,
    settings: EmailSettings,
    audit: AuditLog,
    batch_file: str,
) -> tuple[dict[str, str], AuditRecord | None]:
    """Send one row's PDF; a problem with this row only is returned as a failed outcome.

    The send is recorded in the audit log as it goes (``email-failed``, ``email-unknown``);
    the caller records ``emailed`` once the outcome is journaled.
    """
    record = None
    try:
        address = check_email(entry["email_sent_to"])
        try:
            pdf = (out / entry["file"]).read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {entry['file']}: {exc.strerror}") from None
        # Send exactly the document the manifest recorded, or nothing.
        if hashlib.sha256(pdf).hexdigest() != entry.get("sha256"):
            raise InputError(f"{entry['file']} has changed since it was made; run the batch again")
        document = build_document(item.request, config)
        email = compose_email(
            item.request, document, pdf, mailer.settings, settings, address,
            message_id=entry["message_id"],
        )  # fmt: skip
        made = describe_pdf(item.request, document, pdf, channel="batch")
        record = replace(
            as_sent(made, email.pdf, address, email.message_id),
            batch_file=batch_file, batch_row=int(entry["row"]),
        )  # fmt: skip
        with audit.sending(record, unknown=(OutcomeUnknown,)):
            message_id = mailer.send(email)
    except (MessageRejected, InputError) as exc:
        return {"email_status": FAILED, "message_id": "", "email_error": str(exc)}, record
    return {"email_status": SENT, "message_id": message_id, "email_error": ""}, record


class _Journal:
    """Each intent and each outcome, on disk before the next step."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def recovered(self) -> list[dict[str, str]]:
        try:
            with self.path.open(encoding="utf-8", newline="") as handle:
                return [dict(row) for row in csv.DictReader(handle) if row.get("key")]
        except (OSError, csv.Error, UnicodeDecodeError):  # none, or unreadable: nothing to fold in
            return []

    def append(self, entry: Mapping[str, str]) -> None:
        if self._handle is None:
            new = not self.path.exists()
            self._handle = self.path.open("a", encoding="utf-8", newline="")
            if new:
                csv.writer(self._handle).writerow(_JOURNAL_FIELDS)
        csv.writer(self._handle).writerow([entry.get(k, "") for k in _JOURNAL_FIELDS])
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def remove(self) -> None:
        """Called once the manifest holds everything the journal does."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _apply(by_key: Mapping[str, dict[str, str]], outcomes: list[dict[str, str]]) -> None:
    """Fold journaled outcomes into the manifest, for the same PDF only (the last one wins).

    An intent with no outcome after it means the process stopped while the message was with
    the server: it may have been delivered, so it is recorded as ``unknown``.
    """
    for outcome in outcomes:
        entry = by_key.get(outcome.get("key", ""))
        if entry is not None and outcome.get("sha256") == entry.get("sha256"):
            entry.update({k: outcome.get(k, "") for k in EMAIL_FIELDS})
            if entry["email_status"] == _SENDING:
                entry["email_status"] = UNKNOWN
                entry["email_error"] = "the run stopped while this message was being sent"


class _Publisher:
    """Rewrites manifest.csv (atomically) with the email columns, now and then and at the end."""

    def __init__(self, out: Path, entries: list[dict[str, str]], every: float) -> None:
        self.out = out
        self.entries = entries
        self.every = every
        self.next = time.monotonic() + every
        fields = list(entries[0]) if entries else []
        self.fields = fields + [f for f in EMAIL_FIELDS if f not in fields]

    def maybe(self) -> None:
        if time.monotonic() >= self.next:
            self.now()
            self.next = time.monotonic() + self.every

    def now(self) -> None:
        if not self.entries:
            return
        writer = ManifestWriter(self.out, self.fields)
        try:
            for entry in self.entries:
                if entry.get("email_status") == _SENDING:  # a crash mid-send: see _apply
                    entry["email_status"] = UNKNOWN
                writer.record(entry)
        finally:
            writer.close(complete=True)
