"""Filing a sheet back into the patient's record: MDM^T02 over MLLP to a real receiver.

The receiver is python-hl7's own asyncio MLLP server on loopback (tests/mllp_receiver.py); the
sheet is a real PDF made by the program, checked after the round trip with pdftotext.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import stat
import subprocess
import threading
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from unicodedata import normalize

import hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discharge.audit import AuditLog
from discharge.config import load_config
from discharge.errors import ConfigError
from discharge.generate import make_pdf
from discharge.hl7.filing import (
    ALREADY_FILED,
    FAILED,
    FILED,
    HELD,
    JOURNAL_NAME,
    REFUSED,
    UNKNOWN,
    FilingResult,
    FilingSettings,
    Sheet,
    file_sheet,
    parse_destination,
)
from discharge.hl7.mdm import Identifier, MdmDocument, MdmHeader, PatientIdentity, build_mdm
from discharge.render_text import render_text
from discharge.request import parse_request
from tests.helpers import free_port, in_a_thread
from tests.mllp_receiver import MllpReceiver

HOSTILE_FAMILY = "O'Brien|Smith^Jr~X\\Y&Z"
HOSTILE_GIVEN = "Zoë\r\nAnn\x0bMarie\x1c"
PATIENT = PatientIdentity(
    identifiers=(Identifier("RX-104233", "HOSP", "MR"), Identifier("9434765919", "NHS", "NH")),
    family_name="Nguyễn",
    given_name="Zoë",
    birth_date=date(1990, 2, 1),
    sex="F",
    hospital_number="RX-104233",
    display_name="Zoë Nguyễn",
)
APPOINTMENT = datetime(2026, 11, 21, 10, 30)


@pytest.fixture(scope="module")
def made() -> tuple[bytes, str, bytes, str]:
    """Two versions of one real sheet (the appointment moved from 10:30 to 14:00)."""
    config = load_config()

    def make(at: str) -> tuple[bytes, str]:
        request = parse_request(
            procedure="hsg", date="2026-11-21", time=at, patient="Zoë Nguyễn",
            dob="1990-02-01", mrn="RX-104233",
        )  # fmt: skip
        document, pdf = make_pdf(request, config)
        return pdf, render_text(document).decode("utf-8")

    return (*make("10:30"), *make("14:00"))


def _sheet(made: tuple[bytes, str, bytes, str], version: int = 1, **kw: object) -> Sheet:
    pdf, text = (made[0], made[1]) if version == 1 else (made[2], made[3])
    fields: dict[str, object] = dict(
        patient=PATIENT, procedure="hsg", appointment=APPOINTMENT, key="SCH-2:APPT-77001",
        pdf=pdf, title="Discharge instructions: HSG", text=text,
    )  # fmt: skip
    fields.update(kw)
    return Sheet(**fields)  # type: ignore[arg-type]


def _settings(receiver: MllpReceiver | int, **kw: object) -> FilingSettings:
    port = receiver if isinstance(receiver, int) else receiver.port
    options: dict[str, object] = {"timeout": 5.0, "attempts": 3, "backoff": 0.05, **kw}
    return FilingSettings("127.0.0.1", port, **options)  # type: ignore[arg-type]


def _records(action: str | None = None) -> list:
    with AuditLog.open(load_config()) as log:
        return [r for r in log.query() if action is None or r.action == action]


def _file(sheet: Sheet, settings: FilingSettings, **kw: object) -> FilingResult:
    def work() -> FilingResult:
        with AuditLog.open(load_config()) as audit:
            return file_sheet(sheet, settings, audit=audit, **kw)  # type: ignore[arg-type]

    return in_a_thread(work)


# --- the message --------------------------------------------------------------------------


def test_filed_message_parses_back_with_the_patient_and_the_identical_pdf(
    made, tmp_path: Path
) -> None:
    with MllpReceiver("AA") as receiver:
        result = _file(_sheet(made), _settings(receiver))
    assert result.outcome == FILED and result.ack_code == "AA" and result.attempts == 1
    assert len(receiver.messages) == 1
    message = receiver.parsed()
    assert [str(s[0]) for s in message] == ["MSH", "EVN", "PID", "PV1", "TXA", "OBX", "OBX"]
    assert str(message["MSH.3"]) == "DISCHARGE"
    assert str(message.segment("MSH")(9)) == "MDM^T02^MDM_T02"
    assert str(message["MSH.10"]) == result.control_id and len(result.control_id) <= 20
    assert str(message["MSH.12"]) == "2.5.1"
    assert str(message["MSH.18"]) == "UNICODE UTF-8"
    assert str(message["PID.3.1.1"]) == "RX-104233"
    assert str(message["PID.3.1.4"]) == "HOSP" and str(message["PID.3.1.5"]) == "MR"
    assert str(message["PID.3.2.1"]) == "9434765919"
    assert (str(message["PID.5.1.1"]), str(message["PID.5.1.2"])) == ("Nguyễn", "Zoë")
    assert str(message["PID.7"]) == "19900201" and str(message["PID.8"]) == "F"
    assert str(message["TXA.2"]) == "DS"
    assert str(message["TXA.4"]) == "202611211030"  # the appointment
    assert str(message["TXA.12.1.1"]) == result.document_number
    assert result.document_number.endswith("-1") and not str(message["TXA.13"])
    assert str(message["TXA.17"]) == "DO" and str(message["TXA.19"]) == "AV"
    assert str(message["OBX.2"]) == "ED" and str(message["OBX.11"]) == "F"
    assert str(message["OBX.3.1.2"]) == "Discharge instructions: HSG"
    ed = [str(message[f"OBX.5.1.{i}"]) for i in range(2, 5)]
    assert ed == ["application", "pdf", "Base64"]
    pdf = base64.b64decode(str(message["OBX.5.1.5"]), validate=True)
    assert pdf == made[0]
    (tmp_path / "filed.pdf").write_bytes(pdf)
    text = subprocess.run(
        ["pdftotext", tmp_path / "filed.pdf", "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Zoë Nguyễn" in text and "RX-104233" in text
    assert "21 November 2026" in text and "10:30" in text
    # The text rendering, as FT with its line breaks, reads back as it was made
    assert str(message["OBX2.2"]) == "FT"
    assert str(message["OBX2.5"]).replace("\r", "\n") == made[1].rstrip("\n")
    # And the audit log says so, with no patient value in its detail
    (record,) = _records()
    assert record.action == "filed" and record.mrn == "RX-104233"
    assert record.patient_name == "Zoë Nguyễn" and record.channel == "hl7"
    assert record.message_id == result.control_id
    detail = json.loads(record.detail)
    assert detail["to"] == f"127.0.0.1:{receiver.port}"
    assert detail["document"] == result.document_number and detail["ack"] == "AA"


def test_hostile_patient_values_are_escaped_never_structure(made) -> None:
    patient = replace(
        PATIENT,
        identifiers=(Identifier("A|1^2~3\\4&5", "HO|SP", "MR"),),
        family_name=HOSTILE_FAMILY,
        given_name=HOSTILE_GIVEN,
    )
    text = "Line one | with ^ all ~ the \\ delimiters &\nMSH|^~\\&|EVIL\r\nOBX|9|TX\n\nend"
    with MllpReceiver("AA") as receiver:
        result = _file(_sheet(made, patient=patient, text=text, title="A|B^C"), _settings(receiver))
    assert result.outcome == FILED
    raw = receiver.messages[0]
    assert raw.count("\r") == 7 and "\n" not in raw and "\x0b" not in raw and "\x1c" not in raw
    message = receiver.parsed()
    assert [str(s[0]) for s in message] == ["MSH", "EVN", "PID", "PV1", "TXA", "OBX", "OBX"]
    assert len(message.segment("PID")) == 9  # PID-0 (its name) to PID-8: nothing added
    assert str(message["PID.5.1.1"]) == HOSTILE_FAMILY
    assert str(message["PID.5.1.2"]) == "Zoë Ann Marie"  # line breaks a space, framing bytes out
    assert str(message["PID.3.1.1"]) == "A|1^2~3\\4&5" and str(message["PID.3.1.4"]) == "HO|SP"
    assert str(message["OBX.3.1.2"]) == "A|B^C"
    assert str(message["OBX2.5"]).split("\r") == [
        "Line one | with ^ all ~ the \\ delimiters &", "MSH|^~\\&|EVIL", "OBX|9|TX", "", "end",
    ]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    family=st.text(max_size=40),
    given_name=st.text(max_size=20),
    mrn=st.text(min_size=1, max_size=20),
)
def test_any_patient_value_keeps_the_structure_and_printable_ones_read_back(
    family: str, given_name: str, mrn: str
) -> None:
    patient = PatientIdentity(
        (Identifier(mrn, "HOSP", "MR"),), family, given_name, hospital_number=mrn,
        display_name=f"{given_name} {family}",
    )  # fmt: skip
    document = MdmDocument("doc-1", date(2026, 11, 21), family, b"%PDF-1.4", text=family)
    raw = build_mdm(patient, document, MdmHeader("CTRL"))
    lines = raw.split("\r")
    assert [line[:3] for line in lines] == ["MSH", "EVN", "PID", "PV1", "TXA", "OBX", "OBX", ""]
    pid = lines[2].split("|")
    assert len(pid) <= 9 and len(lines[4].split("|")) == 20 and len(lines[6].split("|")) == 12
    pid += [""] * (9 - len(pid))  # empty fields at the end are left off
    ids, name = pid[3].split("^"), pid[5].split("^")
    assert ids[1:] == ["", "", "HOSP", "MR"] and len(name) <= 2
    assert not any(c in pid[3] + pid[5] for c in "~&\n\x0b\x1c")
    message = hl7.parse(raw)
    for value, part in (
        (family, name[0]),
        (given_name, name[-1] if len(name) > 1 else ""),
        (mrn, ids[0]),
    ):
        if value.isprintable() and value == value.strip() and value == normalize("NFC", value):
            assert message.unescape(part) == value


# --- once only, versions ------------------------------------------------------------------


def test_the_same_sheet_filed_twice_sends_one_message(made, clinic_data_dir: Path) -> None:
    with MllpReceiver("AA") as receiver:
        first = _file(_sheet(made), _settings(receiver))
        second = _file(_sheet(made), _settings(receiver))
    assert (first.outcome, second.outcome) == (FILED, ALREADY_FILED)
    assert second.document_number == first.document_number and second.attempts == 0
    assert len(receiver.messages) == 1
    assert [r.action for r in _records()] == ["filed"]
    journal = clinic_data_dir / JOURNAL_NAME
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    stored = journal.read_bytes()
    for value in ("RX-104233", "Nguy", "SCH-2", "APPT-77001", "1990"):
        assert value.encode() not in stored


def test_a_remade_sheet_is_filed_again_as_the_next_version(made) -> None:
    with MllpReceiver("AA") as receiver:
        first = _file(_sheet(made, version=1), _settings(receiver))
        later = datetime(2026, 11, 21, 14, 0)
        second = _file(_sheet(made, version=2, appointment=later), _settings(receiver))
        again = _file(_sheet(made, version=2, appointment=later), _settings(receiver))
    assert (first.outcome, second.outcome, again.outcome) == (FILED, FILED, ALREADY_FILED)
    assert len(receiver.messages) == 2
    v1, v2 = receiver.parsed(0), receiver.parsed(1)
    base = first.document_number.removesuffix("-1")
    assert str(v2["TXA.12.1.1"]) == second.document_number == f"{base}-2"
    assert str(v2["TXA.13.1.1"]) == first.document_number  # the version it replaces
    assert str(v2["TXA.4"]) == "202611211400"
    assert str(v1["MSH.10"]) != str(v2["MSH.10"])
    assert base64.b64decode(str(v2["OBX.5.1.5"])) == made[2]
    assert [r.action for r in _records()] == ["filed", "filed"]


# --- the receiver's answers ---------------------------------------------------------------


def test_a_refusal_is_recorded_without_patient_values_and_filed_on_the_next_call(made) -> None:
    said = "unknown patient Zoë NGUYỄN RX-104233 born 19900201"
    with MllpReceiver("AE", error_text=said) as receiver:
        refused = _file(_sheet(made), _settings(receiver))
        receiver.answer = "AA"
        filed = _file(_sheet(made), _settings(receiver))
    assert refused.outcome == REFUSED and refused.ack_code == "AE" and refused.attempts == 1
    assert "AE" in refused.reason and "PID-5" in refused.reason and "103" in refused.reason
    for value in ("Zoë", "NGUY", "RX-104233", "19900201"):
        assert value.casefold() not in refused.reason.casefold()
    assert filed.outcome == FILED and len(receiver.messages) == 2
    # A refused message id is not reused: the receiver may keep its answer to it
    assert str(receiver.parsed(0)["MSH.10"]) != str(receiver.parsed(1)["MSH.10"])
    failed, done = _records()
    assert (failed.action, done.action) == ("file-failed", "filed")
    detail = json.loads(failed.detail)
    assert detail["outcome"] == "refused" and detail["ack"] == "AE"
    for value in ("Zoë", "Nguy", "RX-104233", "19900201"):
        assert value.casefold() not in failed.detail.casefold()


def test_a_v23_rejection_names_its_segment_field_and_code(made) -> None:
    with MllpReceiver("AR", err="ERR|PID^1^3^204&Unknown key identifier") as receiver:
        result = _file(_sheet(made), _settings(receiver))
    assert result.outcome == REFUSED and result.ack_code == "AR" and result.attempts == 1
    assert result.reason.endswith("refused it (AR): at PID-3; 204 Unknown key identifier")
    assert [r.action for r in _records()] == ["file-failed"]


@pytest.mark.parametrize("answer", ["stall", "drop"])
def test_no_answer_is_unknown_and_never_sent_again_unasked(made, answer: str) -> None:
    with MllpReceiver(answer) as receiver:
        unknown = _file(_sheet(made), _settings(receiver, timeout=0.5, attempts=2))
        sent = len(receiver.messages)
        receiver.answer = "AA"
        held = _file(_sheet(made), _settings(receiver))
        held_count = len(receiver.messages)
        resent = _file(_sheet(made), _settings(receiver), resend_unknown=True)
    assert unknown.outcome == UNKNOWN and unknown.attempts == 2 and sent == 2
    assert "no acknowledgement" in unknown.reason
    # Within the call, the retry was the same message: a receiver can drop the copy
    assert receiver.messages[0] == receiver.messages[1]
    assert held.outcome == HELD and held_count == 2
    assert resent.outcome == FILED and len(receiver.messages) == 3
    assert str(receiver.parsed(2)["MSH.10"]) == unknown.control_id  # the same message again
    assert [r.action for r in _records()] == ["file-unknown", "filed"]


def test_a_receiver_that_starts_late_is_retried_until_it_answers(made) -> None:
    port = free_port()
    receiver = MllpReceiver("AA", port=port)
    starter = threading.Timer(0.6, receiver.start)
    starter.start()
    try:
        result = _file(_sheet(made), _settings(port, attempts=6, backoff=0.2))
    finally:
        starter.join()
        receiver.stop()
    assert result.outcome == FILED and result.attempts > 1
    assert len(receiver.messages) == 1
    assert [r.action for r in _records()] == ["filed"]


def test_nobody_listening_is_failed_and_tried_again_by_the_next_call(made) -> None:
    port = free_port()
    failed = _file(_sheet(made), _settings(port, attempts=2))
    assert failed.outcome == FAILED and failed.attempts == 2
    assert "cannot connect" in failed.reason
    with MllpReceiver("AA", port=port) as receiver:
        filed = _file(_sheet(made), _settings(receiver))
    assert filed.outcome == FILED and len(receiver.messages) == 1
    assert filed.control_id == failed.control_id  # it never arrived: the same message
    assert [r.action for r in _records()] == ["file-failed", "filed"]
    assert json.loads(_records()[0].detail)["outcome"] == "failed"


def test_the_journal_is_checked_before_anything_is_sent(made, clinic_data_dir: Path) -> None:
    """An intent with no outcome (the process died while sending) holds the sheet."""
    with MllpReceiver("AA") as receiver:
        _file(_sheet(made, key="SCH-2:other"), _settings(receiver))
        with sqlite3.connect(clinic_data_dir / JOURNAL_NAME) as db:
            db.execute("UPDATE filings SET state = 'filing', filed = '', filed_state = ''")
        held = _file(_sheet(made, key="SCH-2:other"), _settings(receiver))
    assert held.outcome == HELD and len(receiver.messages) == 1


def test_the_listeners_handouts_file_in_their_own_thread_and_report_each_outcome(
    made, tmp_path: Path
) -> None:
    """``discharge listen`` hands its sheets to this thread after acknowledging the booking:
    submitting never waits for the record system, and each outcome is reported."""
    from discharge.audit import describe_pdf
    from discharge.document import build_document
    from discharge.hl7.handouts import Handouts, Made

    config = load_config()
    request = parse_request(procedure="hsg", date="2026-11-21", time="10:30",
                            patient="Zoë Nguyễn", dob="1990-02-01", mrn="RX-104233")  # fmt: skip
    pdf = made[0]
    (tmp_path / "sheet.pdf").write_bytes(pdf)
    with AuditLog.open(config) as audit:  # as the listener records a sheet it made
        audit.record(describe_pdf(request, build_document(request, config), pdf, channel="hl7"))
    sha = hashlib.sha256(pdf).hexdigest()

    def sheet(row: int, key: str) -> Made:
        return Made(row, "sheet.pdf", sha, request, "", key, PATIENT, APPOINTMENT)

    reported: list[str] = []
    with MllpReceiver("stall") as receiver:
        handouts = Handouts(config, tmp_path, report=reported.append,
                            filing=_settings(receiver, timeout=0.3, attempts=1))  # fmt: skip
        for row, key in ((1, "APPT-1"), (2, "APPT-2")):
            handouts.submit(sheet(row, key))
        assert len(reported) < 2  # submit does not wait for the record system
        handouts.wait()
        receiver.answer = "AA"
        handouts.submit(sheet(3, "APPT-3"))
        handouts.submit(sheet(3, "APPT-3"))
        handouts.close()
    assert reported == [
        "row 1: not filed: unknown (see the audit log)",
        "row 2: not filed: unknown (see the audit log)",
        "row 3: filed",
        "row 3: already filed",
    ]
    assert len(receiver.messages) == 3
    assert [r.action for r in _records() if r.action != "made"] == [
        "file-unknown", "file-unknown", "filed",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("engine:2576", ("engine", 2576)),
        ("[::1]:2575", ("::1", 2575)),
        (" 10.0.0.5:1 ", ("10.0.0.5", 1)),
    ],
)
def test_destination_reads_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_destination(text) == expected


@pytest.mark.parametrize("text", ["engine", "engine:", ":2575", "engine:port", "engine:70000", ""])
def test_a_bad_destination_is_one_line_naming_the_setting(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^hl7.file_to must be host:port"):
        parse_destination(text)


def test_filing_is_the_file_channel_of_the_delivery_seam(made) -> None:
    """deliver(handout, pdf, FileChannel(...)) files the very PDF handed out, recorded under
    the channel's own action names, with the front end that handed it out."""
    from discharge.channels import Handout, deliver, registered
    from discharge.hl7.filing import FileChannel

    assert registered()["file"] == FileChannel.actions
    assert tuple(FileChannel.actions) == ("filed", "file-failed", "file-unknown")
    sheet = _sheet(made, pdf=b"")  # the channel files the PDF it is given
    with MllpReceiver("AA") as receiver:

        def work() -> FilingResult:
            with AuditLog.open(load_config()) as audit:
                handout = Handout((), front_end="hl7")
                return deliver(handout, made[0], FileChannel(_settings(receiver), sheet),
                               audit=audit)  # fmt: skip

        result = in_a_thread(work)
    assert result.outcome == FILED
    ed = receiver.parsed().segments("OBX")[0](5)
    assert base64.b64decode(str(ed).split("^")[-1]) == made[0]
    (record,) = _records(FILED)
    assert record.channel == "hl7" and record.mrn == "RX-104233"
