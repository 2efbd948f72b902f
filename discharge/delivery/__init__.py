"""Delivering the instructions by email, as plain functions any front end can call.

``settings`` reads the clinic's ``[smtp]`` and ``[email]`` tables, ``compose`` builds one
patient's message (the PDF, protected if the clinic asks, and an .ics of the dates), ``smtp``
sends it. ``email_instructions`` is the whole of ``discharge email`` without the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from discharge.audit import AuditLog, as_sent, describe_pdf
from discharge.config import Config
from discharge.delivery.compose import OutgoingEmail, compose_email, make_email
from discharge.delivery.settings import EmailSettings, SmtpSettings, load_email_settings
from discharge.delivery.smtp import Mailer, MessageRejected, OutcomeUnknown
from discharge.document import Document
from discharge.output import write_atomic
from discharge.request import DischargeRequest, check_email

__all__ = [
    "EmailSettings", "Mailer", "MessageRejected", "OutcomeUnknown", "OutgoingEmail", "SmtpSettings",
    "EmailResult", "compose_email", "email_instructions", "load_email_settings", "make_email",
]  # fmt: skip


@dataclass(frozen=True)
class EmailResult:
    document: Document
    pdf: bytes  # the clinic's copy, unprotected
    email: OutgoingEmail
    sent: bool  # False when the message was only written to a file


def email_instructions(
    request: DischargeRequest,
    config: Config,
    recipient: str | None,
    *,
    eml: Path | None = None,
    output: Path | None = None,
    channel: str = "cli",
) -> EmailResult:
    """Make the patient's PDF and email it to ``recipient`` (or write the message to ``eml``).

    ``output`` also keeps the clinic's copy of the PDF. Settings problems and a missing SMTP
    password are found before any work is done; faults raise ``DeliveryError``.
    """
    recipient = check_email(recipient, "--to") or None
    smtp, settings = load_email_settings(config, sending=eml is None)
    mailer = Mailer(smtp) if eml is None else None  # checks the password variable now
    audit = AuditLog.open(config)  # every copy handed out is recorded
    document, pdf, message = make_email(request, config, recipient, smtp, settings)
    made = describe_pdf(request, document, pdf, channel=channel)
    attached = as_sent(made, message.pdf, recipient, message.message_id)
    with audit:
        if output is not None:
            write_atomic(output, pdf)
            audit.record_or_remove(made, output)
        if mailer is None:
            assert eml is not None
            write_atomic(eml, message.message.as_bytes())
            audit.record_or_remove(attached, eml)
            return EmailResult(document, pdf, message, sent=False)
        with mailer, audit.sending(attached, unknown=(OutcomeUnknown,)):
            mailer.send(message)
        audit.record_sent(attached)
    return EmailResult(document, pdf, message, sent=True)
