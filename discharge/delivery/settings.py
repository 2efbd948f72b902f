"""The clinic's email settings: the ``[smtp]`` and ``[email]`` tables of its TOML file.

``load_config`` keeps these tables raw (in ``Config.extra``) so that a clinic that never emails
is never troubled by them; ``load_email_settings`` validates both the first time something is
about to be emailed, and reports every problem at once.

The SMTP password never lives in the file, or on the command line: ``password_env`` names the
environment variable that holds it, and the variable is read only when connecting.
"""

from __future__ import annotations

import ipaddress
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from discharge.config import Config
from discharge.errors import ConfigError, InputError, TemplateError
from discharge.guidance.filling import fill
from discharge.guidance.sandbox import environment
from discharge.i18n import N_
from discharge.request import check_email

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

_SMTP_KEYS = {
    "host", "port", "security", "username", "password_env", "sender", "reply_to",
    "timeout", "ca_file", "retries", "retry_delay",
}  # fmt: skip
_EMAIL_KEYS = {
    "subject", "body_text", "body_html", "event_summary", "event_description", "pdf_password",
    "formats",
}  # fmt: skip
# What a message carries: the PDF attached (always); the instructions themselves as its HTML
# part (the accessible web page) and as its plain-text part (the text rendering), after the note.
EMAIL_FORMATS = ("pdf", "html", "text")
# Capitals, as environment variables are by convention: "hunter2" is far more likely a password
# typed in the wrong place than a variable's name, and it must then not be repeated anywhere.
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_NAMED_ADDRESS = re.compile(r"^\s*(?P<name>[^<>@\"]*?)\s*<(?P<address>[^<>\s]+)>\s*$")


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the clinic's mail server."""

    sender: str  # the From header: "aftercare@clinic.example" or "Clinic <aftercare@...>"
    host: str | None = None
    port: int = 587
    security: Security = "starttls"
    username: str | None = None
    password_env: str | None = None
    reply_to: str | None = None
    timeout: float = 30.0  # seconds, for connecting and for each reply
    ca_file: Path | None = None  # trust these CAs instead of the system's (a private relay)
    retries: int = 3  # further attempts after a temporary (4xx) rejection
    retry_delay: float = 2.0  # seconds before the first retry; doubled each time, capped

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


@dataclass(frozen=True)
class EmailSettings:
    """What the message says: Jinja2 template sources, rendered in a sandbox."""

    subject: str = DEFAULT_SUBJECT
    body_text: str = DEFAULT_BODY_TEXT
    body_html: str | None = None  # None: made from the plain text, escaped
    event_summary: str = DEFAULT_EVENT_SUMMARY
    event_description: str = DEFAULT_EVENT_DESCRIPTION
    pdf_password: str = "none"  # or a key of PDF_PASSWORD_RULES
    formats: tuple[str, ...] = ("pdf",)  # of EMAIL_FORMATS: what the message carries ("pdf" too)

    @property
    def pdf_password_rule(self) -> str:
        """The rule in words for the patient, or "" when the PDF is not protected."""
        return PDF_PASSWORD_RULES.get(self.pdf_password, "")


DEMO_SENDER = "Riverside Demo Clinic (fictional) <aftercare@riverside-demo.example>"


def load_email_settings(
    config: Config, *, sending: bool = True
) -> tuple[SmtpSettings, EmailSettings]:
    """Validate ``[smtp]`` and ``[email]``; every problem is reported in one ConfigError.

    ``sending=False`` (writing a message to a file) does not need a server, only a sender.
    """
    where = str(config.source) if config.source else "config"
    problems: list[str] = []
    smtp = _section(config.extra, "smtp", problems)
    if config.source is None and "smtp" not in config.extra:  # the demo clinic: `--eml` works
        smtp = {"sender": DEMO_SENDER, **smtp}
    email = _section(config.extra, "email", problems)
    smtp_settings = _parse_smtp(smtp, config.source, sending, problems)
    email_settings = _parse_email(email, problems)
    if problems or smtp_settings is None:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return smtp_settings, email_settings


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


def _section(extra: Mapping[str, Any], name: str, problems: list[str]) -> dict[str, Any]:
    raw = extra.get(name, {})
    if not isinstance(raw, dict):
        problems.append(f"[{name}] must be a table of settings")
        return {}
    return raw


def _parse_smtp(
    raw: dict[str, Any], source: Path | None, sending: bool, problems: list[str]
) -> SmtpSettings | None:
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "password":
            problems.append(
                "smtp.password is not allowed: a password must not be kept in the settings file; "
                "put it in an environment variable and give that variable's name as "
                'smtp.password_env (for example password_env = "DISCHARGE_SMTP_PASSWORD")'
            )
        elif key not in _SMTP_KEYS:
            problems.append(f"smtp.{key} is not a known setting")
        elif key in ("port", "retries"):
            low, high = (1, 65535) if key == "port" else (0, 10)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                problems.append(f"smtp.{key} must be a whole number from {low} to {high}")
            else:
                values[key] = value
        elif key in ("timeout", "retry_delay"):
            least = 0.1 if key == "timeout" else 0.0
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"smtp.{key} must be a number of seconds")
            elif not least <= value <= 600:
                problems.append(f"smtp.{key} must be from {least:g} to 600 seconds")
            else:
                values[key] = float(value)
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"smtp.{key} must be text in quotes, not empty")
        else:
            values[key] = value.strip()

    security = values.get("security", "starttls")
    if security not in SECURITY_MODES:
        problems.append(f"smtp.security is {security!r}, expected starttls, tls or none")
        security = "starttls"
    values["security"] = security
    values.setdefault("port", DEFAULT_PORTS[security])

    host = values.get("host")
    if host is None and sending:
        problems.append(
            'smtp.host is required to send email (for example host = "smtp.example.org")'
        )
    if host is not None and security == "none" and not is_loopback(host):
        problems.append(
            f'smtp.security = "none" sends patient data unencrypted, so it is only allowed '
            f"for a relay on this machine (localhost, 127.0.0.1 or ::1), not {host!r}; "
            'use "starttls" or "tls"'
        )

    if "password_env" in values and not _ENV_NAME.match(values["password_env"]):
        problems.append(
            "smtp.password_env must be the NAME of an environment variable, in capital letters "
            '(for example "DISCHARGE_SMTP_PASSWORD"), not the password itself'
        )
    if ("username" in values) != ("password_env" in values):
        problems.append("smtp.username and smtp.password_env must be given together")

    for key in ("sender", "reply_to"):
        if key not in values:
            continue
        if any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in values[key]):
            # A line break would start a new header line of every message (header injection).
            problems.append(f"smtp.{key} must be one line, without line breaks or control codes")
            continue
        try:
            split_address(values[key])
        except InputError as exc:
            problems.append(f"smtp.{key}: {exc}")
    if "sender" not in values:
        problems.append(
            "smtp.sender is required: the From address, for example "
            'sender = "Riverside Clinic <aftercare@riverside.example>"'
        )
        return None

    if "ca_file" in values:
        path = Path(values["ca_file"]).expanduser()
        if not path.is_absolute() and source is not None:
            path = source.parent / path  # relative to the settings file, not the cwd
        path = path.absolute()  # as meant here, whatever folder a process is in later
        if not path.is_file():
            problems.append(f"smtp.ca_file: {path} is not a file of PEM certificates")
        values["ca_file"] = path
    return SmtpSettings(**values)


def _parse_email(raw: dict[str, Any], problems: list[str]) -> EmailSettings:
    from jinja2 import TemplateSyntaxError

    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _EMAIL_KEYS:
            problems.append(f"email.{key} is not a known setting")
        elif key == "formats":
            formats = parse_formats(value, EMAIL_FORMATS, "email.formats", problems)
            if formats and "pdf" not in formats:
                problems.append(
                    'email.formats must include "pdf": the PDF is always attached (html and '
                    "text add the instructions to the message itself)"
                )
            elif formats:
                values[key] = formats
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"email.{key} must be text in quotes, not empty")
        elif key == "pdf_password":
            if value != "none" and value not in PDF_PASSWORD_RULES:
                choices = ", ".join(['"none"', *(f'"{rule}"' for rule in PDF_PASSWORD_RULES)])
                problems.append(f"email.pdf_password is {value!r}, expected one of {choices}")
            else:
                values[key] = value
        else:
            try:
                template = environment(html=key == "body_html").from_string(value)
            except TemplateSyntaxError as exc:
                problems.append(
                    f"email.{key} is not a valid template: {exc.message} (line {exc.lineno})"
                )
                continue
            try:  # once with sample values, so a mistake stops the program before any email
                fill(template, sample_context(event=key.startswith("event_")))
            except TemplateError as exc:
                problems.append(f"email.{key} is not a valid template: {exc}")
                continue
            values[key] = value
    in_body = {"html", "text"} & set(values.get("formats", ()))
    if in_body and values.get("pdf_password", "none") != "none":
        problems.append(
            "email.formats puts the instructions in the message itself "
            f"({', '.join(sorted(in_body))}), where email.pdf_password cannot protect them: "
            "choose one or the other"
        )
    return EmailSettings(**values)


def parse_formats(
    value: Any, allowed: tuple[str, ...], field: str, problems: list[str]
) -> tuple[str, ...]:
    """A list of formats (``["pdf", "html"]``, or the text ``"pdf,html"``), each of ``allowed``
    once; a problem in ``problems`` (and nothing returned) otherwise."""
    items = value.split(",") if isinstance(value, str) else value
    expected = f"expected a list of {', '.join(repr(a) for a in allowed)}"
    if not isinstance(items, list | tuple) or not items:
        problems.append(f"{field} {expected}, such as {list(allowed[:2])!r}")
        return ()
    chosen: list[str] = []
    for item in items:
        name = item.strip().lower() if isinstance(item, str) else None
        if name not in allowed:
            problems.append(f"{field}: {item!r} is not a format, {expected}")
            return ()
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
