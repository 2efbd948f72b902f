"""A day's schedule into PDFs: check a CSV schedule, render every row, keep a manifest.

The run reads the schedule twice, so memory stays flat however long it is: first every row
is validated and every problem reported (``check_schedule``); then the valid rows are rendered,
in worker processes, each PDF written atomically inside the output folder, and each row's
outcome recorded in ``DIR/manifest.csv`` (``run_batch``). A rerun skips the rows whose PDF is
still the one the manifest recorded, so an interrupted run can simply be started again.

Everything here is plain functions and small classes a Python caller can use; the command line
(``cli_batch.py``) only parses options and reports.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import re
import shutil
import time
import unicodedata
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import IO, Any, Protocol

from discharge import __version__
from discharge.audit import AuditLog, AuditRecord, BatchAudit, describe_pdf  # AUDIT (issue 13)
from discharge.config import DATE_ORDERS, Clinic, Config
from discharge.document import DischargeRequest, parse_request
from discharge.errors import DischargeError, InputError, OutputError
from discharge.output import open_atomic, write_atomic
from discharge.procedures import load_procedure

REQUIRED_COLUMNS = ("patient_name", "procedure", "date")
OPTIONAL_COLUMNS = ("time", "dob", "mrn", "clinician", "notes", "email", "paper")
KNOWN_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

MANIFEST_NAME = "manifest.csv"
# The manifest is opened in spreadsheets, so UTF-8 with a BOM (Excel reads it as UTF-8 then).
MANIFEST_ENCODING = "utf-8-sig"
# Columns this module owns, in order. Other commands (``email``) may add their own columns after
# these; a batch rerun keeps them (see ``_carried_over``). No patient names or notes here: the
# row number and the file are enough to find a row, and the PDF itself holds the rest.
MANIFEST_FIELDS = [
    "row",
    "status",
    "file",
    "sha256",
    "procedure",
    "date",
    "email",
    "input_sha256",  # what the PDF was made from: a rerun rebuilds a row whose data changed
    "error",
]
OK, ERROR, SKIPPED = "ok", "error", "skipped"

_SLASH_DATE = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\s*$")
# A spreadsheet treats a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
# The temporary files write_atomic / open_atomic leave if a process is killed mid-write:
# `.00012-ann-exa.XXXX.part` for PDFs (the name is cut to 40 characters there), and
# `.manifest.csv.XXXX.part` for the manifest, its journal and the previous run's copy.
_PART_PATTERNS = (".[0-9][0-9][0-9][0-9][0-9]*-*.part", f".{MANIFEST_NAME}.*.part")
_PDF_NAME = re.compile(r"^[0-9]{5,}-[a-z0-9-]+\.pdf$")
_WINDOW_PER_JOB = 4  # rows in flight per worker: enough to keep it busy, few enough to stay flat


# --- the schedule -----------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """A schedule file whose header has been read and checked."""

    path: Path
    delimiter: str
    header: tuple[str, ...]  # normalised column names, "" for a column without a name
    unknown_columns: tuple[str, ...]

    def records(self) -> Iterator[ScheduleRecord]:
        """Every non-empty record after the header, streamed."""
        with _open_text(self.path) as handle:
            reader = csv.reader(handle, delimiter=self.delimiter)
            row = 1
            try:
                next(reader, None)
                # The row number is the record index, not the line number: a quoted note that
                # spans three lines is still one row in a spreadsheet, and the coordinator
                # looks the row up there (the header is row 1).
                for row, cells in enumerate(reader, start=2):
                    if any(cell.strip() for cell in cells):
                        yield self._record(row, cells)
            except csv.Error as exc:
                raise InputError(f"schedule {self.path}: row {row + 1}: {exc}") from None
            except UnicodeDecodeError:
                raise InputError(_not_utf8(self.path, f" (near row {row + 1})")) from None

    def _record(self, row: int, cells: list[str]) -> ScheduleRecord:
        values: dict[str, str] = {}
        stray = False
        for index, cell in enumerate(cells):
            name = self.header[index] if index < len(self.header) else ""
            if name in KNOWN_COLUMNS:
                values[name] = cell
            elif not name and cell.strip():
                stray = True
        return ScheduleRecord(row, values, stray)


@dataclass(frozen=True)
class ScheduleRecord:
    """One row's raw text, by column name."""

    row: int
    values: dict[str, str]
    stray: bool = False  # a value in a column without a header: the row is probably shifted


@dataclass(frozen=True)
class ScheduleRow:
    """A valid row: what to render and what to record."""

    row: int
    request: DischargeRequest
    email: str
    template: Path  # the procedure's template file, part of the input fingerprint


@dataclass(frozen=True)
class RowError:
    row: int
    message: str


def normalise_column(name: str) -> str:
    """``Patient Name``, ``patient-name`` and ``PATIENT_NAME`` all read as ``patient_name``."""
    name = name.replace("\ufeff", "").strip().lower()
    return re.sub(r"[\s_-]+", "_", name).strip("_")


def open_schedule(path: str | os.PathLike[str]) -> Schedule:
    """Read and check the header of a schedule; raise InputError if the run cannot start."""
    path = Path(path)
    with _open_text(path) as handle:
        try:
            first_line = handle.readline()
        except UnicodeDecodeError:
            raise InputError(_not_utf8(path, "")) from None
        if not first_line.strip():
            raise InputError(
                f"schedule {path} is empty (expected a header row with "
                f"{', '.join(REQUIRED_COLUMNS)})"
            )
        delimiter = sniff_delimiter(first_line)
        handle.seek(0)
        try:
            raw_header = next(csv.reader(handle, delimiter=delimiter))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"schedule {path}: cannot read the header row: {exc}") from None
    header = tuple(normalise_column(name) for name in raw_header)
    named = [name for name in header if name]
    twice = sorted({name for name in named if named.count(name) > 1})
    if twice:
        raise InputError(f"schedule {path}: column {twice[0]!r} appears more than once")
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        found = ", ".join(named) or "none"
        raise InputError(
            f"schedule {path} has no {' or '.join(repr(m) for m in missing)} column "
            f"(columns found, read as {_DELIMITERS[delimiter]}-separated: {found})"
        )
    unknown = tuple(name for name in named if name not in KNOWN_COLUMNS)
    return Schedule(path, delimiter, header, unknown)


def sniff_delimiter(header_line: str) -> str:
    """Comma, semicolon (Excel in many European locales) or tab, whichever the header uses.

    The header is the one line that is sure to hold only column names, so counting there is
    more reliable than csv.Sniffer on rows whose notes are full of commas.
    """
    counts = {d: header_line.count(d) for d in _DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_rows(
    schedule: Schedule, config: Config, date_order: str | None = None
) -> Iterator[ScheduleRow | RowError]:
    """Every row of the schedule, validated, in order: a ScheduleRow or a RowError."""
    order = date_order or config.clinic.date_order
    for record in schedule.records():
        try:
            yield parse_row(record, date_order=order, templates_dir=config.templates_dir)
        except DischargeError as exc:  # bad data, or a broken template for this procedure
            yield RowError(record.row, str(exc))


def parse_row(
    record: ScheduleRecord, *, date_order: str | None = None, templates_dir: Path | None = None
) -> ScheduleRow:
    """Validate one row through the same code as ``discharge generate``."""
    if record.stray:
        raise InputError(
            "there is a value in a column without a header; check that a comma or semicolon "
            "inside a value is in quotes"
        )
    values = record.values
    dob = values.get("dob", "")
    request = parse_request(
        procedure=values.get("procedure", ""),
        date=read_date(values.get("date", ""), date_order, "date"),
        patient=values.get("patient_name", ""),
        time=values.get("time"),
        dob=read_date(dob, date_order, "date of birth") if dob.strip() else None,
        mrn=values.get("mrn"),
        clinician=values.get("clinician"),
        notes=values.get("notes"),
        paper=values.get("paper"),
    )
    if not request.procedure:
        raise InputError("procedure is empty (expected a procedure id such as hsg)")
    procedure = load_procedure(request.procedure, templates_dir)
    email = check_email(values.get("email", ""))
    return ScheduleRow(record.row, request, email, procedure.path)


def read_date(text: str, order: str | None, field: str) -> str:
    """Turn ``21/11/2026`` into ISO form when the clinic says which order it is in.

    Without a configured order it is an error, never a guess: 03/04/2026 is the 3rd of April
    in London and the 4th of March in New York. ISO dates pass through unchanged.
    """
    match = _SLASH_DATE.match(text or "")
    if not match:
        return text
    if order not in DATE_ORDERS:
        raise InputError(
            f"{field} {text.strip()!r} could be day/month or month/day: write it as YYYY-MM-DD, "
            "or set the order with --date-order dmy|mdy (or date_order in the clinic config)"
        )
    first, second, year = map(int, match.groups())
    day, month = (first, second) if order == "dmy" else (second, first)
    reading = "day/month/year" if order == "dmy" else "month/day/year"
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        raise InputError(
            f"{field} {text.strip()!r} is not a real calendar date (read as {reading})"
        ) from None


def check_email(text: str) -> str:
    """'' when empty, else the one rule `email` sends by, plus a dotted domain (a typo check)."""
    from discharge.email_config import check_address

    address = (text or "").strip()
    if not address:
        return ""
    try:
        address = check_address(address, "email")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if "." not in address.rpartition("@")[2]:
        raise InputError(f"email {address!r} is not an email address (expected name@example.org)")
    return address


# --- file names -------------------------------------------------------------------------


def slug(text: str, limit: int = 40) -> str:
    """ASCII letters, digits and single hyphens only: safe in any file system and URL."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:limit].strip("-")


def output_name(row: int, request: DischargeRequest) -> str:
    """The PDF's file name: unique (the row number), stable across reruns, safe whatever the data.

    The hospital number is used rather than the name when there is one: a file name is seen
    by more people and programs (mail previews, print queues, backups) than the document.
    """
    who = slug(request.patient.mrn or request.patient.name) or "patient"
    return f"{row:05d}-{who}-{slug(request.procedure)}-{request.day.isoformat()}.pdf"


def input_fingerprint(item: ScheduleRow, file: str, config: Config) -> str:
    """A digest of everything the PDF is made from, so a corrected row is never skipped."""
    parts = (
        __version__,
        file,
        repr(item.request),
        _clinic_key(config.clinic),
        _file_digest(item.template, item.template.stat().st_mtime_ns),
    )
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


@cache
def _clinic_key(clinic: Clinic) -> str:
    return repr(clinic)


@cache
def _file_digest(path: Path, _mtime_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the manifest -----------------------------------------------------------------------


def neutralise(cell: str) -> str:
    """Stop a spreadsheet from running a cell as a formula: prefix it with an apostrophe."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def _restore(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA_START) else cell


def read_manifest(out_dir: str | os.PathLike[str]) -> Iterator[dict[str, str]]:
    """The manifest's rows, in row order, cells as they were before neutralising.

    Rows that cannot be read (a hand-edited or damaged file) are left out: their PDFs are then
    simply made again.
    """
    path = Path(out_dir) / MANIFEST_NAME
    try:
        handle = path.open(encoding=MANIFEST_ENCODING, newline="")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        yield from _manifest_rows(handle)


def _manifest_rows(handle: IO[str]) -> Iterator[dict[str, str]]:
    last = 0
    try:
        for raw in csv.DictReader(handle):
            entry = {k: _restore(v or "") for k, v in raw.items() if isinstance(k, str)}
            row = entry.get("row", "")
            if row.isdigit() and int(row) > last:
                last = int(row)
                yield entry
    except (csv.Error, UnicodeDecodeError):
        return


class _PreviousManifest:
    """The last run's manifest, read alongside the schedule (both are in row order).

    It is copied first, because the new manifest replaces the file as the run goes.
    """

    def __init__(self, out_dir: Path) -> None:
        self.copy = out_dir / f".{MANIFEST_NAME}.previous.part"
        self.fields: list[str] = []
        self._rows: Iterator[dict[str, str]] = iter(())
        self._next: dict[str, str] | None = None
        self._handle: IO[str] | None = None
        source = out_dir / MANIFEST_NAME
        if not source.is_file():
            return
        try:
            shutil.copyfile(source, self.copy)
            self._handle = self.copy.open(encoding=MANIFEST_ENCODING, newline="")
        except OSError as exc:
            raise OutputError(f"cannot read {source}: {exc.strerror}") from None
        try:
            self.fields = next(csv.reader(io.StringIO(self._handle.readline())), [])
        except UnicodeDecodeError:  # not ours any more: its rows are simply made again
            self.fields = []
        self._handle.seek(0)
        self._rows = _manifest_rows(self._handle)
        self._next = next(self._rows, None)

    def entry(self, row: int) -> dict[str, str] | None:
        """The previous entry for ``row``; rows must be asked for in increasing order."""
        while self._next is not None and int(self._next["row"]) < row:
            self._next = next(self._rows, None)
        if self._next is not None and int(self._next["row"]) == row:
            return self._next
        return None

    def after(self, row: int) -> Iterator[dict[str, str]]:
        """Previous entries beyond ``row`` (kept when a run stops early), read afresh."""
        if self._handle is None:
            return
        with self.copy.open(encoding=MANIFEST_ENCODING, newline="") as handle:
            for entry in _manifest_rows(handle):
                if int(entry["row"]) > row:
                    yield entry

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.copy.unlink()


class ManifestWriter:
    """Records each row's outcome and republishes ``manifest.csv`` atomically as the run goes.

    Entries are appended to a journal file as they come (in row order), and the manifest is
    rebuilt from the journal at each checkpoint: memory stays flat for any number of rows.
    """

    def __init__(
        self, out_dir: Path, fields: Iterable[str], previous: _PreviousManifest | None = None
    ) -> None:
        self.path = out_dir / MANIFEST_NAME
        self.fields = list(fields)
        self.previous = previous
        self.last_row = 0
        self.journal_path = out_dir / f".{MANIFEST_NAME}.journal.part"
        self._journal = self.journal_path.open("w+", encoding="utf-8", newline="")
        self._writer = csv.DictWriter(self._journal, self.fields, restval="", extrasaction="ignore")

    def record(self, entry: Mapping[str, str]) -> None:
        self._writer.writerow({k: neutralise(str(v)) for k, v in entry.items()})
        self.last_row = int(entry["row"])

    def checkpoint(self, *, complete: bool = False) -> None:
        """Publish what is known: this run's entries, then (unless the run is complete) the
        previous run's entries for the rows not reached yet, so a rerun can still skip them."""
        self._journal.flush()
        with open_atomic(self.path) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            text.write("\ufeff")  # the BOM of MANIFEST_ENCODING, once at the very start
            csv.writer(text).writerow(self.fields)
            self._journal.seek(0)
            shutil.copyfileobj(self._journal, text)
            if not complete and self.previous is not None:
                tail = csv.DictWriter(text, self.fields, restval="", extrasaction="ignore")
                for entry in self.previous.after(self.last_row):
                    tail.writerow({k: neutralise(v) for k, v in entry.items()})
            text.flush()
            text.detach()
        self._journal.seek(0, io.SEEK_END)

    def close(self, *, complete: bool) -> None:
        try:
            self.checkpoint(complete=complete)
        finally:
            self._journal.close()
            with contextlib.suppress(FileNotFoundError):
                self.journal_path.unlink()


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
    audit: AuditRecord | None = None  # AUDIT (issue 13): what the parent records for this row


_worker: dict[str, Any] = {}


def prepare_renderer(config: Config, out_dir: Path) -> None:
    """Load fonts and templates once per process, before the first row."""
    from discharge.fonts import main_coverage
    from discharge.procedures import load_all

    _worker.update(config=config, out_dir=out_dir)
    main_coverage()
    with contextlib.suppress(DischargeError):  # a broken template is reported on its rows
        load_all(config.templates_dir)


def _init_pool_worker(config: Config, out_dir: Path) -> None:
    import signal

    # The parent decides when to stop (Ctrl-C reaches the whole process group): a worker
    # killed mid-write leaves only a temporary file, which the parent removes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    prepare_renderer(config, out_dir)


def render_row(task: RenderTask) -> RenderResult:
    """Render one row and write its PDF atomically; the same code as ``discharge generate``."""
    from discharge.generate import make_pdf

    config: Config = _worker["config"]
    out_dir: Path = _worker["out_dir"]
    try:
        document, pdf = make_pdf(task.request, config)
        write_atomic(out_dir / task.file, pdf)
        audit = describe_pdf(task.request, document, pdf, channel="batch")  # AUDIT (issue 13)
    except DischargeError as exc:
        return RenderResult(task.row, task.file, "", str(exc))
    except Exception as exc:  # a bug (e.g. reportlab's LayoutError): it must not stop the rest
        if os.environ.get("DISCHARGE_DEBUG"):
            raise
        # Only the type: reportlab's messages quote the text of the cell that did not fit.
        message = f"internal error while making this PDF ({type(exc).__name__}); please report it"
        return RenderResult(task.row, task.file, "", message)
    return RenderResult(task.row, task.file, audit.pdf_sha256, "", audit)


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

    def started(self, rows: int) -> None: ...

    def row_done(self, entry: Mapping[str, str]) -> None: ...


class QuietReporter:
    def row_error(self, row: int, message: str) -> None:
        pass

    def started(self, rows: int) -> None:
        pass

    def row_done(self, entry: Mapping[str, str]) -> None:
        pass


@dataclass(frozen=True)
class CheckSummary:
    valid: int
    errors: int


@dataclass(frozen=True)
class BatchSummary:
    ok: int
    errors: int
    skipped: int
    seconds: float
    interrupted: bool
    manifest: Path


def check_schedule(
    schedule: Schedule,
    config: Config,
    *,
    date_order: str | None = None,
    reporter: BatchReporter | None = None,
) -> CheckSummary:
    """Validate every row, reporting each problem; write nothing."""
    reporter = reporter or QuietReporter()
    valid = errors = 0
    for item in read_rows(schedule, config, date_order):
        if isinstance(item, RowError):
            errors += 1
            reporter.row_error(item.row, item.message)
        else:
            valid += 1
    return CheckSummary(valid, errors)


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
) -> BatchSummary:
    """Check the whole schedule, then make every valid row's PDF in ``out_dir``.

    Ctrl-C (KeyboardInterrupt) stops the run cleanly: the manifest is written and the summary
    says ``interrupted``; running again finishes the job.
    """
    reporter = reporter or QuietReporter()
    started = time.monotonic()
    audit_log = AuditLog.open(config)  # AUDIT (issue 13): a bad [audit] stops the run now
    check = check_schedule(schedule, config, date_order=date_order, reporter=reporter)
    out = _prepare_out_dir(Path(out_dir))
    counts = {OK: 0, ERROR: 0, SKIPPED: 0}
    interrupted = complete = False
    with locked(out):
        remove_partial_files(out)
        previous = _PreviousManifest(out)
        extra = [f for f in previous.fields if f and f not in MANIFEST_FIELDS]
        manifest = ManifestWriter(out, MANIFEST_FIELDS + extra, previous)
        runner = _Runner(config, out, jobs or os.cpu_count() or 1, check.valid)
        # AUDIT (issue 13): rows pass on to the manifest once their audit record is committed.
        audit = BatchAudit(audit_log, schedule.path, out, runner.audit_facts, runner.in_flight)
        reporter.started(check.valid + check.errors)
        try:
            next_checkpoint = time.monotonic() + checkpoint_seconds
            rows = runner.outcomes(read_rows(schedule, config, date_order), previous, force)
            for entry in audit.entries(rows):  # AUDIT (was: for entry in runner.outcomes(...))
                manifest.record(entry)
                counts[entry["status"]] += 1
                if entry["status"] == ERROR and entry["file"]:
                    reporter.row_error(int(entry["row"]), entry["error"])
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
            # rows already written when the signal came; AUDIT (was: in runner.finished())
            for entry in audit.entries(runner.finished()):
                manifest.record(entry)
                counts[entry["status"]] += 1
        finally:
            runner.close()
            runner.discard_unreported()  # AUDIT (issue 13): no PDF kept that is not recorded
            audit_log.close()  # AUDIT
            try:
                manifest.close(complete=complete)
            finally:
                previous.close()
                remove_partial_files(out)
    return BatchSummary(
        ok=counts[OK],
        errors=counts[ERROR],
        skipped=counts[SKIPPED],
        seconds=time.monotonic() - started,
        interrupted=interrupted,
        manifest=out / MANIFEST_NAME,
    )


class _Runner:
    """Feeds rows to the renderer (a process pool, or this process for one job), in order.

    At most a few rows per worker are in flight: Pool.imap would read the whole schedule
    ahead into its task queue, and memory would grow with the schedule.
    """

    def __init__(self, config: Config, out_dir: Path, jobs: int, to_render: int) -> None:
        self.config = config
        self.out_dir = out_dir
        self.jobs = max(1, min(jobs, to_render))
        self.pool: Any = None
        self.prepared = False
        self.pending: deque[tuple[dict[str, str], dict[str, str] | None, Any]] = deque()
        self.audit_facts: dict[int, AuditRecord] = {}  # AUDIT (issue 13): row -> its record
        self.in_flight: dict[int, str] = {}  # AUDIT: row -> PDF, until the row is recorded

    def outcomes(
        self, items: Iterable[ScheduleRow | RowError], previous: _PreviousManifest, force: bool
    ) -> Iterator[dict[str, str]]:
        window = self.jobs * _WINDOW_PER_JOB
        for item in items:
            before = previous.entry(item.row)
            if isinstance(item, RowError):
                entry = {"row": str(item.row), "status": ERROR, "file": "", "error": item.message}
                self.pending.append((entry, None, _Ready()))
            else:
                file = output_name(item.row, item.request)
                entry = {
                    "row": str(item.row),
                    "file": file,
                    "procedure": item.request.procedure,
                    "date": item.request.day.isoformat(),
                    "email": item.email,
                    "input_sha256": input_fingerprint(item, file, self.config),
                }
                digest = None if force else _still_valid(self.out_dir, entry, before)
                if digest:
                    entry.update(status=SKIPPED, sha256=digest)
                    self.pending.append((entry, before, _Ready()))
                else:
                    task = RenderTask(item.row, file, item.request)
                    self.in_flight[item.row] = file  # AUDIT (issue 13)
                    self.pending.append((entry, before, self._submit(task)))
            while len(self.pending) > window or (self.pending and self.pending[0][2].ready()):
                yield self._complete(self.pending.popleft(), wait=True)
        while self.pending:
            yield self._complete(self.pending.popleft(), wait=True)

    def finished(self) -> Iterator[dict[str, str]]:
        """After an interruption: the rows at the front that are already done, in order."""
        while self.pending and self.pending[0][2].ready():
            try:
                yield self._complete(self.pending.popleft(), wait=False)
            except Exception:  # noqa: BLE001 - a worker killed mid-row: that row is redone
                return

    def _submit(self, task: RenderTask) -> Any:
        if self.jobs == 1:
            if not self.prepared:
                prepare_renderer(self.config, self.out_dir)
                self.prepared = True
            return _Ready(render_row(task))
        if self.pool is None:
            import multiprocessing

            # fork where there is one: workers start at once and share the parent's imports.
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
            context = multiprocessing.get_context(method)
            self.pool = context.Pool(
                self.jobs, initializer=_init_pool_worker, initargs=(self.config, self.out_dir)
            )
        return self.pool.apply_async(render_row, (task,))

    def _complete(
        self, item: tuple[dict[str, str], dict[str, str] | None, Any], *, wait: bool
    ) -> dict[str, str]:
        entry, before, pending = item
        result: RenderResult | None = pending.get() if wait else pending.get(timeout=0)
        if result is not None:
            if result.error:
                entry.update(status=ERROR, error=result.error)
            else:
                entry.update(status=OK, sha256=result.sha256)
                if result.audit is not None:  # AUDIT (issue 13)
                    self.audit_facts[result.row] = result.audit
        entry.update(_carried_over(entry, before))
        return entry

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def discard_unreported(self) -> None:
        """AUDIT (issue 13). After ``close``, when the run stopped early: remove the PDFs made for
        rows not recorded yet. They are in neither the audit log nor the manifest, so they must
        not be handed out; a rerun makes them again."""
        for file in self.in_flight.values():
            with contextlib.suppress(OSError):
                (self.out_dir / file).unlink()
        self.in_flight.clear()


def _still_valid(
    out_dir: Path, entry: Mapping[str, str], before: Mapping[str, str] | None
) -> str | None:
    """The PDF's digest if the last run made this same row into this same, intact file."""
    if before is None or before.get("status") not in (OK, SKIPPED):
        return None
    if before.get("file") != entry["file"] or before.get("input_sha256") != entry["input_sha256"]:
        return None
    try:
        digest = hashlib.sha256((out_dir / entry["file"]).read_bytes()).hexdigest()
    except OSError:
        return None
    return digest if digest == before.get("sha256") else None


def _carried_over(entry: Mapping[str, str], before: Mapping[str, str] | None) -> dict[str, str]:
    """Other commands' columns (e.g. email status) from the last run, for the same document.

    They describe the PDF they were recorded for: if the row now produces different bytes
    (its data was corrected), they no longer apply and are dropped.
    """
    if before is None or not entry.get("sha256") or entry.get("sha256") != before.get("sha256"):
        return {}
    return {k: v for k, v in before.items() if k not in MANIFEST_FIELDS}


def _prepare_out_dir(out_dir: Path) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"output folder {out_dir} is a file, expected a folder") from None
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out_dir}: {exc.strerror}") from None
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
    """Remove temporary files a killed process left behind (only the ones we create)."""
    for pattern in _PART_PATTERNS:
        for path in out_dir.glob(pattern):
            with contextlib.suppress(OSError):
                path.unlink()


# --- one print-ready PDF ----------------------------------------------------------------


def combine_pdfs(out_dir: str | os.PathLike[str], destination: str | os.PathLike[str]) -> int:
    """One PDF of the run's rows (ok and skipped), in row order; return its page count.

    Each patient starts on the front of a new sheet: a document with an odd number of pages is
    followed by a blank page, so double-sided printing never puts two patients on one sheet.
    """
    from pypdf import PdfReader, PdfWriter
    from pypdf.errors import PyPdfError

    out = Path(out_dir)
    writer = PdfWriter()
    for entry in read_manifest(out):
        # Only names this module makes: a hand-edited manifest cannot point outside the folder.
        if entry.get("status") not in (OK, SKIPPED) or not _PDF_NAME.match(entry.get("file", "")):
            continue
        try:
            reader = PdfReader(out / entry["file"])
            pages = len(reader.pages)
            for page in reader.pages:
                writer.add_page(page)
        except (OSError, PyPdfError) as exc:
            raise OutputError(
                f"cannot add {entry['file']} (row {entry['row']}) to the combined PDF: {exc}"
            ) from None
        if pages % 2:
            last = reader.pages[-1].mediabox
            writer.add_blank_page(width=last.width, height=last.height)
    if not writer.pages:
        return 0
    writer.add_metadata({"/Title": "Discharge instructions", "/Creator": "discharge"})
    with open_atomic(Path(destination)) as handle:
        writer.write(handle)
    return len(writer.pages)


# --- helpers ----------------------------------------------------------------------------


def _open_text(path: Path) -> IO[str]:
    # newline="" lets the csv module handle CRLF and line breaks inside quoted notes.
    try:
        return path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise InputError(f"schedule {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"schedule {path} is a folder, expected a CSV file") from None
    except OSError as exc:
        raise InputError(f"cannot read schedule {path}: {exc.strerror}") from None


def _not_utf8(path: Path, where: str) -> str:
    return (
        f"schedule {path} is not UTF-8 text{where}; "
        "in Excel, save it with 'Save as type: CSV UTF-8'"
    )
