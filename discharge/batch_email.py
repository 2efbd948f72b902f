"""`discharge batch --email`: after the PDFs are made, email each row's PDF to its address.

It joins the two independent halves, ``batch`` (the schedule and the manifest) and
``delivery`` (composing and sending), in the parent process, once the render step has written
the manifest: the PDFs are kept whatever happens here, and one SMTP connection serves the run.

**At most once.** Whether a row's message goes is decided by the clinic's record of emails sent
(``delivery/sent.py``, in the clinic's data folder), never by the output folder: "already sent"
means *this patient's sheet for this procedure and date, to this address (in any case)*. A
deleted or re-saved manifest, a re-sorted schedule or a new output folder sends nothing again.
The intent is committed to the record before the message goes and the outcome after the
server's reply; a message whose outcome is not known (the connection dropped after the whole
message went, or the process died) is ``unknown``: it may have been delivered, and is sent again
only with ``--resend`` naming the patient. A sheet that changed since it was sent (a corrected
template, a new clinic phone number) is ``changed``: counted and reported, and sent only with
``--resend-changed``. A corrected address is a new address: it is sent. Each message has a
stable Message-ID (the same for this document to this address), so a mail client can drop a
duplicate too.

The manifest gains ``email_status`` (``sent``, ``failed``, ``unknown``, ``changed``, or ``none``
for a row without an address), ``email_sent_to``, ``message_id`` and ``email_error``: a report of
what the record says, rebuilt from it on every run.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from discharge.audit import AuditLog, describe_pdf
from discharge.batch import (
    EMAIL_FIELDS,
    FAILED,
    MANIFEST_NAME,
    NONE,
    OK,
    SENT,
    SKIPPED,
    UNKNOWN,
    EmailColumns,
    ManifestRow,
    ManifestWriter,
    Schedule,
    ScheduleRow,
    folder_salt,
    locked,
    read_columns,
    read_manifest,
    read_rows,
    record_key,
)
from discharge.channels import Handout, deliver
from discharge.channels.email import EmailChannel
from discharge.config import Config
from discharge.delivery import sent as record
from discharge.delivery.settings import EmailSettings, load_email_settings
from discharge.delivery.smtp import Mailer, MessageRejected, OutcomeUnknown
from discharge.document import build_document
from discharge.errors import DeliveryError, DischargeError, InputError
from discharge.request import check_email

CHANGED = record.CHANGED  # in the manifest: an earlier version went, this one was held back
_SENDING = "sending"  # in memory only: the row's message is with the server


@dataclass
class BatchEmail:
    """What the email step needs, checked before any PDF is made."""

    mailer: Mailer
    settings: EmailSettings
    resend: Resend


@dataclass(frozen=True)
class Resend:
    """Which rows to email again although the record says they went (or may have).

    ``patients``: hospital numbers or manifest keys, as given (never row numbers: a re-sorted
    schedule would resend whoever is now in that row); ``every``: all rows; ``changed``: the
    rows whose sheet changed since an earlier version was sent.
    """

    patients: frozenset[str] = frozenset()
    every: bool = False
    changed: bool = False

    def names(self, key: str, row: ScheduleRow) -> bool:
        """Whether this row (its manifest key, its patient) was named."""
        return self.every or any(
            given.lower() == key or record.same_patient(row.request, given)
            for given in self.patients
        )

    def allowed(self, key: str, row: ScheduleRow) -> tuple[str, ...]:
        """What the record may say and the row still be sent."""
        if self.names(key, row):
            return (record.SENT, record.CHANGED, record.UNKNOWN)
        return (record.CHANGED,) if self.changed else ()


def prepare_batch_email(config: Config, resend: Resend) -> BatchEmail:
    """Before anything is made: check the settings and that the password is there."""
    smtp, settings = load_email_settings(config)
    return BatchEmail(Mailer(smtp), settings, resend)


class EmailReporter(Protocol):
    def email_sent(self, row: int, address: str) -> None: ...

    def email_failed(self, row: int, address: str, message: str) -> None: ...

    def email_unknown(self, row: int, key: str, address: str, message: str) -> None: ...


class QuietEmailReporter:
    def email_sent(self, row: int, address: str) -> None:
        pass

    def email_failed(self, row: int, address: str, message: str) -> None:
        pass

    def email_unknown(self, row: int, key: str, address: str, message: str) -> None:
        pass


@dataclass(frozen=True)
class EmailSummary:
    sent: int
    failed: int
    unknown: int
    no_address: int
    already_sent: int
    changed: int = 0  # an earlier version was sent: held back (``--resend-changed``)


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
    """Email every made PDF of the manifest in ``out_dir`` that the clinic's record says has
    not gone to its address (see the module's docstring).

    A DeliveryError other than MessageRejected (server unreachable or silent, TLS, login) stops
    the run at once; the record and the manifest keep every outcome up to then. A ``--resend``
    value that names no patient of the schedule is an InputError before anything is sent.
    """
    resend = resend or Resend()
    reporter = reporter or QuietEmailReporter()
    out = Path(out_dir)
    counts = {SENT: 0, FAILED: 0, UNKNOWN: 0, NONE: 0, "already": 0, CHANGED: 0}
    audit = AuditLog.open(config)  # before anything is sent
    batch_file = str(schedule.path.resolve())
    with locked(out), audit:
        salt = folder_salt(out)
        if resend.patients:
            _check_resend(resend, schedule, config, salt, date_order)
        journal = record.SentJournal.open()
        # The manifest holds a few short cells per row, no patient data: it is kept in memory
        # so that it can be republished while the rows are being worked through.
        entries = list(read_manifest(out))
        by_key = {e.key: e for e in entries if e.key and e.status in (OK, SKIPPED)}
        legacy = _fold_legacy_journal(out, by_key)
        publish = _Publisher(out, read_columns(out), entries, checkpoint_seconds)
        tz = config.clinic.tz
        try:
            for item in _rows(read_rows(schedule, config, date_order)):
                entry = by_key.get(record_key(item.request, salt))
                if entry is None or not entry.file:
                    continue  # its PDF was not made (the row's error is in the manifest)
                row, address = entry.row, entry.email
                if not address:
                    entry.emailed = EmailColumns(NONE)
                    counts[NONE] += 1
                    continue
                key = record.send_key(item.request, address, entry.sha256)
                message_id = record.message_id(key, mailer.settings.domain)
                allow = resend.allowed(entry.key, item)
                previous = journal.claim(key, message_id, allow=allow)  # the intent, committed
                if previous.status == record.NEW and not resend.names(entry.key, item):
                    previous = _adopt(journal, key, entry, address, previous)
                if previous.status not in (record.NEW, *allow):
                    when = previous.when_text(tz)
                    if previous.status == record.SENT:
                        status, error = SENT, ""
                        counts["already"] += 1
                    elif previous.status == record.CHANGED:
                        status, error = CHANGED, f"an earlier version was emailed at {when}"
                        counts[CHANGED] += 1
                    else:
                        status, error = UNKNOWN, f"an earlier send at {when} was never confirmed"
                        counts[UNKNOWN] += 1
                        reporter.email_unknown(row, entry.key, address, error)
                    entry.emailed = EmailColumns(status, address, previous.message_id, error)
                    continue
                before = entry.emailed
                entry.emailed = EmailColumns(_SENDING, address, message_id)
                went: list[str] = []  # the Message-ID, once the record says the message went

                def noted(sent_id: str, key: record.SendKey = key, went: list[str] = went) -> None:
                    journal.finish(key, record.SENT, sent_id)
                    went.append(sent_id)

                try:
                    outcome = _send_row(
                        item, entry, config, out, mailer, settings, audit, batch_file, noted
                    )
                except OutcomeUnknown as exc:
                    journal.finish(key, record.UNKNOWN)
                    entry.emailed = replace(entry.emailed, status=UNKNOWN, error=str(exc))
                    counts[UNKNOWN] += 1
                    reporter.email_unknown(row, entry.key, address, str(exc))
                    if exc.stop:  # the row's line said why; this one says the run stopped
                        raise DeliveryError(
                            f"the email step stopped at row {row}: the SMTP server went silent"
                        ) from None
                    continue
                except BaseException as exc:
                    if went:  # it went, but its audit record could not be written: stop
                        entry.emailed = EmailColumns(SENT, address, went[0])
                        raise
                    # Nothing reached the server: the run stops.
                    known = isinstance(exc, DischargeError)  # else (Ctrl-C, a bug): not known
                    journal.finish(key, record.FAILED if known else record.UNKNOWN)
                    entry.emailed = before
                    raise
                if not went:
                    journal.finish(key, outcome.status, outcome.message_id)
                entry.emailed = outcome
                counts[outcome.status] += 1
                if outcome.status == SENT:
                    reporter.email_sent(row, address)
                else:
                    reporter.email_failed(row, address, outcome.error)
                publish.maybe()
        finally:
            journal.close()
            publish.now()
            if legacy is not None:  # the manifest holds what it said now
                with contextlib.suppress(OSError):
                    legacy.unlink()
    return EmailSummary(
        counts[SENT], counts[FAILED], counts[UNKNOWN], counts[NONE], counts["already"],
        counts[CHANGED],
    )  # fmt: skip


def _adopt(
    journal: record.SentJournal,
    key: record.SendKey,
    entry: ManifestRow,
    address: str,
    claimed: record.Previous,
) -> record.Previous:
    """A folder emailed by an earlier version of discharge, whose record was the manifest
    alone: what its manifest says went (or may have) to this address, for this same PDF, is
    taken into the clinic's record instead of being sent. The manifest can only hold a
    message back this way, never send one."""
    said = entry.emailed
    if said.status not in (SENT, UNKNOWN) or said.sent_to.casefold() != address.casefold():
        return claimed
    journal.finish(key, said.status, said.message_id)
    return journal.previous(key)


# Where discharge before the clinic's record journaled a batch's sends (in the output folder).
_LEGACY_JOURNAL = f".{MANIFEST_NAME}.email-journal"


def _fold_legacy_journal(out: Path, by_key: Mapping[str, ManifestRow]) -> Path | None:
    """A run of an earlier version killed mid-send left its journal: fold what it says into
    the manifest's entries (an intent with no outcome is ``unknown``) for ``_adopt`` to take
    into the clinic's record. Returns its path, to remove once the manifest is published."""
    path = out / _LEGACY_JOURNAL
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            outcomes = [dict(row) for row in csv.DictReader(handle) if row.get("key")]
    except (OSError, csv.Error, UnicodeDecodeError):  # none (the usual case), or unreadable
        return None
    for outcome in outcomes:  # in order: the last one wins
        entry = by_key.get(outcome.get("key", ""))
        if entry is not None and outcome.get("sha256") == entry.sha256:
            status = outcome.get("email_status") or ""
            entry.emailed = EmailColumns(
                UNKNOWN if status == _SENDING else status, outcome.get("email_sent_to") or "",
                outcome.get("message_id") or "", outcome.get("email_error") or "",
            )  # fmt: skip
    return path


def _check_resend(
    resend: Resend, schedule: Schedule, config: Config, salt: bytes, date_order: str | None
) -> None:
    """Every ``--resend`` value must name a patient of this schedule: a row number, or a
    mistyped hospital number, must not pass silently (or resend somebody else)."""
    left = set(resend.patients)
    for item in _rows(read_rows(schedule, config, date_order)):
        key = record_key(item.request, salt)
        left = {given for given in left if given.lower() != key}
        left = {given for given in left if not record.same_patient(item.request, given)}
        if not left:
            return
    given = sorted(left)[0]
    what = (
        "row numbers are not accepted, as rows move when a schedule is sorted"
        if given.isdigit()
        else "check it against the schedule's mrn column or manifest.csv's key column"
    )
    raise InputError(
        f"--resend {given}: no patient in this schedule has that hospital number or key "
        f"(expected a hospital number or a key from manifest.csv; {what}); nothing was sent"
    )


def _rows(items: Iterable[object]) -> Iterable[ScheduleRow]:
    return (item for item in items if isinstance(item, ScheduleRow))


def _send_row(
    item: ScheduleRow,
    entry: ManifestRow,
    config: Config,
    out: Path,
    mailer: Mailer,
    settings: EmailSettings,
    audit: AuditLog,
    batch_file: str,
    noted: Callable[[str], None],
) -> EmailColumns:
    """Send one row's PDF through the email channel; a problem with this row only is returned
    as a failed outcome.

    The channel records the send in the audit log (``email-failed``, ``email-unknown``, and
    ``emailed`` once ``noted`` has put the outcome in the clinic's record).
    """
    sent_to = entry.emailed.sent_to
    try:
        address = check_email(sent_to)
        try:
            pdf = (out / entry.file).read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {entry.file}: {exc.strerror}") from None
        # Send exactly the document the manifest recorded, or nothing.
        if hashlib.sha256(pdf).hexdigest() != entry.sha256:
            raise InputError(f"{entry.file} has changed since it was made; run the batch again")
        document = build_document(item.request, config)
        made = replace(
            describe_pdf(item.request, document, pdf, channel="batch"),
            batch_file=batch_file, batch_row=entry.row,
        )  # fmt: skip
        handout = Handout((made,), item.request, document, front_end="batch")
        channel = EmailChannel(
            mailer, settings, address, message_id=entry.emailed.message_id, noted=noted
        )
        receipt = deliver(handout, pdf, channel, audit=audit)
    except (MessageRejected, InputError) as exc:
        return EmailColumns(FAILED, sent_to, "", str(exc))
    return EmailColumns(SENT, sent_to, receipt.email.message_id)


class _Publisher:
    """Rewrites manifest.csv (atomically) with the email columns, now and then and at the end."""

    def __init__(
        self, out: Path, columns: list[str], entries: list[ManifestRow], every: float
    ) -> None:
        self.out = out
        self.entries = entries
        self.every = every
        self.next = time.monotonic() + every
        # The file's own columns, in its order (with any this version does not know), then
        # the email step's, if it had none yet.
        self.fields = columns + [f for f in EMAIL_FIELDS if f not in columns]

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
                if entry.emailed.status == _SENDING:  # stopped mid-send: not known
                    entry.emailed = replace(entry.emailed, status=UNKNOWN)
                writer.record(entry)
        finally:
            writer.close(complete=True)
