"""Handing out the sheets ``discharge listen`` makes: filed back to the patient's record
(``[hl7] file_to``), emailed (``--email``), printed (``--print``).

A sheet is handed out after its message is acknowledged, in a thread of its own: the
scheduling system never waits for a record system, a mail server or a printer. Each goes
through the delivery seam (``discharge.channels.deliver``) as every other front end's does:
the filing channel (an MDM^T02, retried, once only: ``hl7/filing.py``), the email channel (to
the address in PID-13, at most once by the clinic's record of emails sent: a remade sheet
whose earlier version went is held back and said, as ``batch --email`` does), the print
channel; every attempt in the audit log under the channel's own actions. A sheet replaced or
withdrawn before its turn is not handed out (its newer version is, if there is one).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from discharge.audit import AuditLog, as_new
from discharge.channels import Handout, deliver
from discharge.config import Config
from discharge.errors import DischargeError
from discharge.hl7.filing import (
    ALREADY_FILED,
    FILED,
    FileChannel,
    FilingJournal,
    FilingSettings,
    Sheet,
)
from discharge.hl7.mdm import PatientIdentity
from discharge.request import DischargeRequest

if TYPE_CHECKING:
    from discharge.document import Document

Report = Callable[[str], None]


@dataclass(frozen=True)
class Made:
    """A sheet just made and recorded: what to hand out."""

    row: int  # its row in the manifest (how the lines name it: never the patient)
    file: str
    sha256: str
    request: DischargeRequest
    email: str
    appointment: str = ""  # the scheduling system's id: the filed document's key
    patient: PatientIdentity | None = None
    start: datetime | None = None


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
        filing: FilingSettings | None = None,
        email: bool = False,
        printing: Printing | None = None,
        report: Report | None = None,
    ) -> None:
        from discharge.channels.email import EmailChannel  # noqa: F401 - registers it
        from discharge.delivery.settings import load_email_settings
        from discharge.delivery.smtp import Mailer

        self.config = config
        self.out = out
        self.filing = filing
        self.printing = printing
        self.report = report or (lambda line: None)
        self.mailer: Mailer | None = None
        if email:
            smtp, self.email_settings = load_email_settings(config)
            self.mailer = Mailer(smtp)  # checks the password's variable now, before listening
        if filing is not None:
            FilingJournal.open().close()  # the once-only record must be usable: say so now
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
        from discharge.document import build_document

        try:
            pdf = (self.out / made.file).read_bytes()
        except OSError:
            pdf = b""
        if hashlib.sha256(pdf).hexdigest() != made.sha256:
            return  # replaced or withdrawn meanwhile: the newer version, if any, is queued
        found = audit.last_made(made.sha256)
        if found is None:
            return  # not recorded: never handed out
        document = build_document(made.request, self.config)
        # The record of the sheet as made; its detail names it, so a withdrawal finds what
        # went out even when the email carried a protected copy (other bytes).
        record = as_new(found, detail=f"sheet {made.sha256}")
        handout = Handout((record,), made.request, document, front_end="hl7")
        if self.filing is not None:
            self._file(made, handout, pdf, document, audit)
        if self.mailer is not None:
            self._email(made, handout, pdf, audit)
        if self.printing is not None:
            self._print(made, handout, pdf, audit)

    def _file(
        self, made: Made, handout: Handout, pdf: bytes, document: Document, audit: AuditLog
    ) -> None:
        from discharge.render_text import render_text

        assert self.filing is not None and made.patient is not None
        sheet = Sheet(
            patient=made.patient,
            procedure=made.request.procedure,
            appointment=made.start or made.request.day,
            key=made.appointment,
            pdf=pdf,
            title=document.title,
            text=render_text(document).decode("utf-8"),
            clinician=made.request.clinician,
        )
        try:
            result = deliver(handout, pdf, FileChannel(self.filing, sheet), audit=audit)
        except DischargeError:
            self.report(f"row {made.row}: not filed (see the audit log)")
            return
        if result.outcome in (FILED, ALREADY_FILED):
            self.report(f"row {made.row}: filed" if result.outcome == FILED else
                        f"row {made.row}: already filed")  # fmt: skip
        else:
            self.report(f"row {made.row}: not filed: {result.outcome} (see the audit log)")

    def _email(self, made: Made, handout: Handout, pdf: bytes, audit: AuditLog) -> None:
        from discharge.channels.email import EmailChannel
        from discharge.delivery.sent import CHANGED, SENT
        from discharge.delivery.smtp import OutcomeUnknown

        assert self.mailer is not None
        if not made.email:
            self.report(f"row {made.row}: not emailed: the booking has no email address (PID-13)")
            return
        channel = EmailChannel(self.mailer, self.email_settings, made.email)
        try:
            receipt = deliver(handout, pdf, channel, audit=audit)
        except OutcomeUnknown:
            self.report(f"row {made.row}: the email may have been sent (no answer)")
            return
        except DischargeError:
            self.report(f"row {made.row}: the email was not sent (see the audit log)")
            return
        if receipt.sent:
            self.report(f"row {made.row}: emailed")
        elif receipt.held is not None and receipt.held.status == SENT:
            self.report(f"row {made.row}: not emailed: this sheet was already emailed")
        elif receipt.held is not None and receipt.held.status == CHANGED:
            self.report(
                f"row {made.row}: not emailed: an earlier version was emailed; send this one "
                "with discharge email --resend if the patient needs it"
            )
        else:
            self.report(f"row {made.row}: not emailed: an earlier sending may have gone")

    def _print(self, made: Made, handout: Handout, pdf: bytes, audit: AuditLog) -> None:
        from discharge.channels.print import PrintChannel
        from discharge.errors import PrintError
        from discharge.printing.jobs import job_title

        assert self.printing is not None
        channel = PrintChannel(
            self.printing.printer, self.printing.copies, title=job_title(made.request.patient.mrn),
            timeout=self.printing.timeout, file=made.file,
        )  # fmt: skip
        try:
            deliver(handout, pdf, channel, audit=audit)
        except (PrintError, DischargeError):
            self.report(f"row {made.row}: not printed (see the audit log)")
            return
        self.report(f"row {made.row}: printed")
