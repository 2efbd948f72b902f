"""Emailing the instructions: compose the message, optionally protect the PDF, send over SMTP.

Named ``mail`` so it can never be mistaken for the standard library's ``email`` package.

The message is the same PDF ``generate`` makes, plus an .ics of the milestones. By default the
subject, the first lines of the body and the calendar event titles name no procedure and no
diagnosis: a lock screen or a shared inbox shows them to whoever is looking.

Faults are sorted by what the caller should do next:

- ``MessageRejected``: the server refused this one message (a 5xx for the address, temporary
  rejections that outlasted the retries, a connection that dropped twice before the message
  went out). Other patients' messages can still go.
- ``OutcomeUnknown`` (a ``MessageRejected``): the connection dropped after the whole message
  went out, before the server's reply. The server may have it: it is never sent again
  automatically (a connection that drops before that point is reopened once and the message
  tried again). Other messages can still go.
- any other ``DeliveryError``: the server cannot be reached, TLS or the login failed, or it
  stopped answering (``ServerSilent``, which says whether the message may have arrived). Every
  further message would fail the same way, so a batch stops at once.
"""

from __future__ import annotations

import contextlib
import html
import io
import re
import secrets
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from functools import cache
from typing import TYPE_CHECKING, Any

from discharge.config import Config
from discharge.document import DischargeRequest, Document, Milestone
from discharge.email_config import EmailSettings, SmtpSettings, split_address
from discharge.errors import ConfigError, DeliveryError, InputError, TemplateError

if TYPE_CHECKING:
    from jinja2 import Template

    from discharge.templating import LimitedEnvironment

MAX_RETRY_DELAY = 60.0  # seconds: backoff doubles up to this, never beyond


class MessageRejected(DeliveryError):
    """The server would not take this one message; others may still be sent."""


class OutcomeUnknown(MessageRejected):
    """The connection dropped after the whole message went out and before the server's reply:
    the server may have it. It is never sent again automatically (the patient would get it
    twice); others may still be sent."""


class ServerSilent(DeliveryError):
    """The server stopped answering: the run stops. ``outcome_unknown`` says whether it went
    silent after the whole message went out (it may have been delivered)."""

    def __init__(self, message: str, *, outcome_unknown: bool) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


@dataclass(frozen=True)
class OutgoingEmail:
    """A composed message and what the caller may want to report or keep."""

    message: EmailMessage
    recipient: str | None
    message_id: str
    pdf: bytes  # the PDF as attached (protected, if the clinic asked for that)
    pdf_filename: str
    ics: bytes


# --- composing ----------------------------------------------------------------------------


def template_environment(*, html: bool = False) -> LimitedEnvironment:
    """The one sandboxed environment (``discharge.templating``), for the clinic's [email] texts;
    HTML output is autoescaped."""
    from discharge.templating import environment

    return environment(html=html, keep_trailing_newline=True)


def compose_email(
    request: DischargeRequest,
    document: Document,
    pdf: bytes,
    smtp: SmtpSettings,
    settings: EmailSettings,
    recipient: str | None,
) -> OutgoingEmail:
    """Build the complete message for one patient from the PDF ``make_pdf`` made."""
    from discharge.ics import build_calendar, milestone_events

    context = _context(request, document, settings)
    subject = _one_line(_render("subject", settings.subject, context))
    text = _render("body_text", settings.body_text, context)
    body_html = (
        _render("body_html", settings.body_html, context, html=True)
        if settings.body_html is not None
        else text_to_html(text)
    )

    def event_text(m: Milestone, field: str, source: str) -> str:
        milestone = {"key": m.key, "label": m.label, "when": m.when}
        return _render(field, source, {**context, "milestone": milestone})

    events = milestone_events(
        request,
        document.milestones,
        smtp.domain,
        summary=lambda m: _one_line(event_text(m, "event_summary", settings.event_summary)),
        description=lambda m: event_text(m, "event_description", settings.event_description),
    )
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
    message_id = make_msgid(domain=smtp.domain)
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
    return OutgoingEmail(message, recipient, message_id, pdf, pdf_filename, ics)


def make_email(
    request: DischargeRequest,
    config: Config,
    recipient: str | None,
    smtp: SmtpSettings,
    settings: EmailSettings,
) -> tuple[Document, bytes, OutgoingEmail]:
    """Make the PDF (the one code path ``generate`` uses) and the message that carries it."""
    from discharge.generate import make_pdf

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


def text_to_html(text: str) -> str:
    """The plain-text body as simple HTML: escaped, a paragraph per blank-line block."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    body = "\n".join(
        "<p>" + "<br>\n".join(html.escape(line) for line in p.splitlines()) + "</p>"
        for p in paragraphs
    )
    return (
        f'<!DOCTYPE html>\n<html><body style="font-family: sans-serif">\n{body}\n</body></html>\n'
    )


def _context(
    request: DischargeRequest, document: Document, settings: EmailSettings
) -> dict[str, Any]:
    from discharge.dates import format_day

    clinic = document.clinic
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
        "procedure_date": format_day(request.day, clinic.locale),
        "milestones": [
            {"key": m.key, "label": m.label, "when": m.when} for m in document.milestones
        ],
        "pdf_password_rule": settings.pdf_password_rule,
    }


def sample_context(*, event: bool = False) -> dict[str, Any]:
    """What an [email] text sees, with made-up values: to check the texts when they are loaded.

    The same keys as the real context (``_context``); ``milestone`` only in the event texts.
    """
    milestone = {"key": "sample", "label": "A sample milestone", "when": "Monday 1 January 2029"}
    context: dict[str, Any] = {
        "clinic": {
            "name": "Sample Clinic", "phone": "0100 000 000", "after_hours_phone": "0100 000 001",
            "emergency_number": "999", "address": ["1 Sample Road", "Sampleton"],
        },
        "patient": {"name": "Sample Patient"},
        "procedure": {"id": "sample", "title": "After your procedure"},
        "procedure_date": "Monday 1 January 2029",
        "milestones": [milestone],
        "pdf_password_rule": "your date of birth as 8 digits",
    }  # fmt: skip
    if event:
        context["milestone"] = milestone
    return context


def _render(field: str, source: str, context: Mapping[str, Any], *, html: bool = False) -> str:
    from discharge.templating import render

    try:
        return render(_template(source, html), context).strip()
    except TemplateError as exc:
        raise TemplateError(f"clinic settings, email.{field}: {exc}") from None


@cache
def _template(source: str, html: bool) -> Template:
    return template_environment(html=html).from_string(source)


def _one_line(text: str) -> str:
    # A header is one line: a newline from a template must not start another header.
    return " ".join(text.split())


# --- sending ------------------------------------------------------------------------------


class Mailer:
    """One SMTP session, reused for many messages, reconnecting when the server drops it.

    Use as a context manager; the connection is opened on the first ``send``.
    """

    def __init__(
        self,
        smtp: SmtpSettings,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if smtp.host is None:
            raise ConfigError("smtp.host is required to send email")
        self.settings = smtp
        self._password = smtp.password(environ)  # a missing variable is found before any work
        self._sleep = sleep
        self._conn: _SMTP | None = None

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def server(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()

    def send(
        self, email: OutgoingEmail, *, before_content: Callable[[], None] | None = None
    ) -> str:
        """Send one message; return its Message-ID. Raises as the module docstring says.

        ``before_content`` is called just before the message itself goes to the server (after
        it has accepted sender and recipient): from then on the outcome may be unknown, so a
        caller that keeps a journal records its intent there.
        """
        if email.recipient is None:
            raise InputError("no recipient address for this message")
        attempts = 0
        reconnected = False
        while True:
            conn = self._connect()
            conn.content_sent = False
            conn.before_content = before_content
            try:
                conn.send_message(email.message, to_addrs=[email.recipient])
                return email.message_id
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()), (0, b""))
                failure = _rejection(code, reply, f"refused the address {email.recipient}")
            except smtplib.SMTPSenderRefused as exc:
                if not _temporary(exc.smtp_code):
                    # Every message has this sender: no point going on with the others.
                    raise DeliveryError(
                        f"the SMTP server {self.server} refuses the sender address "
                        f"{self.settings.sender_address}: {_reply(exc.smtp_code, exc.smtp_error)}"
                    ) from None
                failure = _rejection(exc.smtp_code, exc.smtp_error, "refused the sender")
            except smtplib.SMTPDataError as exc:
                failure = _rejection(exc.smtp_code, exc.smtp_error, "refused the message")
            except smtplib.SMTPResponseException as exc:
                failure = _rejection(exc.smtp_code, exc.smtp_error, "refused the message")
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self._drop()
                unknown = conn.content_sent
                if _timed_out(exc):
                    # A server that has gone silent would make every further message wait as
                    # long again: stop the run now.
                    raise ServerSilent(
                        f"the SMTP server {self.server} stopped answering (no reply within "
                        f"{self.settings.timeout:g} seconds) while sending to {email.recipient}; "
                        + (
                            "that message may or may not have been delivered"
                            if unknown
                            else "that message was not sent"
                        ),
                        outcome_unknown=unknown,
                    ) from None
                if unknown:
                    # The server had the whole message: sending it again could deliver it twice.
                    raise OutcomeUnknown(
                        f"the SMTP server {self.server} closed the connection after receiving "
                        f"the message for {email.recipient} and before confirming it "
                        f"({_reason(exc)}); it may or may not have been delivered"
                    ) from None
                if reconnected:
                    raise MessageRejected(
                        f"the SMTP server {self.server} closed the connection twice while "
                        f"sending to {email.recipient} ({_reason(exc)})"
                    ) from None
                reconnected = True  # reconnect once and try this message again
                continue
            except smtplib.SMTPException as exc:  # e.g. an extension this message needs
                raise MessageRejected(
                    f"the SMTP server {self.server} could not take the message for "
                    f"{email.recipient}: {_reason(exc)}"
                ) from None
            if not failure.temporary or attempts >= self.settings.retries:
                suffix = f" (after {attempts + 1} attempts)" if failure.temporary else ""
                raise MessageRejected(f"the SMTP server {self.server} {failure.text}{suffix}")
            if failure.code == 421:  # "closing the channel": smtplib has already closed it
                self._drop()
            self._sleep(min(self.settings.retry_delay * 2**attempts, MAX_RETRY_DELAY))
            attempts += 1

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connect(self) -> _SMTP:
        if self._conn is not None:
            return self._conn
        s = self.settings
        assert s.host is not None
        context = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
        conn: _SMTP | None = None
        try:
            if s.security == "tls":
                conn = _SMTPOverTLS(s.host, s.port, timeout=s.timeout, context=context)
            else:
                conn = _SMTP(s.host, s.port, timeout=s.timeout)
            conn.ehlo()
            if s.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise DeliveryError(
                        f"the SMTP server {self.server} does not offer STARTTLS, and patient "
                        "data is never sent unencrypted (check smtp.host, smtp.port and "
                        "smtp.security)"
                    )
                conn.starttls(context=context)
                conn.ehlo()
            if s.username is not None and self._password is not None:
                conn.login(s.username, self._password)
        except DeliveryError:
            _close_quietly(conn)
            raise
        except smtplib.SMTPAuthenticationError:
            _close_quietly(conn)
            raise DeliveryError(
                f"the SMTP server {self.server} refused the login for {s.username!r}: wrong "
                f"username or password (the password is read from ${s.password_env})"
            ) from None
        except smtplib.SMTPNotSupportedError:
            _close_quietly(conn)
            raise DeliveryError(
                f"the SMTP server {self.server} does not accept a login here "
                "(no AUTH offered: check smtp.security and smtp.port)"
            ) from None
        except ssl.SSLError as exc:
            _close_quietly(conn)
            hint = (
                " (is smtp.ca_file the right CA?)"
                if isinstance(exc, ssl.SSLCertVerificationError)
                else " (check smtp.security and smtp.port)"
            )
            raise DeliveryError(
                f"TLS with the SMTP server {self.server} failed: "
                f"{getattr(exc, 'verify_message', None) or exc.reason or exc}{hint}"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            _close_quietly(conn)
            if _timed_out(exc):
                # smtplib reports a reply that never came as "Connection unexpectedly closed".
                raise DeliveryError(
                    f"the SMTP server {self.server} did not answer within {s.timeout:g} seconds"
                ) from None
            if isinstance(exc, socket.gaierror):
                raise DeliveryError(
                    f"cannot find the SMTP server {s.host!r} (check smtp.host)"
                ) from None
            raise DeliveryError(
                f"cannot connect to the SMTP server {self.server}: {_reason(exc)}"
            ) from None
        self._conn = conn
        return conn


class _SMTP(smtplib.SMTP):
    """smtplib's client, noting the moment the message itself starts to go to the server.

    smtplib sends commands as text and, inside DATA, the message as bytes: the first bytes
    sent inside ``data`` are the message. A failure before that moment means the server does
    not have the message; after it, the server may have it.
    """

    content_sent = False
    before_content: Callable[[], None] | None = None
    _in_data = False

    def data(self, msg: Any) -> tuple[int, bytes]:
        self._in_data = True
        try:
            return super().data(msg)
        finally:
            self._in_data = False

    def send(self, s: Any) -> None:
        if self._in_data and isinstance(s, bytes) and not self.content_sent:
            if self.before_content is not None:
                self.before_content()
            self.content_sent = True
        super().send(s)


class _SMTPOverTLS(_SMTP, smtplib.SMTP_SSL):
    pass


def send_email(email: OutgoingEmail, smtp: SmtpSettings) -> str:
    """Send one message on a connection of its own; return its Message-ID."""
    with Mailer(smtp) as mailer:
        return mailer.send(email)


@dataclass(frozen=True)
class _Failure:
    code: int
    temporary: bool
    text: str


def _rejection(code: int, reply: bytes | str, what: str) -> _Failure:
    return _Failure(code, _temporary(code), f"{what}: {_reply(code, reply)}")


def _temporary(code: int) -> bool:
    return 400 <= code < 500


def _reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {' '.join(text.split())}".strip()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running, and are smtp.host and smtp.port right?)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    text = getattr(exc, "strerror", None) or str(exc)
    return text or type(exc).__name__


def _timed_out(exc: BaseException) -> bool:
    # smtplib reports a reply that never came as "Connection unexpectedly closed", with the
    # socket's TimeoutError as its context.
    return isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)


def _close_quietly(conn: _SMTP | None) -> None:
    if conn is not None:
        with contextlib.suppress(OSError):
            conn.close()
