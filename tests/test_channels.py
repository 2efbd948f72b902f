"""The delivery seam: a channel registered here (it copies each sheet into a folder) gets the
document and the PDF that generate and batch made, and is audited under its own action names."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from discharge.audit import AuditLog
from discharge.channels import Actions, Handout, Recorder, deliver, register, registered
from discharge.config import Config
from discharge.document import Document, build_document, printed_text
from discharge.errors import DeliveryError
from discharge.generate import generate_pdf
from discharge.request import parse_request
from tests.helpers import audit_rows, pdf_text, run_discharge

PATIENTS = [
    ("Zoë Nguyễn", "hsg", "RX-104233"),
    ("Ada Lovelace", "miscarriage", "RX-200001"),
]


@dataclass(frozen=True)
class Copied:
    file: Path
    document: Document


@register
@dataclass(frozen=True)
class FolderChannel:
    """Copies each sheet into ``folder`` (named by hospital number), as a filing system would
    take it; a full folder (``refuse``) is a failure that never happened."""

    name: ClassVar[str] = "folder"
    actions: ClassVar[Actions] = Actions("copied", "copy-failed", "copy-unknown")

    folder: Path
    refuse: bool = False

    def send(self, handout: Handout, pdf: bytes, recorder: Recorder) -> Copied:
        assert handout.request is not None and handout.document is not None
        records = list(handout.records)
        with recorder.attempt(records):
            if self.refuse:
                raise DeliveryError(f"{self.folder} is full")
            file = self.folder / f"{handout.request.patient.mrn}.pdf"
            file.write_bytes(pdf)
        recorder.done(records, said=f"{file.name} was copied")
        return Copied(file, handout.document)


def test_generate_and_batch_hand_the_channel_their_document_and_pdf(
    tmp_path: Path, audit_db: Path
) -> None:
    config = Config()
    # generate: each patient's PDF, written and recorded, then through the channel.
    by_generate: dict[str, tuple[Document, bytes]] = {}
    for name, procedure, mrn in PATIENTS:
        request = parse_request(procedure=procedure, date="2026-11-21", patient=name, mrn=mrn)
        output = tmp_path / f"{mrn}.pdf"
        document = generate_pdf(request, config, output)
        pdf = output.read_bytes()
        folder = tmp_path / "generate-folder"
        folder.mkdir(exist_ok=True)
        with AuditLog.open(config) as audit:
            copied = deliver(
                Handout.of(request, document, pdf), pdf, FolderChannel(folder), audit=audit
            )
        assert copied.document is document
        assert copied.file.read_bytes() == pdf
        by_generate[mrn] = (document, pdf)

    # batch: the same patients from a schedule, made by the real command, then every made row
    # through the channel.
    from discharge.batch import open_schedule
    from discharge.channels.rows import deliver_rows

    schedule = tmp_path / "day.csv"
    lines = ["patient_name,procedure,date,mrn"]
    lines += [f"{name},{procedure},2026-11-21,{mrn}" for name, procedure, mrn in PATIENTS]
    schedule.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    made = run_discharge("batch", schedule, "--out-dir", out)
    assert made.code == 0, made.stderr
    folder = tmp_path / "batch-folder"
    folder.mkdir()
    results = deliver_rows(open_schedule(schedule), config, out, lambda row: FolderChannel(folder))
    assert [(r.row, r.error) for r in results] == [(2, ""), (3, "")]
    for result, (name, _, mrn) in zip(results, PATIENTS, strict=True):
        assert result.receipt is not None
        made = (out / result.file).read_bytes()
        assert result.receipt.file.read_bytes() == made  # the row's own PDF, as made
        document, pdf = by_generate[mrn]
        # The same document as generate's (its blocks compare by what they print).
        assert list(printed_text(result.receipt.document)) == list(printed_text(document))
        assert result.receipt.document.procedure_id == document.procedure_id
        assert pdf_text(result.receipt.file) == pdf_text(tmp_path / f"{mrn}.pdf")
        assert name in pdf_text(result.receipt.file)

    # Audited under the channel's own names: who, which bytes, which front end and row.
    copied = [r for r in audit_rows(audit_db) if r["action"] == "copied"]
    assert [(r["mrn"], r["channel"], r["batch_row"]) for r in copied] == [
        ("RX-104233", "cli", 0),
        ("RX-200001", "cli", 0),
        ("RX-104233", "batch", 2),
        ("RX-200001", "batch", 3),
    ]
    for r in copied:
        file = (
            tmp_path / "generate-folder" if r["channel"] == "cli" else folder
        ) / f"{r['mrn']}.pdf"
        assert r["pdf_sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert copied[2]["batch_file"] == str(schedule.resolve())
    # The log still verifies with the new action names in it.
    with AuditLog.open(config) as audit:
        assert audit.verify().ok


def test_a_failed_delivery_is_recorded_under_the_channels_failed_name(
    tmp_path: Path, audit_db: Path
) -> None:
    config = Config()
    request = parse_request(procedure="hsg", date="2026-11-21", patient="Ada Lovelace", mrn="M1")
    document = build_document(request, config)
    pdf = b"%PDF-1.4\n%%EOF\n"
    with AuditLog.open(config) as audit, pytest.raises(DeliveryError, match="is full"):
        deliver(
            Handout.of(request, document, pdf),
            pdf,
            FolderChannel(tmp_path, refuse=True),
            audit=audit,
        )
    assert [(r["action"], r["mrn"]) for r in audit_rows(audit_db)] == [("copy-failed", "M1")]


def test_channels_register_once_with_names_of_their_own(tmp_path: Path) -> None:
    import discharge.channels.email
    import discharge.channels.print  # noqa: F401

    known = registered()  # and any other channel imported by now (e.g. hl7's "file")
    assert {name: known.get(name) for name in ("email", "print", "folder")} == {
        "email": Actions("emailed", "email-failed", "email-unknown"),
        "print": Actions("printed", "print-failed", "print-unknown"),
        "folder": Actions("copied", "copy-failed", "copy-unknown"),
    }
    every = [action for actions in known.values() for action in actions]
    assert len(every) == len(set(every))  # no two channels share an action name

    @dataclass(frozen=True)
    class Thief:
        name: ClassVar[str] = "thief"
        actions: ClassVar[Actions] = Actions("stolen", "printed", "steal-unknown")

    with pytest.raises(ValueError, match="taken"):
        register(Thief)  # "printed" is the print channel's

    @dataclass(frozen=True)
    class Stray:
        name: ClassVar[str] = "stray"
        actions: ClassVar[Actions] = Actions("strayed", "stray-failed", "stray-unknown")

        def send(self, handout: Handout, pdf: bytes, recorder: Recorder) -> None:
            raise AssertionError("never called")

    with AuditLog.open(Config()) as audit, pytest.raises(ValueError, match="not registered"):
        deliver(Handout(()), b"", Stray(), audit=audit)
    assert "thief" not in registered() and "stray" not in registered()
