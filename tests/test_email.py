"""`discharge email` against a real SMTP server on loopback (aiosmtpd), plain and STARTTLS+AUTH.

The command runs as a subprocess, exactly as a nurse would run it; the tests then look at what
the server received: envelope, headers, the PDF bytes, and the .ics parsed back by icalendar.
"""

from __future__ import annotations

import csv
import io
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from icalendar import Calendar
from pypdf import PdfReader

from discharge.config import parse_config
from discharge.delivery.compose import compose_email
from discharge.delivery.settings import load_email_settings
from discharge.delivery.smtp import Mailer, MessageRejected, OutcomeUnknown
from discharge.document import build_document
from discharge.errors import ConfigError, DeliveryError, InputError
from discharge.request import parse_request
from tests.helpers import free_port, run_discharge

SENDER = "aftercare@riverside.example"
PATIENT_ADDRESS = "zoe@patient.example"
USERNAME = "clinic-mailer"
PASSWORD = "correct horse battery staple"
PASSWORD_ENV = "TEST_DISCHARGE_SMTP_PASSWORD"
HSG = ["--procedure", "hsg", "--date", "2026-11-21", "--time", "10:30"]
PATIENT = ["--patient", "Zoë Nguyễn", "--dob", "1990-02-01", "--mrn", "RX-104233"]
# Words that would tell a lock screen what the procedure was.
REVEALING = ("hsg", "hysterosalpingogram", "x-ray", "dye", "fallopian", "womb", "miscarriage")


# --- a real SMTP server on loopback -----------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.data)  # type: ignore[return-value]


@dataclass
class Recorder:
    """aiosmtpd handler: records each message; can refuse, delay or drop on request."""

    received: list[Received] = field(default_factory=list)
    reject: dict[str, str] = field(default_factory=dict)  # address -> reply to its RCPT
    temporary_failures: int = 0  # answer this many DATA commands with 451 first
    drops: int = 0  # close the connection on this many DATA commands first (message received)
    drops_before_data: int = 0  # close the connection on this many MAIL commands first
    data_commands: int = 0
    rcpt_attempts: list[str] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(self, server, session, envelope, address, mail_options) -> str:  # noqa: ANN001
        with self.lock:
            if self.drops_before_data:
                self.drops_before_data -= 1
                server.transport.close()
                return "250 never heard"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # noqa: ANN001
        self.rcpt_attempts.append(address)
        if address in self.reject:
            return self.reject[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
        with self.lock:
            self.data_commands += 1
            if self.drops:
                self.drops -= 1
                server.transport.close()
                return "250 never heard"
            if self.temporary_failures:
                self.temporary_failures -= 1
                return "451 4.3.0 Try again later"
            login = session.auth_data.login.decode() if session.authenticated else None
            self.received.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    envelope.content,
                    session.ssl is not None,
                    login,
                )  # fmt: skip
            )
        return "250 2.0.0 Message accepted"

    def check_login(self, server, session, envelope, mechanism, auth_data) -> AuthResult:  # noqa: ANN001
        self.logins.append(mechanism)
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USERNAME.encode()
            and auth_data.password == PASSWORD.encode()
        )
        # handled=False: aiosmtpd then answers a failure with 535 itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


@dataclass
class Server:
    port: int
    handler: Recorder

    @property
    def received(self) -> list[Received]:
        return self.handler.received


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: Any, tmp_path: Path) -> Path:
    path = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def _start(handler: Recorder, **kwargs: Any) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller


@pytest.fixture
def relay() -> Iterator[Server]:
    """A plain local relay, as `security = "none"` allows on loopback."""
    handler = Recorder()
    controller = _start(handler)
    yield Server(controller.port, handler)
    controller.stop()


@pytest.fixture
def tls_server(ca: Any) -> Iterator[Server]:
    """STARTTLS required, then AUTH required, with a certificate from the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    handler = Recorder()
    controller = _start(
        handler, tls_context=context, require_starttls=True, auth_required=True,
        auth_require_tls=True, authenticator=handler.check_login,
    )  # fmt: skip
    yield Server(controller.port, handler)
    controller.stop()


def write_config(tmp_path: Path, smtp: dict[str, Any], email: str = "") -> Path:
    lines = ["[clinic]", 'name = "Riverside Demo Clinic"', 'phone = "01632 960 123"',
             'after_hours_phone = "01632 960 999"', 'emergency_number = "999"', "", "[smtp]"]  # fmt: skip
    for key, value in smtp.items():
        lines.append(f"{key} = {value!r}".replace("'", '"') if isinstance(value, str)
                     else f"{key} = {value}")  # fmt: skip
    path = tmp_path / "clinic.toml"
    path.write_text("\n".join(lines) + "\n" + email, encoding="utf-8")
    return path


def relay_config(tmp_path: Path, server: Server, email: str = "") -> Path:
    smtp = {"host": "127.0.0.1", "port": server.port, "security": "none",
            "sender": f"Riverside Clinic <{SENDER}>", "retry_delay": 0.01, "timeout": 5}  # fmt: skip
    return write_config(tmp_path, smtp, email)


def tls_config(tmp_path: Path, server: Server, ca_file: Path | None) -> Path:
    smtp: dict[str, Any] = {
        "host": "127.0.0.1", "port": server.port, "security": "starttls", "sender": SENDER,
        "username": USERNAME, "password_env": PASSWORD_ENV, "timeout": 5,
    }  # fmt: skip
    if ca_file is not None:
        smtp["ca_file"] = str(ca_file)
    return write_config(tmp_path, smtp)


def attachment(message: EmailMessage, content_type: str) -> bytes:
    (part,) = [p for p in message.iter_attachments() if p.get_content_type() == content_type]
    content = part.get_content()
    return content.encode() if isinstance(content, str) else content


def events(message: EmailMessage) -> list[Any]:
    calendar = Calendar.from_ical(attachment(message, "text/calendar"))
    return list(calendar.walk("VEVENT"))


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("discharge: error: ")
    return lines[0]


# --- sending for real -------------------------------------------------------------------


def test_relay_receives_pdf_and_calendar(relay: Server, tmp_path: Path) -> None:
    config = relay_config(tmp_path, relay)
    kept = tmp_path / "kept.pdf"
    result = run_discharge("email", *HSG, *PATIENT, "--config", config,
                           "--to", PATIENT_ADDRESS, "--output", kept)  # fmt: skip
    assert result.code == 0, result.stderr
    assert f"Sent to {PATIENT_ADDRESS}" in result.stdout
    assert "Zoë" not in result.stdout + result.stderr  # no patient data in the terminal log

    (got,) = relay.received
    assert got.rcpt_tos == [PATIENT_ADDRESS]
    assert got.mail_from == SENDER
    message = got.message
    assert message["To"] == PATIENT_ADDRESS
    assert message["From"].addresses[0].addr_spec == SENDER
    assert message["Subject"] == "Your after-care instructions from Riverside Demo Clinic"
    assert message["Message-ID"].endswith("@riverside.example>")
    assert message["Message-ID"] in result.stdout
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "01632 960 123" in text and "01632 960 123" in html
    first_lines = " ".join(text.splitlines()[:3]).lower()
    for word in REVEALING:
        assert word not in message["Subject"].lower()
        assert word not in first_lines

    # The attachment is byte for byte the PDF that `generate` makes for the same request.
    pdf = attachment(message, "application/pdf")
    assert pdf == kept.read_bytes()
    generated = tmp_path / "generated.pdf"
    assert run_discharge("generate", *HSG, *PATIENT, "--config", config,
                         "--output", generated).code == 0  # fmt: skip
    assert pdf == generated.read_bytes()
    (pdf_part,) = [p for p in message.iter_attachments() if p.get_content_type().endswith("pdf")]
    assert pdf_part.get_filename() == "after-care-instructions-2026-11-21.pdf"


def test_calendar_has_the_milestones_dates(relay: Server, tmp_path: Path) -> None:
    result = run_discharge("email", *HSG, *PATIENT, "--config", relay_config(tmp_path, relay),
                           "--to", PATIENT_ADDRESS)  # fmt: skip
    assert result.code == 0, result.stderr
    found = {
        (e.decoded("dtstart"), e.decoded("dtend") if "dtend" in e else None)
        for e in events(relay.received[0].message)
    }
    london = ZoneInfo("Europe/London")
    assert found == {
        # Cramps and usual activities share the procedure day: one all-day event.
        (date(2026, 11, 21), date(2026, 11, 22)),
        # Spotting for 2 days: the all-day range ends (exclusively) the day after.
        (date(2026, 11, 21), date(2026, 11, 24)),
        # Sex after 24 to 48 hours: timed, in the clinic's zone.
        (datetime(2026, 11, 22, 10, 30, tzinfo=london),
         datetime(2026, 11, 23, 10, 30, tzinfo=london)),
        # The possible "flushing" effect: from the test to about 6 months after.
        (date(2026, 11, 21), date(2027, 5, 22)),
    }  # fmt: skip
    for event in events(relay.received[0].message):
        assert str(event["summary"]) == "Recovery milestone \N{EM DASH} see your instructions"
        if isinstance(event.decoded("dtstart"), datetime):
            assert event["dtstart"].params["TZID"] == "Europe/London"
        else:
            assert event["dtstart"].params.get("VALUE") == "DATE"
    assert "TZID:Europe/London" in attachment(relay.received[0].message, "text/calendar").decode()


def test_calendar_uids_are_stable_across_sends(relay: Server, tmp_path: Path) -> None:
    config = relay_config(tmp_path, relay)
    for again in ([], ["--resend"]):  # the second time on purpose (see test_once_only.py)
        result = run_discharge("email", *HSG, *PATIENT, "--config", config,
                               "--to", PATIENT_ADDRESS, *again)  # fmt: skip
        assert result.code == 0, result.stderr
    other = ["--patient", "Ann Other", "--mrn", "RX-999999"]
    assert run_discharge("email", *HSG, *other, "--config", config,
                         "--to", "ann@patient.example").code == 0  # fmt: skip
    first, second, third = ([str(e["uid"]) for e in events(r.message)] for r in relay.received)
    assert len(first) == 4 and len(set(first)) == 4
    assert first == second  # re-importing updates the events already in the calendar
    assert all(uid.endswith("@riverside.example") for uid in first)
    assert not set(first) & set(third)  # another patient never overwrites these
    # The same document to the same address: the same Message-ID, so a mail client can drop
    # a duplicate; another patient's message has its own.
    assert relay.received[0].message["Message-ID"] == relay.received[1].message["Message-ID"]
    assert relay.received[0].message["Message-ID"] != relay.received[2].message["Message-ID"]


def test_starttls_with_login(tls_server: Server, ca_file: Path, tmp_path: Path) -> None:
    result = run_discharge("email", *HSG, *PATIENT, "--config",
                           tls_config(tmp_path, tls_server, ca_file), "--to", PATIENT_ADDRESS,
                           env={PASSWORD_ENV: PASSWORD})  # fmt: skip
    assert result.code == 0, result.stderr
    (got,) = tls_server.received
    assert got.tls and got.login == USERNAME
    assert got.rcpt_tos == [PATIENT_ADDRESS]
    assert attachment(got.message, "application/pdf").startswith(b"%PDF-")


def test_wrong_password_is_one_clear_line(
    tls_server: Server, ca_file: Path, tmp_path: Path
) -> None:
    result = run_discharge("email", *HSG, *PATIENT, "--config",
                           tls_config(tmp_path, tls_server, ca_file), "--to", PATIENT_ADDRESS,
                           env={PASSWORD_ENV: "wrong password"})  # fmt: skip
    assert result.code == 3
    line = one_line_error(result.stderr)
    assert "refused the login" in line and USERNAME in line and PASSWORD_ENV in line
    assert "wrong password" not in line.replace("wrong username or password", "")
    assert tls_server.received == []


def test_missing_password_variable(tls_server: Server, ca_file: Path, tmp_path: Path) -> None:
    result = run_discharge("email", *HSG, *PATIENT, "--config",
                           tls_config(tmp_path, tls_server, ca_file), "--to", PATIENT_ADDRESS)  # fmt: skip
    assert result.code == 2
    assert PASSWORD_ENV in one_line_error(result.stderr)
    assert tls_server.handler.data_commands == 0


def test_untrusted_certificate_stops(tls_server: Server, tmp_path: Path) -> None:
    # Without the test CA the server's certificate cannot be verified: nothing may be sent.
    result = run_discharge("email", *HSG, *PATIENT, "--config",
                           tls_config(tmp_path, tls_server, None), "--to", PATIENT_ADDRESS,
                           env={PASSWORD_ENV: PASSWORD})  # fmt: skip
    assert result.code == 3
    line = one_line_error(result.stderr)
    assert "TLS" in line and "certificate" in line
    assert tls_server.handler.data_commands == 0


def test_server_down(tmp_path: Path) -> None:
    down = Server(free_port(), Recorder())  # nothing listens on it
    result = run_discharge("email", *HSG, *PATIENT, "--config", relay_config(tmp_path, down),
                           "--to", PATIENT_ADDRESS)  # fmt: skip
    assert result.code == 3
    line = one_line_error(result.stderr)
    assert f"127.0.0.1:{down.port}" in line and "connection refused" in line


def test_server_that_never_answers_times_out(tmp_path: Path) -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never says a word
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        smtp = {"host": "127.0.0.1", "port": port, "security": "none", "sender": SENDER,
                "timeout": 0.5}  # fmt: skip
        result = run_discharge("email", *HSG, *PATIENT, "--config", write_config(tmp_path, smtp),
                               "--to", PATIENT_ADDRESS)  # fmt: skip
    assert result.code == 3
    assert "did not answer within 0.5 seconds" in one_line_error(result.stderr)


def test_rejected_address(relay: Server, tmp_path: Path) -> None:
    relay.handler.reject["nobody@patient.example"] = "550 5.1.1 No such user"
    result = run_discharge("email", *HSG, *PATIENT, "--config", relay_config(tmp_path, relay),
                           "--to", "nobody@patient.example")  # fmt: skip
    assert result.code == 3
    line = one_line_error(result.stderr)
    assert "nobody@patient.example" in line and "550" in line
    assert relay.received == []


def test_eml_writes_the_message_and_sends_nothing(relay: Server, tmp_path: Path) -> None:
    eml = tmp_path / "message.eml"
    result = run_discharge("email", *HSG, *PATIENT, "--config", relay_config(tmp_path, relay),
                           "--to", PATIENT_ADDRESS, "--eml", eml)  # fmt: skip
    assert result.code == 0, result.stderr
    assert relay.handler.data_commands == 0
    message = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    assert message["To"] == PATIENT_ADDRESS
    assert message.get_body(("plain",)) is not None
    assert attachment(message, "application/pdf").startswith(b"%PDF-")
    assert len(events(message)) == 4


def test_eml_needs_no_server_settings(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"sender": SENDER})
    eml = tmp_path / "message.eml"
    result = run_discharge("email", *HSG, *PATIENT, "--config", config, "--eml", eml)
    assert result.code == 0, result.stderr
    message = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    assert message["To"] is None  # for the nurse's own mail client to address


def test_protected_pdf_states_the_rule_never_the_password(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"sender": SENDER}, '[email]\npdf_password = "dob:DDMMYYYY"\n')
    eml = tmp_path / "message.eml"
    patient = ["--patient", "Zoë Nguyễn", "--dob", "1985-07-23"]
    result = run_discharge("email", *HSG, *patient, "--config", config, "--eml", eml)
    assert result.code == 0, result.stderr
    message = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    text = message.get_body(("plain",)).get_content()
    assert "date of birth as 8 digits: day, month, year" in " ".join(text.split())
    assert "23071985" not in eml.read_bytes().decode("ascii", "replace")
    reader = PdfReader(io.BytesIO(attachment(message, "application/pdf")))
    assert reader.is_encrypted
    assert reader.trailer["/Encrypt"]["/V"] == 5  # AES-256
    assert not reader.decrypt("19850723")
    assert reader.decrypt("23071985")
    assert "Zoë Nguyễn" in reader.pages[0].extract_text()

    no_dob = ["--patient", "Ann Other"]
    result = run_discharge("email", *HSG, *no_dob, "--config", config, "--eml", eml)
    assert result.code == 2
    assert "no date of birth" in one_line_error(result.stderr)


def test_bad_address_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"sender": SENDER, "host": "127.0.0.1", "security": "none"})
    result = run_discharge("email", *HSG, *PATIENT, "--config", config,
                           "--to", "zoe@patient.example, eve@evil.example")  # fmt: skip
    assert result.code == 2
    assert "not an email address" in one_line_error(result.stderr)


# --- faults, in process (quick, and the server's behaviour is scripted) -------------------


def _outgoing(recipient: str = PATIENT_ADDRESS, email: dict[str, Any] | None = None) -> Any:
    config = parse_config({"smtp": {"sender": SENDER, "host": "127.0.0.1"}, "email": email or {}})
    smtp, settings = load_email_settings(config)
    request = parse_request(procedure="hsg", date="2026-11-21", time="10:30", patient="Zoë",
                            dob="1990-02-01")  # fmt: skip
    document = build_document(request, config)
    return compose_email(request, document, b"%PDF-1.4 test", smtp, settings, recipient)


def _mailer(server: Server, retries: int = 3, sleep: Any = time.sleep) -> Mailer:
    config = parse_config({"smtp": {
        "sender": SENDER, "host": "127.0.0.1", "port": server.port, "security": "none",
        "retries": retries, "retry_delay": 0.01, "timeout": 5,
    }})  # fmt: skip
    smtp, _ = load_email_settings(config)
    return Mailer(smtp, sleep=sleep)


def test_temporary_rejection_is_retried_with_backoff(relay: Server) -> None:
    relay.handler.temporary_failures = 2
    delays: list[float] = []
    with _mailer(relay, sleep=delays.append) as mailer:
        message_id = mailer.send(_outgoing())
    assert relay.handler.data_commands == 3
    assert delays == [0.01, 0.02]
    assert [r.message["Message-ID"] for r in relay.received] == [message_id]


def test_temporary_rejection_gives_up_after_the_retries(relay: Server) -> None:
    relay.handler.temporary_failures = 10
    with _mailer(relay, retries=2) as mailer, pytest.raises(MessageRejected, match="3 attempts"):
        mailer.send(_outgoing())
    assert relay.handler.data_commands == 3
    assert relay.received == []


def test_one_rejected_address_does_not_stop_the_next(relay: Server) -> None:
    relay.handler.reject["gone@patient.example"] = "550 5.1.1 No such user"
    with _mailer(relay) as mailer:
        with pytest.raises(MessageRejected, match="550"):
            mailer.send(_outgoing("gone@patient.example"))
        mailer.send(_outgoing())  # the same connection goes on
    assert [r.rcpt_tos for r in relay.received] == [[PATIENT_ADDRESS]]


def test_connection_dropped_before_the_message_is_reopened_once(relay: Server) -> None:
    relay.handler.drops_before_data = 1
    with _mailer(relay) as mailer:
        mailer.send(_outgoing())
    assert len(relay.received) == 1

    relay.handler.drops_before_data = 2
    with _mailer(relay) as mailer, pytest.raises(MessageRejected, match="closed the connection"):
        mailer.send(_outgoing())
    assert len(relay.received) == 1


def test_connection_dropped_after_the_whole_message_is_never_resent(relay: Server) -> None:
    # The server has the message and may deliver it: sending it again could deliver it twice.
    relay.handler.drops = 1
    with (
        _mailer(relay) as mailer,
        pytest.raises(OutcomeUnknown, match="may or may not have been delivered"),
    ):
        mailer.send(_outgoing())
    assert relay.handler.data_commands == 1


def test_server_down_is_not_a_row_failure() -> None:
    down = Server(free_port(), Recorder())
    with _mailer(down) as mailer, pytest.raises(DeliveryError) as caught:
        mailer.send(_outgoing())
    assert not isinstance(caught.value, MessageRejected)  # a batch stops instead of going on


# --- settings and templates -------------------------------------------------------------


def test_settings_report_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"smtp": {
            "host": "mail.example.org", "security": "none", "password": "hunter2", "port": 0,
            "username": "x", "colour": "blue",
        }, "email": {"pdf_password": "dob", "subject": "{{ unclosed"}})  # fmt: skip
    message = str(caught.value)
    for expected in [
        "[smtp] password: is not supported", "password_env", '[smtp] security: "none"',
        "mail.example.org", "[smtp] port:", "[smtp] colour: is not a known setting",
        "[smtp] sender: is required", "[smtp] username and password_env",
        "[email] pdf_password:", "[email] subject:",
    ]:  # fmt: skip
        assert expected in message, expected
    assert "hunter2" not in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST."])
def test_unencrypted_allowed_only_on_loopback(host: str) -> None:
    config = parse_config({"smtp": {"host": host, "security": "none", "sender": SENDER}})
    smtp, _ = load_email_settings(config)
    assert smtp.port == 25


@pytest.mark.parametrize("host", ["10.0.0.5", "localhost.evil.example", "128.0.0.1", "::2"])
def test_unencrypted_refused_elsewhere(host: str) -> None:
    with pytest.raises(ConfigError, match="only allowed for a relay on this machine"):
        parse_config({"smtp": {"host": host, "security": "none", "sender": SENDER}})


def test_ports_follow_security() -> None:
    for security, port in [("starttls", 587), ("tls", 465)]:
        config = parse_config(
            {"smtp": {"host": "h.example", "security": security, "sender": SENDER}}
        )
        assert load_email_settings(config)[0].port == port


def test_clinic_can_choose_more_detail() -> None:
    outgoing = _outgoing(email={
        "subject": "{{ procedure.title }}: your instructions",
        "event_summary": "{{ milestone.label }}",
    })  # fmt: skip
    assert outgoing.message["Subject"] == "After your HSG: your instructions"
    summaries = [str(e["summary"]) for e in Calendar.from_ical(outgoing.ics).walk("VEVENT")]
    assert any(s.startswith("Light bleeding or a sticky, watery discharge") for s in summaries)


def test_html_template_is_escaped_and_text_is_not() -> None:
    outgoing = _outgoing(email={
        "body_text": "Hello {{ patient.name }} & {{ '<b>' }}",
        "body_html": "<p>Hello {{ patient.name }} {{ '<b>' }}</p>",
    })  # fmt: skip
    assert outgoing.message.get_body(("plain",)).get_content().strip() == "Hello Zoë & <b>"
    assert "<p>Hello Zoë &lt;b&gt;</p>" in outgoing.message.get_body(("html",)).get_content()


def test_default_html_is_the_text_escaped() -> None:
    config = parse_config(
        {
            "clinic": {"name": "Smith & <Jones>", "phone": "0100", "emergency_number": "999"},
            "smtp": {"sender": SENDER},
        }
    )
    smtp, settings = load_email_settings(config, sending=False)
    request = parse_request(procedure="hsg", date="2026-11-21", patient="Zoë")
    outgoing = compose_email(
        request, build_document(request, config), b"%PDF", smtp, settings, None
    )
    html = outgoing.message.get_body(("html",)).get_content()
    assert "Smith &amp; &lt;Jones&gt;" in html and "<Jones>" not in html
    assert outgoing.message["Subject"] == "Your after-care instructions from Smith & <Jones>"


@pytest.mark.parametrize(
    "template",
    ["{{ patient.nickname }}", "{{ ''.__class__.__mro__ }}", "{{ clinic.name.__class__ }}"],
)
def test_templates_are_strict_and_sandboxed(template: str) -> None:
    # Found when the settings are loaded, with sample values: before any email is made.
    with pytest.raises(ConfigError, match=r"\[email\] body_text: is not a valid template"):
        _outgoing(email={"body_text": template})


def test_header_injection_through_a_template_is_folded_away() -> None:
    outgoing = _outgoing(email={"subject": "Hello\nBcc: eve@evil.example"})
    assert outgoing.message["Bcc"] is None
    assert outgoing.message["Subject"] == "Hello Bcc: eve@evil.example"


def test_pdf_password_needs_a_date_of_birth() -> None:
    config = parse_config({"smtp": {"sender": SENDER}, "email": {"pdf_password": "dob:YYYYMMDD"}})
    smtp, settings = load_email_settings(config, sending=False)
    request = parse_request(procedure="hsg", date="2026-11-21", patient="Zoë")
    with pytest.raises(InputError, match="no date of birth"):
        compose_email(request, build_document(request, config), b"%PDF", smtp, settings, None)


# --- `discharge batch --email` ----------------------------------------------------------

SCHEDULE = [
    "patient_name,procedure,date,time,dob,mrn,email",
    f"Zoë Nguyễn,hsg,2026-11-21,10:30,1990-02-01,RX-104233,{PATIENT_ADDRESS}",
    "Ann Other,miscarriage,2026-11-21,,1985-07-23,RX-2,gone@patient.example",
    "Bo Nobody,hsg,2026-11-22,,,RX-3,",
]


def write_schedule(tmp_path: Path, lines: list[str] = SCHEDULE) -> Path:
    path = tmp_path / "schedule.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def manifest(out: Path) -> dict[str, dict[str, str]]:
    with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {row["row"]: row for row in csv.DictReader(handle)}


def test_batch_emails_each_row_once(relay: Server, tmp_path: Path) -> None:
    relay.handler.reject["gone@patient.example"] = "550 5.1.1 No such user"
    config, schedule, out = (
        relay_config(tmp_path, relay),
        write_schedule(tmp_path),
        tmp_path / "out",
    )
    args = ["batch", schedule, "--out-dir", out, "--config", config, "--jobs", "1", "--email"]

    result = run_discharge(*args)
    assert result.code == 3, result.stderr
    assert "email: 1 sent / 1 failed / 1 no address / 0 already sent" in result.stdout
    assert "row 3: email to gone@patient.example not sent: " in result.stderr
    assert "550" in result.stderr
    rows = manifest(out)
    assert [rows[r]["email_status"] for r in ("2", "3", "4")] == ["sent", "failed", "none"]
    assert "550" in rows["3"]["email_error"] and rows["3"]["message_id"] == ""
    (got,) = relay.received
    assert got.rcpt_tos == [PATIENT_ADDRESS]
    assert got.message["Message-ID"] == rows["2"]["message_id"]
    # The attachment is the PDF the batch made and kept, byte for byte.
    assert attachment(got.message, "application/pdf") == (out / rows["2"]["file"]).read_bytes()
    assert all((out / rows[r]["file"]).is_file() for r in ("2", "3", "4"))  # the PDFs are kept

    # A rerun: the patient already emailed is not emailed again; the failed row is retried.
    tried = len(relay.handler.rcpt_attempts)
    result = run_discharge(*args)
    assert result.code == 3
    assert "email: 0 sent / 1 failed / 1 no address / 1 already sent" in result.stdout
    assert relay.handler.rcpt_attempts[tried:] == ["gone@patient.example"]
    assert len(relay.received) == 1

    del relay.handler.reject["gone@patient.example"]  # the address is fixed at the other end
    result = run_discharge(*args)
    assert result.code == 0, result.stderr
    assert [r.rcpt_tos for r in relay.received] == [[PATIENT_ADDRESS], ["gone@patient.example"]]
    assert manifest(out)["2"]["message_id"] == rows["2"]["message_id"]  # still the first send

    result = run_discharge(*args)  # nothing left to send
    assert result.code == 0
    assert "email: 0 sent / 0 failed / 1 no address / 2 already sent" in result.stdout
    assert len(relay.received) == 2

    result = run_discharge(*args, "--resend")
    assert result.code == 0
    assert len(relay.received) == 4


def test_batch_stops_at_once_on_a_login_failure(
    tls_server: Server, ca_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    zoe = SCHEDULE[1]
    lines = [SCHEDULE[0], zoe, zoe.replace("Zoë", "Zoe").replace("RX-104233", "RX-5"),
             zoe.replace("Zoë", "Zed").replace("RX-104233", "RX-6")]  # fmt: skip
    result = run_discharge("batch", write_schedule(tmp_path, lines), "--out-dir", out,
                           "--config", tls_config(tmp_path, tls_server, ca_file), "--email",
                           env={PASSWORD_ENV: "wrong password"})  # fmt: skip
    assert result.code == 3
    assert result.stderr.count("refused the login") == 1 and "Traceback" not in result.stderr
    assert len(tls_server.handler.logins) <= 2  # one login (smtplib may try two mechanisms)
    rows = manifest(out)
    assert {rows[r]["status"] for r in rows} == {"ok"}  # the PDFs were made, and are kept
    assert all(rows[r].get("email_status", "") == "" for r in rows)
    assert len(list(out.glob("*.pdf"))) == 3


def test_batch_email_settings_are_checked_before_any_pdf(tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = write_config(tmp_path, {"sender": SENDER})  # no host
    result = run_discharge("batch", write_schedule(tmp_path), "--out-dir", out,
                           "--config", config, "--email")  # fmt: skip
    assert result.code == 2
    assert "[smtp] host: is required" in one_line_error(result.stderr)
    assert not out.exists() or not list(out.glob("*.pdf"))


def test_a_drop_after_the_message_marks_the_row_unknown_and_the_run_goes_on(
    relay: Server, tmp_path: Path
) -> None:
    relay.handler.drops = 1  # the first message reaches the server, its answer never comes
    config, schedule, out = (
        relay_config(tmp_path, relay),
        write_schedule(tmp_path),
        tmp_path / "out",
    )
    result = run_discharge("batch", schedule, "--out-dir", out, "--config", config, "--email")
    assert result.code == 3
    rows = manifest(out)
    assert [rows[r]["email_status"] for r in ("2", "3", "4")] == ["unknown", "sent", "none"]
    assert relay.handler.data_commands == 2  # row 2's message went once, and only once


def test_a_corrected_address_gets_the_email(relay: Server, tmp_path: Path) -> None:
    config, out = relay_config(tmp_path, relay), tmp_path / "out"
    args = ["--out-dir", out, "--config", config, "--email"]
    assert run_discharge("batch", write_schedule(tmp_path), *args).code == 0
    fixed = [line.replace(PATIENT_ADDRESS, "zoe.fixed@patient.example") for line in SCHEDULE]
    result = run_discharge("batch", write_schedule(tmp_path, fixed), *args)
    assert result.code == 0, result.stderr
    tos = [r.rcpt_tos for r in relay.received]
    assert tos[-1] == ["zoe.fixed@patient.example"] and tos.count([PATIENT_ADDRESS]) == 1
    assert manifest(out)["2"]["email_sent_to"] == "zoe.fixed@patient.example"


def test_a_reordered_schedule_emails_nobody_twice(relay: Server, tmp_path: Path) -> None:
    config, out = relay_config(tmp_path, relay), tmp_path / "out"
    args = ["--out-dir", out, "--config", config, "--email"]
    assert run_discharge("batch", write_schedule(tmp_path), *args).code == 0
    sent = len(relay.received)
    shuffled = [SCHEDULE[0], "Cy New,hsg,2026-11-21,,,RX-9,cy@patient.example",
                *reversed(SCHEDULE[1:])]  # fmt: skip
    result = run_discharge("batch", write_schedule(tmp_path, shuffled), *args)
    assert result.code == 0, result.stderr
    assert [r.rcpt_tos for r in relay.received][sent:] == [["cy@patient.example"]]
    assert "already sent" in result.stdout


def test_demo_clinic_writes_an_eml_out_of_the_box(tmp_path: Path) -> None:
    eml = tmp_path / "m.eml"
    result = run_discharge("email", "--procedure", "hsg", "--date", "2026-11-21",
                           "--patient", "Zoë Nguyễn", "--to", "zoe@example.org", "--eml", eml)  # fmt: skip
    assert result.code == 0, result.stderr
    message = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    assert "Riverside Demo Clinic" in message["From"]
    assert "HSG" not in message["Subject"]
