"""Composing the email for one patient: the message, the protected PDF and the .ics.

The message is the same PDF ``generate`` makes, plus an .ics of the milestones. By default the
subject, the first lines of the body and the calendar event titles name no procedure and no
diagnosis: a lock screen or a shared inbox shows them to whoever is looking.
"""

from __future__ import annotations

import html
import io
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from functools import cache
from typing import TYPE_CHECKING, Any

from discharge.config import Config
from discharge.dates import format_day
from discharge.delivery.ics import build_calendar, follow_up_event, milestone_events
from discharge.delivery.settings import EmailSettings, SmtpSettings, split_address
from discharge.document import Document, Milestone
from discharge.errors import InputError, TemplateError
from discharge.generate import make_pdf
from discharge.guidance.filling import fill
from discharge.guidance.sandbox import environment
from discharge.i18n import gettext
from discharge.request import DischargeRequest

if TYPE_CHECKING:
    from jinja2 import Template


@dataclass(frozen=True)
class OutgoingEmail:
    """A composed message and what the caller may want to report or keep."""

    message: EmailMessage
    recipient: str | None
    message_id: str
    pdf: bytes  # the PDF as attached (protected, if the clinic asked for that)
    ics: bytes


def compose_email(
    request: DischargeRequest,
    document: Document,
    pdf: bytes,
    smtp: SmtpSettings,
    settings: EmailSettings,
    recipient: str | None,
    *,
    message_id: str | None = None,
) -> OutgoingEmail:
    """Build the complete message for one patient from the PDF ``make_pdf`` made.

    ``message_id``: a stable id (the same each time this document goes to this address), so a
    recipient's mail client can drop a duplicate; by default a new one.
    """
    context = _context(request, document, settings)
    language = document.language

    def translated(source: str) -> str:
        # The default texts are in the catalogue; a clinic's own are not, and stay as written.
        return gettext(language, source)

    subject = _one_line(_render("subject", translated(settings.subject), context))
    text = _render("body_text", translated(settings.body_text), context)
    note_html = (
        _render("body_html", settings.body_html, context, html=True)
        if settings.body_html is not None
        else None
    )
    if "html" in settings.formats:
        # The accessible web page itself, the clinic's note first (the preview a lock screen
        # shows is still the note's).
        from discharge.render_html import render_html

        body_html = render_html(document, preface=note_html or text_to_fragment(text)).decode()
    else:
        body_html = note_html if note_html is not None else text_to_html(text)
    if "text" in settings.formats:
        from discharge.render_text import render_text

        text = f"{text}\n\n{render_text(document).decode()}"

    def event_text(m: Milestone, field: str, source: str) -> str:
        milestone = {"key": m.key, "label": m.label, "when": m.when}
        return _render(field, source, {**context, "milestone": milestone})

    events = milestone_events(
        request,
        document.milestones,
        smtp.domain,
        summary=lambda m: _one_line(
            event_text(m, "event_summary", translated(settings.event_summary))
        ),
        description=lambda m: event_text(
            m, "event_description", translated(settings.event_description)
        ),
    )
    if document.follow_up is not None:
        appointment = document.follow_up
        summary = document.labels.next_appointment
        milestone = Milestone("follow-up", appointment.start, None, appointment.when, summary)
        description = event_text(
            milestone, "event_description", translated(settings.event_description)
        )
        events.append(follow_up_event(request, appointment, smtp.domain, summary, description))
    ics = build_calendar(request, events)
    pdf = protect_pdf(pdf, request, settings)

    message = EmailMessage()
    name, address = split_address(smtp.sender)
    message["From"] = formataddr((name, address)) if name else address
    if recipient is not None:
        message["To"] = recipient
    if smtp.reply_to:
        message["Reply-To"] = smtp.reply_to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message_id = message_id or make_msgid(domain=smtp.domain)
    message["Message-ID"] = message_id
    # Tells auto-responders (holiday replies) not to answer, per RFC 3834.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(body_html, subtype="html")
    day = request.day.isoformat()
    pdf_filename = f"after-care-instructions-{day}.pdf"
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=pdf_filename)
    message.add_attachment(
        ics,
        maintype="text",
        subtype="calendar",
        filename=f"after-care-dates-{day}.ics",
        params={"method": "PUBLISH", "charset": "utf-8"},
    )
    return OutgoingEmail(message, recipient, message_id, pdf, ics)


def make_email(
    request: DischargeRequest,
    config: Config,
    recipient: str | None,
    smtp: SmtpSettings,
    settings: EmailSettings,
) -> tuple[Document, bytes, OutgoingEmail]:
    """Make the PDF (the one code path ``generate`` uses) and the message that carries it."""
    document, pdf = make_pdf(request, config)
    return document, pdf, compose_email(request, document, pdf, smtp, settings, recipient)


def protect_pdf(pdf: bytes, request: DischargeRequest, settings: EmailSettings) -> bytes:
    """Encrypt the PDF with AES-256 under the clinic's password rule (or return it as it is)."""
    password = pdf_password(request, settings)
    if password is None:
        return pdf
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    # A random owner password: the patient may open and print, nobody may lift the protection.
    writer.encrypt(
        user_password=password, owner_password=secrets.token_hex(16), algorithm="AES-256"
    )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_password(request: DischargeRequest, settings: EmailSettings) -> str | None:
    rule = settings.pdf_password
    if rule == "none":
        return None
    dob = request.patient.dob
    if dob is None:
        raise InputError(
            f"the clinic protects emailed PDFs with the date of birth ({rule}), "
            "but no date of birth was given for this patient"
        )
    pattern = rule.removeprefix("dob:")
    return (
        pattern.replace("YYYY", f"{dob.year:04d}")
        .replace("MM", f"{dob.month:02d}")
        .replace("DD", f"{dob.day:02d}")
    )


def text_to_fragment(text: str) -> str:
    """Plain text as HTML paragraphs: escaped, a paragraph per blank-line block."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n".join(
        "<p>" + "<br>\n".join(html.escape(line) for line in p.splitlines()) + "</p>"
        for p in paragraphs
    )


def text_to_html(text: str) -> str:
    """The plain-text body as simple HTML: escaped, a paragraph per blank-line block."""
    body = text_to_fragment(text)
    return (
        f'<!DOCTYPE html>\n<html><body style="font-family: sans-serif">\n{body}\n</body></html>\n'
    )


def _context(
    request: DischargeRequest, document: Document, settings: EmailSettings
) -> dict[str, Any]:
    clinic = document.letterhead
    return {
        "clinic": {
            "name": clinic.name,
            "phone": clinic.phone,
            "after_hours_phone": clinic.after_hours_phone,
            "emergency_number": clinic.emergency_number,
            "address": list(clinic.address),
        },
        "patient": {"name": document.patient_name},
        # Available for a clinic that chooses to say more; the defaults never use them.
        "procedure": {"id": document.procedure_id, "title": document.title},
        "procedure_date": format_day(request.day, document.locale),
        "milestones": [
            {"key": m.key, "label": m.label, "when": m.when} for m in document.milestones
        ],
        "pdf_password_rule": gettext(document.language, settings.pdf_password_rule)
        if settings.pdf_password_rule
        else "",
        "labels": {"after_hours": document.labels.after_hours},
        # For a clinic's own texts: the next appointment, when there is one.
        "follow_up": {"when": document.follow_up.when, "place": document.follow_up.place}
        if document.follow_up
        else None,
    }


def _render(field: str, source: str, context: Mapping[str, Any], *, html: bool = False) -> str:
    try:
        return fill(_template(source, html), context).strip()
    except TemplateError as exc:
        raise TemplateError(f"clinic settings, email.{field}: {exc}") from None


@cache
def _template(source: str, html: bool) -> Template:
    return environment(html=html, keep_trailing_newline=True).from_string(source)


def _one_line(text: str) -> str:
    # A header is one line: a newline from a template must not start another header.
    return " ".join(text.split())
