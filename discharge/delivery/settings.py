"""The clinic's email settings: the ``[smtp]`` and ``[email]`` tables of its TOML file.

Both are declared with the settings schema (``discharge/settings_schema.py``) and checked with
the rest of the file when it is loaded; ``load_email_settings`` adds what emailing needs (a
sender, and a server unless the message is written to a file).

The SMTP password never lives in the file, or on the command line: ``password_env`` names the
environment variable that holds it, and the variable is read only when connecting.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

from discharge.config import Config
from discharge.errors import ConfigError, InputError, TemplateError
from discharge.i18n import N_
from discharge.request import check_email
from discharge.settings_schema import (
    Check,
    Choice,
    EnvName,
    FilePath,
    Invalid,
    Number,
    Section,
    Text,
    Where,
    Whole,
    declared,
    setting,
)

Security = Literal["starttls", "tls", "none"]
SECURITY_MODES: tuple[Security, ...] = ("starttls", "tls", "none")
DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}

# The PDF password rules a clinic can choose, and how the email explains each to the patient.
# The rule is stated in words; the password itself is never written in the message.
# The defaults below are in English, marked for the message catalogue (discharge/locale): a
# message is composed in the patient's language (compose.py); a clinic's own texts are used as
# written.
PDF_PASSWORD_RULES: dict[str, str] = {
    "dob:DDMMYYYY": N_(
        "your date of birth as 8 digits: day, month, year "
        "(for example 01021990 if you were born on 1 February 1990)"
    ),
    "dob:MMDDYYYY": N_(
        "your date of birth as 8 digits: month, day, year "
        "(for example 02011990 if you were born on February 1, 1990)"
    ),
    "dob:YYYYMMDD": N_(
        "your date of birth as 8 digits: year, month, day "
        "(for example 19900201 if you were born on 1 February 1990)"
    ),
}

DEFAULT_SUBJECT = N_("Your after-care instructions from {{ clinic.name }}")
DEFAULT_EVENT_SUMMARY = N_("Recovery milestone \N{EM DASH} see your instructions")
DEFAULT_EVENT_DESCRIPTION = N_(
    "Your after-care instructions from {{ clinic.name }} say what this date means for you. "
    "Questions: call {{ clinic.phone }}."
)
# The first lines show on a lock screen and in an inbox list: no procedure, no diagnosis.
# Translators: keep every {{ ... }} and {% ... %} exactly as it is.
DEFAULT_BODY_TEXT = N_("""\
Hello {{ patient.name }},

Attached are your after-care instructions from {{ clinic.name }}, as a PDF file. \
The calendar file attached with them holds the dates from your instructions: open it to add \
them to the calendar on your phone or computer.
{% if pdf_password_rule %}
The PDF is protected with a password. The password is {{ pdf_password_rule }}.
{% endif %}{% if follow_up %}
Your next appointment: {{ follow_up.when }}\
{%- if follow_up.place %}, {{ follow_up.place }}{% endif %}.
{% endif %}
If you have a question, or are worried about how you feel, call us on {{ clinic.phone }}.
{%- if clinic.after_hours_phone %} {{ labels.after_hours }}, \
call {{ clinic.after_hours_phone }}.{% endif %}
In an emergency, call {{ clinic.emergency_number }}.

{{ clinic.name }}
{% for line in clinic.address %}{{ line }}
{% endfor %}""")

# What a message carries: the PDF attached (always); the instructions themselves as its HTML
# part (the accessible web page) and as its plain-text part (the text rendering), after the note.
EMAIL_FORMATS = ("pdf", "html", "text")
_NAMED_ADDRESS = re.compile(r"^\s*(?P<name>[^<>@\"]*?)\s*<(?P<address>[^<>\s]+)>\s*$")


def _header_address(value: Any, where: Where) -> str:
    text: str = _ONE_LINE.check(value, where)
    try:
        split_address(text)
    except InputError as exc:
        raise Invalid(str(exc)) from None
    return text


def _ca_file(value: Any, where: Where) -> Path:
    path: Path = FilePath("a file of PEM certificates", must="file").check(value, where)
    return path


def _seconds(least: float) -> Number:
    return Number(
        least=least,
        most=600,
        problem="must be a number of seconds",
        range_problem=f"must be from {least:g} to 600 seconds",
    )


_NOT_EMPTY = "must be text in quotes, not empty"
_ONE_LINE = Text(empty=False, strip=True, one_line=True, problem=_NOT_EMPTY)
_FILLED = Text(empty=False, strip=True, problem=_NOT_EMPTY)


@dataclass(frozen=True)
class SmtpSettings(Section):
    """How to reach the clinic's mail server: the ``[smtp]`` section."""

    NAME: ClassVar[str] = "smtp"
    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "password": (
            "a password must not be kept in the settings file; put it in an environment "
            "variable and give that variable's name as smtp.password_env "
            '(for example password_env = "DISCHARGE_SMTP_PASSWORD")'
        )
    }

    # the From header: "aftercare@clinic.example" or "Clinic <aftercare@...>"
    sender: str = setting(
        Check(_header_address),
        required="is required: the From address, for example "
        'sender = "Riverside Clinic <aftercare@riverside.example>"',
    )
    host: str | None = setting(_FILLED, default=None)
    port: int = setting(Whole(1, 65535, "must be a whole number from 1 to 65535"), default=0)
    security: Security = setting(Choice(SECURITY_MODES), default="starttls")
    username: str | None = setting(_FILLED, default=None)
    password_env: str | None = setting(
        EnvName(
            capitals=True,
            problem="must be the NAME of an environment variable, in capital letters "
            '(for example "DISCHARGE_SMTP_PASSWORD"), not the password itself',
        ),
        default=None,
    )
    reply_to: str | None = setting(Check(_header_address), default=None)
    # seconds, for connecting and for each reply
    timeout: float = setting(_seconds(0.1), default=30.0)
    # trust these CAs instead of the system's (a private relay)
    ca_file: Path | None = setting(Check(_ca_file), default=None)
    # further attempts after a temporary (4xx) rejection
    retries: int = setting(Whole(0, 10, "must be a whole number from 0 to 10"), default=3)
    # seconds before the first retry; doubled each time, capped
    retry_delay: float = setting(_seconds(0.0), default=2.0)

    def __post_init__(self) -> None:
        if not self.port:  # the usual port of the way it is encrypted
            object.__setattr__(self, "port", DEFAULT_PORTS[self.security])

    @classmethod
    def relations(cls, values: Mapping[str, Any], where: Where) -> Iterator[tuple[str, str]]:
        host = values.get("host")
        if host is not None and values.get("security") == "none" and not is_loopback(host):
            yield (
                "security",
                (
                    '"none" sends patient data unencrypted, so it is only allowed for a relay on '
                    f"this machine (localhost, 127.0.0.1 or ::1), not {host!r}; "
                    'use "starttls" or "tls"'
                ),
            )
        if {"username", "password_env"} <= values.keys() and (values["username"] is None) != (
            values["password_env"] is None
        ):
            yield "", "username and password_env must be given together"

    @property
    def sender_address(self) -> str:
        return split_address(self.sender)[1]

    @property
    def domain(self) -> str:
        return self.sender_address.rpartition("@")[2].lower()

    def password(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The password from the environment variable the settings name, or None."""
        if self.password_env is None:
            return None
        value = (os.environ if environ is None else environ).get(self.password_env)
        if not value:
            raise ConfigError(
                f"the SMTP password is missing: environment variable {self.password_env} "
                "(named by smtp.password_env) is not set"
            )
        return value


def _template(value: Any, where: Where, *, key: str) -> str:
    # Jinja2 only for a file that gives its own email texts (about an eighth of a cold start).
    from jinja2 import TemplateSyntaxError

    from discharge.guidance.filling import fill
    from discharge.guidance.sandbox import environment

    _FILLED.check(value, where)  # text, not empty
    try:
        template = environment(html=key == "body_html").from_string(value)
    except TemplateSyntaxError as exc:
        raise Invalid(f"is not a valid template: {exc.message} (line {exc.lineno})") from None
    try:  # once with sample values, so a mistake stops the program before any email
        fill(template, sample_context(event=key.startswith("event_")))
    except TemplateError as exc:
        raise Invalid(f"is not a valid template: {exc}") from None
    return str(value)


def _text(key: str) -> Check:
    return Check(partial(_template, key=key))


def _pdf_password(value: Any, where: Where) -> str:
    if value != "none" and value not in PDF_PASSWORD_RULES:
        choices = ", ".join(['"none"', *(f'"{rule}"' for rule in PDF_PASSWORD_RULES)])
        raise Invalid(f"is {value!r}, expected one of {choices}")
    return str(value)


def _formats(value: Any, where: Where) -> tuple[str, ...]:
    formats = parse_formats(value, EMAIL_FORMATS)
    if "pdf" not in formats:
        raise Invalid(
            'must include "pdf": the PDF is always attached (html and text add the '
            "instructions to the message itself)"
        )
    return formats


@dataclass(frozen=True)
class EmailSettings(Section):
    """What the message says (the ``[email]`` section): Jinja2 template sources, rendered in a
    sandbox, each checked once with sample values when the settings are loaded."""

    NAME: ClassVar[str] = "email"

    subject: str = setting(_text("subject"), default=DEFAULT_SUBJECT)
    body_text: str = setting(_text("body_text"), default=DEFAULT_BODY_TEXT)
    # None: made from the plain text, escaped
    body_html: str | None = setting(_text("body_html"), default=None)
    event_summary: str = setting(_text("event_summary"), default=DEFAULT_EVENT_SUMMARY)
    event_description: str = setting(_text("event_description"), default=DEFAULT_EVENT_DESCRIPTION)
    # "none", or a key of PDF_PASSWORD_RULES
    pdf_password: str = setting(
        Check(_pdf_password, problem="must be text in quotes, not empty"), default="none"
    )
    # of EMAIL_FORMATS: what the message carries ("pdf" too)
    formats: tuple[str, ...] = setting(Check(_formats), default=("pdf",))

    @classmethod
    def relations(cls, values: Mapping[str, Any], where: Where) -> Iterator[tuple[str, str]]:
        in_body = {"html", "text"} & set(values.get("formats", ()))
        if in_body and values.get("pdf_password", "none") != "none":
            yield (
                "formats",
                (
                    "puts the instructions in the message itself "
                    f"({', '.join(sorted(in_body))}), where email.pdf_password cannot protect "
                    "them: choose one or the other"
                ),
            )

    @property
    def pdf_password_rule(self) -> str:
        """The rule in words for the patient, or "" when the PDF is not protected."""
        return PDF_PASSWORD_RULES.get(self.pdf_password, "")


DEMO_SENDER = "Riverside Demo Clinic (fictional) <aftercare@riverside-demo.example>"


def load_email_settings(
    config: Config, *, sending: bool = True
) -> tuple[SmtpSettings, EmailSettings]:
    """The ``[smtp]`` and ``[email]`` sections (checked when the settings were loaded), and
    what emailing needs of them: a sender, and a server unless the message goes to a file
    (``sending=False``)."""
    smtp = config.section(SmtpSettings)
    if smtp is None and config.source is None:  # the demo clinic: `--eml` works
        smtp = SmtpSettings(sender=DEMO_SENDER)
    if smtp is None:
        sender = declared(SmtpSettings)["sender"].metadata["setting"].required
        raise ConfigError(f"{config.where()}: [smtp] sender: {sender}")
    if smtp.host is None and sending:
        raise ConfigError(
            f"{config.where()}: [smtp] host: is required to send email "
            '(for example host = "smtp.example.org")'
        )
    return smtp, config.section(EmailSettings) or EmailSettings()


def split_address(text: str) -> tuple[str, str]:
    """``"Clinic <a@b.example>"`` -> ``("Clinic", "a@b.example")``; a bare address has no name."""
    match = _NAMED_ADDRESS.match(text)
    if match:
        return match.group("name").strip(), _address(match.group("address"))
    return "", _address(text)


def _address(text: str) -> str:
    address = check_email(text, "address")
    if not address:
        raise InputError("address is empty (expected name@example.org)")
    return address


def is_loopback(host: str) -> bool:
    """Is ``host`` this machine? Decided from the text alone: no DNS lookup is trusted for it."""
    name = host.strip().rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_formats(value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """A list of formats (``["pdf", "html"]``, or the text ``"pdf,html"``), each of ``allowed``
    once; Invalid (the words after the key) otherwise."""
    items = value.split(",") if isinstance(value, str) else value
    expected = f"expected a list of {', '.join(repr(a) for a in allowed)}"
    if not isinstance(items, list | tuple) or not items:
        raise Invalid(f"{expected}, such as {list(allowed[:2])!r}")
    chosen: list[str] = []
    for item in items:
        name = item.strip().lower() if isinstance(item, str) else None
        if name not in allowed:
            raise Invalid(f"{item!r} is not a format, {expected}")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def sample_context(*, event: bool = False) -> dict[str, Any]:
    """What an [email] text sees, with made-up values: to check the texts when they are loaded.

    The same keys as the real context (``compose._context``); ``milestone`` only in the event
    texts.
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
        "labels": {"after_hours": "Out of hours"},
    }  # fmt: skip
    if event:
        context["milestone"] = milestone
    return context
