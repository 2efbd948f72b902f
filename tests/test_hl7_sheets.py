"""The ready folder ``discharge listen`` keeps (``discharge.hl7.sheets.ReadyFolder``), in this
process: what the subprocess tests in test_hl7_listen.py cannot time (two bookings in flight
at once) or count (the manifest's writes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from discharge.config import Config, parse_config
from discharge.hl7.settings import load_hl7_settings
from discharge.hl7.sheets import ReadyFolder
from tests.test_hl7_listen import siu

CONFIG = parse_config({"hl7": {"patient_id_type": "MR", "procedures": {"HSG": "hsg"}}})


def ready_folder(out: Path, config: Config = CONFIG, **kw: object) -> ReadyFolder:
    return ReadyFolder(config, load_hl7_settings(config), out, **kw)  # type: ignore[arg-type]


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[ReadyFolder]:
    made = ready_folder(tmp_path / "out")
    yield made
    made.close()


def test_bookings_in_flight_at_once_each_get_a_row_of_their_own(folder: ReadyFolder) -> None:
    """With --jobs, a booking is rendered between ``begin`` and ``finish``, while the next
    one begins: its row is taken from the start."""
    first = folder.begin(siu("S12", "R-1", appointment="R1", mrn="RX-R1").encode())
    second = folder.begin(siu("S12", "R-2", appointment="R2", mrn="RX-R2").encode())
    assert first.task is not None and second.task is not None
    assert (first.task.row, second.task.row) == (1, 2)


@pytest.mark.parametrize("id_type", ["", "NI"])
def test_the_filed_record_names_the_patient_as_the_made_one(tmp_path: Path, id_type: str) -> None:
    """The sheet is made with the identifier of ``[hl7] patient_id_type`` (else the first) and
    the whole name; its filing's audit record carries the same, so ``discharge log --mrn``
    finds both."""
    from discharge.audit import AuditLog
    from discharge.hl7.filing import FilingSettings
    from discharge.hl7.handouts import Handouts
    from tests.mllp_receiver import MllpReceiver

    hl7 = {"procedures": {"HSG": "hsg"}} | ({"patient_id_type": id_type} if id_type else {})
    config = parse_config({"hl7": hl7})
    reported: list[str] = []
    with MllpReceiver("AA") as receiver:
        filing = FilingSettings("127.0.0.1", receiver.port, timeout=5.0, attempts=1)
        handouts = Handouts(config, tmp_path / "out", filing=filing, report=reported.append)
        folder = ready_folder(tmp_path / "out", config, handouts=handouts)
        try:
            ack = folder.handle(siu("S12", "ID-1", appointment="ID1", given="Zoë^Ann").encode())
            assert b"MSA|AA|ID-1" in ack
            handouts.wait()
        finally:
            folder.close()
    assert reported == ["row 1: filed"]
    with AuditLog.open(config) as log:
        made, filed = log.query()
    assert (made.action, filed.action) == ("made", "filed")
    assert made.mrn == filed.mrn == "998877"  # PID-3's NI identifier, not the MR one
    assert made.patient_name == filed.patient_name == "Zoë Ann Nguyễn"


def test_the_manifest_is_written_only_when_a_message_changes_it(
    folder: ReadyFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import discharge.hl7.sheets

    writes: list[int] = []
    write = discharge.hl7.sheets.write_manifest
    monkeypatch.setattr(discharge.hl7.sheets, "write_manifest",
                        lambda *a, **kw: writes.append(1) or write(*a, **kw))  # fmt: skip
    manifest = folder.out / "manifest.csv"

    def send(*args: str, **kw: str) -> str:
        ack = folder.handle(siu(*args, **kw).encode()).decode()
        return ack.split("MSA|")[1].split("\r")[0]

    assert send("S12", "M-1", appointment="M1").startswith("AA|M-1|made")
    assert len(writes) == 1
    made = manifest.read_text(encoding="utf-8-sig")
    assert "unchanged" in send("S14", "M-2", appointment="M1")
    assert "ignored" in send("S12", "M-3", appointment="M2", reason="MRI")
    assert "nothing to withdraw" in send("S15", "M-4", appointment="M3")
    assert "AA|M-1|made" in send("S12", "M-1", appointment="M1")  # the engine's retry
    assert len(writes) == 1 and manifest.read_text(encoding="utf-8-sig") == made
    assert "withdrawn" in send("S15", "M-5", appointment="M1")
    assert len(writes) == 2 and ",withdrawn," in manifest.read_text(encoding="utf-8-sig")


def test_a_version_that_adds_the_filler_id_is_filed_as_the_replacement(tmp_path: Path) -> None:
    """The first message had only the placer's id (SCH-1), the reschedule adds the scheduling
    system's (SCH-2): one appointment, so the new sheet is filed naming the one it replaces."""
    import hl7

    from discharge.hl7.filing import FilingSettings
    from discharge.hl7.handouts import Handouts
    from tests.mllp_receiver import MllpReceiver

    reported: list[str] = []
    with MllpReceiver("AA") as receiver:
        filing = FilingSettings("127.0.0.1", receiver.port, timeout=5.0, attempts=1)
        handouts = Handouts(CONFIG, tmp_path / "out", filing=filing, report=reported.append)
        folder = ready_folder(tmp_path / "out", handouts=handouts)
        try:
            placer_only = siu("S12", "F-1", appointment="F1").replace("|P-F1|F1|", "|P-F1||")
            assert b"MSA|AA|F-1|made" in folder.handle(placer_only.encode())
            moved = siu("S13", "F-2", appointment="F1", start="202612081000")
            assert b"MSA|AA|F-2|remade" in folder.handle(moved.encode())
            handouts.wait()
        finally:
            folder.close()
    assert reported == ["row 1: filed", "row 1: filed"]
    first, second = (hl7.parse(m).segment("TXA") for m in receiver.messages)
    assert str(second(13)) == str(first(12)) and str(second(12)) != str(first(12))


def test_a_journal_others_can_read_is_made_private(tmp_path: Path, clinic_data_dir: Path) -> None:
    import stat

    from discharge.hl7.sheets import JOURNAL_NAME

    ready_folder(tmp_path / "out").close()
    journal = clinic_data_dir / JOURNAL_NAME
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    journal.chmod(0o644)  # as an older version, or a copy, left it
    ready_folder(tmp_path / "out").close()
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600


def test_a_withdrawal_reads_each_versions_audit_records_once(
    folder: ReadyFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from discharge.audit import AuditLog

    folder.handle(siu("S12", "W-1", appointment="W1").encode())
    folder.handle(siu("S13", "W-2", appointment="W1", start="202612081000").encode())
    read: list[str] = []
    query = AuditLog.query

    def counted(log: AuditLog, **where: object):  # type: ignore[no-untyped-def]
        if "pdf_sha256" in where:
            read.append(str(where["pdf_sha256"]))
        return query(log, **where)  # type: ignore[arg-type]

    monkeypatch.setattr(AuditLog, "query", counted)
    ack = folder.handle(siu("S15", "W-3", appointment="W1").encode())
    assert b"MSA|AA|W-3|withdrawn" in ack
    assert len(read) == len(set(read)) == 2  # the two versions
