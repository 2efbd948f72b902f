"""Delivering the instructions by email, as plain functions any front end can call.

``settings`` reads the clinic's ``[smtp]`` and ``[email]`` tables, ``compose`` builds one
patient's message (the PDF, protected if the clinic asks, and an .ics of the dates), ``smtp``
sends it. ``email_instructions`` is the whole of ``discharge email`` without the command line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from discharge.audit import AuditLog, AuditRecord, as_sent, describe_pdf
from discharge.config import Config
from discharge.delivery.compose import OutgoingEmail, compose_email, make_email
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
from discharge.delivery.settings import EmailSettings, SmtpSettings, load_email_settings
from discharge.delivery.smtp import Mailer, MessageRejected, OutcomeUnknown
from discharge.document import Document
from discharge.errors import DischargeError
from discharge.generate import check_replace, make_pdf
from discharge.output import write_atomic
from discharge.request import DischargeRequest, check_email

__all__ = [
    "EmailSettings", "Mailer", "MessageRejected", "OutcomeUnknown", "OutgoingEmail", "SmtpSettings",
    "EmailResult", "compose_email", "email_instructions", "load_email_settings", "make_email",
    "CHANGED", "NEW", "SENT", "UNKNOWN", "Previous", "SentJournal",
]  # fmt: skip


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
    if it is this patient's PDF, or with ``force``). Settings problems and a missing SMTP
    password are found before any work is done; faults raise ``DeliveryError`` (an outcome
    that is not known, ``OutcomeUnknown``). A message the clinic's record (``sent.py``) says
    went already, or may have, is not sent unless ``resend``: the result says why (``held``).
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
            attached = _attached(request, document, pdf, message, channel)
            write_atomic(eml, message.message.as_bytes())
            audit.record_or_remove(attached, eml)
            return EmailResult(document, pdf, message, sent=False)
        assert recipient is not None
        key = send_key(request, recipient, hashlib.sha256(pdf).hexdigest())
        msg_id = message_id(key, smtp.domain)
        message = compose_email(
            request, document, pdf, smtp, settings, recipient, message_id=msg_id
        )
        attached = _attached(request, document, pdf, message, channel)
        with SentJournal.open() as journal:
            allow = (SENT, CHANGED, UNKNOWN) if resend else ()
            previous = journal.claim(key, msg_id, allow=allow)  # the intent, committed
            if previous.status not in (NEW, *allow):
                return EmailResult(document, pdf, message, sent=False, held=previous)
            try:
                with mailer, audit.sending(attached, unknown=(OutcomeUnknown,)):
                    mailer.send(message)
            except OutcomeUnknown:
                journal.finish(key, UNKNOWN)
                raise
            except BaseException as exc:  # nothing reached the server (Ctrl-C: not known)
                journal.finish(key, FAILED if isinstance(exc, DischargeError) else UNKNOWN)
                raise
            journal.finish(key, SENT, message.message_id)
        audit.record_sent(attached)
    return EmailResult(document, pdf, message, sent=True)


def _attached(
    request: DischargeRequest, document: Document, pdf: bytes, message: OutgoingEmail, channel: str
) -> AuditRecord:
    made = describe_pdf(request, document, pdf, channel=channel)
    return as_sent(made, message.pdf, message.recipient, message.message_id)
