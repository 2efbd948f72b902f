"""The print channel: the sheets go to a printer (``discharge.printing``), confirmed.

Each patient's sheet in the PDF gets its own audit record, whatever the outcome: ``printed``
once the print system says the job completed, ``print-failed`` when it surely did not print,
``print-unknown`` when it may still print. Its ``detail`` (JSON) holds the printer, the job, the
copies and the file name (and the sides printed, or why it failed).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

from discharge.audit import AuditLog, AuditRecord
from discharge.channels import Actions, Handout, Recorder, deliver, register
from discharge.config import Config
from discharge.errors import PrintError
from discharge.printing.jobs import PrintResult, print_pdf


@register
@dataclass(frozen=True)
class PrintChannel:
    name: ClassVar[str] = "print"
    actions: ClassVar[Actions] = Actions("printed", "print-failed", "print-unknown")

    printer: str
    copies: int = 1
    title: str = "discharge"  # what the print queue shows (``job_title``: never a name)
    two_sided: bool = False
    timeout: float = 120.0
    file: str = ""  # the PDF's file name, for the record

    def send(self, handout: Handout, pdf: bytes, recorder: Recorder) -> PrintResult:
        """Print and wait; a print that cannot be recorded raises AuditError saying that it
        printed."""
        try:
            result = print_pdf(
                pdf, printer=self.printer, copies=self.copies, title=self.title,
                two_sided=self.two_sided, timeout=self.timeout,
            )  # fmt: skip
        except PrintError as exc:
            detail = {"printer": self.printer, "job": exc.job, "copies": self.copies,
                      "file": self.file, "reason": str(exc)}  # fmt: skip
            records = _as_printed(handout, detail)
            (recorder.unknown if exc.unknown else recorder.failed)(records)
            raise
        detail = {"printer": self.printer, "job": result.job, "copies": self.copies,
                  "file": self.file, "sides": result.sides or "default"}  # fmt: skip
        recorder.done(_as_printed(handout, detail), said=f"job {result.job} was printed")
        return result


def print_recorded(
    pdf: bytes,
    config: Config,
    sheets: Sequence[AuditRecord],
    *,
    printer: str,
    copies: int = 1,
    title: str = "discharge",
    two_sided: bool = False,
    timeout: float = 120.0,
    channel: str = "cli",
    file: str = "",
) -> PrintResult:
    """Deliver ``pdf`` (``sheets``: the records of the documents in it, as made) through the
    print channel, from the front end ``channel``; the audit log opened from ``config``
    before anything is printed (a broken [audit] setting stops us first)."""
    handout = Handout(tuple(sheets), front_end=channel)
    target = PrintChannel(printer, copies, title, two_sided, timeout, file)
    with AuditLog.open(config) as audit:
        return deliver(handout, pdf, target, audit=audit)


def _as_printed(handout: Handout, detail: dict[str, object]) -> list[AuditRecord]:
    # A sheet found in the log carries its own id, times and hashes: the new record gets its
    # own, and the front end that printed it.
    text = json.dumps(detail, ensure_ascii=False)
    return [
        replace(
            sheet,
            channel=handout.front_end,
            detail=text,
            id=0,
            time_utc="",
            time_local="",
            user="",
            operator="",
            workstation="",
            prev_hash="",
            hash="",
            email_address="",
            message_id="",
        )  # fmt: skip
        for sheet in handout.records
    ]
