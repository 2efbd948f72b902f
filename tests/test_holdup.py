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
from tests.test_web import FORM, Server, pdf_text, start_server, token

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


def nurse_signs_in_and_gets_her_pdf(url: str) -> float:
    """Seconds from opening the sign-in page to holding her patient's PDF."""
    started = time.monotonic()
    nurse = Browser(url)
    _, _, page = nurse.request("GET", "/login")
    status, headers, _ = nurse.request(
        "POST", "/login", {"password": PASSWORD, "csrf_token": token(page.decode())}
    )
    assert status == 302, status
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
