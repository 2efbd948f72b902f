"""A day's schedule into PDFs: check a CSV schedule, render every row, keep a manifest.

The run reads the schedule twice, so memory stays flat however long it is: first every row
is validated and every problem reported (``check_schedule``); then the valid rows are rendered,
in worker processes, each PDF written atomically inside the output folder, and each row's
outcome recorded in ``DIR/manifest.csv`` (``run_batch``). A rerun skips the rows whose PDF is
still the one the manifest recorded, so an interrupted run can simply be started again.

Everything here is plain functions and small classes a Python caller can use; the command line
(``discharge/commands/batch.py``) only parses options and reports.
"""

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import sys
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from discharge import __version__, speedups
from discharge.audit import AuditLog, AuditRecord, describe_pdf
from discharge.batch.audit import BatchAudit
from discharge.batch.manifest import (
    DUPLICATE,
    ERROR,
    MANIFEST_FIELDS,
    MANIFEST_NAME,
    OK,
    SKIPPED,
    ManifestRow,
    ManifestWriter,
    PreviousManifest,
)
from discharge.batch.schedule import (
    DateOrders,
    Recent,
    RowError,
    Schedule,
    ScheduleRow,
    read_rows,
)
from discharge.config import Clinic, Config
from discharge.errors import DischargeError, OutputError
from discharge.output import write_atomic
from discharge.request import DischargeRequest

# The temporary files write_atomic / open_atomic leave if a process is killed mid-write:
# `.rx-104233-1a2b3c-hsg-2026-11-2.0f3a9c1e.part` for PDFs (the name cut to 40 characters,
# then 8 random hex digits; older versions used mkstemp's 8 characters), and
# `.manifest.csv.XXXX.part` for the manifest, its journal and the previous run's index. Only
# names this module makes match.
_PART_FILE = re.compile(
    r"^\.[a-z0-9][a-z0-9.-]{0,39}\.[a-z0-9_]{8}\.part$|^\.manifest\.csv\..*\.part$"
)
SALT_NAME = f".{MANIFEST_NAME}.salt"
# A procedure date further than this from today is probably a typing mistake in the year.
PLAUSIBLE_DAYS = 366
_WINDOW_PER_JOB = 8  # rows in flight per worker: enough to keep it busy, few enough to stay flat
# Rows sent to a worker at once (after the first few, sent one by one): each message between
# the processes costs the parent's threads a few wake-ups, whatever it carries.
_ROWS_PER_TASK = 4


# --- file names -------------------------------------------------------------------------


def slug(text: str, limit: int = 40) -> str:
    """ASCII letters, digits and single hyphens only: safe in any file system and URL."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:limit].strip("-")


def identity(request: DischargeRequest) -> str:
    """Who, what and when: the same for a patient's procedure however the schedule is sorted.

    The hospital number identifies the patient where there is one (a name can be spelt two
    ways); without one, the name and date of birth do.
    """
    patient = request.patient
    if patient.mrn:
        who: tuple[str, ...] = ("mrn", patient.mrn.casefold())
    else:
        born = patient.dob.isoformat() if patient.dob else ""
        who = ("name", " ".join(patient.name.casefold().split()), born)
    return "\x1f".join((*who, request.procedure, request.day.isoformat()))


def record_key(request: DischargeRequest, salt: bytes) -> str:
    """The row's key in the manifest and the email journal: a salted digest of its identity,
    so neither file holds a name, and a rerun finds the row wherever it has moved to."""
    return hmac.new(salt, identity(request).encode("utf-8"), hashlib.sha256).hexdigest()[:24]


def output_name(request: DischargeRequest, key: str) -> str:
    """The PDF's file name: one per patient, procedure and date, stable across reruns and
    re-sorted schedules, safe whatever the data.

    It carries the hospital number (as the clinic's own files do) but never the patient's name:
    a file name is seen by more people and programs (mail previews, print queues, backups) than
    the document. A part of the key keeps two hospital numbers that read alike apart.
    """
    mrn = slug(request.patient.mrn)
    who = f"{mrn}-{key[:6]}" if mrn else f"patient-{key[:12]}"
    return f"{who}-{slug(request.procedure)}-{request.day.isoformat()}.pdf"


def folder_salt(out_dir: Path) -> bytes:
    """The output folder's own random salt for ``record_key``, made on its first run.

    It lives with the manifest, so any workstation that reruns the batch into this folder finds
    the same keys (and so never emails a patient twice).
    """
    path = out_dir / SALT_NAME
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise OutputError(
            f"{path} is damaged ({type(exc).__name__}); restore it from a backup, or start "
            "again in a new output folder"
        ) from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another run made it first: use theirs
        return folder_salt(out_dir)
    except OSError as exc:
        raise OutputError(f"cannot write in output folder {out_dir}: {exc.strerror}") from None
    salt = secrets.token_bytes(32)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(salt.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return salt


def input_fingerprint(item: ScheduleRow, config: Config, templates: Recent, shown: str) -> str:
    """A digest of everything the PDF is made from, so a corrected row is never skipped.

    ``shown`` is ``repr(item.request)``; ``templates`` keeps the templates' digests.
    """
    path = item.template
    template = templates.get(path, lambda: _file_digest(path, path.stat().st_mtime_ns))
    parts = (__version__, shown, _clinic_key(config.clinic), template)
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


@cache
def _clinic_key(clinic: Clinic) -> str:
    return repr(clinic)


@cache
def _file_digest(path: Path, _mtime_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- rendering (in worker processes) ----------------------------------------------------


@dataclass(frozen=True)
class RenderTask:
    row: int
    file: str
    request: DischargeRequest


@dataclass(frozen=True)
class RenderResult:
    """What a worker sends back: never the PDF itself, which it has already written."""

    row: int
    file: str
    sha256: str
    error: str
    audit: AuditRecord | None = None  # what the parent records in the audit log for this row


_worker: dict[str, Any] = {}


@cache
def _syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2), which flushes everything written to one file system in one go."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        function: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return function


def flush_to_disk(out_dir: Path, files: Iterable[str]) -> None:
    """Make PDFs written with ``durable=False`` durable, before they are recorded.

    A PDF used to be flushed (fsync) as it was written, about 4 ms of waiting for every row;
    the file system's one flush for all the rows of a commit costs about as much as one of
    them. Where there is no syncfs, each worker flushes its own files as before.
    """
    syncfs = _syncfs()
    if syncfs is None:
        return
    try:
        fd = os.open(out_dir, os.O_RDONLY)
        try:
            if syncfs(fd) != 0:  # then the slow way, which reports what failed
                for file in files:
                    with open(out_dir / file, "rb") as handle:
                        os.fsync(handle.fileno())
        finally:
            os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write the PDFs to disk in {out_dir}: {exc.strerror}") from None


def prepare_renderer(
    config: Config, out_dir: Path, debug: bool = False, formats: tuple[str, ...] = ("pdf",)
) -> None:
    """Load fonts and templates once per process, before the first row (the parent does it
    before starting the workers, which then begin with them loaded). ``formats``: besides
    each row's PDF, its web page (``html``) and plain text (``text``), beside it."""
    from discharge.guidance.loading import load_all
    from discharge.pdf.fonts import main_coverage

    _worker.update(config=config, out_dir=out_dir, debug=debug, durable=_syncfs() is None,
                   formats=formats)  # fmt: skip
    main_coverage()
    with contextlib.suppress(DischargeError):  # a broken template is reported on its rows
        load_all(config.templates_dir)


def _init_pool_worker(
    config: Config, out_dir: Path, debug: bool, formats: tuple[str, ...] = ("pdf",)
) -> None:
    import signal

    from discharge.batch.lifeline import die_with_parent

    # The parent decides when to stop (Ctrl-C reaches the whole process group): a worker
    # killed mid-write leaves only a temporary file, which the parent removes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent()  # a batch killed outright (kill -9) leaves no workers behind
    prepare_renderer(config, out_dir, debug, formats)


def render_pool(
    config: Config,
    out_dir: Path,
    jobs: int,
    debug: bool = False,
    formats: tuple[str, ...] = ("pdf",),
) -> Any:
    """``jobs`` worker processes for ``render_rows`` (a multiprocessing Pool), started warm."""
    import multiprocessing

    # Fonts, templates and reportlab loaded once, here: the forked workers start warm.
    prepare_renderer(config, out_dir, debug, formats)

    # fork where there is one: workers start at once and share the parent's imports.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    context = multiprocessing.get_context(method)
    return speedups.pool_class()(
        jobs, initializer=_init_pool_worker, initargs=(config, out_dir, debug, formats),
        context=context,
    )  # fmt: skip


def render_row(task: RenderTask) -> RenderResult:
    """Render one row and write its PDF atomically; the same code as ``discharge generate``."""
    from discharge.generate import SUFFIXES, make_pdf, render_as

    config: Config = _worker["config"]
    out_dir: Path = _worker["out_dir"]
    try:
        document, pdf = make_pdf(task.request, config)
        # The other formats first: a row is done (and skipped by a rerun) once its PDF is.
        for fmt in _worker.get("formats", ()):
            if fmt != "pdf":
                other = Path(task.file).with_suffix(SUFFIXES[fmt])
                write_atomic(out_dir / other, render_as(document, fmt), durable=_worker["durable"])
        # Flushed to disk by the parent (flush_to_disk) before the row is recorded.
        write_atomic(out_dir / task.file, pdf, durable=_worker["durable"])
        audit = describe_pdf(task.request, document, pdf, channel="batch")
    except DischargeError as exc:
        return RenderResult(task.row, task.file, "", str(exc))
    except Exception as exc:  # a bug (e.g. reportlab's LayoutError): it must not stop the rest
        if _worker.get("debug"):
            raise
        # Only the type: reportlab's messages quote the text of the cell that did not fit.
        message = f"internal error while making this PDF ({type(exc).__name__}); please report it"
        return RenderResult(task.row, task.file, "", message)
    return RenderResult(task.row, task.file, audit.pdf_sha256, "", audit)


def render_rows(tasks: list[RenderTask]) -> list[RenderResult]:
    """Render a few rows in order (one message to and from a worker for all of them)."""
    return [render_row(task) for task in tasks]


class _Chunk:
    """Rows for one worker, gathered until there are enough of them, then sent."""

    def __init__(self) -> None:
        self.tasks: list[RenderTask] = []
        self.sent: Any = None  # the pool's AsyncResult, once sent


class _Slot:
    """One row of a chunk, shaped like a pool's AsyncResult."""

    def __init__(self, runner: "_Runner", chunk: _Chunk, index: int) -> None:
        self.runner = runner
        self.chunk = chunk
        self.index = index

    def ready(self) -> bool:
        return self.chunk.sent is not None and bool(self.chunk.sent.ready())

    def get(self, timeout: float | None = None) -> RenderResult:
        if self.chunk.sent is None:  # waited for before it was full: send it now
            self.runner.send_chunk()
        results: list[RenderResult] = self.chunk.sent.get(timeout)
        return results[self.index]


class _Ready:
    """An outcome known without rendering, shaped like a pool's AsyncResult."""

    def __init__(self, result: RenderResult | None = None) -> None:
        self.result = result

    def ready(self) -> bool:
        return True

    def get(self) -> RenderResult | None:
        return self.result


# --- the run ----------------------------------------------------------------------------


class BatchReporter(Protocol):
    def row_error(self, row: int, message: str) -> None: ...

    def row_warning(self, row: int, message: str) -> None: ...  # the message names the row

    # The rows whose only problem is a date like 03/04/2026, reported once, together; say how
    # to give the order with schedule.date_order_note.
    def dates_need_order(self, rows: list[int], dates: DateOrders) -> None: ...

    def started(self, rows: int) -> None: ...

    def row_done(self, entry: ManifestRow) -> None: ...


class QuietReporter:
    def row_error(self, row: int, message: str) -> None:
        pass

    def row_warning(self, row: int, message: str) -> None:
        pass

    def dates_need_order(self, rows: list[int], dates: DateOrders) -> None:
        pass

    def started(self, rows: int) -> None:
        pass

    def row_done(self, entry: ManifestRow) -> None:
        pass


class _Repeats:
    """Rows that name the same patient, procedure and date as an earlier row of the schedule.

    An exact repeat (a row pasted twice) makes no second PDF; the same patient with different
    details is an error for the later row, since only one of them can be right. Short digests
    are kept, not the rows: memory stays small for any schedule.
    """

    def __init__(self) -> None:
        # In a private temporary database (SQLite removes it when it is closed), not a dict:
        # a dict of 100,000 rows' digests holds about 23 MB, and memory must stay flat.
        self.db = sqlite3.connect("")
        self.db.execute(
            "CREATE TABLE seen (who BLOB PRIMARY KEY, row INTEGER, data BLOB) WITHOUT ROWID"
        )

    def earlier(self, item: ScheduleRow, shown: str | None = None) -> tuple[str, int] | None:
        """``(DUPLICATE or ERROR, the earlier row)``, or None for the first such row.

        ``shown``: ``repr(item.request)``, when the caller has it already.
        """
        who = hashlib.blake2b(identity(item.request).encode(), digest_size=16).digest()
        # repr((request, email)), without making the request's repr twice
        shown = f"({repr(item.request) if shown is None else shown}, {item.email!r})"
        data = hashlib.blake2b(shown.encode(), digest_size=16).digest()
        # Most rows are new: one statement for them (it adds nothing for a repeat).
        added = self.db.execute(
            "INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", (who, item.row, data)
        ).rowcount
        if added:
            return None
        row, first_data = self.db.execute(
            "SELECT row, data FROM seen WHERE who = ?", (who,)
        ).fetchone()
        if row == item.row:
            return None
        return (DUPLICATE if data == first_data else ERROR), row


def repeat_message(kind: str, earlier: int) -> str:
    if kind == DUPLICATE:
        return f"repeats row {earlier} (one PDF is made for both)"
    return (
        f"has the same patient, procedure and date as row {earlier} but different details; "
        "correct one of them"
    )


def date_warning(request: DischargeRequest, today: date) -> str:
    """A warning for a procedure date so far from today that the year is probably mistyped."""
    days = (request.day - today).days
    if abs(days) <= PLAUSIBLE_DAYS:
        return ""
    years = abs(days) // 365
    when = "from now" if days > 0 else "ago"
    span = f"{years} years" if years > 1 else "more than a year"
    return f"the procedure date is {span} {when}; check the year"


@dataclass(frozen=True)
class CheckSummary:
    valid: int
    errors: int


@dataclass(frozen=True)
class BatchSummary:
    ok: int
    errors: int
    skipped: int
    duplicates: int
    seconds: float
    interrupted: bool
    manifest: Path


def check_schedule(
    schedule: Schedule,
    config: Config,
    *,
    date_order: str | None = None,
    reporter: BatchReporter | None = None,
    deep: bool = True,
) -> CheckSummary:
    """Validate every row, reporting each problem and warning; write nothing.

    ``deep`` also builds each row's document and checks that the fonts can print every
    character, with the code the renderer uses: what ``--check`` passes, the run makes.
    """
    reporter = reporter or QuietReporter()
    repeats = _Repeats()
    today = date.today()
    valid = errors = 0
    dates = DateOrders()
    waiting: list[int] = []  # rows whose only problem is the date order: one note for them all
    for item in read_rows(schedule, config, date_order, dates):
        if isinstance(item, ScheduleRow):
            problem = _deep_check(item, config) if deep else ""
            repeat = repeats.earlier(item)
            if repeat is not None:
                kind, earlier = repeat
                if kind == ERROR:
                    problem = problem or repeat_message(kind, earlier)
                else:
                    reporter.row_warning(
                        item.row, f"row {item.row} {repeat_message(kind, earlier)}"
                    )
            if problem:
                item = RowError(item.row, problem)
            elif warning := date_warning(item.request, today):
                reporter.row_warning(item.row, f"row {item.row}: {warning}")
        if isinstance(item, RowError):
            errors += 1
            if item.needs_date_order:
                waiting.append(item.row)
            else:
                reporter.row_error(item.row, item.message)
        else:
            valid += 1
    if waiting:
        reporter.dates_need_order(waiting, dates)
    return CheckSummary(valid, errors)


def _deep_check(item: ScheduleRow, config: Config) -> str:
    from discharge.document import build_document, printed_text
    from discharge.pdf.fonts import segments

    try:
        for text in printed_text(build_document(item.request, config)):
            segments(text)
    except DischargeError as exc:
        return str(exc)
    return ""


def run_batch(
    schedule: Schedule,
    config: Config,
    out_dir: str | os.PathLike[str],
    *,
    jobs: int | None = None,
    force: bool = False,
    date_order: str | None = None,
    reporter: BatchReporter | None = None,
    checkpoint_seconds: float = 2.0,
    debug: bool = False,
    formats: tuple[str, ...] = ("pdf",),
) -> BatchSummary:
    """Check the whole schedule, then make every valid row's PDF in ``out_dir`` (and, with
    ``formats``, its web page ``.html`` and plain text ``.txt`` beside it).

    Ctrl-C (KeyboardInterrupt) stops the run cleanly: the manifest is written and the summary
    says ``interrupted``; running again finishes the job. ``debug`` lets an unexpected error
    in a row (a bug) propagate with its traceback instead of becoming that row's error.
    """
    reporter = reporter or QuietReporter()
    started = time.monotonic()
    audit_log = AuditLog.open(config)  # a broken [audit] setting stops the run now
    check = check_schedule(schedule, config, date_order=date_order, reporter=reporter, deep=False)
    out = prepare_out_dir(Path(out_dir))
    counts = {OK: 0, ERROR: 0, SKIPPED: 0, DUPLICATE: 0}
    interrupted = complete = False
    with locked(out):
        remove_partial_files(out)
        previous = PreviousManifest(out)
        extra = [f for f in previous.fields if f and f not in MANIFEST_FIELDS]
        manifest = ManifestWriter(out, MANIFEST_FIELDS + extra, previous)
        runner = _Runner(
            config, out, jobs or os.cpu_count() or 1, check.valid, debug, folder_salt(out)
        )
        runner.formats = formats
        # A row reaches the manifest (and counts as made) once its audit record is committed.
        audit = BatchAudit(
            audit_log, schedule.path, out, runner.audit_facts, runner.in_flight,
            before_commit=runner.flush_written,
        )  # fmt: skip
        reporter.started(check.valid + check.errors)
        try:
            next_checkpoint = time.monotonic() + checkpoint_seconds
            rows = runner.outcomes(read_rows(schedule, config, date_order), previous, force)
            for entry in audit.entries(rows):
                manifest.record(entry)
                counts[entry.status] += 1
                if entry.status == ERROR and entry.key:
                    # A row with a key failed while being made (the check above reported the
                    # rest): say so now.
                    reporter.row_error(entry.row, entry.error)
                reporter.row_done(entry)
                if time.monotonic() >= next_checkpoint:
                    began = time.monotonic()
                    manifest.checkpoint()
                    # Rewriting a very long manifest takes time: keep it a small share of the run.
                    spent = time.monotonic() - began
                    next_checkpoint = time.monotonic() + max(checkpoint_seconds, 20 * spent)
            complete = True
        except KeyboardInterrupt:
            interrupted = True
            # rows already written when the signal came
            for entry in audit.entries(runner.finished()):
                manifest.record(entry)
                counts[entry.status] += 1
        finally:
            runner.close()
            runner.discard_unreported()  # no PDF is kept that is not recorded
            audit_log.close()
            try:
                manifest.close(complete=complete)
            finally:
                previous.close()
                remove_partial_files(out)
    return BatchSummary(
        ok=counts[OK],
        errors=counts[ERROR],
        skipped=counts[SKIPPED],
        duplicates=counts[DUPLICATE],
        seconds=time.monotonic() - started,
        interrupted=interrupted,
        manifest=out / MANIFEST_NAME,
    )


class _Runner:
    """Feeds rows to the renderer (a process pool, or this process for one job), in order.

    At most a few rows per worker are in flight: Pool.imap would read the whole schedule
    ahead into its task queue, and memory would grow with the schedule.
    """

    def __init__(
        self, config: Config, out_dir: Path, jobs: int, to_render: int, debug: bool, salt: bytes
    ) -> None:
        self.config = config
        self.out_dir = out_dir
        self.debug = debug
        self.salt = salt
        self.repeats = _Repeats()
        self.templates = Recent()  # the templates' digests
        self.jobs = max(1, min(jobs, to_render))
        self.pool: Any = None
        self.prepared = False
        self.pending: deque[tuple[ManifestRow, ManifestRow | None, Any]] = deque()
        self.audit_facts: dict[int, AuditRecord] = {}  # row -> its audit record, once made
        self.in_flight: dict[int, str] = {}  # row -> its PDF, until the row is recorded
        self.unflushed: list[str] = []  # PDFs written since the last flush_written
        self.chunk = _Chunk()  # rows gathered for the next message to a worker
        self.sent_rows = 0
        self.formats: tuple[str, ...] = ("pdf",)  # what each row makes (see prepare_renderer)

    def outcomes(
        self, items: Iterable[ScheduleRow | RowError], previous: PreviousManifest, force: bool
    ) -> Iterator[ManifestRow]:
        window = self.jobs * _WINDOW_PER_JOB
        for item in items:
            if isinstance(item, RowError):
                entry = ManifestRow(item.row, status=ERROR, error=item.message)
                self.pending.append((entry, None, _Ready()))
            else:
                key = record_key(item.request, self.salt)
                shown = repr(item.request)
                procedure, day = item.request.procedure, item.request.day.isoformat()
                repeat = self.repeats.earlier(item, shown)
                if repeat is not None:
                    kind, earlier = repeat
                    # The earlier row owns the key, the file and the email: this one has none.
                    entry = ManifestRow(
                        item.row, status=kind, procedure=procedure, date=day,
                        error=repeat_message(kind, earlier),
                    )  # fmt: skip
                    self.pending.append((entry, None, _Ready()))
                    continue
                entry = ManifestRow(
                    item.row, key=key, file=output_name(item.request, key), procedure=procedure,
                    date=day, email=item.email,
                    input_sha256=input_fingerprint(item, self.config, self.templates, shown),
                )  # fmt: skip
                before = previous.entry(key)
                if digest := (None if force else _still_valid(self.out_dir, entry, before)):
                    entry.status, entry.sha256 = SKIPPED, digest
                    self.pending.append((entry, before, _Ready()))
                else:
                    task = RenderTask(item.row, entry.file, item.request)
                    self.in_flight[item.row] = entry.file
                    self.pending.append((entry, before, self._submit(task)))
            while len(self.pending) > window or (self.pending and self.pending[0][2].ready()):
                yield self._complete(self.pending.popleft(), wait=True)
        self.send_chunk()
        while self.pending:
            yield self._complete(self.pending.popleft(), wait=True)

    def finished(self) -> Iterator[ManifestRow]:
        """After an interruption: the rows at the front that are already done, in order."""
        while self.pending and self.pending[0][2].ready():
            try:
                yield self._complete(self.pending.popleft(), wait=False)
            except Exception:  # noqa: BLE001 - a worker killed mid-row: that row is redone
                return

    def _submit(self, task: RenderTask) -> Any:
        if self.jobs == 1:
            if not self.prepared:
                prepare_renderer(self.config, self.out_dir, self.debug, self.formats)
                self.prepared = True
            return _Ready(render_row(task))
        if self.pool is None:
            self.pool = render_pool(self.config, self.out_dir, self.jobs, self.debug, self.formats)
        chunk = self.chunk
        chunk.tasks.append(task)
        slot = _Slot(self, chunk, len(chunk.tasks) - 1)
        # One row at a time at first (the first PDFs are recorded soon) and in debug mode (an
        # error is raised from its own row).
        size = 1 if self.debug else min(_ROWS_PER_TASK, 1 + self.sent_rows // (4 * self.jobs))
        if len(chunk.tasks) >= size:
            self.send_chunk()
        return slot

    def send_chunk(self) -> None:
        """Send the rows gathered so far to a worker."""
        chunk = self.chunk
        if chunk.tasks and chunk.sent is None:
            chunk.sent = self.pool.apply_async(render_rows, (chunk.tasks,))
            self.sent_rows += len(chunk.tasks)
            self.chunk = _Chunk()

    def _complete(
        self, item: tuple[ManifestRow, ManifestRow | None, Any], *, wait: bool
    ) -> ManifestRow:
        entry, before, pending = item
        result: RenderResult | None = pending.get() if wait else pending.get(timeout=0)
        if result is not None:
            if result.error:
                # Only a row with a PDF on disk names a file.
                entry.status, entry.error, entry.file = ERROR, result.error, ""
            else:
                entry.status, entry.sha256 = OK, result.sha256
                self.unflushed.append(result.file)
                if result.audit is not None:
                    self.audit_facts[result.row] = result.audit
        entry.carry_over(before)
        return entry

    def flush_written(self) -> None:
        """Flush the PDFs written so far to disk (before their rows are recorded)."""
        if self.unflushed:
            flush_to_disk(self.out_dir, self.unflushed)
            self.unflushed.clear()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def discard_unreported(self) -> None:
        """After ``close``, when the run stopped early: remove the PDFs made for rows not
        recorded yet. They are in neither the audit log nor the manifest, so they must not be
        handed out; a rerun makes them again."""
        for file in self.in_flight.values():
            with contextlib.suppress(OSError):
                (self.out_dir / file).unlink()
        self.in_flight.clear()


def _still_valid(out_dir: Path, entry: ManifestRow, before: ManifestRow | None) -> str | None:
    """The PDF's digest if the last run made this same row into this same, intact file."""
    if before is None or before.status not in (OK, SKIPPED):
        return None
    if before.file != entry.file or before.input_sha256 != entry.input_sha256:
        return None
    try:
        digest = hashlib.sha256((out_dir / entry.file).read_bytes()).hexdigest()
    except OSError:
        return None
    return digest if digest == before.sha256 else None


def prepare_out_dir(out_dir: Path) -> Path:
    """The output folder, made if needed and checked writable (an OutputError if not)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"output folder {out_dir} is a file, expected a folder") from None
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out_dir}: {exc.strerror}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write in output folder {out_dir}: permission denied")
    return out_dir


@contextlib.contextmanager
def locked(out_dir: Path) -> Iterator[None]:
    """One batch at a time per output folder: two would overwrite each other's manifest."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; run one batch per folder
        yield
        return
    fd = os.open(out_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputError(f"another discharge batch is writing to {out_dir}") from None
        yield
    finally:
        os.close(fd)


def remove_partial_files(out_dir: Path) -> None:
    """Remove temporary files a killed process left behind (only the ones we create).

    The folder is read as a stream: ``Path.glob`` lists every entry first, about 30 MB for a
    folder of 100,000 PDFs, at the end of every run.
    """
    with os.scandir(out_dir) as entries:
        for entry in entries:
            if entry.name.startswith(".") and _PART_FILE.match(entry.name):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
