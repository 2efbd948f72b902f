"""The email channel: the patient's sheet (and an .ics of the dates) to their address, once.

Composing and sending are ``discharge.delivery``'s; this module is the channel: the audit
records (``emailed``, ``email-failed``, ``email-unknown``; the record's PDF hash is of the
attached bytes, which differ when the clinic protects PDFs) and the once-only record of what
went (``delivery/sent.py``): a message the record says went already, or may have, is not sent
unless ``resend``. ``email_instructions`` is the whole of ``discharge email`` without the
command line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from discharge.audit import AuditLog, AuditRecord, as_sent, describe_pdf
from discharge.channels import Actions, Handout, Recorder, deliver, register
from discharge.config import Config
from discharge.delivery.compose import OutgoingEmail, compose_email
from discharge.delivery.sent import (
    CHANGED,
    FAILED,
    NEW,
    SENT,
    UNKNOWN,
    Previous,
    SentJournal,
    message_id,
    send_key,
)
from discharge.delivery.settings import EmailSettings, load_email_settings
from discharge.delivery.smtp import Mailer, OutcomeUnknown
from discharge.document import Document
from discharge.errors import DischargeError
from discharge.generate import check_replace, make_pdf
from discharge.output import write_atomic
from discharge.request import DischargeRequest, check_email


@dataclass(frozen=True)
class EmailReceipt:
    email: OutgoingEmail
    sent: bool
    # Not sent because the clinic's record says it went (SENT), an earlier version went
    # (CHANGED) or it may have gone (UNKNOWN); None when it was sent.
    held: Previous | None = None


@register
@dataclass(frozen=True)
class EmailChannel:
    name: ClassVar[str] = "email"
    actions: ClassVar[Actions] = Actions("emailed", "email-failed", "email-unknown")

    mailer: Mailer
    settings: EmailSettings
    recipient: str
    resend: bool = False  # send although the record says it went, or may have
    # A batch keeps the once-only record itself (its rows' claims, a folder's older manifest):
    # it gives the Message-ID it claimed and ``noted``, called with the server's Message-ID
    # once the message went, before ``emailed`` is recorded. The mailer's connection is then
    # the run's, kept open between rows.
    message_id: str = ""
    noted: Callable[[str], None] | None = None

    def send(self, handout: Handout, pdf: bytes, recorder: Recorder) -> EmailReceipt:
        request, document = handout.request, handout.document
        assert request is not None and document is not None, "an email needs its document"
        smtp = self.mailer.settings
        if self.message_id:
            email = self._compose(request, document, pdf, self.message_id)
            records = self._records(handout, email)
            with recorder.attempt(records, unknown=(OutcomeUnknown,)):
                sent_id = self.mailer.send(email)
            if self.noted is not None:
                self.noted(sent_id)
            recorder.done(records, said="the email was sent")
            return EmailReceipt(email, sent=True)
        key = send_key(request, self.recipient, hashlib.sha256(pdf).hexdigest())
        email = self._compose(request, document, pdf, message_id(key, smtp.domain))
        records = self._records(handout, email)
        with SentJournal.open() as journal:
            allow = (SENT, CHANGED, UNKNOWN) if self.resend else ()
            previous = journal.claim(key, email.message_id, allow=allow)  # the intent, committed
            if previous.status not in (NEW, *allow):
                return EmailReceipt(email, sent=False, held=previous)
            try:
                with self.mailer, recorder.attempt(records, unknown=(OutcomeUnknown,)):
                    self.mailer.send(email)
            except OutcomeUnknown:
                journal.finish(key, UNKNOWN)
                raise
            except BaseException as exc:  # nothing reached the server (Ctrl-C: not known)
                journal.finish(key, FAILED if isinstance(exc, DischargeError) else UNKNOWN)
                raise
            journal.finish(key, SENT, email.message_id)
        recorder.done(records, said="the email was sent")
        return EmailReceipt(email, sent=True)

    def _compose(
        self, request: DischargeRequest, document: Document, pdf: bytes, msg_id: str
    ) -> OutgoingEmail:
        return compose_email(
            request, document, pdf, self.mailer.settings, self.settings, self.recipient,
            message_id=msg_id,
        )  # fmt: skip

    @staticmethod
    def _records(handout: Handout, email: OutgoingEmail) -> list[AuditRecord]:
        return [as_sent(r, email.pdf, email.recipient, email.message_id) for r in handout.records]


@dataclass(frozen=True)
class EmailResult:
    document: Document
    pdf: bytes  # the clinic's copy, unprotected
    email: OutgoingEmail
    sent: bool  # False when the message was only written to a file, or was held back
    # Not sent because the clinic's record says it went (SENT), an earlier version went
    # (CHANGED) or it may have gone (UNKNOWN); None when that was not the reason.
    held: Previous | None = None


def email_instructions(
    request: DischargeRequest,
    config: Config,
    recipient: str | None,
    *,
    eml: Path | None = None,
    output: Path | None = None,
    channel: str = "cli",
    resend: bool = False,
    force: bool = False,
) -> EmailResult:
    """Make the patient's PDF and email it to ``recipient`` (or write the message to ``eml``).

    ``output`` also keeps the clinic's copy of the PDF (an existing file there is replaced only
    if it is this patient's PDF, or with ``force``). ``channel`` is the front end ("cli",
    "web"). Settings problems and a missing SMTP password are found before any work is done;
    faults raise ``DeliveryError`` (an outcome that is not known, ``OutcomeUnknown``). A
    message the clinic's record says went already, or may have, is not sent unless
    ``resend``: the result says why (``held``).
    """
    recipient = check_email(recipient, "--to") or None
    if output is not None and not force:
        check_replace(output, request.patient.marker)
    smtp, settings = load_email_settings(config, sending=eml is None)
    mailer = Mailer(smtp) if eml is None else None  # checks the password variable now
    audit = AuditLog.open(config)  # every copy handed out is recorded
    document, pdf = make_pdf(request, config)
    with audit:
        if output is not None:
            write_atomic(output, pdf)
            audit.record_or_remove(describe_pdf(request, document, pdf, channel=channel), output)
        if mailer is None:
            assert eml is not None
            message = compose_email(request, document, pdf, smtp, settings, recipient)
            made = describe_pdf(request, document, pdf, channel=channel)
            write_atomic(eml, message.message.as_bytes())
            audit.record_or_remove(as_sent(made, message.pdf, recipient, message.message_id), eml)
            return EmailResult(document, pdf, message, sent=False)
        assert recipient is not None
        handout = Handout.of(request, document, pdf, front_end=channel)
        target = EmailChannel(mailer, settings, recipient, resend=resend)
        receipt = deliver(handout, pdf, target, audit=audit)
    return EmailResult(document, pdf, receipt.email, receipt.sent, receipt.held)
