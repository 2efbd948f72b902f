"""Issue 18: email once-only kept by the clinic (not the output folder), the web form's unknown
outcome, and a rerun under a full disk (a file-size limit) ending in a clear error.

Everything runs for real: the installed command as a subprocess, aiosmtpd on loopback, SQLite.
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import AUDIT_ENV, CACHE_ENV, DATA_DIR_ENV, run_discharge
from tests.test_email import (  # noqa: F401 (fixtures)
    Recorder,
    Server,
    _start,
    manifest,
    relay,
    relay_config,
    write_schedule,
)

# --- a rerun under a file-size limit (finding 4) ------------------------------------------


def _big_schedule(tmp_path: Path, rows: int, addresses: int = 0) -> Path:
    lines = ["patient_name,procedure,date,mrn,email"]
    for i in range(rows):
        email = f"p{i}@patient.example" if i < addresses else ""
        lines.append(f"Patient {i},hsg,2026-11-21,RX-{i},{email}")
    return write_schedule(tmp_path, lines)


def _limited(limit: int, *args: object) -> subprocess.CompletedProcess[str]:
    """The installed command with every file it writes limited to ``limit`` bytes, as a
    nearly full disk would: writes past it fail with EFBIG (SIGXFSZ ignored)."""

    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "discharge", *map(str, args)],
        preexec_fn=limit_files,  # noqa: PLW1509 (no threads in the child before exec)
        capture_output=True,
        text=True,
        timeout=120,
        env={
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DISCHARGE_") or k in (DATA_DIR_ENV, AUDIT_ENV, CACHE_ENV)
        },
    )


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.endswith(".part"))


def test_a_rerun_under_a_file_size_limit_skips_its_rows_and_leaves_nothing(
    relay: Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    # 200 rows: the manifest (~45 kB) is larger than SQLite's shared-memory file (32 kB) the
    # audit log needs, and smaller than the previous manifest's index on disk.
    config, out = relay_config(tmp_path, relay), tmp_path / "out"
    schedule = _big_schedule(tmp_path, 200, addresses=3)
    args = ["batch", schedule, "--out-dir", out, "--config", config, "--jobs", "2"]
    assert run_discharge(*args, "--email").code == 0
    before = (out / "manifest.csv").stat().st_size
    kept = {r: (e["file"], e["sha256"], e["email_status"]) for r, e in manifest(out).items()}
    pdfs = {p.name: p.stat().st_mtime_ns for p in out.glob("*.pdf")}
    limit = before + 2048

    for extra in ([], ["--email"]):
        result = _limited(limit, *args, *extra)
        assert result.returncode == 0, result.stderr
        assert "0 ok / 0 error / 200 skipped" in result.stdout
        assert _leftovers(out) == []
        assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.pdf")} == pdfs
    assert len(relay.received) == 3  # nobody emailed twice
    now = {r: (e["file"], e["sha256"], e["email_status"]) for r, e in manifest(out).items()}
    assert now == kept


def test_a_manifest_that_no_longer_fits_is_a_clear_error_and_the_old_one_stays(
    relay: Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    config, out = relay_config(tmp_path, relay), tmp_path / "out"
    # Without the audit log (its shared-memory file needs 32 kB), 60 rows are enough.
    config.write_text(config.read_text() + "\n[audit]\nenabled = false\n")
    schedule = _big_schedule(tmp_path, 60, addresses=1)
    args = ["batch", schedule, "--out-dir", out, "--config", config, "--jobs", "2"]
    assert run_discharge(*args).code == 0
    before = (out / "manifest.csv").read_bytes()

    for extra in ([], ["--email"]):
        result = _limited(len(before) // 2, *args, *extra)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line == f"discharge: error: cannot write {out / 'manifest.csv'}: File too large"
        assert _leftovers(out) == []
        assert (out / "manifest.csv").read_bytes() == before
    assert relay.received == []  # the email step never started


# --- once-only kept by the clinic, not by the output folder (finding 2) -------------------

SCHEDULE = [
    "patient_name,procedure,date,time,dob,mrn,email",
    "Zoë Nguyễn,hsg,2026-11-21,10:30,1990-02-01,RX-104233,zoe@patient.example",
    "Ann Other,miscarriage,2026-11-21,,1985-07-23,RX-2,ann@patient.example",
    "Bo Nobody,hsg,2026-11-22,,1970-03-04,,bo@patient.example",  # no hospital number
]


def _batch(tmp_path: Path, config: Path, lines: list[str], *extra: object, out: str = "out"):
    schedule = write_schedule(tmp_path, lines)
    return run_discharge("batch", schedule, "--out-dir", tmp_path / out, "--config", config,
                         "--jobs", "1", "--email", *extra)  # fmt: skip


def _resave_with_semicolons(path: Path) -> None:
    """What European Excel does to a CSV it opens and saves: semicolons, its own quoting."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    with path.open("w", encoding="cp1252", errors="replace", newline="") as handle:
        csv.writer(handle, delimiter=";").writerows(rows)


def _tos(server: Server) -> list[str]:
    return [address for r in server.received for address in r.rcpt_tos]


def test_a_lost_or_resaved_manifest_emails_nobody_twice(
    relay: Server,  # noqa: F811
    tmp_path: Path,
    clinic_data_dir: Path,
) -> None:
    config, out = relay_config(tmp_path, relay), tmp_path / "out"
    first = _batch(tmp_path, config, SCHEDULE)
    assert first.code == 0, first.stderr
    assert len(relay.received) == 3
    # The clinic's record: private, and no name, hospital number or address in it.
    kept = clinic_data_dir / "email-sent.sqlite3"
    assert kept.stat().st_mode & 0o777 == 0o600
    held = kept.read_bytes().lower()
    assert not any(s in held for s in (b"rx-104233", b"zoe", b"patient.example", b"nobody"))

    (out / "manifest.csv").unlink()
    result = _batch(tmp_path, config, SCHEDULE)
    assert result.code == 0, result.stderr
    assert "email: 0 sent / 0 failed / 0 no address / 3 already sent" in result.stdout
    assert len(relay.received) == 3
    rows = manifest(out)  # the report is rebuilt from the clinic's record
    assert [rows[r]["email_status"] for r in ("2", "3", "4")] == ["sent"] * 3
    assert rows["2"]["message_id"] == relay.received[0].message["Message-ID"]

    _resave_with_semicolons(out / "manifest.csv")
    assert _batch(tmp_path, config, SCHEDULE).code == 0
    assert len(relay.received) == 3

    # A new output folder, the addresses typed in capitals, the schedule re-sorted: the same.
    shouted = [SCHEDULE[0], *(line.replace("@patient.example", "@PATIENT.example").replace(
        "zoe@", "Zoe@") for line in reversed(SCHEDULE[1:]))]  # fmt: skip
    result = _batch(tmp_path, config, shouted, out="elsewhere")
    assert result.code == 0, result.stderr
    assert "3 already sent" in result.stdout and len(relay.received) == 3

    # Sent again only when asked, by hospital number (any case) or by the manifest's key.
    result = _batch(tmp_path, config, SCHEDULE, "--resend", "rx-104233")
    assert result.code == 0, result.stderr
    assert _tos(relay)[3:] == ["zoe@patient.example"]
    bo = manifest(out)["4"]["key"]
    result = _batch(tmp_path, config, SCHEDULE, "--resend", bo)
    assert result.code == 0, result.stderr
    assert _tos(relay)[4:] == ["bo@patient.example"]


def test_resend_by_row_number_is_refused_after_a_re_sort(
    relay: Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = relay_config(tmp_path, relay)
    assert _batch(tmp_path, config, SCHEDULE).code == 0
    resorted = [SCHEDULE[0], *reversed(SCHEDULE[1:])]
    result = _batch(tmp_path, config, resorted, "--resend", "2")
    assert result.code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("discharge: error: --resend 2: no patient in this schedule")
    assert "row numbers are not accepted" in line
    result = _batch(tmp_path, config, resorted, "--resend", "RX-404")  # a mistyped number
    assert result.code == 2 and "no patient in this schedule" in result.stderr
    assert len(relay.received) == 3  # nothing was sent


def test_a_changed_sheet_is_reported_and_sent_only_when_asked(
    relay: Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = relay_config(tmp_path, relay)
    assert _batch(tmp_path, config, SCHEDULE).code == 0
    first_pdf = relay.received[0].message

    # The clinic's phone number changes: every sheet changes.
    config.write_text(config.read_text().replace("01632 960 123", "01632 960 456"))
    result = _batch(tmp_path, config, SCHEDULE)
    assert result.code == 0, result.stderr
    assert "3 patients were already emailed an earlier version: use --resend-changed to send " \
        "the new one" in result.stderr  # fmt: skip
    assert "email: 0 sent / 0 failed / 0 no address / 0 already sent / 3 earlier version" \
        in result.stdout  # fmt: skip
    assert len(relay.received) == 3
    assert {e["email_status"] for e in manifest(tmp_path / "out").values()} == {"changed"}

    result = _batch(tmp_path, config, SCHEDULE, "--resend-changed")
    assert result.code == 0, result.stderr
    assert sorted(_tos(relay)[3:]) == sorted(_tos(relay)[:3])
    assert first_pdf["Message-ID"] != relay.received[3].message["Message-ID"]
    assert "01632 960 456" in _pdf_text(relay.received[3].message)

    result = _batch(tmp_path, config, SCHEDULE, "--resend-changed")  # nothing changed since
    assert "3 already sent" in result.stdout and len(relay.received) == 6


def _pdf_text(message) -> str:  # noqa: ANN001
    import io

    from pypdf import PdfReader

    from tests.test_email import attachment

    pdf = PdfReader(io.BytesIO(attachment(message, "application/pdf")))
    return " ".join(" ".join(page.extract_text().split()) for page in pdf.pages)


def test_the_email_command_honours_the_same_record(
    relay: Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = relay_config(tmp_path, relay)
    assert _batch(tmp_path, config, SCHEDULE).code == 0
    zoe = ["--procedure", "hsg", "--date", "2026-11-21", "--time", "10:30", "--patient",
           "Zoë Nguyễn", "--dob", "1990-02-01", "--mrn", "RX-104233", "--config", config]  # fmt: skip
    result = run_discharge("email", *zoe, "--to", "ZOE@patient.example")
    assert result.code == 0, result.stderr
    assert "Not sent: these instructions were already emailed to ZOE@patient.example" in (
        result.stdout
    )
    assert "add --resend" in result.stdout
    assert len(relay.received) == 3

    result = run_discharge("email", *zoe, "--to", "ZOE@patient.example", "--resend")
    assert result.code == 0, result.stderr
    assert _tos(relay)[3:] == ["ZOE@patient.example"]

    # And what the command sent, a batch does not send again.
    result = run_discharge("email", *zoe[:-2], "--notes", "Rest today.", "--config", config,
                           "--to", "zoe.new@patient.example")  # fmt: skip
    assert result.code == 0 and len(relay.received) == 5
    moved = [line.replace("zoe@", "zoe.new@") for line in SCHEDULE]
    moved[0] += ",notes"
    moved[1] += ",Rest today."
    result = _batch(tmp_path, config, moved)
    assert result.code == 0, result.stderr
    assert "3 already sent" in result.stdout and len(relay.received) == 5


# --- a message with the server when the process dies, or when the server falls silent ------


class Holding(Recorder):
    """aiosmtpd handler that, on the first ``hold`` DATA commands, has the whole message and
    then either drops the connection or says nothing for ``seconds`` (past the client's
    timeout): the sender cannot know whether it was delivered."""

    def __init__(self, hold: int = 1, how: str = "stall", seconds: float = 4.0) -> None:
        super().__init__()
        self.hold, self.how, self.seconds = hold, how, seconds
        self.held = threading.Event()  # set when a message is being held

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
        with self.lock:
            holding = self.hold > 0
            self.hold -= holding
        if not holding:
            return await super().handle_DATA(server, session, envelope)
        with self.lock:
            self.data_commands += 1
        self.held.set()
        if self.how == "drop":
            server.transport.close()
            return "250 never heard"
        await asyncio.sleep(self.seconds)
        return "250 2.0.0 too late"


@pytest.fixture
def holding() -> Iterator[Server]:
    handler = Holding()
    controller = _start(handler)
    yield Server(controller.port, handler)
    controller.stop()


def test_a_run_killed_mid_send_is_unknown_and_never_resent_by_itself(
    holding: Server, tmp_path: Path
) -> None:
    handler = holding.handler
    assert isinstance(handler, Holding)
    handler.seconds = 30
    config, out = relay_config(tmp_path, holding), tmp_path / "out"
    schedule = write_schedule(tmp_path, SCHEDULE)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DISCHARGE_") or k in (DATA_DIR_ENV, AUDIT_ENV, CACHE_ENV)}  # fmt: skip
    batch = subprocess.Popen(
        [sys.executable, "-m", "discharge", "batch", str(schedule), "--out-dir", str(out),
         "--config", str(config), "--jobs", "1", "--email"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert handler.held.wait(60), "the batch never reached the server"
    finally:
        batch.kill()  # SIGKILL: no finally blocks, no manifest update
        batch.wait()
    assert handler.data_commands == 1 and handler.received == []

    (out / "manifest.csv").unlink(missing_ok=True)  # and the folder's own record is gone too
    result = _batch(tmp_path, config, SCHEDULE)
    assert result.code == 3
    key = manifest(out)["2"]["key"]
    assert f"row 2: email to zoe@patient.example may have been sent; rerun with --resend {key}" \
        in result.stderr  # fmt: skip
    assert sorted(_tos(holding)) == ["ann@patient.example", "bo@patient.example"]
    assert manifest(out)["2"]["email_status"] == "unknown"

    assert _batch(tmp_path, config, SCHEDULE).code == 3  # still not sent by itself
    assert len(holding.received) == 2

    result = _batch(tmp_path, config, SCHEDULE, "--resend", "RX-104233")
    assert result.code == 0, result.stderr
    assert sorted(_tos(holding)) == ["ann@patient.example", "bo@patient.example",
                                     "zoe@patient.example"]  # fmt: skip
    assert manifest(out)["2"]["email_status"] == "sent"


@pytest.mark.parametrize("how", ["drop", "stall"])
def test_the_email_command_after_an_unknown_outcome_asks_first(
    holding: Server, tmp_path: Path, how: str
) -> None:
    handler = holding.handler
    assert isinstance(handler, Holding)
    handler.how = how
    config = relay_config(tmp_path, holding).read_text().replace("timeout = 5", "timeout = 1")
    (tmp_path / "clinic.toml").write_text(config)
    zoe = ["--procedure", "hsg", "--date", "2026-11-21", "--patient", "Zoë Nguyễn",
           "--mrn", "RX-104233", "--config", tmp_path / "clinic.toml",
           "--to", "zoe@patient.example"]  # fmt: skip
    result = run_discharge("email", *zoe)
    assert result.code == 3 and "may or may not have been delivered" in result.stderr
    result = run_discharge("email", *zoe)
    assert result.code == 3
    assert "unknown outcome, the mail server may already have it" in result.stderr
    assert handler.data_commands == 1
    result = run_discharge("email", *zoe, "--resend")
    assert result.code == 0, result.stderr
    assert handler.data_commands == 2 and _tos(holding) == ["zoe@patient.example"]


# --- the web form's "Email to patient" (finding 3) ----------------------------------------


def _form_app(tmp_path: Path, server: Server, timeout: int = 5):  # noqa: ANN202
    from discharge.config import load_config
    from discharge.web import create_app

    path = relay_config(tmp_path, server)
    path.write_text(path.read_text().replace("timeout = 5", f"timeout = {timeout}"))
    app = create_app(load_config(path), overrides={"TESTING": True})
    return app, app.test_client()


def _email_form(page: str, action: str = "email") -> dict[str, str]:
    from tests.test_web import FORM, token

    send_id = re.search(r'name="send_id" value="([^"]+)"', page)
    assert send_id
    return {**FORM, "csrf_token": token(page), "send_id": send_id.group(1), "action": action,
            "email": "zoe@patient.example"}  # fmt: skip


@pytest.mark.parametrize("how", ["drop", "stall"])
def test_the_form_says_an_unconfirmed_email_may_have_gone_and_asks_first(
    holding: Server, tmp_path: Path, how: str
) -> None:
    handler = holding.handler
    assert isinstance(handler, Holding)
    handler.how, handler.seconds = how, 3
    app, client = _form_app(tmp_path, holding, timeout=1)
    try:
        form = _email_form(client.get("/").get_data(as_text=True))
        first = client.post("/", data=form)
        html = first.get_data(as_text=True)
        assert first.status_code == 502
        assert "The email to zoe@patient.example was not confirmed: the mail server may" in html
        assert "The email was not sent" not in html and "Emailed to" not in html
        assert 'value="email-again"' in html  # "Send again anyway", asked, not done
        assert handler.data_commands == 1

        # A reload, a double click: the clinic's record answers, nothing is sent.
        again = client.post("/", data=form)
        assert again.status_code == 409
        assert "the mail server may already have it — send again?" in again.get_data(as_text=True)
        # A new form for the same patient and address: the clinic's record asks first.
        fresh = client.post("/", data=_email_form(html))
        asked = fresh.get_data(as_text=True)
        assert fresh.status_code == 409
        assert "was not confirmed: the mail server may already have it — send again?" in asked
        assert "Nothing was sent now." in asked
        assert handler.data_commands == 1

        confirmed = client.post("/", data=_email_form(asked, action="email-again"))
        assert confirmed.status_code == 200, confirmed.get_data(as_text=True)
        assert "Emailed to zoe@patient.example." in confirmed.get_data(as_text=True)
        assert handler.data_commands == 2 and _tos(holding) == ["zoe@patient.example"]
    finally:
        app.extensions["discharge.jobs"].close()


def test_the_form_does_not_resend_what_the_command_line_sent(
    relay: Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = relay_config(tmp_path, relay)
    assert _batch(tmp_path, config, SCHEDULE).code == 0
    app, client = _form_app(tmp_path, relay)
    try:
        # The form's notes and clinician make another sheet than the schedule's row did.
        response = client.post("/", data=_email_form(client.get("/").get_data(as_text=True)))
        html = response.get_data(as_text=True)
        assert response.status_code == 409
        assert "An earlier version of these instructions was emailed to zoe@patient.example" in html
        assert len(relay.received) == 3
        response = client.post("/", data=_email_form(html, action="email-again"))
        html = response.get_data(as_text=True)
        assert response.status_code == 200 and len(relay.received) == 4
        new_form = _email_form(client.get("/").get_data(as_text=True))  # the same sheet again
        response = client.post("/", data=new_form)
        assert response.status_code == 409
        assert "These instructions were already emailed to zoe@patient.example on " in (
            response.get_data(as_text=True)
        )
        assert len(relay.received) == 4
    finally:
        app.extensions["discharge.jobs"].close()


def test_a_folder_emailed_before_the_clinic_kept_its_record_is_not_emailed_again(
    relay: Server,  # noqa: F811
    tmp_path: Path,
    clinic_data_dir: Path,
) -> None:
    """After an upgrade, a manifest that says "sent" holds the message back (and is taken into
    the clinic's record); it can never make a message go."""
    config, out = relay_config(tmp_path, relay), tmp_path / "out"
    assert _batch(tmp_path, config, SCHEDULE).code == 0
    (clinic_data_dir / "email-sent.sqlite3").unlink()  # as before the record existed
    result = _batch(tmp_path, config, SCHEDULE)
    assert result.code == 0, result.stderr
    assert "3 already sent" in result.stdout and len(relay.received) == 3
    (out / "manifest.csv").unlink()  # the record has it now
    assert "3 already sent" in _batch(tmp_path, config, SCHEDULE).stdout
    assert len(relay.received) == 3


def test_a_send_an_earlier_version_left_unfinished_is_unknown_after_the_upgrade(
    relay: Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Before the clinic kept its record, a batch journaled its sends in the output folder: a
    run killed mid-send left an intent with no outcome there. It is still never resent."""
    config, out = relay_config(tmp_path, relay), tmp_path / "out"
    schedule = write_schedule(tmp_path, SCHEDULE)
    assert run_discharge("batch", schedule, "--out-dir", out, "--config", config).code == 0
    row = manifest(out)["2"]
    (out / ".manifest.csv.email-journal").write_text(
        "key,sha256,email_status,email_sent_to,message_id,email_error\n"
        f"{row['key']},{row['sha256']},sending,zoe@patient.example,<maybe@riverside.example>,\n",
        encoding="utf-8",
    )
    result = _batch(tmp_path, config, SCHEDULE)
    assert result.code == 3
    assert "row 2: email to zoe@patient.example may have been sent" in result.stderr
    assert sorted(_tos(relay)) == ["ann@patient.example", "bo@patient.example"]
    assert not (out / ".manifest.csv.email-journal").exists()
    (out / "manifest.csv").unlink()
    assert _batch(tmp_path, config, SCHEDULE).code == 3 and len(relay.received) == 2
    assert _batch(tmp_path, config, SCHEDULE, "--resend", "RX-104233").code == 0
    assert _tos(relay)[2:] == ["zoe@patient.example"]
