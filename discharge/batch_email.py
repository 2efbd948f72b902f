"""`discharge batch --email`: after the PDFs are made, email each row's PDF to its address.

A step of its own, run in the parent process once the render step has written the manifest:
the PDFs are kept whatever happens here, and one SMTP connection serves the whole run.

The manifest gains three columns: ``email_status`` (``sent``, ``failed`` or ``none`` for a
row without an address; empty for a row whose PDF could not be made), ``message_id`` and
``email_error``. A rerun never emails a patient twice: a ``sent`` row is sent again only with
``resend``; a ``failed`` row is tried again. If a row's data is corrected so its PDF changes,
the render step drops the old email columns (they described the old PDF) and the corrected
PDF is sent.

Every outcome is also appended to a journal file, flushed to disk before the next message
goes, so a run killed between sending and publishing the manifest still knows what it sent.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Protocol

from discharge.audit import EMAILED, AuditLog, AuditRecord, as_sent, describe_pdf  # AUDIT
from discharge.batch import (
    MANIFEST_NAME,
    OK,
    SKIPPED,
    ManifestWriter,
    RowError,
    Schedule,
    ScheduleRow,
    locked,
    read_manifest,
    read_rows,
)
from discharge.config import Config
from discharge.document import build_document
from discharge.email_config import EmailSettings, check_address
from discharge.errors import InputError
from discharge.mail import Mailer, MessageRejected, compose_email

EMAIL_FIELDS = ["email_status", "message_id", "email_error"]
SENT, FAILED, NONE = "sent", "failed", "none"
# Not a ".part" file: the render step removes those, and this one must survive a crash.
JOURNAL_NAME = f".{MANIFEST_NAME}.email-journal"
_JOURNAL_FIELDS = ["row", "sha256", *EMAIL_FIELDS]


class EmailReporter(Protocol):
    def email_sent(self, row: int, address: str) -> None: ...

    def email_failed(self, row: int, address: str, message: str) -> None: ...


class QuietEmailReporter:
    def email_sent(self, row: int, address: str) -> None:
        pass

    def email_failed(self, row: int, address: str, message: str) -> None:
        pass


@dataclass(frozen=True)
class EmailSummary:
    sent: int
    failed: int
    no_address: int
    already_sent: int


def email_batch(
    schedule: Schedule,
    config: Config,
    out_dir: str | os.PathLike[str],
    mailer: Mailer,
    settings: EmailSettings,
    *,
    resend: bool = False,
    date_order: str | None = None,
    reporter: EmailReporter | None = None,
    checkpoint_seconds: float = 2.0,
) -> EmailSummary:
    """Email every made PDF of the manifest in ``out_dir`` that has not been sent yet.

    A DeliveryError other than MessageRejected (server unreachable, TLS, login) stops the
    run at once; the manifest keeps every outcome recorded up to then.
    """
    reporter = reporter or QuietEmailReporter()
    out = Path(out_dir)
    counts = {SENT: 0, FAILED: 0, NONE: 0, "already": 0}
    audit = AuditLog.open(config)  # AUDIT (issue 13): before anything is sent
    sent_from = AuditRecord(EMAILED, channel="batch", batch_file=str(schedule.path.resolve()))
    with locked(out), audit:  # AUDIT (was: with locked(out):)
        # The manifest holds a few short cells per row, no patient data: it is kept in memory
        # so that it can be republished while the rows are being worked through.
        entries = list(read_manifest(out))
        journal = _Journal(out / JOURNAL_NAME)
        _apply(entries, journal.recovered())  # a run that was killed before publishing
        publish = _Publisher(out, entries, checkpoint_seconds)
        try:
            rows = _RowLookup(read_rows(schedule, config, date_order))
            for entry in entries:
                if entry.get("status") not in (OK, SKIPPED) or not entry.get("file"):
                    continue
                address = entry.get("email", "")
                if not address:
                    entry.update(email_status=NONE, message_id="", email_error="")
                    counts[NONE] += 1
                    continue
                if entry.get("email_status") == SENT and not resend:
                    counts["already"] += 1
                    continue
                # AUDIT (issue 13): _send_row also returns the row's record, and takes the log
                outcome, record = _send_row(
                    entry, rows, config, out, mailer, settings, audit, sent_from
                )
                entry.update(outcome)
                journal.append(entry)
                if record is not None and outcome["email_status"] == SENT:  # AUDIT
                    audit.record_sent(record)
                counts[outcome["email_status"]] += 1
                if outcome["email_status"] == SENT:
                    reporter.email_sent(int(entry["row"]), address)
                else:
                    reporter.email_failed(int(entry["row"]), address, outcome["email_error"])
                publish.maybe()
        finally:
            publish.now()
            journal.remove()
    return EmailSummary(counts[SENT], counts[FAILED], counts[NONE], counts["already"])


def _send_row(
    entry: Mapping[str, str],
    rows: _RowLookup,
    config: Config,
    out: Path,
    mailer: Mailer,
    settings: EmailSettings,
    audit: AuditLog,  # AUDIT (issue 13)
    sent_from: AuditRecord,  # AUDIT: the batch's channel and file
) -> tuple[dict[str, str], AuditRecord | None]:
    """Send one row's PDF; a problem with this row only is returned as a failed outcome."""
    record = None  # AUDIT
    try:
        item = rows.find(int(entry["row"]))
        if item is None:
            raise InputError("the row is no longer in the schedule, or no longer valid")
        try:
            address = check_address(entry["email"])
        except ValueError as exc:
            raise InputError(str(exc)) from None
        try:
            pdf = (out / entry["file"]).read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {entry['file']}: {exc.strerror}") from None
        # Send exactly the document the manifest recorded, or nothing.
        if hashlib.sha256(pdf).hexdigest() != entry.get("sha256"):
            raise InputError(f"{entry['file']} has changed since it was made; run the batch again")
        document = build_document(item.request, config)
        email = compose_email(item.request, document, pdf, mailer.settings, settings, address)
        # AUDIT (issue 13): a send that raises is recorded as email-failed / email-unknown
        made = describe_pdf(item.request, document, pdf, channel="batch")
        record = as_sent(made, email.pdf, address, email.message_id)
        record = replace(
            record, channel="batch", batch_file=sent_from.batch_file, batch_row=int(entry["row"])
        )
        with audit.sending(record):
            message_id = mailer.send(email)
    except (MessageRejected, InputError) as exc:
        return {"email_status": FAILED, "message_id": "", "email_error": str(exc)}, record
    return {"email_status": SENT, "message_id": message_id, "email_error": ""}, record


class _RowLookup:
    """The schedule's valid rows, found by row number while walking forwards."""

    def __init__(self, items: Iterator[ScheduleRow | RowError]) -> None:
        self._items = items
        self._current: ScheduleRow | RowError | None = next(items, None)

    def find(self, row: int) -> ScheduleRow | None:
        while self._current is not None and self._current.row < row:
            self._current = next(self._items, None)
        current = self._current
        return current if isinstance(current, ScheduleRow) and current.row == row else None


class _Journal:
    """Each outcome, on disk before the next message goes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def recovered(self) -> list[dict[str, str]]:
        try:
            with self.path.open(encoding="utf-8", newline="") as handle:
                return [dict(row) for row in csv.DictReader(handle) if row.get("row")]
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


def _apply(entries: list[dict[str, str]], outcomes: list[dict[str, str]]) -> None:
    """Fold journaled outcomes into the manifest, for the same PDF only."""
    by_row = {o["row"]: o for o in outcomes}
    for entry in entries:
        outcome = by_row.get(entry.get("row", ""))
        if outcome is not None and outcome.get("sha256") == entry.get("sha256"):
            entry.update({k: outcome.get(k, "") for k in EMAIL_FIELDS})


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
                writer.record(entry)
        finally:
            writer.close(complete=True)
