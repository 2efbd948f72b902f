"""`discharge serve` under abuse: guessers, slow clients, huge uploads, a flaky mail server.

Each scenario runs against the real server (waitress, started as `discharge serve`) on
loopback, bounded in count and time. The attackers connect from other loopback addresses
(127.0.0.2 and up: all of 127.0.0.0/8 is this computer), the nurse from 127.0.0.1, as a
guesser's computer and a ward computer would be two addresses on a hospital network.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from discharge.config import Config
from discharge.web import create_app
from discharge.web.throttle import MAX_WAIT, SignInThrottle
from tests.test_email import Recorder, _start, relay_config
from tests.test_email import Server as SmtpServer
from tests.test_web import (  # noqa: F401 (a fixture)
    FORM,
    Server,
    browser_type_launch_args,
    pdf_text,
    start_server,
    token,
)

PASSWORD = "correct horse battery"


# --- the throttle's arithmetic, with a clock we move ---------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_free_tries_then_waits_that_double_up_to_a_minute() -> None:
    clock = Clock()
    throttle = SignInThrottle(clock)
    for _ in range(5):
        assert throttle.wait("shared", "10.0.0.7") == 0
        throttle.failed("shared", "10.0.0.7")
    waits = []
    for _ in range(10):
        wait = throttle.wait("shared", "10.0.0.7")
        waits.append(wait)
        clock.now += wait
        assert throttle.wait("shared", "10.0.0.7") == 0
        throttle.failed("shared", "10.0.0.7")
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert MAX_WAIT == 60


def test_an_account_under_attack_still_lets_its_nurses_in_from_their_own_computers() -> None:
    clock = Clock()
    throttle = SignInThrottle(clock)
    for n in range(8):  # guessers from eight addresses, one try each
        throttle.failed("Amara", f"10.0.0.{n}")
    assert throttle.wait("amara", "10.0.0.3") == 8  # the account's wait, for those who failed
    assert throttle.wait("AMARA", "10.0.9.9") == 0  # the ward computer: not one failure
    throttle.succeeded("amara")
    assert throttle.wait("amara", "10.0.0.3") == 0  # a success clears the account's count


def test_an_address_guessing_many_accounts_waits_and_a_success_does_not_clear_it() -> None:
    clock = Clock()
    throttle = SignInThrottle(clock)
    for n in range(6):
        throttle.failed(f"user{n}", "10.0.0.66")
    assert throttle.wait("someone-else", "10.0.0.66") == 2
    throttle.succeeded("user0")  # one account's password known: no more guesses at the rest
    assert throttle.wait("someone-else", "10.0.0.66") == 2
    clock.now += 16 * 60  # a quarter of an hour later the count starts again
    assert throttle.wait("someone-else", "10.0.0.66") == 0


# --- the sign-in page, through the test client ---------------------------------------------------


def test_the_sixth_wrong_password_gets_a_clear_wait_page_at_once() -> None:
    app = create_app(Config(), password=PASSWORD, overrides={"TESTING": True})
    guesser = app.test_client()
    guesser.environ_base["REMOTE_ADDR"] = "10.0.0.66"
    page = guesser.get("/login").get_data(as_text=True)
    started = time.monotonic()
    for _ in range(5):
        wrong = guesser.post("/login", data={"password": "guess", "csrf_token": token(page)})
        assert wrong.status_code == 401 and "not right" in wrong.get_data(as_text=True)
    assert time.monotonic() - started < 2  # no sleeping in a server thread
    for password in ("guess", PASSWORD):  # while it waits, even the right one is not checked
        refused = guesser.post("/login", data={"password": password, "csrf_token": token(page)})
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        assert "Too many tries. Wait 1 second, then sign in again." in refused.get_data(
            as_text=True
        )
    nurse = app.test_client()  # another computer: the shared account is not locked for her
    nurse.environ_base["REMOTE_ADDR"] = "10.0.0.7"
    page = nurse.get("/login").get_data(as_text=True)
    right = nurse.post("/login", data={"password": PASSWORD, "csrf_token": token(page)})
    assert right.status_code == 302 and nurse.get("/").status_code == 200
    app.extensions["discharge.jobs"].close()


# --- the real server -----------------------------------------------------------------------------


@dataclass
class Browser:
    """A plain HTTP client with one cookie, from one source address (a nurse's computer)."""

    url: str
    source: str = "127.0.0.1"
    timeout: float = 30.0
    cookie: str = ""
    statuses: list[int] = field(default_factory=list)

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(self.url)
        connection = http.client.HTTPConnection(
            parts.hostname or "", parts.port, timeout=self.timeout, source_address=(self.source, 0)
        )
        headers = {"Host": parts.netloc}
        body = None
        if self.cookie:
            headers["Cookie"] = self.cookie
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = f"{parts.scheme}://{parts.netloc}"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        cookie = response.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        self.statuses.append(response.status)
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def signed_in(url: str) -> Browser:
    """A nurse's computer, signed in with the shared password."""
    nurse = Browser(url)
    _, _, page = nurse.request("GET", "/login")
    status, _, _ = nurse.request(
        "POST", "/login", {"password": PASSWORD, "csrf_token": token(page.decode())}
    )
    assert status == 302, status
    return nurse


def nurse_signs_in_and_gets_her_pdf(url: str) -> float:
    """Seconds from opening the sign-in page to holding her patient's PDF."""
    started = time.monotonic()
    nurse = signed_in(url)
    _, _, page = nurse.request("GET", "/")
    status, headers, pdf = nurse.request("POST", "/", {**FORM, "csrf_token": token(page.decode())})
    took = time.monotonic() - started
    assert status == 200 and headers["content-type"] == "application/pdf"
    assert "Zoë Nguyễn" in pdf_text(pdf)
    return took


def settings_file(tmp_path: Path, extra: str = "") -> Path:
    settings = tmp_path / "clinic.toml"
    settings.write_text(f'[serve]\npassword_env = "HOLDUP_PASSWORD"\n{extra}', encoding="utf-8")
    return settings


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Server]:
    running = start_server(
        "--config", str(settings_file(tmp_path)), extra_env={"HOLDUP_PASSWORD": PASSWORD}
    )
    yield running
    code, output = running.stop()
    assert code == 0, output
    assert PASSWORD not in output and "guess" not in output


def test_64_guessers_do_not_slow_a_nurse_down(guarded: Server) -> None:
    stop = threading.Event()
    guessers = [Browser(guarded.url, source=f"127.0.0.{2 + n % 8}", timeout=10) for n in range(64)]

    def guess(guesser: Browser) -> None:
        _, _, page = guesser.request("GET", "/login")
        form = {"password": "", "csrf_token": token(page.decode())}
        n = 0
        while not stop.is_set():
            n += 1
            form["password"] = f"guess{n}"
            guesser.request("POST", "/login", form)

    threads = [threading.Thread(target=guess, args=(g,), daemon=True) for g in guessers]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)  # the guessers are at full speed, their addresses already waiting
        took = nurse_signs_in_and_gets_her_pdf(guarded.url)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    answered = [status for guesser in guessers for status in guesser.statuses[1:]]
    print(f"64 guessers: {len(answered)} tries answered; the nurse's sign-in and PDF {took:.2f} s")
    assert took < 2.0
    # Eight guessing addresses, five free tries each, then one try a wait: very few checked.
    assert answered.count(401) <= 8 * 5 + 8 * 4
    assert answered.count(429) > answered.count(401)


# --- slow clients ---------------------------------------------------------------------------------


class SlowClients:
    """``count`` connections from ``sources`` that send a request's headers a byte at a time,
    each one every ``every`` seconds, until stopped (a "slowloris")."""

    def __init__(self, url: str, count: int, sources: list[str], every: float = 0.5) -> None:
        parts = urllib.parse.urlsplit(url)
        self.target = (parts.hostname or "", parts.port or 80)
        self.header = f"GET / HTTP/1.1\r\nHost: {parts.netloc}\r\nX-Slow: ".encode() + b"a" * 4000
        self.sockets: list[socket.socket] = []
        self.closed_by_server: set[int] = set()
        for n in range(count):
            sock = socket.socket()
            sock.settimeout(5)
            sock.bind((sources[n % len(sources)], 0))
            sock.connect(self.target)
            sock.setblocking(False)
            self.sockets.append(sock)
        self.every = every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        sent = 0
        while not self.stop.wait(self.every) and sent < len(self.header):
            for n, sock in enumerate(self.sockets):
                if n in self.closed_by_server:
                    continue
                try:
                    if sock.recv(1) == b"":
                        self.closed_by_server.add(n)
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed_by_server.add(n)
                    continue
                try:
                    sock.send(self.header[sent : sent + 1])
                except OSError:
                    self.closed_by_server.add(n)
            sent += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        for sock in self.sockets:
            sock.close()


def test_150_slow_clients_do_not_starve_a_nurse(guarded: Server) -> None:
    sources = [f"127.0.0.{n}" for n in range(20, 25)]  # five computers, thirty each
    slow = SlowClients(guarded.url, 150, sources)
    try:
        time.sleep(1.5)  # every one of them connected and trickling
        took = nurse_signs_in_and_gets_her_pdf(guarded.url)
        held = 150 - len(slow.closed_by_server)
    finally:
        slow.close()
    print(f"150 slow clients ({held} held open): the nurse's sign-in and PDF {took:.2f} s")
    assert held == 150  # they were all still there: the nurse got in beside them
    assert took < 2.0


def test_a_slow_clients_headers_have_a_deadline_and_one_computer_a_share(tmp_path: Path) -> None:
    limits = "header_seconds = 2\nconnections_per_address = 3\n"
    running = start_server(
        "--config", str(settings_file(tmp_path, limits)), extra_env={"HOLDUP_PASSWORD": PASSWORD}
    )
    try:
        slow = SlowClients(running.url, 5, ["127.0.0.30"], every=0.2)
        started = time.monotonic()
        while len(slow.closed_by_server) < 2 and time.monotonic() - started < 1.8:
            time.sleep(0.05)
        # The fourth and fifth: closed at once, unread; the first three still trickling.
        assert len(slow.closed_by_server) == 2 and time.monotonic() - started < 1.8
        deadline = time.monotonic() + 8
        while len(slow.closed_by_server) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        slow.close()
        assert len(slow.closed_by_server) == 5  # the other three: their headers took too long
        nurse_signs_in_and_gets_her_pdf(running.url)  # a nurse with her own share
    finally:
        code, output = running.stop()
    assert code == 0, output


# --- a file over the upload limit ------------------------------------------------------------------

BIG = 50 * 1024 * 1024


def upload_headers(url: str, boundary: str) -> tuple[Browser, bytes]:
    """A signed-in nurse, and the start of a multipart upload from her batch page: its token
    and the file's part headers, the file's bytes left to the caller."""
    nurse = signed_in(url)
    _, _, page = nurse.request("GET", "/batch/")
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
        f"{token(page.decode())}\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="schedule"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    return nurse, head


def test_a_50_mb_upload_gets_the_413_page_and_is_not_read(guarded: Server) -> None:
    parts = urllib.parse.urlsplit(guarded.url)
    boundary = "----holdup"
    nurse, head = upload_headers(guarded.url, boundary)
    tail = f"\r\n--{boundary}--\r\n".encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            f"POST /batch/ HTTP/1.1\r\nHost: {parts.netloc}\r\nCookie: {nurse.cookie}\r\n"
            f"Origin: http://{parts.netloc}\r\nContent-Length: {len(head) + BIG + len(tail)}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
            + head
        )
        # Not one byte of the file sent: the answer comes from the headers alone.
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status, _, body = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 REQUEST ENTITY TOO LARGE"
    page = body.decode()
    assert "Connection: close" in page and "Content-Security-Policy" in page
    assert "The file is 50 MB; the largest schedule this server takes is 5 MB." in page


def test_curl_uploading_50_mb_gets_the_page_not_a_reset(guarded: Server, tmp_path: Path) -> None:
    import subprocess

    big = tmp_path / "big.csv"
    with big.open("wb") as out:
        out.truncate(BIG)
    nurse = signed_in(guarded.url)
    _, _, page = nurse.request("GET", "/batch/")
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "60", "-H", f"Cookie: {nurse.cookie}",
         "-H", f"Origin: {guarded.url.rstrip('/')}", "-F", f"csrf_token={token(page.decode())}",
         "-F", f"schedule=@{big}", "-w", "\\n%{http_code} %{size_upload}",
         guarded.url + "batch/"],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    page_text, _, status = result.stdout.rpartition("\n")
    code, sent = status.split()
    assert code == "413" and int(sent) < 1024 * 1024  # curl waited for "100 Continue": refused
    assert "The file is 50 MB; the largest schedule this server takes is 5 MB." in page_text


def test_chromium_uploading_50_mb_shows_the_413_page(guarded: Server, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    big = tmp_path / "tomorrow.csv"
    with big.open("wb") as out:
        out.truncate(BIG)
    page.goto(guarded.url)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="A day's schedule").click()
    page.get_by_label("Schedule (CSV)").set_input_files(str(big))
    with page.expect_response(
        lambda r: r.url.endswith("/batch/") and r.request.method == "POST"
    ) as answer:
        page.get_by_role("button", name="Make PDFs").click()
    assert answer.value.status == 413
    assert page.get_by_role("heading", name="File too large").is_visible()
    assert page.get_by_text(
        "The file is 50 MB; the largest schedule this server takes is 5 MB."
    ).is_visible()


# --- email from the form, when the mail server takes the message and drops the line ---------------


@dataclass
class TakesThenDrops(Recorder):
    """Accepts the whole message, then drops the connection before its "250" reaches us."""

    take_then_drop: int = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]  # noqa: ANN001
        answer = await super().handle_DATA(server, session, envelope)
        if self.take_then_drop:
            self.take_then_drop -= 1
            server.transport.close()
        return answer


def email_form(client, address: str, action: str = "email") -> dict[str, str]:  # type: ignore[no-untyped-def]
    page = client.get("/").get_data(as_text=True)
    send_id = re.search(r'name="send_id" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    return {**FORM, "csrf_token": token(page), "send_id": send_id, "action": action,
            "email": address}  # fmt: skip


def test_a_send_the_mail_server_may_have_is_asked_about_never_repeated_silently(
    tmp_path: Path,
) -> None:
    from discharge.config import load_config

    handler = TakesThenDrops(take_then_drop=1)
    controller = _start(handler)
    try:
        relay = SmtpServer(controller.port, handler)
        app = create_app(load_config(relay_config(tmp_path, relay)), overrides={"TESTING": True})
        client = app.test_client()
        first_form = email_form(client, "zoe@patient.example")
        first = client.post("/", data=first_form)
        html = first.get_data(as_text=True)
        assert first.status_code == 502 and len(relay.received) == 1  # it has the message
        assert "the mail server may already have it — send again?" in html
        assert "Send again anyway" in html
        # She sends the same form again (a reload), or a new one, the address in capitals:
        # asked again, nothing sent.
        retries = [first_form, {**first_form, "email": "ZOE@PATIENT.EXAMPLE"}]
        retries += [email_form(client, a) for a in ("zoe@patient.example", "Zoe@Patient.EXAMPLE")]
        for form in retries:
            again = client.post("/", data=form)
            text = again.get_data(as_text=True)
            assert again.status_code == 409, text
            assert "the mail server may already have it — send again?" in text
            assert "Nothing was sent now." in text and 'value="email-again"' in text
        assert len(relay.received) == 1
        # Only her "Send again anyway" sends it, once.
        confirmed = client.post("/", data=email_form(client, "Zoe@Patient.Example", "email-again"))
        assert confirmed.status_code == 200, confirmed.get_data(as_text=True)
        assert "Emailed to Zoe@Patient.Example." in confirmed.get_data(as_text=True)
        assert len(relay.received) == 2
        # And then it is sent: a plain "Email to patient" says so and sends nothing.
        after = client.post("/", data=email_form(client, "zoe@patient.example"))
        assert after.status_code == 409 and "already emailed" in after.get_data(as_text=True)
        assert len(relay.received) == 2
        app.extensions["discharge.jobs"].close()
    finally:
        controller.stop()


def test_the_connection_limits_are_checked_with_the_other_serve_settings() -> None:
    from discharge.config import parse_config
    from discharge.errors import ConfigError
    from discharge.web.settings import load_serve_settings

    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "serve": {
                    "connection_limit": 2.5,
                    "connections_per_address": 0,
                    "header_seconds": "x",
                    "idle_seconds": 30,
                }
            }  # fmt: skip
        )
    message = str(caught.value)
    assert "[serve] connection_limit: must be a whole number, 1 or more" in message
    assert "[serve] connections_per_address: must be a whole number, 1 or more" in message
    assert "[serve] header_seconds: must be a positive number" in message
    assert "idle_seconds" not in message
    settings = load_serve_settings(parse_config({"serve": {"connection_limit": 200}}))
    assert settings.connection_limit == 200 and settings.header_seconds == 10
