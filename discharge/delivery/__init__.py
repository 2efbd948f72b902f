"""Delivering the instructions by email, as plain functions any front end can call.

``settings`` reads the clinic's ``[smtp]`` and ``[email]`` tables, ``compose`` builds one
patient's message (the PDF, protected if the clinic asks, and an .ics of the dates), ``smtp``
sends it, ``sent`` is the clinic's record of what went. The email *channel* (the audit records,
the once-only rule, ``email_instructions``) is ``discharge/channels/email.py``.
"""

from __future__ import annotations

from discharge.delivery.compose import OutgoingEmail, compose_email, make_email
from discharge.delivery.sent import CHANGED, NEW, SENT, UNKNOWN, Previous, SentJournal
from discharge.delivery.settings import EmailSettings, SmtpSettings, load_email_settings
from discharge.delivery.smtp import Mailer, MessageRejected, OutcomeUnknown

__all__ = [
    "EmailSettings", "Mailer", "MessageRejected", "OutcomeUnknown", "OutgoingEmail", "SmtpSettings",
    "compose_email", "load_email_settings", "make_email",
    "CHANGED", "NEW", "SENT", "UNKNOWN", "Previous", "SentJournal",
]  # fmt: skip
