"""Emailing and printing the sheets ``discharge listen`` makes, with ``--email`` and ``--print``.

A sheet is handed out after its message is acknowledged, in a thread of its own: the
scheduling system never waits for a mail server or a printer. Each sheet goes as ``discharge
batch --email`` / ``--print`` would send it: the email to the address in PID-13, at most once
(the clinic's record of emails sent: a sheet already emailed, or whose sending is unknown, is
not sent again; a remade sheet whose earlier version went is held back and reported, as the
batch does), the print to the clinic's printer; every attempt in the audit log. A sheet replaced
or withdrawn before its turn is not handed out (its newer version is, if there is one).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from discharge.audit import MADE, AuditLog, AuditRecord, as_sent, describe_pdf
from discharge.config import Config
from discharge.delivery import (
    CHANGED,
    NEW,
    SENT,
    UNKNOWN,
    Mailer,
    OutcomeUnknown,
    SentJournal,
    compose_email,
    load_email_settings,
)
from discharge.delivery.sent import FAILED, message_id, send_key
from discharge.document import build_document
from discharge.errors import DischargeError
from discharge.request import DischargeRequest

Report = Callable[[str], None]


@dataclass(frozen=True)
class Made:
    """A sheet just made and recorded: what to hand out."""

    row: int  # its row in the manifest (how the lines name it: never the patient)
    file: str
    sha256: str
    request: DischargeRequest
    email: str


@dataclass(frozen=True)
class Printing:
    printer: str
    copies: int = 1
    timeout: float = 120.0


class Handouts:
    """Hands made sheets out one after another, in a thread of its own."""

    def __init__(
        self,
        config: Config,
        out: Path,
        *,
        email: bool = False,
        printing: Printing | None = None,
        report: Report | None = None,
    ) -> None:
        self.config = config
        self.out = out
        self.printing = printing
        self.report = report or (lambda line: None)
        self.mailer: Mailer | None = None
        if email:
            smtp, self.email_settings = load_email_settings(config)
            self.mailer = Mailer(smtp)  # checks the password's variable now, before listening
        self._queue: queue.Queue[Made | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="discharge-handouts", daemon=True)
        self._thread.start()

    def submit(self, made: Made) -> None:
        self._queue.put(made)

    def wait(self) -> None:
        """Until every sheet submitted so far is handed out (or its failure reported)."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        with AuditLog.open(self.config) as audit:
            while (made := self._queue.get()) is not None:
                try:
                    self._hand_out(made, audit)
                except Exception as exc:  # noqa: BLE001 - the next sheet still goes
                    self.report(f"row {made.row}: not handed out ({type(exc).__name__})")
                finally:
                    self._queue.task_done()
            self._queue.task_done()

    def _hand_out(self, made: Made, audit: AuditLog) -> None:
        try:
            pdf = (self.out / made.file).read_bytes()
        except OSError:
            pdf = b""
        if hashlib.sha256(pdf).hexdigest() != made.sha256:
            return  # replaced or withdrawn meanwhile: the newer version, if any, is queued
        sheet = [r for r in audit.query(pdf_sha256=made.sha256) if r.action == MADE][-1:]
        if self.mailer is not None:
            self._email(made, pdf, sheet, audit)
        if self.printing is not None:
            self._print(made, pdf, sheet)

    def _email(self, made: Made, pdf: bytes, sheet: list[AuditRecord], audit: AuditLog) -> None:
        assert self.mailer is not None
        if not made.email:
            self.report(f"row {made.row}: not emailed: the booking has no email address (PID-13)")
            return
        request = made.request
        document = build_document(request, self.config)
        smtp = self.mailer.settings
        key = send_key(request, made.email, made.sha256)
        email = compose_email(
            request, document, pdf, smtp, self.email_settings, made.email,
            message_id=message_id(key, smtp.domain),
        )  # fmt: skip
        base = sheet[0] if sheet else describe_pdf(request, document, pdf, channel="hl7")
        record = as_sent(
            replace(base, id=0, time_utc="", time_local="", operator="", workstation="",
                    prev_hash="", hash="", detail=f"sheet {made.sha256}"),
            email.pdf, made.email, email.message_id,
        )  # fmt: skip
        with SentJournal.open() as journal:
            previous = journal.claim(key, email.message_id)  # the intent, committed
            if previous.status != NEW:
                self.report(f"row {made.row}: not emailed: {_held(previous.status)}")
                return
            try:
                with self.mailer, audit.sending(record, unknown=(OutcomeUnknown,)):
                    self.mailer.send(email)
            except OutcomeUnknown:
                journal.finish(key, UNKNOWN)
                self.report(f"row {made.row}: the email may have been sent (no answer)")
                return
            except DischargeError:
                journal.finish(key, FAILED)
                self.report(f"row {made.row}: the email was not sent (see the audit log)")
                return
            journal.finish(key, SENT, email.message_id)
        audit.record_sent(record)
        self.report(f"row {made.row}: emailed")

    def _print(self, made: Made, pdf: bytes, sheet: list[AuditRecord]) -> None:
        from discharge.printing import PrintError, job_title, print_recorded

        assert self.printing is not None
        try:
            print_recorded(
                pdf, self.config, sheet, printer=self.printing.printer,
                copies=self.printing.copies, title=job_title(made.request.patient.mrn),
                timeout=self.printing.timeout, channel="hl7", file=made.file,
            )  # fmt: skip
        except PrintError:
            self.report(f"row {made.row}: not printed (see the audit log)")
            return
        self.report(f"row {made.row}: printed")


def _held(status: str) -> str:
    if status == SENT:
        return "this sheet was already emailed to that address"
    if status == CHANGED:
        return (
            "an earlier version was emailed; send this one with discharge email --resend "
            "if the patient needs it"
        )
    return "an earlier sending's outcome is unknown (it may have gone)"
