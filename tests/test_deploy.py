"""The deployment in deploy/: the real Caddy (Debian's, `tls internal`) in front of the real
`discharge serve`, driven through HTTPS in Chromium; and the systemd unit, checked by systemd.

Caddy runs this very deploy/Caddyfile on spare loopback ports, with its own HOME and data
folders in tmp (its certificate authority included): it writes nothing outside tmp and touches
no trust store (`skip_install_trust`). Chromium reaches it by the site's name (discharge.test,
mapped to 127.0.0.1), as a ward computer would. Missing caddy or systemd-analyze is a failure,
not a skip: CI installs them (.ci/run).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import free_port, run_discharge
from tests.test_web import (
    BROWSER_FORM,
    CHROMIUM,
    Server,
    fill_form,
    pdf_text,
    start_server,
)

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
CADDY = Path("/usr/bin/caddy")
SITE = "discharge.test"
NURSE, NURSE_PASSWORD = "amara", "her own password"


@dataclass
class Deployment:
    url: str  # https://discharge.test:PORT/
    port: int
    root: Path  # Caddy's own root certificate (its internal authority), in tmp
    server: Server  # discharge serve, behind it
    caddy: subprocess.Popen[bytes]


def wait_for_tls(port: int, root: Path, process: subprocess.Popen[bytes]) -> None:
    """Until Caddy answers TLS on ``port`` with a certificate for SITE from its own root."""
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, "caddy stopped"
        if not root.exists():  # its authority is made first
            time.sleep(0.1)
            continue
        try:
            context = ssl.create_default_context(cafile=str(root))
            with (
                socket.create_connection(("127.0.0.1", port), timeout=2) as raw,
                context.wrap_socket(raw, server_hostname=SITE),
            ):
                return  # verified: the chain ends at Caddy's root, the name is SITE's
        except (OSError, ssl.SSLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def deployment(tmp_path: Path, audit_db: Path) -> Iterator[Deployment]:
    assert CADDY.exists(), f"{CADDY} is missing: install it with `apt-get install caddy`"
    settings = tmp_path / "clinic.toml"
    # As deploy/Caddyfile's comment says: Caddy is the TLS proxy and names the nurse.
    settings.write_text(
        '[serve]\ntls_proxy = "127.0.0.1"\nsign_in = "proxy"\nuser_header = "X-Remote-User"\n',
        encoding="utf-8",
    )
    server = start_server(
        "--config", str(settings), extra_env={"DISCHARGE_AUDIT_DB": str(audit_db)}
    )
    hashed = subprocess.run(
        [CADDY, "hash-password", "--plaintext", NURSE_PASSWORD],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    users = tmp_path / "caddy-users"
    users.write_text(f"{NURSE} {hashed}\n", encoding="utf-8")
    home = tmp_path / "caddy-home"
    root = home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    for _ in range(3):  # a spare port can be taken by another process before Caddy binds it
        https_port = free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "CADDY_ADMIN": "off",
            "CADDY_BIND": "127.0.0.1",
            "CADDY_HTTP_PORT": str(free_port()),
            "CADDY_HTTPS_PORT": str(https_port),
            "DISCHARGE_SITE": SITE,
            "DISCHARGE_USERS": str(users),
            "DISCHARGE_UPSTREAM": urllib.parse.urlsplit(server.url).netloc,
        }
        log = tmp_path / "caddy.log"
        with log.open("wb") as out:
            caddy = subprocess.Popen(
                [CADDY, "run", "--config", str(DEPLOY / "Caddyfile"), "--adapter", "caddyfile"],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
            )  # fmt: skip
        try:
            wait_for_tls(https_port, root, caddy)
            break
        except (AssertionError, OSError) as exc:
            caddy.kill()
            caddy.wait()
            said = log.read_text(errors="replace")
            if "address already in use" not in said:
                server.stop()
                raise AssertionError(f"caddy did not start: {exc}\n{said}") from None
    else:
        server.stop()
        raise AssertionError("caddy found no free port three times")
    try:
        yield Deployment(f"https://{SITE}:{https_port}/", https_port, root, server, caddy)
    finally:
        caddy.terminate()
        caddy.wait(timeout=30)
        code, output = server.stop()
        assert code == 0, output
    caddy_log = (tmp_path / "caddy.log").read_text(errors="replace")
    assert "Zoë" not in caddy_log and "RX-104233" not in caddy_log  # no access log
    # skip_install_trust in the Caddyfile: its authority stays in tmp, out of the system's store.
    assert "root certificate trust store installation disabled" in caddy_log


def pdf_from_chromium(page) -> bytes:  # type: ignore[no-untyped-def]
    """Press Make PDF; the PDF as Chromium received it over HTTPS from Caddy (saved, not shown:
    Chromium's viewer would stand between the test and the file)."""
    with page.expect_download() as saving:
        page.get_by_role("button", name="Make PDF").click()
    return Path(saving.value.path()).read_bytes()


def in_own_thread(work: Callable[[], None]) -> None:
    """Run ``work`` (Playwright's sync API) in a thread of its own: its event loop starts and
    ends there, never left running in the test process for later tests' asyncio.run()."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=180)
    assert not thread.is_alive(), "the browser did not finish in 3 minutes"
    if failures:
        raise failures[0]


@pytest.mark.browser
def test_chromium_through_caddy_https_signed_in_by_caddy_gets_the_pdf_on_her_name(
    deployment: Deployment, tmp_path: Path
) -> None:
    profile = tmp_path / "chromium-profile"
    (profile / "Default").mkdir(parents=True)
    # PDFs saved rather than shown (see pdf_from_chromium).
    (profile / "Default" / "Preferences").write_text(
        '{"plugins": {"always_open_pdf_externally": true}}', encoding="utf-8"
    )

    def nurse() -> None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            # Chromium does not know Caddy's root; wait_for_tls checked the chain against it,
            # and the certificate Chromium is given is checked below to be that authority's.
            context = playwright.chromium.launch_persistent_context(
                str(profile),
                executable_path=str(CHROMIUM),
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                      f"--host-resolver-rules=MAP {SITE} 127.0.0.1"],
                ignore_https_errors=True,
                accept_downloads=True,
                http_credentials={"username": NURSE, "password": NURSE_PASSWORD},
                # A browser naming someone else: Caddy replaces it with the nurse it signed in.
                extra_http_headers={"X-Remote-User": "matron"},
            )  # fmt: skip
            try:
                page = context.new_page()
                first = page.goto(deployment.url)
                assert first is not None and first.url.startswith(f"https://{SITE}:")
                details = first.security_details()
                assert details is not None
                assert "Caddy Local Authority" in str(details.get("issuer"))
                assert page.get_by_text(f"Signed in as {NURSE}").is_visible()  # by Caddy
                fill_form(page, **BROWSER_FORM)
                text = pdf_text(pdf_from_chromium(page))
                assert "Zoë Nguyễn" in text and "RX-104233" in text
                assert "Saturday 21 November 2026" in text
                cookies = context.cookies()
                (session,) = [c for c in cookies if c["name"] == "discharge_session"]
                assert session["secure"] and session["httpOnly"]  # HTTPS, as told
            finally:
                context.close()

    in_own_thread(nurse)
    # The audit log names the nurse Caddy signed in, not the name the browser sent.
    records = json.loads(run_discharge("log", "--format", "json").stdout)
    made = [r for r in records if r["action"] == "made" and r["patient_name"] == "Zoë Nguyễn"]
    assert [r["user"] for r in made] == [NURSE], records
    assert run_discharge("log", "--user", "matron").stdout == ""


def test_caddy_refuses_a_nurse_it_does_not_know(deployment: Deployment) -> None:
    context = ssl.create_default_context(cafile=str(deployment.root))
    with (
        socket.create_connection(("127.0.0.1", deployment.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=SITE) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {SITE}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401")
    assert b'www-authenticate: basic realm="restricted"' in answer.lower()


def test_the_systemd_unit_is_valid_and_hardened(tmp_path: Path) -> None:
    unit = (DEPLOY / "discharge.service").read_text(encoding="utf-8")
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                 "ReadWritePaths=/var/lib/discharge /var/cache/discharge", "User=discharge",
                 "StateDirectory=discharge"):  # fmt: skip
        assert line in unit.splitlines(), line
    # The unit serves on loopback, on the port the Caddyfile forwards to.
    assert "serve --host 127.0.0.1 --port 8350" in unit
    assert "{$DISCHARGE_UPSTREAM:127.0.0.1:8350}" in (DEPLOY / "Caddyfile").read_text()
    # systemd's own check, with ExecStart pointing at this checkout's command.
    here = Path(
        subprocess.run(["which", "discharge"], capture_output=True, text=True).stdout.strip()
    )
    assert here.exists()
    copy = tmp_path / "discharge.service"
    copy.write_text(unit.replace("/opt/discharge/bin/discharge", str(here)), encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_the_caddyfile_is_in_caddys_own_format() -> None:
    result = subprocess.run(
        [CADDY, "fmt", "--diff", str(DEPLOY / "Caddyfile")], capture_output=True, text=True
    )
    assert result.returncode == 0 and not [
        line for line in result.stdout.splitlines() if line[:1] in "+-"
    ], result.stdout
