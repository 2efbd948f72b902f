"""The ready folder ``discharge listen`` keeps: each booked patient's PDF, made, remade or
withdrawn as the scheduling messages come, with the batch's file names, manifest and audit
records.

``ReadyFolder.handle`` takes one MLLP frame and returns the acknowledgement to send (the
listener calls its two halves: ``begin``, then, once a worker process has rendered the PDF,
``finish``). It
acknowledges only what is done: the PDF written whole and flushed to disk, its audit record
committed, the message's control id in the journal. A message whose control id the journal
already has (the interface engine's retry) is acknowledged again as it was the first time,
and makes nothing.

The journal (``hl7-journal.sqlite3`` in the clinic's data folder) keeps, for each ready folder,
each message's control id and acknowledgement, and each appointment's sheet; it holds no
names, but appointment ids, file names (with hospital numbers), email addresses and digests,
so only its owner may read it (0600). (Per folder: a day replayed into a new folder is made
again there.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import hl7

from discharge.audit import MADE, WITHDRAWN, AuditLog, AuditRecord, as_new
from discharge.batch import (
    ERROR,
    OK,
    ManifestRow,
    ScheduleRow,
    folder_salt,
    locked,
    output_name,
    record_key,
    remove_partial_files,
    write_manifest,
)
from discharge.batch.run import (
    RenderResult,
    RenderTask,
    input_fingerprint,
    prepare_out_dir,
    prepare_renderer,
    render_row,
)
from discharge.batch.schedule import Recent
from discharge.clinic_data import create_private, data_dir, keep_private
from discharge.config import Config
from discharge.errors import DischargeError, OutputError
from discharge.hl7.filing import FILED
from discharge.hl7.handouts import Handouts, Made
from discharge.hl7.settings import Hl7Settings
from discharge.hl7.siu import (
    ACCEPT,
    APP_ERROR,
    CANCELLED,
    INTERNAL,
    REJECT,
    Booking,
    MessageError,
    Problem,
    Received,
    decode_frame,
    field_text,
    make_ack,
    read_booking,
)

JOURNAL_NAME = "hl7-journal.sqlite3"
MANIFEST_EVERY = 1.0  # seconds: while many messages are being made, the manifest waits this long
WITHDRAWN_STATUS = "withdrawn"
# What the journal says a message did.
MADE_OUTCOME, REMADE, UNCHANGED, WITHDRAWN_OUTCOME, IGNORED, FAILED, REJECTED = (
    "made", "remade", "unchanged", "withdrawn", "ignored", "error", "rejected",
)  # fmt: skip
CHANNEL = "hl7"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    sender TEXT NOT NULL, control_id TEXT NOT NULL, received_utc TEXT NOT NULL,
    event TEXT NOT NULL, outcome TEXT NOT NULL, ack TEXT NOT NULL, ack_text TEXT NOT NULL,
    problems TEXT NOT NULL, folder TEXT NOT NULL, PRIMARY KEY (folder, sender, control_id));
CREATE TABLE IF NOT EXISTS appointments (
    folder TEXT NOT NULL, appointment TEXT NOT NULL, placer TEXT NOT NULL, filler TEXT NOT NULL,
    row INTEGER NOT NULL, key TEXT NOT NULL, status TEXT NOT NULL, file TEXT NOT NULL,
    sha256 TEXT NOT NULL, procedure TEXT NOT NULL, date TEXT NOT NULL, email TEXT NOT NULL,
    input_sha256 TEXT NOT NULL, error TEXT NOT NULL, updated_utc TEXT NOT NULL,
    PRIMARY KEY (folder, appointment));
CREATE TABLE IF NOT EXISTS versions (
    folder TEXT NOT NULL, appointment TEXT NOT NULL, sha256 TEXT NOT NULL,
    made_utc TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Step:
    """The first half of a message: its acknowledgement already (``reply``), or the PDF to
    render (``task``) before ``ReadyFolder.finish`` records it."""

    received: Received
    reply: bytes = b""
    task: RenderTask | None = None
    booking: Booking | None = None
    current: dict[str, str] | None = None
    key: str = ""
    fingerprint: str = ""


@dataclass(frozen=True)
class Outcome:
    """What a message did: the journal's word for it and the words for MSA-3."""

    outcome: str
    text: str = ""


class ReadyFolder:
    """The ready folder and its journal; one message at a time (``handle`` is thread-safe)."""

    def __init__(
        self,
        config: Config,
        settings: Hl7Settings,
        out_dir: Path,
        *,
        journal: Path | None = None,
        handouts: Handouts | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.out = prepare_out_dir(out_dir)
        self.folder = str(self.out.resolve())
        # The batch's lock on the folder, held while listening: a batch into the same folder
        # (or a second listener) would rewrite the manifest under it.
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(locked(self.out))
        remove_partial_files(self.out)
        self.salt = folder_salt(self.out)
        AuditLog.open(config).close()  # a broken [audit] setting stops it now
        self._audit: AuditLog | None = None  # opened by the thread that handles the messages
        self.journal = _open_journal(journal or data_dir() / JOURNAL_NAME)
        self.templates = Recent()
        self.lock = threading.Lock()
        self.handouts = handouts  # filing ([hl7] file_to), --email, --print
        # (sender, control id) -> the PDF being rendered for it, until it is recorded
        self.in_flight: dict[tuple[str, str], RenderTask] = {}
        self.manifest_written = 0.0  # time.monotonic() of the last write
        self.manifest_due = False  # a change is not in manifest.csv yet
        self.renderer_ready = False
        self.write_manifest()

    @property
    def audit(self) -> AuditLog:
        if self._audit is None:
            self._audit = AuditLog.open(self.config)
        return self._audit

    def close(self) -> None:
        """Close the audit log and the journal (in the thread that handled the messages)."""
        with self.lock:
            # PDFs rendered for messages that were not finished (the listener stopped): in
            # neither the audit log nor the journal, so not handed out; the retry remakes them.
            for task in self.in_flight.values():
                with contextlib.suppress(OSError):
                    (self.out / task.file).unlink()
            self.in_flight.clear()
            if self.manifest_due:
                with contextlib.suppress(DischargeError):
                    self.write_manifest()
            if self._audit is not None:
                self._audit.close()
                self._audit = None
            self.journal.close()
            if self.handouts is not None:
                self.handouts.close()  # what was made is handed out before it stops
            self._lock.close()

    # --- one message -------------------------------------------------------------------

    def handle(self, frame: bytes) -> bytes:
        """The acknowledgement to one frame, as bytes to send back, its PDF rendered in this
        process. Never raises."""
        step = self.begin(frame)
        if step.task is None:
            return step.reply
        if not self.renderer_ready:
            prepare_renderer(self.config, self.out)
            self.renderer_ready = True
        return self.finish(step, render_row(step.task))

    def begin(self, frame: bytes) -> Step:
        """Read a frame; answer it at once, or say which PDF to render (in a worker process:
        the batch's ``render_row``, which writes it whole into the folder). Never raises."""
        with self.lock:
            received = decode_frame(frame)
            try:
                return self._begin(received)
            except Exception as exc:  # noqa: BLE001 - a bug must not stop the listener
                return Step(received, self._internal(received, exc))

    def finish(self, step: Step, result: RenderResult) -> bytes:
        """Record a rendered PDF (flushed to disk, audit record, journal) and acknowledge it.
        Never raises."""
        with self.lock:
            received = step.received
            try:
                return self._finish(step, result)
            except DischargeError as exc:
                return self._not_done(received, exc)
            except Exception as exc:  # noqa: BLE001
                return self._internal(received, exc)
            finally:
                self.in_flight.pop((received.sender, received.control_id), None)
                if self.manifest_due and not self.in_flight:
                    with contextlib.suppress(DischargeError):  # said at the next change
                        self.write_manifest()

    def _internal(self, received: Received, exc: Exception) -> bytes:
        problem = Problem("MSH", 10, INTERNAL, f"internal error ({type(exc).__name__}); the "
                          "message was not done: send it again")  # fmt: skip
        text = make_ack(received, REJECT, [problem], problem.text, _ack_id())
        return text.encode(received.codec, "replace")

    def _not_done(self, received: Received, exc: DischargeError) -> bytes:
        # Our side failed (a full disk, the audit log): not the sender's fault, and not
        # journaled, so the engine's retry gets another go.
        problem = Problem("MSH", 10, INTERNAL, f"not done: {exc}")
        text = make_ack(received, REJECT, [problem], problem.text, _ack_id())
        return text.encode(received.codec, "replace")

    def _reply(self, received: Received, text: str) -> Step:
        return Step(received, text.encode(received.codec, "replace"))

    def _begin(self, received: Received) -> Step:
        if received.message is None:
            assert received.problem is not None
            problems = received.problem.problems
            return self._reply(
                received, make_ack(received, REJECT, problems, problems[0].text, _ack_id())
            )
        before = self._seen(received)
        if before is not None:
            return self._reply(received, before)
        ident = (received.sender, received.control_id)
        if ident in self.in_flight:
            problem = Problem("MSH", 10, INTERNAL, "this message is being done now (sent twice "
                              "at once): send it again for its acknowledgement")  # fmt: skip
            return self._reply(
                received, make_ack(received, REJECT, [problem], problem.text, _ack_id())
            )
        event = _field(received, "MSH", 9, 2)
        try:
            booking = read_booking(received, self.settings, self.config)
            step = self._plan(booking, received)
        except MessageError as exc:
            self._note_error(received, exc)
            outcome = REJECTED if exc.ack == REJECT else FAILED
            text = "; ".join(f"{p.where}: {p.text}" for p in exc.problems)
            self._journal_message(received, event, outcome, exc.ack, text, exc.problems)
            return self._reply(received, make_ack(received, exc.ack, exc.problems, text,
                                                  _ack_id()))  # fmt: skip
        except DischargeError as exc:
            return Step(received, self._not_done(received, exc))
        if isinstance(step, Outcome):
            self._journal_message(received, event, step.outcome, ACCEPT, step.text, [])
            if self.manifest_due:  # a withdrawal; not a message that changed nothing
                self.write_manifest()
            return self._reply(received, make_ack(received, ACCEPT, [], step.text, _ack_id()))
        assert step.task is not None
        self.in_flight[ident] = step.task
        return step

    def _finish(self, step: Step, result: RenderResult) -> bytes:
        received, booking, current = step.received, step.booking, step.current
        assert booking is not None and booking.request is not None and step.task is not None
        if result.error or result.audit is None:
            raise DischargeError(result.error or "the PDF was not made")
        file = step.task.file
        path = self.out / file
        _fsync(path)  # whole and on disk before it is recorded
        record = replace(
            result.audit,
            channel=CHANNEL,
            batch_file=f"hl7:{self.folder}",
            batch_row=step.task.row,
            detail=_detail(received, booking, current),
        )
        self.audit.record_or_remove(record, path)
        outcome = REMADE if current is not None and current["status"] == OK else MADE_OUTCOME
        done = Outcome(outcome, f"{outcome}: the sheet is ready")
        event = _field(received, "MSH", 9, 2)
        with self.journal:
            appointment = self._store(booking, step.task.row, step.key, OK, file, result.sha256,
                                      booking.request, booking.email, step.fingerprint, "",
                                      commit=False)  # fmt: skip
            self._journal_message(received, event, done.outcome, ACCEPT, done.text, [],
                                  commit=False)  # fmt: skip
            # Every version made for the appointment: a withdrawal reports any that went out.
            self.journal.execute(
                "INSERT INTO versions VALUES (?, ?, ?, ?)",
                (self.folder, appointment, result.sha256, _now()),
            )
        if current is not None and current["file"] and current["file"] != file:
            with contextlib.suppress(OSError):  # the old date's sheet: replaced by this one
                (self.out / current["file"]).unlink()
        self.write_manifest(busy=len(self.in_flight) > 1)
        if self.handouts is not None:
            self.handouts.submit(
                Made(
                    step.task.row,
                    file,
                    result.sha256,
                    booking.request,
                    booking.email,
                    appointment,  # as the journal keeps it: the same id for every version
                    booking.patient,
                    booking.start,
                )  # fmt: skip
            )
        text = make_ack(received, ACCEPT, [], done.text, _ack_id())
        return text.encode(received.codec, "replace")

    def _seen(self, received: Received) -> str | None:
        found = self.journal.execute(
            "SELECT ack, ack_text, problems FROM messages "
            "WHERE folder = ? AND sender = ? AND control_id = ?",
            (self.folder, received.sender, received.control_id),
        ).fetchone()
        if found is None:
            return None
        ack, text, problems = found
        again = [Problem(**p) for p in json.loads(problems)]
        return make_ack(received, ack, again, text, _ack_id())

    def _journal_message(
        self,
        received: Received,
        event: str,
        outcome: str,
        ack: str,
        text: str,
        problems: list[Problem],
        *,
        commit: bool = True,
    ) -> None:
        with self.journal if commit else contextlib.nullcontext():
            self.journal.execute(
                "INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (received.sender, received.control_id, _now(), event, outcome, ack, text,
                 json.dumps([vars(p) for p in problems]), self.folder),
            )  # fmt: skip

    # --- what a booking does -------------------------------------------------------------

    def _plan(self, booking: Booking, received: Received) -> Outcome | Step:
        current = self._appointment(booking)
        if booking.request is None:
            if current is not None and current["status"] == OK:
                return self._withdraw(booking, current, received)
            if booking.event == CANCELLED:
                return Outcome(IGNORED, "nothing to withdraw: no sheet was made for this "
                               "appointment")  # fmt: skip
            return Outcome(IGNORED, "ignored: the appointment type is not in [hl7.procedures]")
        return self._make(booking, current, received)

    def _make(
        self, booking: Booking, current: dict[str, str] | None, received: Received
    ) -> Outcome | Step:
        request = booking.request
        assert request is not None and booking.template is not None
        row = int(current["row"]) if current else self._next_row()
        item = ScheduleRow(row, request, booking.email, booking.template)
        fingerprint = input_fingerprint(item, self.config, self.templates, repr(request))
        key = record_key(request, self.salt)
        file = output_name(request, key)
        if (
            current is not None
            and current["status"] == OK
            and current["input_sha256"] == fingerprint
            and current["file"] == file
            and _digest(self.out / file) == current["sha256"]
        ):
            return Outcome(UNCHANGED, "unchanged: the sheet already made is still right")
        task = RenderTask(row, file, request)
        return Step(received, task=task, booking=booking, current=current, key=key,
                    fingerprint=fingerprint)  # fmt: skip

    def _withdraw(self, booking: Booking, current: dict[str, str], received: Received) -> Outcome:
        sha = current["sha256"]
        # Every version's audit records, read once: what went out of any of them is said.
        versions = {v: list(self.audit.query(pdf_sha256=v))
                    for v in self._versions(current["appointment"])}  # fmt: skip
        made = _last_made(versions[sha]) if sha in versions else self.audit.last_made(sha)
        notes = []
        emailed = self._emailed(versions)
        if emailed:
            notes.append(f"it was already emailed to the patient on {emailed}")
        if any(r.action == FILED for records in versions.values() for r in records):
            notes.append("it was already filed to the patient's record")
        record = as_new(
            made or AuditRecord(action=WITHDRAWN, procedure=current["procedure"]),
            action=WITHDRAWN, channel=CHANNEL, batch_file=f"hl7:{self.folder}",
            batch_row=int(current["row"]), email_address="", message_id="",
            detail=_detail(received, booking, current) + "".join(f"; {n}" for n in notes),
        )  # fmt: skip
        self.audit.record(record)
        with contextlib.suppress(OSError):
            (self.out / current["file"]).unlink()
        self._store(booking, int(current["row"]), current["key"], WITHDRAWN_STATUS, "",
                    current["sha256"], None, current["email"], current["input_sha256"], "",
                    procedure=current["procedure"], day=current["date"])  # fmt: skip
        text = "withdrawn: the sheet was removed from the ready folder"
        if notes:
            text += "; NOTE: " + " and ".join(notes) + ": tell the patient"
        return Outcome(WITHDRAWN_OUTCOME, text)

    def _emailed(self, versions: dict[str, list[AuditRecord]]) -> str:
        """The last day a version of the sheet was emailed, "" if none was."""
        from discharge.channels.email import EmailChannel

        emailed = EmailChannel.actions.done
        days = []
        for sha, records in versions.items():
            sent = [r for r in records if r.action == emailed]
            made = _last_made(records)
            if made is not None:
                # A protected PDF is attached with other bytes: --email's record names the
                # sheet it was made from in its detail.
                sent += [
                    r for r in self.audit.query(mrn=made.mrn, procedure=made.procedure)
                    if r.action == emailed and f"sheet {sha}" in r.detail
                ]  # fmt: skip
            days += [r.time_local[:10] for r in sent]
        return max(days) if days else ""

    def _versions(self, appointment: str) -> list[str]:
        found = self.journal.execute(
            "SELECT sha256 FROM versions WHERE folder = ? AND appointment = ?",
            (self.folder, appointment),
        ).fetchall()
        return [sha for (sha,) in found]

    def _note_error(self, received: Received, exc: MessageError) -> None:
        """An AE for a known appointment: its manifest row says what could not be done (the
        sheet made before, if any, stays: it was right until this change)."""
        if exc.ack != APP_ERROR or received.message is None:
            return
        placer = _field(received, "SCH", 1)
        filler = _field(received, "SCH", 2)
        if not placer and not filler:
            return
        booking = Booking("", placer, filler)
        current = self._appointment(booking)
        error = "; ".join(f"{p.where}: {p.text}" for p in exc.problems)
        if current is None:
            self._store(booking, self._next_row(), "", ERROR, "", "", None, "", "", error)
        else:
            with self.journal:
                self.journal.execute(
                    "UPDATE appointments SET error = ?, updated_utc = ? "
                    "WHERE folder = ? AND appointment = ?",
                    (f"the last change was not made: {error}", _now(), self.folder,
                     current["appointment"]),
                )  # fmt: skip
        self.write_manifest()

    # --- the journal's appointments ------------------------------------------------------

    def _appointment(self, booking: Booking) -> dict[str, str] | None:
        found = self.journal.execute(
            "SELECT * FROM appointments WHERE folder = ? AND "
            "((filler != '' AND filler = ?) OR (placer != '' AND placer = ?)) "
            "ORDER BY updated_utc DESC LIMIT 1",
            (self.folder, booking.filler, booking.placer),
        ).fetchone()
        return dict(found) if found is not None else None

    def _next_row(self) -> int:
        (last,) = self.journal.execute(
            "SELECT COALESCE(MAX(row), 0) FROM appointments WHERE folder = ?", (self.folder,)
        ).fetchone()
        # A booking being rendered is in the journal only once it is finished: its row is
        # taken already.
        return max([int(last), *(task.row for task in self.in_flight.values())]) + 1

    def _store(
        self,
        booking: Booking,
        row: int,
        key: str,
        status: str,
        file: str,
        sha: str,
        request: object | None,
        email: str,
        fingerprint: str,
        error: str,
        *,
        procedure: str = "",
        day: str = "",
        commit: bool = True,
    ) -> str:
        """Store the appointment's row; the id it is kept under (the first message's, whichever
        of SCH-2 and SCH-1 later messages carry)."""
        if request is not None:
            procedure = request.procedure  # type: ignore[attr-defined]
            day = request.day.isoformat()  # type: ignore[attr-defined]
        current = self._appointment(booking)
        appointment = current["appointment"] if current else booking.appointment
        with self.journal if commit else contextlib.nullcontext():
            self.journal.execute(
                "INSERT OR REPLACE INTO appointments VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.folder, appointment, booking.placer, booking.filler, row, key, status,
                 file, sha, procedure, day, email, fingerprint, error, _now()),
            )  # fmt: skip
        self.manifest_due = True
        return appointment

    def entries(self) -> Iterator[ManifestRow]:
        """The manifest's rows: every appointment this folder has had, in the order first
        seen."""
        for found in self.journal.execute(
            "SELECT * FROM appointments WHERE folder = ? ORDER BY row", (self.folder,)
        ):
            yield ManifestRow(
                found["row"], found["status"], found["key"], found["file"], found["sha256"],
                found["procedure"], found["date"], found["email"], found["input_sha256"],
                found["error"],
            )  # fmt: skip

    def write_manifest(self, *, busy: bool = False) -> None:
        """``manifest.csv`` as the batch writes it (the same columns; ``withdrawn`` a status of
        its own), republished whole after every change. ``busy``: more PDFs are being made,
        so it may wait for them (at most a second): a long manifest is not rewritten for every
        one of many messages at once."""
        now = time.monotonic()
        if busy and now - self.manifest_written < MANIFEST_EVERY:
            self.manifest_due = True
            return
        self.manifest_written, self.manifest_due = now, False
        # The manifest is a report, rebuilt from the journal: no flush to disk of its own.
        write_manifest(self.out, self.entries(), durable=False)


def _open_journal(path: Path) -> sqlite3.Connection:
    try:
        create_private(path)
        # A journal others can read (a copy, an older version's) is made private, or refused.
        keep_private(path, what="the HL7 journal", error=OutputError)
        db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode = WAL")
        # The journal is flushed with the next commit, not each one: what a power cut loses
        # is only that a message was done, and its retry is then done again (its PDF and
        # audit record are already on disk).
        db.execute("PRAGMA synchronous = NORMAL")
        db.executescript(_SCHEMA)
    except (OSError, sqlite3.Error) as exc:
        raise OutputError(f"cannot open the HL7 journal {path}: {exc}") from None
    db.isolation_level = "DEFERRED"
    return db


def _last_made(records: list[AuditRecord]) -> AuditRecord | None:
    """``AuditLog.last_made`` from a sheet's records already read."""
    made = [r for r in records if r.action == MADE]
    return made[-1] if made else None


def _fsync(path: Path) -> None:
    """Flush one PDF to disk (the batch's syncfs would flush everything on the file system,
    others' writes too: slower for one file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _detail(received: Received, booking: Booking, current: dict[str, str] | None) -> str:
    detail = f"SIU^{booking.event} control id {received.control_id}"
    if current is not None and current.get("sha256") and booking.request is not None:
        detail += f"; replaces the sheet {current['sha256'][:16]}"
    return detail


def _field(received: Received, segment: str, number: int, component: int = 1) -> str:
    if received.message is None:
        return ""
    return field_text(received.message, segment, number, 1, component)


def _ack_id() -> str:
    return str(hl7.generate_message_control_id())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
