"""A batch's made rows through one channel: each row's own PDF, as the manifest recorded it.

``deliver_rows`` is what a per-row batch step (``batch --file``, say) needs from the seam: the
rows of the schedule whose PDF the last run made (or kept), each delivered with its document
and its audit record (``channel`` "batch", the schedule and row), its PDF read back and checked
against the manifest's hash first. ``batch --email`` has its own loop (``batch_email.py``),
because the email channel's once-only record decides per row what may go; it takes each row's
PDF and handout from ``row_handout`` here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generic, TypeVar

from discharge.audit import AuditError, AuditLog, describe_pdf
from discharge.batch import (
    OK,
    SKIPPED,
    ManifestRow,
    Schedule,
    ScheduleRow,
    folder_salt,
    locked,
    read_manifest,
    read_rows,
    record_key,
)
from discharge.channels import Channel, Handout, deliver
from discharge.config import Config
from discharge.document import build_document
from discharge.errors import DischargeError, InputError

R = TypeVar("R")


@dataclass(frozen=True)
class RowDelivered(Generic[R]):
    row: int  # the schedule's row number
    file: str  # the PDF, in the output folder
    receipt: R | None  # the channel's, when it went
    error: str = ""  # why not (the channel's error, already in the audit log)


def deliver_rows(
    schedule: Schedule,
    config: Config,
    out_dir: str | os.PathLike[str],
    channel: Callable[[ScheduleRow], Channel[R]],
    *,
    date_order: str | None = None,
) -> list[RowDelivered[R]]:
    """Deliver each made row's PDF through ``channel(row)``; a row's own problem is its
    result's ``error`` and the next row goes on. An AuditError stops the run (what it says
    went, went)."""
    out = Path(out_dir)
    batch_file = str(schedule.path.resolve())
    results: list[RowDelivered[R]] = []
    with locked(out), AuditLog.open(config) as audit:
        salt = folder_salt(out)
        made = {
            e.key: e for e in read_manifest(out) if e.key and e.status in (OK, SKIPPED) and e.file
        }
        for item in read_rows(schedule, config, date_order):
            if not isinstance(item, ScheduleRow):
                continue  # its error is in the manifest
            entry = made.get(record_key(item.request, salt))
            if entry is None:
                continue
            row, file = entry.row, entry.file
            try:
                handout, pdf = row_handout(item, entry, out, config, batch_file)
                receipt = deliver(handout, pdf, channel(item), audit=audit)
            except AuditError:
                raise
            except DischargeError as exc:
                results.append(RowDelivered(row, file, None, str(exc)))
                continue
            results.append(RowDelivered(row, file, receipt))
    return results


def row_handout(
    item: ScheduleRow, entry: ManifestRow, out: Path, config: Config, batch_file: str
) -> tuple[Handout, bytes]:
    """A made row's PDF exactly as the manifest recorded it (an InputError if it is missing or
    has changed since), and its handout: the document, and its record as made by the batch
    (the schedule and the row)."""
    pdf = _read_made(out / entry.file, entry.sha256)
    document = build_document(item.request, config)
    made = replace(
        describe_pdf(item.request, document, pdf, channel="batch"),
        batch_file=batch_file, batch_row=entry.row,
    )  # fmt: skip
    return Handout((made,), item.request, document, front_end="batch"), pdf


def _read_made(path: Path, sha256: str) -> bytes:
    """The row's PDF exactly as the manifest recorded it, or nothing."""
    try:
        pdf = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path.name}: {exc.strerror}") from None
    if hashlib.sha256(pdf).hexdigest() != sha256:
        raise InputError(f"{path.name} has changed since it was made; run the batch again")
    return pdf
