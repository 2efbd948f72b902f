"""The audit log (issue 13): real commands, a real SQLite file, tampered with by hand.

Every test has its own log (conftest's autouse ``audit_db`` fixture sets DISCHARGE_AUDIT_DB).
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import io
import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader

from discharge.audit import AuditLog, AuditRecord, audit_settings, count_pages
from discharge.config import Config, parse_config
from discharge.guidance.loading import load_procedure
from tests.helpers import PATIENT, audit_rows, run_discharge
from tests.test_email import (  # noqa: F401  (relay is a fixture)
    PATIENT_ADDRESS,
    SCHEDULE,
    Server,
    attachment,
    relay,
    relay_config,
)

HSG = ["--procedure", "hsg", "--date", "2026-11-21", "--time", "10:30"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def log(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "discharge", "log", *map(str, args)],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "DISCHARGE_CONFIG"},
    )  # fmt: skip


def write_schedule(path: Path, rows: int, *, start: int = 0) -> Path:
    lines = ["patient_name,procedure,date,mrn,clinician"]
    for i in range(start, start + rows):
        procedure = "hsg" if i % 2 else "miscarriage"
        lines.append(f"Patient {i},{procedure},2026-11-21,MRN-{i},Dr Who")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fill(db: Path, count: int) -> None:
    """A few records written through the library (quicker than rendering PDFs)."""
    config = Config()
    with AuditLog.open(config) as audit:
        assert audit.path == db
        for i in range(count):
            audit.record(AuditRecord("made", procedure="hsg", mrn=f"M{i}", patient_name=f"P {i}"))


# --- what the commands record -------------------------------------------------------------


def test_generate_records_the_pdf_it_wrote(audit_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.pdf"
    before = datetime.now(UTC)
    result = run_discharge("generate", *HSG, *PATIENT, "--clinician", "Dr Amara Okafor",
                           "--output", out)  # fmt: skip
    assert result.code == 0, result.stderr

    (record,) = audit_rows(audit_db)
    assert record["action"] == "made"
    assert record["channel"] == "cli"
    assert record["procedure"] == record["template_id"] == "hsg"
    assert record["template_version"] == load_procedure("hsg").version
    assert record["language"] == "en_GB"
    assert record["variant"] == "fertility"  # the default variant of the HSG template
    assert record["pdf_sha256"] == sha256(out)  # the exact bytes written
    assert record["pages"] == len(PdfReader(out).pages)
    assert (record["patient_name"], record["mrn"]) == ("Zoë Nguyễn", "RX-104233")
    assert record["clinician"] == "Dr Amara Okafor"
    assert record["operator"] == getpass.getuser()
    assert record["workstation"] == socket.gethostname()
    made = datetime.fromisoformat(str(record["time_utc"]))
    assert before - timedelta(seconds=1) <= made <= datetime.now(UTC)
    local = datetime.fromisoformat(str(record["time_local"]))
    assert local.utcoffset() is not None and abs(local - made) < timedelta(seconds=1)
    assert record["batch_file"] == "" and record["email_address"] == ""


def test_the_log_is_private(audit_db: Path, tmp_path: Path) -> None:
    result = run_discharge("generate", *HSG, *PATIENT, "--output", tmp_path / "out.pdf")
    assert result.code == 0, result.stderr
    assert stat.S_IMODE(audit_db.stat().st_mode) == 0o600
    assert stat.S_IMODE(audit_db.parent.stat().st_mode) == 0o700
    for sidecar in audit_db.parent.glob("*-*"):  # -wal, -shm while a connection is open
        assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
    assert sqlite3.connect(audit_db).execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_batch_records_each_made_row_once(audit_db: Path, tmp_path: Path) -> None:
    schedule = write_schedule(tmp_path / "day.csv", 5)
    with schedule.open("a", encoding="utf-8") as handle:
        handle.write("Bad Row,hsg,2026-02-30,MRN-X,\n")  # no PDF, so no record
    out = tmp_path / "out"
    result = run_discharge("batch", schedule, "--out-dir", out, "--jobs", "2")
    assert result.code == 1, result.stderr  # the bad row

    with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as handle:
        manifest = {int(r["row"]): r for r in csv.DictReader(handle)}
    made = audit_rows(audit_db)
    assert [r["batch_row"] for r in made] == [2, 3, 4, 5, 6]
    for record in made:
        entry = manifest[int(str(record["batch_row"]))]
        assert record["action"] == "made" and record["channel"] == "batch"
        assert record["batch_file"] == str(schedule.resolve())
        assert record["pdf_sha256"] == entry["sha256"] == sha256(out / entry["file"])
        assert record["mrn"] == f"MRN-{int(str(record['batch_row'])) - 2}"
        assert record["clinician"] == "Dr Who"
        assert record["pages"] == len(PdfReader(out / entry["file"]).pages)
        assert record["template_version"] == load_procedure(str(record["procedure"])).version

    # A rerun makes nothing new, so it records nothing; --force makes (and records) them again.
    assert run_discharge("batch", schedule, "--out-dir", out).code == 1
    assert len(audit_rows(audit_db)) == 5
    assert run_discharge("batch", schedule, "--out-dir", out, "--force").code == 1
    assert len(audit_rows(audit_db)) == 10
    assert log("--verify").returncode == 0


def test_email_records_the_copy_and_the_send(
    relay: Server,  # noqa: F811
    audit_db: Path,
    tmp_path: Path,
) -> None:
    config, copy = relay_config(tmp_path, relay), tmp_path / "copy.pdf"
    result = run_discharge("email", *HSG, *PATIENT, "--to", PATIENT_ADDRESS, "--config", config,
                           "--output", copy)  # fmt: skip
    assert result.code == 0, result.stderr
    made, emailed = audit_rows(audit_db)
    assert made["action"] == "made" and made["pdf_sha256"] == sha256(copy)
    (got,) = relay.received
    assert emailed["action"] == "emailed"
    assert emailed["email_address"] == PATIENT_ADDRESS
    assert emailed["message_id"] == got.message["Message-ID"]
    sent = attachment(got.message, "application/pdf")
    assert emailed["pdf_sha256"] == hashlib.sha256(sent).hexdigest()
    assert emailed["mrn"] == "RX-104233"
    assert emailed["pages"] == count_pages(sent) == len(PdfReader(io.BytesIO(sent)).pages)

    relay.handler.reject["gone@patient.example"] = "550 5.1.1 No such user"
    result = run_discharge("email", *HSG, *PATIENT, "--to", "gone@patient.example",
                           "--config", config)  # fmt: skip
    assert result.code == 3
    failed = audit_rows(audit_db)[-1]
    assert failed["action"] == "email-failed"
    assert failed["email_address"] == "gone@patient.example"


def test_batch_email_records_each_send(
    relay: Server,  # noqa: F811
    audit_db: Path,
    tmp_path: Path,
) -> None:
    relay.handler.reject["gone@patient.example"] = "550 5.1.1 No such user"
    schedule = tmp_path / "schedule.csv"
    schedule.write_text("\n".join(SCHEDULE) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = run_discharge("batch", schedule, "--out-dir", out, "--config",
                           relay_config(tmp_path, relay), "--jobs", "1", "--email")  # fmt: skip
    assert result.code == 3, result.stderr
    by_action: dict[str, list[dict[str, object]]] = {}
    for record in audit_rows(audit_db):
        by_action.setdefault(str(record["action"]), []).append(record)
    assert [r["batch_row"] for r in by_action["made"]] == [2, 3, 4]
    (emailed,) = by_action["emailed"]
    (failed,) = by_action["email-failed"]
    (got,) = relay.received
    assert emailed["batch_row"] == 2 and emailed["email_address"] == PATIENT_ADDRESS
    assert emailed["message_id"] == got.message["Message-ID"]
    assert emailed["batch_file"] == str(schedule.resolve())
    sent = attachment(got.message, "application/pdf")
    assert emailed["pdf_sha256"] == hashlib.sha256(sent).hexdigest()
    assert failed["batch_row"] == 3 and failed["email_address"] == "gone@patient.example"
    assert log("--verify").returncode == 0


# --- an audit record that cannot be written stops the document ------------------------------


def refuse_inserts(db: Path) -> None:
    fill(db, 1)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON records BEGIN SELECT RAISE(ABORT, 'no'); END"
        )


def test_generate_keeps_no_pdf_it_could_not_record(audit_db: Path, tmp_path: Path) -> None:
    refuse_inserts(audit_db)
    out = tmp_path / "out.pdf"
    result = run_discharge("generate", *HSG, *PATIENT, "--output", out)
    assert result.code == 4
    assert "cannot write the audit log" in result.stderr and "not kept" in result.stderr
    assert "Zoë" not in result.stderr and "RX-104233" not in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_an_unusable_log_location_stops_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = tmp_path / "out.pdf"
    result = run_discharge("generate", *HSG, *PATIENT, "--output", out,
                           env={"DISCHARGE_AUDIT_DB": str(blocker / "audit.sqlite3")})  # fmt: skip
    assert result.code == 4, result.stderr
    assert result.stderr.startswith("discharge: error: cannot create the audit log")
    assert not out.exists()


def test_batch_rows_not_recorded_are_not_kept(audit_db: Path, tmp_path: Path) -> None:
    refuse_inserts(audit_db)
    out = tmp_path / "out"
    schedule = write_schedule(tmp_path / "day.csv", 3)
    result = run_discharge("batch", schedule, "--out-dir", out, "--jobs", "2")
    assert result.code == 4, result.stderr
    assert "cannot write the audit log" in result.stderr
    assert list(out.glob("*.pdf")) == []
    with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as handle:
        assert {r["status"] for r in csv.DictReader(handle)} <= {"error"}

    with sqlite3.connect(audit_db) as conn:
        conn.execute("DROP TRIGGER refuse")
    result = run_discharge("batch", schedule, "--out-dir", out)  # a rerun makes them now
    assert result.code == 0, result.stderr
    assert len(list(out.glob("*.pdf"))) == 3
    assert len(audit_rows(audit_db)) == 1 + 3


def test_audit_settings_in_the_clinic_file(audit_db: Path, tmp_path: Path) -> None:
    clinic = ('[clinic]\nname = "Northgate"\nphone = "0113 496 0000"\n'
              'emergency_number = "999"\n')  # fmt: skip
    config = tmp_path / "clinic.toml"
    config.write_text(clinic + '[audit]\npath = "logs/clinic-audit.db"\n', encoding="utf-8")
    result = run_discharge("generate", *HSG, *PATIENT, "--config", config,
                           "--output", tmp_path / "a.pdf")  # fmt: skip
    assert result.code == 0, result.stderr
    assert len(audit_rows(tmp_path / "logs" / "clinic-audit.db")) == 1  # beside the settings file
    assert not audit_db.exists()

    config.write_text(clinic + "[audit]\nenabled = false\n", encoding="utf-8")
    result = run_discharge("generate", *HSG, *PATIENT, "--config", config,
                           "--output", tmp_path / "b.pdf")  # fmt: skip
    assert result.code == 0, result.stderr
    assert not audit_db.exists()
    result = run_discharge("log", "--config", config)
    assert result.code == 2 and "turned off" in result.stderr

    config.write_text(clinic + '[audit]\nenabled = "no"\nfolder = "x"\n', encoding="utf-8")
    result = run_discharge("generate", *HSG, *PATIENT, "--config", config,
                           "--output", tmp_path / "c.pdf")  # fmt: skip
    assert result.code == 2
    assert "[audit] folder: is not a known setting" in result.stderr
    assert "[audit] enabled: must be true or false" in result.stderr


def test_default_location_is_the_users_data_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    from platformdirs import user_data_dir

    monkeypatch.delenv("DISCHARGE_AUDIT_DB")
    settings = audit_settings(parse_config({}))
    assert settings.path == Path(user_data_dir("discharge")) / "audit.sqlite3"
    assert settings.enabled


# --- tamper evidence ----------------------------------------------------------------------


def test_verify_passes_on_an_untouched_log(audit_db: Path) -> None:
    fill(audit_db, 4)
    result = log("--verify")
    assert result.returncode == 0, result.stderr
    assert "intact, 4 records (#1 to #4)" in result.stdout
    assert f"last hash: {audit_rows(audit_db)[-1]['hash']}" in result.stdout


def test_verify_finds_an_edited_record(audit_db: Path) -> None:
    fill(audit_db, 4)
    with sqlite3.connect(audit_db) as conn:
        conn.execute("UPDATE records SET patient_name = 'Someone Else' WHERE id = 2")
    result = log("--verify")
    assert result.returncode == 1
    assert "record #2 was changed" in result.stderr


def test_verify_finds_an_edit_whose_hash_was_recomputed(audit_db: Path) -> None:
    from discharge.audit import content_hash

    fill(audit_db, 4)
    (row,) = [r for r in audit_rows(audit_db) if r["id"] == 2]
    forged = AuditRecord(**{**row, "mrn": "FORGED"})  # type: ignore[arg-type]
    with sqlite3.connect(audit_db) as conn:
        conn.execute("UPDATE records SET mrn = 'FORGED', hash = ? WHERE id = 2",
                     (content_hash(forged),))  # fmt: skip
    result = log("--verify")
    assert result.returncode == 1
    assert "record #3 does not follow" in result.stderr


def test_verify_finds_a_deleted_record(audit_db: Path) -> None:
    fill(audit_db, 4)
    with sqlite3.connect(audit_db) as conn:
        conn.execute("DELETE FROM records WHERE id = 3")
    result = log("--verify")
    assert result.returncode == 1
    assert "record #3 is missing (deleted)" in result.stderr


def test_verify_finds_an_inserted_record(audit_db: Path) -> None:
    fill(audit_db, 4)
    with sqlite3.connect(audit_db) as conn:
        # A copy of a genuine record (its hash is right for its own content), added at the end.
        columns = [c for c in audit_rows(audit_db)[0] if c != "id"]
        conn.execute(f"INSERT INTO records (id, {', '.join(columns)}) "
                     f"SELECT 5, {', '.join(columns)} FROM records WHERE id = 2")  # fmt: skip
    result = log("--verify")
    assert result.returncode == 1
    assert "record #5 was changed" in result.stderr  # its id is part of what the hash covers

    with sqlite3.connect(audit_db) as conn:  # a well-formed record, but outside the chain
        from discharge.audit import content_hash

        conn.execute("DELETE FROM records WHERE id = 5")
        fake = AuditRecord("made", id=5, prev_hash="f" * 64, time_utc="2026-01-01T00:00:00")
        conn.execute(
            f"INSERT INTO records ({', '.join(fake.as_dict())}) VALUES "
            f"({', '.join('?' * len(fake.as_dict()))})",
            [*list(fake.as_dict().values())[:-1], content_hash(fake)],
        )
    result = log("--verify")
    assert result.returncode == 1
    assert "record #5 does not follow the record before it: it was inserted" in result.stderr


def test_verify_without_a_log(tmp_path: Path) -> None:
    result = log("--verify")
    assert result.returncode == 1
    assert "no audit log at" in result.stderr


# --- many writers -------------------------------------------------------------------------


def test_two_batches_at_once_lose_nothing(audit_db: Path, tmp_path: Path) -> None:
    rows = 40
    env = {k: v for k, v in os.environ.items() if k != "DISCHARGE_CONFIG"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "discharge",
                "batch",
                write_schedule(tmp_path / f"s{n}.csv", rows, start=n * 1000),
                "--out-dir",
                tmp_path / f"out{n}",
                "--jobs",
                "2",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for n in range(2)
    ]
    # And a third writer, in this process, appending one record at a time meanwhile.
    with AuditLog.open(Config()) as audit:
        for i in range(20):
            audit.record(AuditRecord("made", procedure="hsg", mrn=f"WEB-{i}", channel="web"))
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "locked" not in err

    made = audit_rows(audit_db)
    assert len(made) == 2 * rows + 20
    assert [r["id"] for r in made] == list(range(1, len(made) + 1))
    mrns = {r["mrn"] for r in made}
    assert {f"MRN-{i}" for i in range(rows)} | {f"MRN-{1000 + i}" for i in range(rows)} <= mrns
    assert log("--verify").returncode == 0


# --- retention ----------------------------------------------------------------------------


def test_prune_keeps_the_chain_verifiable(audit_db: Path, tmp_path: Path) -> None:
    fill(audit_db, 3)
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    result = log("--prune-before", tomorrow)
    assert result.returncode == 0, result.stderr
    assert "removed 3 records" in result.stdout
    (pruned,) = audit_rows(audit_db)
    assert pruned["action"] == "pruned" and pruned["id"] == 4
    assert json.loads(str(pruned["detail"]))["removed"] == 3
    assert log("--verify").returncode == 0

    fill(audit_db, 2)  # the chain goes on from there
    result = log("--verify")
    assert result.returncode == 0, result.stderr
    assert "intact, 3 records (#4 to #6)" in result.stdout
    assert log("--prune-before", "2000-01-01").stdout.startswith("no records made before")


def test_records_removed_by_hand_are_not_a_prune(audit_db: Path) -> None:
    fill(audit_db, 4)
    with sqlite3.connect(audit_db) as conn:
        (anchor,) = conn.execute("SELECT hash FROM records WHERE id = 2").fetchone()
        conn.execute("DELETE FROM records WHERE id <= 2")
        conn.execute("INSERT INTO checkpoints VALUES (3, ?, '2026-01-01')", (anchor,))
    result = log("--verify")
    assert result.returncode == 1
    assert "records before #3 were removed without a 'pruned' record" in result.stderr
    result = log("--prune-before", (date.today() + timedelta(days=2)).isoformat())
    assert result.returncode == 4 and "nothing pruned" in result.stderr


# --- reading it -----------------------------------------------------------------------------


def test_log_exports_csv_and_json(audit_db: Path) -> None:
    with AuditLog.open(Config()) as audit:
        audit.record(AuditRecord("made", procedure="hsg", mrn="A1", patient_name="=HYPERLINK(1)"))
        audit.record(AuditRecord("made", procedure="miscarriage", mrn="B2", patient_name="Bo"))

    result = log("--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["mrn"] for r in rows] == ["A1", "B2"]
    assert rows[0]["patient_name"] == "'=HYPERLINK(1)"  # formula-safe

    result = log("--format", "json", "--procedure", "miscarriage")
    (only,) = json.loads(result.stdout)
    assert only["patient_name"] == "Bo" and only["id"] == 2

    assert json.loads(log("--format", "json", "--mrn", "A1").stdout)[0]["id"] == 1
    later = (date.today() + timedelta(days=2)).isoformat()
    assert json.loads(log("--format", "json", "--since", later).stdout) == []
    assert len(json.loads(log("--format", "json", "--until", later).stdout)) == 2

    table = log().stdout.splitlines()
    assert table[0].split()[:3] == ["#", "time", "action"]
    assert "=HYPERLINK(1)" in table[1] and len(table) == 3

    result = log("--since", "yesterday")
    assert result.returncode == 2 and "--since" in result.stderr


def test_show_pdf_hash_finds_the_record(audit_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.pdf"
    assert run_discharge("generate", *HSG, *PATIENT, "--output", out).code == 0
    result = log("--show-pdf-hash", out, "--format", "json")
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)
    assert record["pdf_sha256"] == sha256(out) and record["mrn"] == "RX-104233"

    other = tmp_path / "other.pdf"
    other.write_bytes(out.read_bytes() + b"\n")
    result = log("--show-pdf-hash", other)
    assert result.returncode == 1
    assert "no record of" in result.stderr

    result = log("--show-pdf-hash", out, "--verify")
    assert result.returncode == 2


def test_email_to_a_file_records_the_message(audit_db: Path, tmp_path: Path) -> None:
    eml = tmp_path / "message.eml"
    result = run_discharge("email", *HSG, *PATIENT, "--to", PATIENT_ADDRESS, "--eml", eml)
    assert result.code == 0, result.stderr
    (record,) = audit_rows(audit_db)
    from email import policy
    from email.parser import BytesParser

    message = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    assert record["action"] == "made"  # written, not sent
    assert record["message_id"] == message["Message-ID"]
    assert record["email_address"] == PATIENT_ADDRESS
    sent = attachment(message, "application/pdf")  # type: ignore[arg-type]
    assert record["pdf_sha256"] == hashlib.sha256(sent).hexdigest()


def test_a_send_that_stops_is_recorded_as_failed_or_unknown(audit_db: Path) -> None:
    from discharge.channels import Recorder
    from discharge.channels.email import EmailChannel
    from discharge.errors import DeliveryError

    entry = [AuditRecord("made", procedure="hsg", email_address="a@b.example", message_id="<1@x>")]
    with AuditLog.open(Config()) as audit:
        recorder = Recorder(audit, EmailChannel.actions)
        with pytest.raises(DeliveryError), recorder.attempt(entry):
            raise DeliveryError("refused")
        with pytest.raises(KeyboardInterrupt), recorder.attempt(entry):
            raise KeyboardInterrupt  # it may or may not have gone
        with pytest.raises(TimeoutError), recorder.attempt(entry, unknown=(TimeoutError,)):
            raise TimeoutError  # e.g. no answer after the whole message went
        with recorder.attempt(entry):
            pass
        recorder.done(entry, said="the email was sent")
    assert [r["action"] for r in audit_rows(audit_db)] == [
        "email-failed",
        "email-unknown",
        "email-unknown",
        "emailed",
    ]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_interrupted_batch_keeps_only_recorded_pdfs(
    audit_db: Path, tmp_path: Path, jobs: str
) -> None:
    import signal
    import time

    schedule = write_schedule(tmp_path / "day.csv", 200)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "DISCHARGE_CONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "discharge", "batch", schedule, "--out-dir", out, "--jobs", jobs],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(list(out.glob("*.pdf"))) < 5 and proc.poll() is None:
        assert time.monotonic() < deadline, "no PDFs appeared"
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err

    recorded = {str(r["pdf_sha256"]) for r in audit_rows(audit_db)}
    left = list(out.glob("*.pdf"))
    assert left, "the run was stopped before any row was recorded"
    for pdf in left:  # every PDF kept is in the audit log
        assert sha256(pdf) in recorded, pdf.name
    assert log("--verify").returncode == 0
