"""`discharge serve`: the nurses' web form.

Most checks use Flask's test client (fast); the rest start the real server (`discharge serve`
behind waitress) and drive Debian's Chromium with Playwright, filling the form by its labels.
A browser test fails, never skips, when Chromium is missing: CI installs it (see .ci/run).
"""

from __future__ import annotations

import http.cookiejar
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from discharge.config import Config, parse_config
from discharge.errors import ConfigError, FieldErrors
from discharge.request import parse_request
from discharge.web import create_app
from discharge.web.settings import ServeSettings, check_bind
from tests.helpers import axe_violations, run_discharge
from tests.test_email import Recorder, _start, relay_config
from tests.test_email import Server as SmtpServer

CHROMIUM = Path(os.environ.get("DISCHARGE_TEST_CHROMIUM", "/usr/bin/chromium"))
LABELS = ["Procedure", "Date of procedure", "Time of procedure", "Patient name", "Date of birth",
          "Hospital number", "Clinician", "Notes", "Paper size"]  # fmt: skip
XSS = "<script>alert(1)</script>"


def pdf_text(data: bytes) -> str:
    return " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(data)).pages)


def token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


FORM = {"procedure": "hsg", "date": "2026-11-21", "time": "10:30", "patient": "Zoë Nguyễn",
        "dob": "1990-02-01", "mrn": "RX-104233", "clinician": "Dr Amara Okafor",
        "notes": f"Tubes open.\n{XSS}", "paper": "a4"}  # fmt: skip


# --- the request layer: every problem at once ----------------------------------------------


def test_parse_request_collects_every_field_problem() -> None:
    with pytest.raises(FieldErrors) as caught:
        parse_request(procedure="hsg", date="2026-02-30", patient=" ", time="25:00",
                      dob="1990-13-01", mrn="9" * 65, paper="a5")  # fmt: skip
    problems = caught.value.problems
    assert set(problems) == {"date", "patient", "time", "dob", "mrn", "paper"}
    assert "not a real calendar date" in problems["date"]
    assert "\n" not in str(caught.value)


def test_the_command_line_still_says_it_in_one_line(tmp_path: Path) -> None:
    result = run_discharge("generate", "--procedure", "hsg", "--date", "2026-11-21",
                           "--time", "25:00", "--patient", "Ada", "--dob", "2030-01-01",
                           "-o", tmp_path / "x.pdf")  # fmt: skip
    assert result.code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not a time of day" in result.stderr and "after the procedure date" in result.stderr
    assert not (tmp_path / "x.pdf").exists()


# --- the form, through the test client ------------------------------------------------------


@pytest.fixture
def app():  # type: ignore[no-untyped-def]
    app = create_app(Config(), overrides={"TESTING": True})
    yield app
    app.extensions["discharge.jobs"].close()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


def post_form(client, **changes: str):  # type: ignore[no-untyped-def]
    page = client.get("/").get_data(as_text=True)
    return client.post("/", data={**FORM, **changes, "csrf_token": token(page)})


def test_form_has_every_field_by_its_label_and_todays_date(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    for label in LABELS:
        assert re.search(rf'<label for="\w+">{label}</label>', html), label
    assert "After your HSG" in html and "After your miscarriage" in html  # titles, not ids
    today = datetime.now(ZoneInfo("Europe/London")).date().isoformat()
    assert 'id="date" name="date"' in html and f'value="{today}"' in html
    assert html.count('type="submit" class="primary">Make PDF<') == 1
    assert "<script" not in html
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert response.headers["Cache-Control"] == "no-store"


def test_make_pdf_answers_with_the_pdf_itself(client) -> None:  # type: ignore[no-untyped-def]
    response = post_form(client)
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"].startswith("inline")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    text = pdf_text(response.data)
    assert "Zoë Nguyễn" in text and "RX-104233" in text and "Dr Amara Okafor" in text
    assert XSS in text  # printed literally


def test_bad_input_comes_back_with_every_problem_beside_its_field_and_everything_kept(
    client,
) -> None:  # type: ignore[no-untyped-def]
    response = post_form(client, dob="2030-01-01", time="7pm", mrn="9" * 80, procedure="")
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and response.mimetype == "text/html"
    for field, words in [("dob", "after the date of the procedure"), ("time", "such as 09:30"),
                         ("mrn", "It can be at most 64"), ("procedure", "Choose the procedure")]:  # fmt: skip
        assert re.search(rf'id="{field}-problem">[^<]*{words}', html), field
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', html), field
    assert "4 things to fix" in html
    assert 'value="Zoë Nguyễn"' in html and 'value="Dr Amara Okafor"' in html
    assert 'value="2030-01-01"' in html and 'value="7pm"' in html and "9" * 80 in html
    assert "Tubes open.\n&lt;script&gt;alert(1)&lt;/script&gt;</textarea>" in html
    assert XSS not in html


def test_a_character_no_font_has_is_shown_beside_its_field(client) -> None:  # type: ignore[no-untyped-def]
    html = post_form(client, notes="漢字").get_data(as_text=True)
    assert re.search(r'id="notes-problem">[^<]*The character “漢” cannot be printed', html)


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}],
)
def test_posts_from_another_site_are_refused(client, headers: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/").get_data(as_text=True)
    response = client.post("/", data={**FORM, "csrf_token": token(page)}, headers=headers)
    assert response.status_code == 403
    assert "Zoë" not in response.get_data(as_text=True)


def test_posts_without_the_forms_token_are_refused(client) -> None:  # type: ignore[no-untyped-def]
    client.get("/")
    for data in (FORM, {**FORM, "csrf_token": "guess"}):
        refused = client.post("/", data=data)
        assert refused.status_code == 403 and refused.mimetype == "text/html"
        assert "Zoë" not in refused.get_data(as_text=True)


def test_a_form_from_before_a_restart_comes_back_with_everything_kept(client) -> None:  # type: ignore[no-untyped-def]
    client.get("/")
    stale = client.post("/", data={**FORM, "csrf_token": "from-the-last-server"},
                        headers={"Sec-Fetch-Site": "same-origin"})  # fmt: skip
    html = stale.get_data(as_text=True)
    assert stale.status_code == 403 and "This form had expired" in html
    assert 'value="Zoë Nguyễn"' in html
    assert client.post("/", data={**FORM, "csrf_token": token(html)}).mimetype == "application/pdf"


def test_a_login_guards_every_page_when_configured() -> None:
    app = create_app(Config(), password="correct horse", overrides={"TESTING": True})
    client = app.test_client()
    assert client.get("/").headers["Location"].endswith("/login")
    assert client.get("/batch/").status_code == 302
    page = client.get("/login").get_data(as_text=True)
    wrong = client.post("/login", data={"password": "nope", "csrf_token": token(page)})
    assert wrong.status_code == 401 and "not right" in wrong.get_data(as_text=True)
    page = wrong.get_data(as_text=True)
    right = client.post("/login", data={"password": "correct horse", "csrf_token": token(page)})
    assert right.status_code == 302
    assert client.get("/").status_code == 200
    assert "discharge_session" in right.headers["Set-Cookie"]
    assert "SameSite=Strict" in right.headers["Set-Cookie"]


# --- the batch page, through the test client --------------------------------------------------

SCHEDULE = (
    "patient_name,procedure,date,time,dob,mrn,notes\n"
    "Zoë Nguyễn,hsg,2026-11-23,09:30,1990-02-01,RX-1,Tubes open.\n"
    "Łucja Wróbel-Şahin,miscarriage,2026-11-23,,1985-12-31,4410293,\n"
    "Bad Date,hsg,2026-02-30,,,,\n"
    "Ann Other,hsgg,2026-11-23,,,,\n"
)


def wait_for_batch(client, url: str) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        html = client.get(url).get_data(as_text=True)
        if 'http-equiv="refresh"' not in html:
            return html
        time.sleep(0.2)
    raise AssertionError("the batch did not finish in 60 s")


def upload(client, data: bytes, name: str = "tomorrow.csv"):  # type: ignore[no-untyped-def]
    page = client.get("/batch/").get_data(as_text=True)
    return client.post(
        "/batch/",
        data={"csrf_token": token(page), "schedule": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_batch_lists_every_row_and_serves_the_pdfs(client, app) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/batch/").get_data(as_text=True)
    assert '<label for="schedule">Schedule (CSV)</label>' in page and ">Make PDFs<" in page
    started = upload(client, SCHEDULE.encode())
    assert started.status_code == 303
    url = started.headers["Location"]
    # No patient's name or hospital number in the address (the job id is random letters, so
    # look for whole values, not two letters a random id may hold).
    plain = urllib.parse.unquote(url)
    assert not any(v in plain for v in ("Zoë", "Nguy", "RX-1", "4410293", "Wróbel"))
    html = wait_for_batch(client, url)
    assert "2 PDFs made" in html and "2 rows with a problem" in html
    assert "row 4: date is not a real calendar date" in html  # the value is never echoed
    assert "row 5: unknown procedure: did you mean &#39;hsg&#39;?" in html
    assert "row 2: Zoë Nguyễn" in html and "row 3: Łucja Wróbel-Şahin" in html
    combined_url = re.search(r'href="([^"]+/all\.pdf)"[^>]*>Download all \(PDF\)<', html)
    assert combined_url
    combined = client.get(combined_url.group(1))
    assert combined.mimetype == "application/pdf"
    assert combined.headers["Cache-Control"] == "no-store"
    text = pdf_text(combined.data)
    assert "Zoë Nguyễn" in text and "Łucja Wróbel-Şahin" in text
    rows = re.findall(r'href="([^"]+/row-(\d+)\.pdf)"', html)
    assert [row for _, row in rows] == ["2", "3"]
    assert "Łucja Wróbel-Şahin" in pdf_text(client.get(rows[1][0]).data)
    # another nurse's browser (another session) cannot fetch them
    assert app.test_client().get(combined_url.group(1)).status_code == 404
    # "Done" deletes the files on the server
    folder = app.extensions["discharge.jobs"].root
    assert any(folder.iterdir())
    client.post(url + "/delete", data={"csrf_token": token(html)})
    assert client.get(combined_url.group(1)).status_code == 404
    assert not any(folder.iterdir())


def test_a_long_schedule_shows_progress_and_does_not_hold_up_the_form(client) -> None:  # type: ignore[no-untyped-def]
    rows = "".join(f"Patient {n},hsg,2026-11-23,,,MRN-{n},\n" for n in range(200))
    url = upload(client, ("patient_name,procedure,date,time,dob,mrn,notes\n" + rows).encode())
    url = url.headers["Location"]
    html = client.get(url).get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="1">' in html and "<progress" in html
    began = time.monotonic()
    assert post_form(client).mimetype == "application/pdf"  # another nurse's PDF meanwhile
    assert time.monotonic() - began < 2.0
    seen = set()
    while 'http-equiv="refresh"' in html:
        seen.update(re.findall(r"(\d+) of 200 rows", html))
        time.sleep(0.3)
        html = client.get(url).get_data(as_text=True)
    assert "200 PDFs made" in html
    assert any(0 < int(done) < 200 for done in seen), seen  # progress was shown on the way


def test_only_a_few_schedules_run_at_once(client, app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("discharge.web.jobs.MAX_RUNNING", 1)
    rows = "".join(f"Patient {n},hsg,2026-11-23,,,,\n" for n in range(100))
    first = upload(client, ("patient_name,procedure,date,time,dob,mrn,notes\n" + rows).encode())
    assert first.status_code == 303
    second = upload(client, SCHEDULE.encode())
    assert second.status_code == 503 and "Try again in a minute" in second.get_data(as_text=True)
    app.extensions["discharge.jobs"].close()  # stops the first one


def test_batch_reports_a_schedule_that_cannot_start(client) -> None:  # type: ignore[no-untyped-def]
    html = wait_for_batch(client, upload(client, b"name,when\nA,B\n").headers["Location"])
    assert "could not be used" in html and "tomorrow.csv has no" in html
    assert "/tmp" not in html  # the server's folders are not shown


def test_batch_upload_size_is_bounded() -> None:
    app = create_app(Config(), ServeSettings(max_upload_mb=0.01), overrides={"TESTING": True})
    client = app.test_client()
    response = upload(client, b"patient_name,procedure,date\n" + b"A,hsg,2026-11-23\n" * 2000)
    assert response.status_code == 413 and "too large" in response.get_data(as_text=True)
    app.extensions["discharge.jobs"].close()


# --- email from the form (when the clinic has [smtp]) ------------------------------------------


@pytest.fixture
def relay() -> Iterator[SmtpServer]:
    """A real SMTP relay on loopback (test_email's), recording what it receives."""
    handler = Recorder()
    controller = _start(handler)
    yield SmtpServer(controller.port, handler)
    controller.stop()


def email_app(tmp_path: Path, relay):  # type: ignore[no-untyped-def]
    from discharge.config import load_config

    app = create_app(load_config(relay_config(tmp_path, relay)), overrides={"TESTING": True})
    return app, app.test_client()


def test_no_email_field_without_smtp_settings(client) -> None:  # type: ignore[no-untyped-def]
    assert "Email to patient" not in client.get("/").get_data(as_text=True)


def test_email_to_patient_sends_once(tmp_path: Path, relay) -> None:  # type: ignore[no-untyped-def]
    app, client = email_app(tmp_path, relay)
    page = client.get("/").get_data(as_text=True)
    assert '<label for="email">Email to patient</label>' in page
    send_id = re.search(r'name="send_id" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = {**FORM, "csrf_token": token(page), "send_id": send_id, "action": "email",
            "email": "zoe@patient.example"}  # fmt: skip
    sent = client.post("/", data=form)
    html = sent.get_data(as_text=True)
    assert sent.status_code == 200 and "Emailed to zoe@patient.example." in html
    assert 'value="Zoë Nguyễn"' in html  # the form is kept, with the same send id
    assert len(relay.received) == 1 and relay.received[0].rcpt_tos == ["zoe@patient.example"]
    message = relay.received[0].message
    pdf = next(p for p in message.iter_attachments() if p.get_content_type() == "application/pdf")
    assert "Zoë Nguyễn" in pdf_text(pdf.get_content())
    again = client.post("/", data=form)  # a double click, a reload
    assert again.status_code == 409 and "already emailed" in again.get_data(as_text=True)
    assert len(relay.received) == 1
    app.extensions["discharge.jobs"].close()


def test_email_with_a_bad_address_or_bad_fields_sends_nothing(tmp_path: Path, relay) -> None:  # type: ignore[no-untyped-def]
    app, client = email_app(tmp_path, relay)
    page = client.get("/").get_data(as_text=True)
    send_id = re.search(r'name="send_id" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = {**FORM, "csrf_token": token(page), "send_id": send_id, "action": "email",
            "email": "zoe at example", "dob": "2030-01-01"}  # fmt: skip
    html = client.post("/", data=form).get_data(as_text=True)
    assert re.search(r'id="email-problem">Enter one email address', html)
    assert 'id="dob-problem"' in html and 'value="zoe at example"' in html
    assert relay.received == []
    app.extensions["discharge.jobs"].close()


def test_a_failed_send_says_so_and_may_be_tried_again(tmp_path: Path, relay) -> None:  # type: ignore[no-untyped-def]
    app, client = email_app(tmp_path, relay)
    relay.handler.reject["zoe@patient.example"] = "550 5.1.1 No such user"
    page = client.get("/").get_data(as_text=True)
    send_id = re.search(r'name="send_id" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = {**FORM, "csrf_token": token(page), "send_id": send_id, "action": "email",
            "email": "zoe@patient.example"}  # fmt: skip
    failed = client.post("/", data=form)
    assert failed.status_code == 502 and "The email was not sent" in failed.get_data(as_text=True)
    relay.handler.reject.clear()
    assert client.post("/", data=form).status_code == 200
    assert len(relay.received) == 1
    app.extensions["discharge.jobs"].close()


# --- settings and binding -------------------------------------------------------------------


def test_serve_settings_are_checked_all_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"serve": {"tls_cert": "a.pem", "password_env": "1x", "colour": 1}})
    message = str(caught.value)
    assert "[serve] tls_cert: is not supported (this server does not encrypt" in message
    assert "[serve] password_env: must be the name" in message and "[serve] colour" in message


def test_other_computers_need_a_login_and_a_tls_proxy() -> None:
    check_bind("127.0.0.1", ServeSettings())
    check_bind("::1", ServeSettings())
    with pytest.raises(ConfigError, match="password_env .* and tls_proxy"):
        check_bind("0.0.0.0", ServeSettings())
    with pytest.raises(ConfigError, match="tls_proxy"):
        check_bind("192.168.1.5", ServeSettings(password_env="PW"))
    check_bind("0.0.0.0", ServeSettings(password_env="PW", tls_proxy="10.0.0.2"))


def test_serve_on_all_addresses_without_protection_exits_2_and_listens_nowhere() -> None:
    started = time.monotonic()
    result = run_discharge("serve", "--host", "0.0.0.0", "--port", "0")
    assert result.code == 2
    assert "password_env" in result.stderr and "tls_proxy" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Serving" not in result.stdout
    assert time.monotonic() - started < 30


def test_serve_with_a_login_password_missing_from_the_environment_exits_2(tmp_path: Path) -> None:
    settings = tmp_path / "clinic.toml"
    settings.write_text('[serve]\npassword_env = "WARD_PASSWORD"\n', encoding="utf-8")
    result = run_discharge("serve", "--port", "0", "--config", settings)
    assert result.code == 2 and "WARD_PASSWORD" in result.stderr


# --- the real server --------------------------------------------------------------------------


class Server:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url
        self.output: list[str] = []

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=30)
        return self.process.returncode, "".join(self.output) + out + err


def start_server(*args: str, extra_env: dict[str, str] | None = None) -> Server:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISCHARGE_")}
    env.update(extra_env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "discharge", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.match(r"Serving on (http://127\.0\.0\.1:\d+/)$", line.strip())
    if not match:
        process.kill()
        raise AssertionError(f"server did not start: {line!r} {process.stderr.read()!r}")  # type: ignore[union-attr]
    server = Server(process, match.group(1))
    server.output.append(line)
    return server


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    running = start_server()
    yield running
    code, output = running.stop()
    assert code == 0, output
    assert "Stopped." in output
    # nothing a nurse typed reaches the server's output (no access log, no data in messages)
    for secret in ("Zoë", "Nguy", "RX-104233", "Patient", "alert(1)", "Łucja"):
        assert secret not in output, secret


def test_sigterm_stops_the_server_cleanly_and_removes_its_files() -> None:
    running = start_server()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    page = opener.open(running.url).read().decode()
    boundary = "----discharge"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token(page)}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="schedule"; filename="s.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{SCHEDULE}\r\n--{boundary}--\r\n"
    ).encode()
    request = urllib.request.Request(
        running.url + "batch/", data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    opener.open(request).read()
    # This server's own folders (named with its process id), not another suite's running now.
    pid = running.process.pid
    folders = list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"discharge-serve-{pid}-*"))
    mine = [f for f in folders if f.stat().st_uid == os.getuid() and any(f.iterdir())]
    assert mine
    code, output = running.stop()
    assert code == 0 and "Stopped." in output
    assert not any(f.exists() for f in mine)


def test_the_server_answers_only_to_this_computers_names(server: Server) -> None:
    # DNS rebinding: another site's name pointed at 127.0.0.1 gets nothing.
    port = urllib.parse.urlparse(server.url).port
    request = urllib.request.Request(server.url, headers={"Host": f"evil.example:{port}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 400
    local = urllib.request.Request(server.url, headers={"Host": f"localhost:{port}"})
    assert urllib.request.urlopen(local).status == 200


@pytest.mark.parametrize("clients", [16])
def test_concurrent_nurses_each_get_their_own_patient(server: Server, clients: int) -> None:
    barrier = threading.Barrier(clients)
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def nurse(n: int) -> None:
        try:
            opener = urllib.request.build_opener(
                urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
            )
            page = opener.open(server.url).read().decode()
            form = {**FORM, "patient": f"Patient Number{n:02d}", "mrn": f"MRN-{n:04d}",
                    "notes": f"Note for patient {n:02d}", "csrf_token": token(page)}  # fmt: skip
            barrier.wait(timeout=30)
            reply = opener.open(server.url, urllib.parse.urlencode(form).encode(), timeout=60)
            assert reply.headers["Content-Type"] == "application/pdf"
            results[n] = pdf_text(reply.read())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=nurse, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for n, text in results.items():
        assert f"Patient Number{n:02d}" in text and f"MRN-{n:04d}" in text
        assert f"Note for patient {n:02d}" in text
        others = re.findall(r"Patient Number(\d\d)", text)
        assert set(others) == {f"{n:02d}"}, (n, others)
    assert len(results) == clients


def test_a_render_worker_that_dies_is_replaced() -> None:
    from discharge.web.rendering import Renderer

    renderer = Renderer(Config(), processes=1)
    renderer.start()
    try:
        request = parse_request(procedure="hsg", date="2026-11-21", patient="Ada One")
        assert "Ada One" in pdf_text(renderer.render(request))
        for process in list(renderer._pool._processes.values()):  # type: ignore[union-attr]
            process.kill()
            process.join()
        request = parse_request(procedure="hsg", date="2026-11-21", patient="Ada Two")
        assert "Ada Two" in pdf_text(renderer.render(request))
    finally:
        renderer.close()


# --- in a real browser: Chromium driven by Playwright ------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, object]:
    # Playwright's own browser download is not available here: use the system's Chromium.
    # Missing Chromium is a failure, not a skip (CI installs it: see .ci/run and the README).
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: install it with `apt-get install chromium`"
    return {
        "executable_path": str(CHROMIUM),
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    }


def fill_form(page, **values: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_label("Procedure", exact=True).select_option(label=values["procedure"])
    page.get_by_label("Date of procedure").fill(values["date"])
    page.get_by_label("Time of procedure").fill(values["time"])
    page.get_by_label("Patient name").fill(values["patient"])
    page.get_by_label("Date of birth").fill(values["dob"])
    page.get_by_label("Hospital number").fill(values["mrn"])
    page.get_by_label("Clinician").fill(values["clinician"])
    page.get_by_label("Notes").fill(values["notes"])
    page.get_by_label("Paper size").select_option(label=values["paper"])


BROWSER_FORM = {**FORM, "procedure": "After your HSG", "paper": "Letter"}


def test_browser_fills_the_form_by_label_and_gets_the_pdf(server: Server, page) -> None:  # type: ignore[no-untyped-def]
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    page.goto(server.url)
    today = datetime.now(ZoneInfo("Europe/London")).date().isoformat()
    assert page.get_by_label("Date of procedure").input_value() == today
    fill_form(page, **BROWSER_FORM)
    # Chromium hands a PDF to its viewer, and Playwright then reports the viewer's page as the
    # body: take the server's bytes on their way to the browser instead.
    answers: list = []

    def keep(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.method != "POST":
            route.continue_()
            return
        answer = route.fetch()
        answers.append((answer.status, answer.headers, answer.body()))
        route.fulfill(response=answer)

    page.route("**/*", keep)
    page.get_by_role("button", name="Make PDF").click()
    page.wait_for_timeout(100)
    deadline = time.monotonic() + 30
    while not answers and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    status, headers, body = answers[0]
    assert status == 200
    assert headers["content-type"] == "application/pdf"
    assert headers["content-disposition"].startswith("inline")
    text = pdf_text(body)
    assert "Zoë Nguyễn" in text and "RX-104233" in text and XSS in text
    assert "Saturday 21 November 2026" in text
    assert abs(float(PdfReader(io.BytesIO(body)).pages[0].mediabox.width) - 612) < 1
    assert not alerts


def test_browser_bad_input_keeps_everything_typed(server: Server, page) -> None:  # type: ignore[no-untyped-def]
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    page.goto(server.url)
    fill_form(page, **{**BROWSER_FORM, "dob": "2030-05-06", "mrn": "M" * 70})
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Make PDF").click()
    assert answer.value.status == 422
    page.wait_for_load_state()
    assert page.get_by_text("2 things to fix").is_visible()
    assert "after the date of the procedure" in page.locator("#dob-problem").inner_text()
    assert "at most 64" in page.locator("#mrn-problem").inner_text()
    assert page.get_by_label("Patient name").input_value() == "Zoë Nguyễn"
    assert page.get_by_label("Date of birth").input_value() == "2030-05-06"
    assert page.get_by_label("Hospital number").input_value() == "M" * 70
    assert page.get_by_label("Notes").input_value() == FORM["notes"]
    assert page.get_by_label("Time of procedure").input_value() == "10:30"
    assert page.get_by_label("Paper size").input_value() == "letter"
    assert page.get_by_label("Procedure", exact=True).input_value() == "hsg"
    assert not alerts  # the notes' <script> never ran


def test_browser_cross_site_post_is_refused(server: Server, page) -> None:  # type: ignore[no-untyped-def]
    # The nurse has the form open; a page from another origin posts to the server, as an
    # attacker's would. Even with the form's real token it is refused (Origin, Sec-Fetch-Site).
    page.goto(server.url)
    real_token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    fields = "".join(f'<input name="{k}" value="{v}">' for k, v in FORM.items() if k != "notes")
    attacker = (f'<form method="post" action="{server.url}">{fields}'
                f'<input name="csrf_token" value="{real_token}"><button>go</button></form>')  # fmt: skip
    page.goto("data:text/html," + urllib.parse.quote(attacker))
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="go").click()
    assert answer.value.status == 403
    assert answer.value.headers["content-type"].startswith("text/html")


def test_browser_batch_page(server: Server, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    schedule = tmp_path / "tomorrow.csv"
    schedule.write_text(SCHEDULE, encoding="utf-8")
    page.goto(server.url)
    page.get_by_role("link", name="A day's schedule").click()
    page.get_by_label("Schedule (CSV)").set_input_files(str(schedule))
    page.get_by_role("button", name="Make PDFs").click()
    page.get_by_role("link", name="Download all (PDF)").wait_for(timeout=60_000)
    assert page.get_by_text("row 4: date is not a real calendar date").is_visible()
    assert page.get_by_text("row 5: unknown procedure: did you mean 'hsg'?").is_visible()
    href = page.get_by_role("link", name="Download all (PDF)").get_attribute("href")
    combined = page.request.get(urllib.parse.urljoin(page.url, href))
    assert combined.headers["content-type"] == "application/pdf"
    assert "Łucja Wróbel-Şahin" in pdf_text(combined.body())
    one = page.get_by_role("link", name="PDF for Zoë Nguyễn").get_attribute("href")
    assert "Zoë Nguyễn" in pdf_text(page.request.get(urllib.parse.urljoin(page.url, one)).body())


# --- the same instructions as a web page ------------------------------------------------------


def test_view_as_web_page_gives_the_accessible_page_under_its_own_strict_policy(
    client, audit_db
) -> None:  # type: ignore[no-untyped-def]
    from discharge.render_html import CSP as PAGE_CSP

    answer = post_form(client, action="html")
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    page = answer.get_data(as_text=True)
    assert page.startswith("<!DOCTYPE html>") and '<html lang="en-GB"' in page
    assert "<h1>After your HSG</h1>" in page and "Saturday 21 November 2026" in page
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    policy = answer.headers["Content-Security-Policy"]
    assert policy.startswith(PAGE_CSP) and "script-src" not in policy
    assert "frame-ancestors 'none'" in policy and "form-action 'none'" in policy
    assert answer.headers["Cache-Control"] == "no-store"
    # recorded like a PDF handed out: who it is for, which template, the page's digest
    import hashlib
    import sqlite3

    with sqlite3.connect(audit_db) as conn:
        rows = conn.execute("SELECT channel, pages, pdf_sha256 FROM records").fetchall()
    assert rows == [("web", 0, hashlib.sha256(answer.get_data()).hexdigest())]
    # bad input: the form again, everything kept, no page
    bad = post_form(client, action="html", dob="2030-01-01")
    assert bad.status_code == 422 and 'value="Zoë Nguyễn"' in bad.get_data(as_text=True)


def test_browser_views_the_web_page_and_axe_finds_nothing_on_any_page(server: Server, page) -> None:  # type: ignore[no-untyped-def]
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    found = {}
    page.goto(server.url)
    found["form"] = axe_violations(page)
    page.goto(server.url + "batch/")
    found["batch"] = axe_violations(page)
    page.goto(server.url)
    fill_form(page, **{**BROWSER_FORM, "dob": "2030-05-06"})
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="View as web page").click()
    assert answer.value.status == 422
    page.wait_for_load_state()
    found["form with problems"] = axe_violations(page)
    page.get_by_label("Date of birth").fill("1990-02-01")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="View as web page").click()
    assert answer.value.status == 200
    page.wait_for_load_state()
    assert page.title() == "After your HSG – Riverside Demo Clinic (fictional)"
    assert page.get_by_role("heading", level=1).inner_text() == "After your HSG"
    assert page.get_by_role("region", name="When to get help").is_visible()
    assert (
        page.get_by_role("link", name="01632 960 999").first.get_attribute("href")
        == "tel:01632960999"
    )
    assert XSS in page.locator("main").inner_text()  # the notes, as text
    found["web page"] = axe_violations(page)
    assert found == {name: [] for name in found}
    assert not alerts


def test_axe_finds_nothing_on_the_login_pages(tmp_path: Path, page, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings = tmp_path / "clinic.toml"
    settings.write_text('[serve]\npassword_env = "WARD_PASSWORD"\n', encoding="utf-8")
    monkeypatch.setenv("WARD_PASSWORD", "correct horse")
    running = start_server("--config", str(settings))
    try:
        page.goto(running.url)
        assert page.url.endswith("/login")
        found = {"login": axe_violations(page)}
        page.get_by_label("Password").fill("nope")
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            page.get_by_role("button").first.click()
        assert answer.value.status == 401
        page.wait_for_load_state()
        found["login, wrong password"] = axe_violations(page)
        assert found == {name: [] for name in found}
    finally:
        running.stop()


def _pdf_from_the_browser(page) -> bytes:  # type: ignore[no-untyped-def]
    """Press Make PDF and take the server's answer on its way to Chromium's PDF viewer."""
    answers: list[tuple[int, bytes]] = []

    def keep(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.method != "POST":
            route.continue_()
            return
        answer = route.fetch()
        answers.append((answer.status, answer.body()))
        route.fulfill(response=answer)

    page.route("**/*", keep)
    page.get_by_role("button", name="Make PDF").click()
    deadline = time.monotonic() + 30
    while not answers and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    page.unroute("**/*")
    status, body = answers[0]
    assert status == 200, body[:2000]
    return body


def test_browser_makes_each_variants_sheet(server: Server, page) -> None:  # type: ignore[no-untyped-def]
    """Every variant of every procedure, chosen by its words in the grouped list: the sheet
    counts from the variant's own date (its label in the patient block) and says which
    variant it is (the footer's template line)."""
    from discharge.guidance.loading import available_procedures, load_procedure

    made = 0
    for procedure_id in available_procedures():
        procedure = load_procedure(procedure_id)
        for variant in procedure.variants:
            page.goto(server.url)
            page.get_by_label("Procedure", exact=True).select_option(label=procedure.title)
            variant_list = page.get_by_label("Variant")
            option = variant_list.locator(f'optgroup[label="{procedure.title}"] option',
                                          has_text=variant.label)  # fmt: skip
            variant_list.select_option(label=option.inner_text())
            page.get_by_label("Date of procedure").fill("2026-11-21")
            page.get_by_label("Patient name").fill("Zoë Nguyễn")
            text = pdf_text(_pdf_from_the_browser(page))
            date_label = variant.date_label or "Date"
            assert f"{date_label} Saturday 21 November 2026" in text, (procedure_id, variant.name)
            assert f"{procedure_id} v{procedure.version} ({variant.name})" in text
            made += 1
    assert made == 5  # hsg: fertility, sterilisation-check; miscarriage: three managements


def test_browser_back_from_the_pdf_gives_a_clean_form(server: Server, page) -> None:  # type: ignore[no-untyped-def]
    """Back from the PDF: never half a form (the lists kept, the names lost), which would mix
    two patients; the whole form starts again, as "New patient" does."""
    page.goto(server.url)
    fill_form(page, **BROWSER_FORM)
    page.get_by_label("Variant").select_option(value="hsg:sterilisation-check")
    page.get_by_label("Medicines").fill("Ibuprofen | 3 times a day | 3 days")
    page.get_by_label("Large print").check()
    _pdf_from_the_browser(page)
    page.wait_for_timeout(500)
    page.go_back()
    page.wait_for_load_state()
    today = datetime.now(ZoneInfo("Europe/London")).date().isoformat()
    kept = {label: page.get_by_label(label, exact=True).input_value()
            for label in ("Procedure", "Variant", "Time of procedure", "Patient name",
                          "Date of birth", "Hospital number", "Clinician", "Medicines", "Notes")}  # fmt: skip
    assert kept == dict.fromkeys(kept, ""), kept
    assert page.get_by_label("Date of procedure").input_value() == today
    assert page.get_by_label("Paper size").input_value() == "a4"  # the clinic's
    assert not page.get_by_label("Large print").is_checked()
    # After a form error everything typed is kept; "New patient" clears it on purpose.
    fill_form(page, **{**BROWSER_FORM, "dob": "2030-05-06"})
    page.get_by_role("button", name="Make PDF").click()
    page.wait_for_load_state()
    assert page.get_by_label("Patient name").input_value() == "Zoë Nguyễn"
    page.get_by_role("link", name="New patient").click()
    page.wait_for_load_state()
    assert page.get_by_label("Patient name").input_value() == ""
    assert page.get_by_label("Procedure", exact=True).input_value() == ""
