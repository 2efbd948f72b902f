"""`discharge listen`: real SIU messages over MLLP on loopback, sent with python-hl7's own
client to the listener running as a real subprocess; the PDFs' text (pdftotext), the
acknowledgements, the audit log and the manifest checked."""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from hl7.mllp import open_hl7_connection

from tests.helpers import AUDIT_ENV, CACHE_ENV, DATA_DIR_ENV, in_a_thread, run_discharge

SETTINGS = """
[hl7]
patient_id_type = "MR"

[hl7.procedures]
"HSG" = "hsg"
"MISC-MED" = "miscarriage:medical"
"""


def siu(
    event: str = "S12",
    control: str = "C1",
    *,
    appointment: str = "A1",
    version: str = "2.5.1",
    charset: str = "UNICODE UTF-8",
    family: str = "Nguyễn",
    given: str = "Zoë",
    mrn: str = "RX-104233",
    dob: str = "19900201",
    start: str = "202612070930",
    timing: str = "sch",  # where the start is: sch (SCH-11.4), tq1 (TQ1-7) or ais (AIS-4)
    reason: str = "HSG",
    service: str = "",
    clinician: str = "4711^Okafor^Amara^^^Dr",
    email: str = "zoe@example.org",
    language: str = "",
    end: str = "\r",
    kind: str = "SIU",
) -> str:
    """An SIU message as a scheduling system sends it (an identifier of another type first in
    PID-3, a Z-segment at the end)."""
    sch_start = f"^^^{start}" if timing == "sch" else ""
    segments = [
        f"MSH|^~\\&|RIS|NORTHGATE|DISCHARGE|CLINIC|20261120101500||{kind}^{event}^{kind}_S12|"
        f"{control}|P|{version}||||||{charset}",
        f"SCH|P-{appointment}|{appointment}|||||{reason}^Appointment reason||||{sch_start}",
    ]
    if timing == "tq1":
        segments.append(f"TQ1|1||||||{start}")
    segments += [
        f"PID|1||998877^^^NORTHGATE^NI~{mrn}^^^NORTHGATE^MR||{family}^{given}||{dob}|F|||||"
        f"^NET^Internet^{email}||{language}",
        "RGS|1",
        f"AIS|1||{service or reason}^Service|{start if timing == 'ais' else ''}",
        f"AIP|1||{clinician}|RADIOLOGIST",
        "ZXT|1|clinic specific^data",
    ]
    return end.join(segments) + end


@dataclass
class Listener:
    process: subprocess.Popen[str]
    port: int
    out: Path
    audit: Path
    data: Path
    config: Path
    lines: list[str]

    def send(self, *frames: str | bytes, codec: str = "utf-8") -> list[str]:
        """Each frame over one MLLP connection; each acknowledgement, segments on lines."""

        async def exchange() -> list[str]:
            reader, writer = await open_hl7_connection("127.0.0.1", self.port)
            replies = []
            try:
                for frame in frames:
                    data = frame if isinstance(frame, bytes) else frame.encode(codec)
                    writer.writeblock(data)
                    await writer.drain()
                    reply = await asyncio.wait_for(reader.readblock(), 60)
                    replies.append(reply.decode(codec).replace("\r", "\n"))
            finally:
                writer.close()
            return replies

        return in_a_thread(lambda: asyncio.run(exchange()))

    def manifest(self) -> list[dict[str, str]]:
        with (self.out / "manifest.csv").open(encoding="utf-8-sig", newline="") as handle:
            return list(csv.DictReader(handle))

    def row(self, appointment_file_date: str) -> dict[str, str]:
        rows = [r for r in self.manifest() if r["date"] == appointment_file_date]
        assert len(rows) == 1, rows
        return rows[0]

    def audit_records(self, **where: str) -> list[dict[str, object]]:
        db = sqlite3.connect(self.audit)
        db.row_factory = sqlite3.Row
        sql = "SELECT * FROM records"
        if where:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
        try:
            return [dict(r) for r in db.execute(sql + " ORDER BY id", tuple(where.values()))]
        finally:
            db.close()

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, *, times: int = 1, timeout: float = 60) -> None:
        """Until ``text`` is in ``times`` lines of the listener's output (the handouts thread
        reports each sheet's delivery there, after the acknowledgement)."""
        deadline = time.monotonic() + timeout
        while sum(text in line for line in self.lines) < times:
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.1)


def start_listener(
    folder: Path, settings: str = SETTINGS, *extra: str, env_extra: dict[str, str] | None = None
) -> Listener:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "clinic.toml"
    config.write_text(settings, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISCHARGE_")}
    env.update({
        AUDIT_ENV: str(folder / "audit.sqlite3"),
        DATA_DIR_ENV: str(folder / "data"),
        CACHE_ENV: os.environ.get(CACHE_ENV, str(folder / "cache")),
        "PYTHONUNBUFFERED": "1",
        **(env_extra or {}),
    })  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "discharge", "listen", "--port", "0", "--out-dir",
         str(folder / "out"), "--config", str(config), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("the listener stopped: " + "".join(lines))
        lines.append(line.rstrip("\n"))
        if line.startswith("Listening for HL7"):
            port = int(line.split(":")[1].split(";")[0])
            break
    else:
        process.kill()
        raise AssertionError("the listener did not start")

    import threading

    def drain() -> None:
        assert process.stdout is not None
        for more in process.stdout:
            lines.append(more.rstrip("\n"))

    threading.Thread(target=drain, daemon=True).start()
    return Listener(process, port, folder / "out", folder / "audit.sqlite3", folder / "data",
                    config, lines)  # fmt: skip


def stop_listener(listener: Listener) -> int:
    listener.process.send_signal(signal.SIGTERM)
    return listener.process.wait(timeout=30)


@pytest.fixture(scope="module")
def listener(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    running = start_listener(tmp_path_factory.mktemp("listen"))
    yield running
    assert stop_listener(running) == 0
    assert "Stopped." in running.output()


def pdftotext(path: Path) -> str:
    done = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return " ".join(done.stdout.split())


def msa(ack: str) -> list[str]:
    return next(line for line in ack.splitlines() if line.startswith("MSA|")).split("|")


def errs(ack: str) -> list[list[str]]:
    return [line.split("|") for line in ack.splitlines() if line.startswith("ERR|")]


def pdfs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pdf"))


# --- the main path: new, duplicate, reschedule, modify, cancel --------------------------------


def test_a_new_booking_makes_the_sheet_a_batch_would(listener: Listener) -> None:
    (ack,) = listener.send(siu("S12", "NEW-1", appointment="A100", start="202612070930"))
    assert msa(ack)[1:3] == ["AA", "NEW-1"]
    assert "ACK^S12^ACK" in ack.splitlines()[0]
    row = listener.row("2026-12-07")
    assert row["status"] == "ok" and row["procedure"] == "hsg"
    assert row["email"] == "zoe@example.org"
    # The batch's own file name: the hospital number of type MR (not the first identifier),
    # part of the key, the procedure and the date.
    assert row["file"] == f"rx-104233-{row['key'][:6]}-hsg-2026-12-07.pdf"
    text = pdftotext(listener.out / row["file"])
    assert "Zoë Nguyễn" in text and "RX-104233" in text and "Dr Amara Okafor" in text
    assert "Monday 7 December 2026" in text and "09:30" in text
    assert "1 Feb 1990" in text
    (made,) = listener.audit_records(pdf_sha256=row["sha256"])
    assert made["action"] == "made" and made["channel"] == "hl7"
    assert made["mrn"] == "RX-104233" and made["patient_name"] == "Zoë Nguyễn"
    assert "SIU^S12 control id NEW-1" in str(made["detail"])
    # The listener's own output names the message, never the patient.
    assert any("SIU^S12 NEW-1: AA made" in line for line in listener.lines)
    assert "Nguy" not in listener.output() and "RX-104233" not in listener.output()


def test_the_same_control_id_again_is_acknowledged_again_and_makes_nothing(
    listener: Listener,
) -> None:
    message = siu("S12", "DUP-1", appointment="A200", start="202612080800")
    first, again = listener.send(message, message)
    assert msa(first)[1:3] == msa(again)[1:3] == ["AA", "DUP-1"]
    assert msa(first)[3] == msa(again)[3]
    row = listener.row("2026-12-08")
    assert len(listener.audit_records(pdf_sha256=row["sha256"])) == 1
    assert [r["date"] for r in listener.manifest()].count("2026-12-08") == 1


def test_a_reschedule_replaces_the_sheet_and_both_versions_are_in_the_audit_log(
    listener: Listener,
) -> None:
    (ack,) = listener.send(siu("S12", "RS-1", appointment="A300", start="202612091000"))
    assert msa(ack)[1] == "AA"
    old = listener.row("2026-12-09")
    (ack,) = listener.send(siu("S13", "RS-2", appointment="A300", start="202612141415"))
    assert msa(ack)[1:3] == ["AA", "RS-2"] and "remade" in msa(ack)[3]
    new = listener.row("2026-12-14")
    assert new["row"] == old["row"] and new["key"] != old["key"]
    assert not [r for r in listener.manifest() if r["date"] == "2026-12-09"]
    assert not (listener.out / old["file"]).exists()
    text = pdftotext(listener.out / new["file"])
    assert "Monday 14 December 2026" in text and "14:15" in text
    assert "9 December" not in text
    first = listener.audit_records(pdf_sha256=old["sha256"])
    second = listener.audit_records(pdf_sha256=new["sha256"])
    assert [r["action"] for r in first + second] == ["made", "made"]
    assert f"replaces the sheet {old['sha256'][:16]}" in str(second[0]["detail"])


def test_a_modification_on_the_same_day_replaces_the_file_in_place(listener: Listener) -> None:
    listener.send(siu("S12", "MOD-1", appointment="A400", start="202612100900"))
    before = listener.row("2026-12-10")
    (ack,) = listener.send(
        siu(
            "S14",
            "MOD-2",
            appointment="A400",
            start="202612100900",
            clinician="4712^Reyes^Lena^^^Dr",
        )  # fmt: skip
    )
    assert msa(ack)[1] == "AA"
    after = listener.row("2026-12-10")
    assert after["file"] == before["file"] and after["sha256"] != before["sha256"]
    text = pdftotext(listener.out / after["file"])
    assert "Dr Lena Reyes" in text and "Okafor" not in text
    # Nothing changed: nothing made again.
    (ack,) = listener.send(
        siu(
            "S14",
            "MOD-3",
            appointment="A400",
            start="202612100900",
            clinician="4712^Reyes^Lena^^^Dr",
        )  # fmt: skip
    )
    assert msa(ack)[1] == "AA" and "unchanged" in msa(ack)[3]
    assert listener.row("2026-12-10")["sha256"] == after["sha256"]
    assert len(listener.audit_records(pdf_sha256=after["sha256"])) == 1


def test_a_cancellation_withdraws_the_sheet_and_reports_one_already_emailed(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener.send(siu("S12", "CAN-1", appointment="A500", start="202612110800", mrn="RX-5"))
    row = listener.row("2026-12-11")
    path = listener.out / row["file"]
    assert path.exists()
    # The sheet was emailed meanwhile (as `discharge email` records it).
    from dataclasses import replace

    import discharge.channels.email  # noqa: F401 - registers the "emailed" action
    from discharge.audit import AuditLog, AuditRecord
    from discharge.config import Config

    monkeypatch.setenv(AUDIT_ENV, str(listener.audit))
    with AuditLog.open(Config()) as log:
        log.record(replace(AuditRecord(action="emailed"), procedure="hsg", mrn="RX-5",
                           pdf_sha256=row["sha256"], email_address="zoe@example.org"))  # fmt: skip
    (ack,) = listener.send(siu("S15", "CAN-2", appointment="A500", start="202612110800"))
    assert msa(ack)[1:3] == ["AA", "CAN-2"]
    assert "withdrawn" in msa(ack)[3] and "already emailed to the patient on" in msa(ack)[3]
    assert "zoe@example.org" not in ack
    assert not path.exists()
    row = listener.row("2026-12-11")
    assert row["status"] == "withdrawn" and row["file"] == ""
    actions = [r["action"] for r in listener.audit_records(pdf_sha256=row["sha256"])]
    assert actions == ["made", "emailed", "withdrawn"]
    withdrawn = listener.audit_records(pdf_sha256=row["sha256"])[-1]
    assert withdrawn["mrn"] == "RX-5" and "already emailed" in str(withdrawn["detail"])
    # A cancellation of an appointment never made: acknowledged, nothing to do.
    (ack,) = listener.send(siu("S15", "CAN-3", appointment="A-NEVER"))
    assert msa(ack)[1] == "AA" and "nothing to withdraw" in msa(ack)[3]


def test_an_unmapped_appointment_type_is_acknowledged_and_ignored(listener: Listener) -> None:
    count = len(pdfs(listener.out))
    (ack,) = listener.send(
        siu("S12", "UNM-1", appointment="A600", start="202612150900", reason="MRI-KNEE")
    )
    assert msa(ack)[1:3] == ["AA", "UNM-1"] and "ignored" in msa(ack)[3]
    assert len(pdfs(listener.out)) == count
    assert not [r for r in listener.manifest() if r["date"] == "2026-12-15"]
    journal = sqlite3.connect(listener.data / "hl7-journal.sqlite3")
    (outcome,) = journal.execute(
        "SELECT outcome FROM messages WHERE control_id = 'UNM-1'"
    ).fetchone()
    journal.close()
    assert outcome == "ignored"
    # The service code (AIS-3) maps when the reason does not.
    (ack,) = listener.send(siu("S12", "UNM-2", appointment="A601", start="202612150930",
                               reason="OTHER", service="MISC-MED"))  # fmt: skip
    assert msa(ack)[1] == "AA" and "made" in msa(ack)[3]
    assert listener.row("2026-12-15")["procedure"] == "miscarriage"


# --- acknowledgements for what cannot be done -------------------------------------------------


def test_bad_data_gets_ae_naming_segment_and_field_never_the_value(listener: Listener) -> None:
    (ack,) = listener.send(
        siu(
            "S12",
            "BAD-1",
            appointment="A700",
            family="Secretname",
            dob="1990-02-30",
            start="2026X12",
            email="not-an-address",
        )  # fmt: skip
    )
    assert msa(ack)[1:3] == ["AE", "BAD-1"]
    found = {(e[2], e[3].split("^")[0]) for e in errs(ack)}
    assert ("PID^1^7^1", "102") in found  # the date of birth
    assert ("SCH^1^11^1^4", "102") in found  # the start
    assert ("PID^1^13^1^4", "102") in found  # the email address
    for value in ("Secretname", "1990-02-30", "2026X12", "not-an-address", "RX-104233"):
        assert value not in ack and value not in listener.output()
    # A required field missing: 101.
    (ack,) = listener.send(siu("S12", "BAD-2", appointment="A701", family="", given=""))
    assert msa(ack)[1] == "AE" and ("PID^1^5^1", "101") in {
        (e[2], e[3].split("^")[0]) for e in errs(ack)
    }
    assert not [r for r in listener.manifest() if r.get("file", "").startswith("secret")]


def test_errors_in_a_version_2_3_message_use_err_1(listener: Listener) -> None:
    (ack,) = listener.send(siu("S12", "BAD-23", appointment="A702", version="2.3", dob="19901"))
    assert msa(ack)[1] == "AE"
    (err,) = errs(ack)
    assert err[1].startswith("PID^1^7^102&Data type error&HL70357")


def test_a_message_type_it_does_not_take_gets_ar(listener: Listener) -> None:
    adt, s17 = listener.send(siu("A01", "AR-1", kind="ADT"), siu("S17", "AR-2", appointment="A703"))
    assert msa(adt)[1:3] == ["AR", "AR-1"]
    assert errs(adt)[0][2:4] == ["MSH^1^9^1^1", "200^Unsupported message type^HL70357"]
    assert msa(s17)[1:3] == ["AR", "AR-2"]
    assert errs(s17)[0][3].startswith("201^")


def test_malformed_frames_get_ar_and_never_stop_the_listener(listener: Listener) -> None:
    garbage, empty, no_control = listener.send(
        b"this is not HL7", b"", siu("S12", "", appointment="A704")
    )
    assert msa(garbage)[1] == "AR" and errs(garbage)[0][3].startswith("100^")
    assert msa(empty)[1] == "AR"
    assert msa(no_control)[1] == "AR" and errs(no_control)[0][2] == "MSH^1^10^1"
    # A header cut short, and one with another field separator: still acknowledged.
    other_separator = siu("S12", "SEP-1", appointment="A707", start="202612290900")
    short, other = listener.send(b"MSH|^~\\&|A", other_separator.replace("|", "#").encode())
    assert msa(short)[1] == "AR"
    assert other.startswith("MSH#") and "\nMSA#AA#SEP-1#" in other
    # A client that disconnects mid-frame, one that sends bytes outside a frame, one that
    # declares a character set the listener does not read, and a frame of random bytes.
    with socket.create_connection(("127.0.0.1", listener.port)) as raw:
        raw.sendall(b"\x0bMSH|^~\\&|RIS|NORTHGATE|DISCH")
    with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as raw:
        raw.sendall(b"junk before a frame\x1c\r")
        assert b"MSA|AR|" in raw.recv(4096)
    (charset,) = listener.send(siu("S12", "CS-1", appointment="A705", charset="KLINGON"))
    assert msa(charset)[1] == "AE" and errs(charset)[0][2] == "MSH^1^18^1"
    (noise,) = listener.send(bytes(range(256)) * 4)
    assert msa(noise)[1] == "AR"
    (ok,) = listener.send(siu("S12", "AFTER-1", appointment="A706", start="202612160900"))
    assert msa(ok)[1] == "AA"
    assert listener.process.poll() is None


# --- real-world input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "timing", "day"),
    [("2.3", "sch", "17"), ("2.4", "ais", "18"), ("2.5", "sch", "21"), ("2.5.1", "tq1", "22")],
)
def test_each_hl7_version_makes_the_sheet(
    listener: Listener, version: str, timing: str, day: str
) -> None:
    (ack,) = listener.send(
        siu(
            "S12",
            f"V-{version}",
            appointment=f"V{version}",
            version=version,
            timing=timing,
            start=f"202612{day}1100",
            mrn=f"RX-V{day}",
        )  # fmt: skip
    )
    assert msa(ack)[1] == "AA", ack
    text = pdftotext(listener.out / listener.row(f"2026-12-{day}")["file"])
    assert f"{day} December 2026" in text and f"RX-V{day}" in text and "11:00" in text


def test_non_ascii_names_in_8859_1_and_utf_8(listener: Listener) -> None:
    latin = siu("S12", "L1-1", appointment="A800", charset="8859/1", family="Müller-Sánchez",
                given="Zoë", start="202612230900", mrn="RX-L1")  # fmt: skip
    (ack,) = listener.send(latin.encode("iso8859-1"), codec="iso8859-1")
    assert msa(ack)[1] == "AA"
    assert "Zoë Müller-Sánchez" in pdftotext(listener.out / listener.row("2026-12-23")["file"])
    utf8 = siu("S12", "U8-1", appointment="A801", family="Wróbel-Şahin", given="Łucja",
               start="202612240900", mrn="RX-U8")  # fmt: skip
    (ack,) = listener.send(utf8)
    assert msa(ack)[1] == "AA"
    assert "Łucja Wróbel-Şahin" in pdftotext(listener.out / listener.row("2026-12-24")["file"])
    # UTF-8 bytes in a message that says 8859/1 are read as 8859/1 (mojibake, not a crash);
    mislabelled = siu("S12", "L1-2", appointment="A803", charset="8859/1", family="Wróbel",
                      start="202612250900", mrn="RX-L2")  # fmt: skip
    (ack,) = listener.send(mislabelled.encode("utf-8"), codec="iso8859-1")
    assert msa(ack)[1] == "AA"
    assert "WrÃ³bel" in pdftotext(listener.out / listener.row("2026-12-25")["file"])
    # bytes that are not UTF-8 in one that says UTF-8 are an AE on MSH-18.
    (ack,) = listener.send(
        siu("S12", "U8-2", appointment="A802", family="Müller", start="202612240930").encode(
            "iso8859-1"
        ),
        codec="iso8859-1",
    )
    assert msa(ack)[1] == "AE" and errs(ack)[0][2] == "MSH^1^18^1"


def test_escape_sequences_crlf_segment_ends_and_repeated_identifiers(listener: Listener) -> None:
    message = siu("S12", "ESC-1", appointment="A900", family="O\\T\\Brien\\F\\Day\\E\\",
                  given="Ann\\S\\Marie\\R\\Jo", start="202612280900", mrn="RX-ESC",
                  end="\r\n")  # fmt: skip
    (ack,) = listener.send(message)
    assert msa(ack)[1] == "AA", ack
    text = pdftotext(listener.out / listener.row("2026-12-28")["file"])
    assert "Ann^Marie~Jo O&Brien|Day\\" in text
    assert "RX-ESC" in text and "998877" not in text


def test_a_thousand_bookings(listener: Listener) -> None:
    messages = [
        siu(
            "S12",
            f"K-{n}",
            appointment=f"K{n}",
            mrn=f"RX-K{n}",
            family=f"Kay{n}",
            start=f"2027{1 + n % 12:02d}{1 + n % 28:02d}{8 + n % 9:02d}30",
        )  # fmt: skip
        for n in range(1000)
    ]
    began = time.monotonic()
    # Over four connections at once, as an engine with several outbound threads sends.
    with ThreadPoolExecutor(4) as senders:
        parts = senders.map(lambda n: listener.send(*messages[n::4]), range(4))
        acks = [ack for part in parts for ack in part]
    seconds = time.monotonic() - began
    assert [msa(a)[1] for a in acks] == ["AA"] * 1000
    rows = [r for r in listener.manifest() if r["file"].startswith("rx-k")]
    assert len(rows) == 1000 and {r["status"] for r in rows} == {"ok"}
    assert len({r["file"] for r in rows}) == 1000
    assert len({r["row"] for r in rows}) == 1000  # rendered side by side, each its own row
    for n in (0, 517, 999):
        row = next(r for r in rows if r["file"].startswith(f"rx-k{n}-"))
        text = pdftotext(listener.out / row["file"])
        assert f"Kay{n}" in text and f"RX-K{n}" in text
    print(f"1000 bookings in {seconds:.1f} s ({1000 / seconds:.0f}/s)")


# --- the command ------------------------------------------------------------------------------


def test_listening_beyond_this_computer_needs_allow_network(tmp_path: Path) -> None:
    result = run_discharge("listen", "--host", "0.0.0.0", "--out-dir", tmp_path / "out")
    assert result.code == 2
    assert "--allow-network" in result.stderr and "unencrypted" in result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_hl7_settings_are_all_reported_at_once(tmp_path: Path) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text(
        '[hl7]\nfile_to = "nohost"\ncolour = "red"\n[hl7.procedures]\n"X" = "nosuch"\n'
        '"Y" = "hsg:nosuchvariant"\n',
        encoding="utf-8",
    )
    result = run_discharge("listen", "--config", config, "--out-dir", tmp_path / "out")
    assert result.code == 2
    for expected in ("[hl7] file_to", "[hl7] colour"):
        assert expected in result.stderr
    assert "Traceback" not in result.stderr
    # A table the file reads well, naming a procedure and a variant the templates lack.
    config.write_text(
        '[hl7.procedures]\n"X" = "nosuch"\n"Y" = "hsg:nosuchvariant"\n', encoding="utf-8"
    )
    result = run_discharge("listen", "--config", config, "--out-dir", tmp_path / "out")
    assert result.code == 2
    assert "[hl7.procedures] X" in result.stderr and "[hl7.procedures] Y" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_second_listener_or_a_batch_into_the_same_folder_is_refused(listener: Listener) -> None:
    result = run_discharge("listen", "--port", "0", "--out-dir", listener.out)
    assert result.code == 2 and "is writing to" in result.stderr
    assert listener.process.poll() is None


def test_a_day_replayed_with_mllp_send_makes_nothing_twice(
    listener: Listener, tmp_path: Path
) -> None:
    day = tmp_path / "day.hl7"
    messages = [siu("S12", f"DAY-{n}", appointment=f"D{n}", mrn=f"RX-D{n}",
                    start=f"2027020{n + 1}0900", end="\n") for n in range(3)]  # fmt: skip
    day.write_text("".join(messages), encoding="utf-8")
    send = [str(Path(sys.executable).parent / "mllp_send"), "--loose", "--file", str(day),
            "--port", str(listener.port), "127.0.0.1"]  # fmt: skip
    first = subprocess.run(send, capture_output=True, text=True, timeout=120, check=True)
    assert first.stdout.count("MSA|AA|DAY-") == 3
    made = {r["file"]: r["sha256"] for r in listener.manifest() if r["file"].startswith("rx-d")}
    assert len(made) == 3
    again = subprocess.run(send, capture_output=True, text=True, timeout=120, check=True)
    assert again.stdout.count("MSA|AA|DAY-") == 3
    assert {
        r["file"]: r["sha256"] for r in listener.manifest() if r["file"].startswith("rx-d")
    } == made
    for sha in made.values():
        assert len(listener.audit_records(pdf_sha256=sha)) == 1


# --- --email: each sheet made is emailed, once ---------------------------------------------


def test_with_email_each_sheet_made_is_emailed_once(tmp_path: Path) -> None:
    from tests.test_email import Recorder as SmtpRecorder
    from tests.test_email import _start

    handler = SmtpRecorder()
    smtp = _start(handler)
    settings = (
        SETTINGS + f'\n[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\n'
        'sender = "Riverside Clinic <aftercare@riverside.example>"\ntimeout = 5\n'
    )
    running = start_listener(tmp_path / "listen", settings, "--email")
    wait_for = running.wait_for
    try:
        (ack,) = running.send(siu("S12", "EM-1", appointment="E1", start="202612070930"))
        assert msa(ack)[1] == "AA"
        wait_for("row 1: emailed")
        (message,) = handler.received
        assert message.rcpt_tos == ["zoe@example.org"]
        attachment = next(message.message.iter_attachments())
        row = running.row("2026-12-07")
        pdf = attachment.get_content()
        assert pdf == (running.out / row["file"]).read_bytes()
        emailed = running.audit_records(action="emailed")
        assert len(emailed) == 1 and emailed[0]["channel"] == "hl7"
        assert emailed[0]["email_address"] == "zoe@example.org"
        # The same booking again (a new control id, nothing changed): nothing made or sent.
        (ack,) = running.send(siu("S14", "EM-2", appointment="E1", start="202612070930"))
        assert "unchanged" in msa(ack)[3]
        # A change: the new sheet is made, and held back from the patient (an earlier version
        # went), as batch --email holds it.
        (ack,) = running.send(
            siu(
                "S14",
                "EM-3",
                appointment="E1",
                start="202612070930",
                clinician="4712^Reyes^Lena^^^Dr",
            )  # fmt: skip
        )
        assert "remade" in msa(ack)[3]
        wait_for("row 1: not emailed: an earlier version was emailed")
        # No address: said, nothing sent.
        running.send(siu("S12", "EM-4", appointment="E2", start="202612080930", email="",
                         mrn="RX-E2"))  # fmt: skip
        wait_for("row 2: not emailed: the booking has no email address")
        assert len(handler.received) == 1
        # Cancelled after it was emailed: the acknowledgement says so.
        (ack,) = running.send(siu("S15", "EM-5", appointment="E1"))
        assert "already emailed to the patient" in msa(ack)[3]
        assert "zoe@example.org" not in running.output()
    finally:
        assert stop_listener(running) == 0
        smtp.stop()


def test_with_print_each_sheet_made_comes_out_of_the_printer(tmp_path: Path) -> None:
    from tests.cups_server import PDF_PRINTER, cups_server

    with cups_server() as cups:
        running = start_listener(
            tmp_path / "listen", SETTINGS, "--print", "--printer", PDF_PRINTER,
            env_extra={"CUPS_SERVER": cups.env["CUPS_SERVER"]},
        )  # fmt: skip
        try:
            (ack,) = running.send(siu("S12", "PR-1", appointment="PR1", start="202612070930"))
            assert msa(ack)[1] == "AA"
            running.wait_for("row 1: printed", timeout=120)
            (printed,) = running.audit_records(action="printed")
            assert printed["channel"] == "hl7" and printed["mrn"] == "RX-104233"
            (out,) = list(cups.out.glob("*.pdf"))
            text = pdftotext(out)  # as the printer drew it (Ghostscript re-encodes the fonts)
            assert "RX-104233" in text and "HSG" in text and "Dr Amara Okafor" in text
            # The print queue shows the hospital number, never the name.
            assert "RX-104233" in "".join(cups.page_log_lines())
            assert "Nguy" not in "".join(cups.page_log_lines())
        finally:
            assert stop_listener(running) == 0


# --- [hl7] file_to: each sheet made is filed back as MDM^T02 -----------------------------------


def test_with_file_to_each_sheet_made_is_filed_as_mdm_t02(tmp_path: Path) -> None:
    import base64

    import hl7

    from tests.mllp_receiver import MllpReceiver

    with MllpReceiver("AA") as record:
        settings = SETTINGS.replace(
            "[hl7]\n",
            f'[hl7]\nfile_to = "127.0.0.1:{record.port}"\ndocument_type = "PN"\n'
            'receiving_application = "EPR"\n',
        )
        running = start_listener(tmp_path / "listen", settings)
        wait_for = running.wait_for
        try:
            (ack,) = running.send(siu("S12", "FI-1", appointment="FI1", start="202612070930"))
            assert msa(ack)[1] == "AA"
            wait_for("row 1: filed")
            (message,) = [hl7.parse(m) for m in record.messages]
            assert str(message.segment("MSH")(9)) == "MDM^T02^MDM_T02"
            pid = message.segment("PID")
            assert "RX-104233" in str(pid(3)) and "998877" in str(pid(3))  # every identifier
            assert str(pid(5)) == "Nguyễn^Zoë" and str(pid(7)) == "19900201"
            assert str(message.segment("MSH")(5)) == "EPR"
            txa = message.segment("TXA")
            assert str(txa(2)) == "PN"
            assert str(txa(4)).startswith("202612070930")  # the appointment's start
            obx = message.segments("OBX")[0]
            pdf = base64.b64decode(str(obx(5)).split("^")[-1])
            row = running.row("2026-12-07")
            assert pdf == (running.out / row["file"]).read_bytes()
            filed = running.audit_records(action="filed")
            assert len(filed) == 1 and filed[0]["pdf_sha256"] == row["sha256"]
            assert filed[0]["channel"] == "hl7"
            # The engine's retry of the same message files nothing again.
            running.send(siu("S12", "FI-1", appointment="FI1", start="202612070930"))
            # A reschedule: the new version is filed, naming the one it replaces (TXA-13).
            (ack,) = running.send(siu("S13", "FI-2", appointment="FI1", start="202612081000"))
            assert "remade" in msa(ack)[3]
            wait_for("row 1: filed", times=2)  # the new version's filing, reported
            assert len(record.messages) == 2
            second = hl7.parse(record.messages[1]).segment("TXA")
            assert str(second(13)) == str(txa(12)) and str(second(12)) != str(txa(12))
            # Cancelled after it was filed: the acknowledgement says so.
            (ack,) = running.send(siu("S15", "FI-3", appointment="FI1"))
            assert "already filed to the patient's record" in msa(ack)[3]
        finally:
            assert stop_listener(running) == 0
