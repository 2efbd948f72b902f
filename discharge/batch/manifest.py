"""The manifest: each row's outcome in ``DIR/manifest.csv``, the one file that owns its columns.

It is opened in spreadsheets, so it holds no names or notes, and cells a spreadsheet would run
as formulas are neutralised. It is republished atomically as a run goes, from a journal file,
so memory stays flat for any number of rows.

A row is a ``ManifestRow`` record everywhere in the code (the batch, the email step, the web
page's summary, the HL7 listener's ready folder); only this module turns it into cells and
back.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from discharge.errors import OutputError
from discharge.output import open_atomic

MANIFEST_NAME = "manifest.csv"
# The manifest is opened in spreadsheets, so UTF-8 with a BOM (Excel reads it as UTF-8 then).
MANIFEST_ENCODING = "utf-8-sig"
# Columns the render step owns, in order. No patient names or notes here: the row number and
# the file are enough to find a row, and the PDF itself holds the rest.
MANIFEST_FIELDS = [
    "row",  # where the row is in this run's schedule, as a spreadsheet numbers it
    "key",  # who, what and when (a salted digest): the same however the schedule is sorted
    "status",
    "file",
    "sha256",
    "procedure",
    "date",
    "email",
    "input_sha256",  # what the PDF was made from: a rerun rebuilds a row whose data changed
    "error",
]
OK, ERROR, SKIPPED, DUPLICATE = "ok", "error", "skipped", "duplicate"
# The email step's columns, after the render step's; a batch rerun keeps them for the same PDF.
EMAIL_FIELDS = ["email_status", "email_sent_to", "message_id", "email_error"]
# ``unknown``: the message went to the server and no answer came (a dropped connection, a
# crash): it may have been delivered, so it is never sent again without ``--resend``.
SENT, FAILED, NONE, UNKNOWN = "sent", "failed", "none", "unknown"

# A spreadsheet treats a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """Stop a spreadsheet from running a cell as a formula: prefix it with an apostrophe.

    A cell that already starts with an apostrophe gets one too, so ``restore`` gives back
    exactly what was written (an address typed as ``'=a@b.example`` included).
    """
    return "'" + cell if cell.startswith((*_FORMULA_START, "'")) else cell


def restore(cell: str) -> str:
    return cell[1:] if cell.startswith("'") else cell


@dataclass(frozen=True, slots=True)
class EmailColumns:
    """The email step's columns of a row: what became of sending its PDF (all empty until
    the row is emailed)."""

    status: str = ""  # email_status: SENT, FAILED, UNKNOWN, NONE, or "changed"
    sent_to: str = ""  # email_sent_to
    message_id: str = ""
    error: str = ""  # email_error


@dataclass(slots=True)
class ManifestRow:
    """One row of ``manifest.csv``: one schedule row's outcome, as the render step (and then
    the email step) recorded it. Cells are kept as text, as they are in the file; an empty
    cell is an empty string.

    ``others`` holds the columns this version does not know (added by a later version, another
    tool or a person), by name: they are written back as they were.
    """

    row: int  # where the row is in its schedule, as a spreadsheet numbers it
    status: str = ""  # OK, ERROR, SKIPPED, DUPLICATE (the listener adds "withdrawn")
    key: str = ""
    file: str = ""
    sha256: str = ""
    procedure: str = ""
    date: str = ""
    email: str = ""
    input_sha256: str = ""
    error: str = ""
    emailed: EmailColumns = EmailColumns()
    others: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_cells(cls, cells: Mapping[str, str]) -> ManifestRow | None:
        """The row from its cells by column name (as read, before neutralising is undone);
        None when its row number is not a number (a hand-edited or damaged line)."""
        row = cells.get("row", "")
        if not row.isdigit():
            return None
        get = cells.get
        return cls(
            int(row), get("status", ""), get("key", ""), get("file", ""), get("sha256", ""),
            get("procedure", ""), get("date", ""), get("email", ""), get("input_sha256", ""),
            get("error", ""),
            EmailColumns(
                get("email_status", ""), get("email_sent_to", ""), get("message_id", ""),
                get("email_error", ""),
            ),
            {k: v for k, v in cells.items() if k not in _COLUMNS},
        )  # fmt: skip

    def cells(self) -> dict[str, str]:
        """Every cell by column name, as text (not neutralised)."""
        emailed = self.emailed
        return {
            "row": str(self.row), "key": self.key, "status": self.status, "file": self.file,
            "sha256": self.sha256, "procedure": self.procedure, "date": self.date,
            "email": self.email, "input_sha256": self.input_sha256, "error": self.error,
            "email_status": emailed.status, "email_sent_to": emailed.sent_to,
            "message_id": emailed.message_id, "email_error": emailed.error, **self.others,
        }  # fmt: skip

    def neutralised(self) -> dict[str, str]:
        """The cells as written to the file: none a spreadsheet would run as a formula."""
        return {k: neutralise(v) for k, v in self.cells().items()}

    def carry_over(self, before: ManifestRow | None) -> None:
        """Take the last run's other columns (the email step's, and any this version does not
        know) for the same document.

        They describe the PDF they were recorded for: if the row now produces different bytes
        (its data was corrected), they no longer apply and are dropped.
        """
        if before is None or not self.sha256 or self.sha256 != before.sha256:
            return
        self.emailed = before.emailed
        self.others = dict(before.others)


_COLUMNS = frozenset(MANIFEST_FIELDS + EMAIL_FIELDS)


def read_manifest(out_dir: str | os.PathLike[str]) -> Iterator[ManifestRow]:
    """The manifest's rows, in order, cells as they were before neutralising.

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


def read_columns(out_dir: str | os.PathLike[str]) -> list[str]:
    """The manifest's column names, in the file's order (none if there is no readable file)."""
    try:
        with (Path(out_dir) / MANIFEST_NAME).open(encoding=MANIFEST_ENCODING, newline="") as f:
            return _header(f)
    except OSError:
        return []


def _header(handle: IO[str]) -> list[str]:
    try:
        return next(csv.reader(io.StringIO(handle.readline())), [])
    except (csv.Error, UnicodeDecodeError):
        return []


def _manifest_rows(handle: IO[str]) -> Iterator[ManifestRow]:
    try:
        for raw in csv.DictReader(handle):
            cells = {k: restore(v or "") for k, v in raw.items() if isinstance(k, str)}
            entry = ManifestRow.from_cells(cells)
            if entry is not None:
                yield entry
    except (csv.Error, UnicodeDecodeError):
        return


def write_manifest(out_dir: Path, rows: Iterable[ManifestRow], *, durable: bool = True) -> None:
    """Publish a whole manifest of the render step's columns at once (atomically)."""
    buffer = io.StringIO()
    buffer.write("\ufeff")  # the BOM of MANIFEST_ENCODING: Excel then reads it as UTF-8
    writer = csv.DictWriter(buffer, MANIFEST_FIELDS, restval="", extrasaction="ignore")
    writer.writeheader()
    for entry in rows:
        writer.writerow(entry.neutralised())
    with open_atomic(out_dir / MANIFEST_NAME, durable=durable) as raw:
        raw.write(buffer.getvalue().encode("utf-8"))


class PreviousManifest:
    """The last run's manifest, looked up by each row's key (the schedule may be re-sorted).

    It is indexed in a private SQLite file beside the manifest, not in memory, so a schedule
    of 100,000 rows costs no more memory than one of ten; the new manifest replaces the file
    as the run goes.
    """

    def __init__(self, out_dir: Path) -> None:
        self.fields: list[str] = []
        self.path = out_dir / f".{MANIFEST_NAME}.previous.sqlite.part"
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._db: sqlite3.Connection | None = None
        source = out_dir / MANIFEST_NAME
        if not source.is_file():
            return
        try:
            self._db = self._index(source, str(self.path))
        except (sqlite3.Error, OSError):
            # A full disk or a file-size limit: the index is a convenience, the rows it holds
            # fit in memory (a few short cells each), so the run goes on with it there.
            self._discard()
            self._db = self._index(source, ":memory:")

    def _index(self, source: Path, where: str) -> sqlite3.Connection | None:
        try:
            handle = source.open(encoding=MANIFEST_ENCODING, newline="")
        except OSError as exc:
            raise OutputError(f"cannot read {source}: {exc.strerror}") from None
        db = sqlite3.connect(where)
        try:
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.execute(
                "CREATE TABLE previous (position INTEGER PRIMARY KEY, key TEXT UNIQUE, "
                "entry TEXT, seen INTEGER NOT NULL DEFAULT 0)"
            )
            with handle:
                # Not ours any more (not text, not CSV): no columns, and its rows are made again.
                self.fields = _header(handle)
                handle.seek(0)
                db.executemany(
                    "INSERT OR IGNORE INTO previous (key, entry) VALUES (?, ?)",
                    ((e.key, json.dumps(e.cells())) for e in _manifest_rows(handle) if e.key),
                )
            db.commit()
        except BaseException:
            db.close()
            raise
        return db

    def entry(self, key: str) -> ManifestRow | None:
        """The previous run's entry for this key, if it had one."""
        if self._db is None:
            return None
        found = self._db.execute("SELECT entry FROM previous WHERE key = ?", (key,)).fetchone()
        return ManifestRow.from_cells(json.loads(found[0])) if found else None

    def mark_seen(self, key: str) -> None:
        """This run has recorded the row with this key (marked here, not kept in a set: memory
        stays flat however many rows the run records)."""
        if self._db is not None:
            self._db.execute("UPDATE previous SET seen = 1 WHERE key = ?", (key,))

    def unseen(self) -> Iterator[ManifestRow]:
        """Previous entries whose keys this run has not reached (kept when a run stops early)."""
        if self._db is None:
            return
        query = "SELECT entry FROM previous WHERE NOT seen ORDER BY position"
        for (cells,) in self._db.execute(query):
            if (entry := ManifestRow.from_cells(json.loads(cells))) is not None:
                yield entry

    def close(self) -> None:
        self._discard()

    def _discard(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        with contextlib.suppress(OSError):
            self.path.unlink()


class ManifestWriter:
    """Records each row's outcome and republishes ``manifest.csv`` atomically as the run goes.

    Entries are appended to a journal file as they come (in row order), and the manifest is
    rebuilt from the journal at each checkpoint: memory stays flat for any number of rows.
    """

    def __init__(
        self, out_dir: Path, fields: Iterable[str], previous: PreviousManifest | None = None
    ) -> None:
        self.path = out_dir / MANIFEST_NAME
        self.fields = list(fields)
        self.previous = previous  # told the keys recorded in this run
        self.journal_path = out_dir / f".{MANIFEST_NAME}.journal.part"
        try:
            self._journal = self.journal_path.open("w+", encoding="utf-8", newline="")
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from None
        self._writer = csv.DictWriter(self._journal, self.fields, restval="", extrasaction="ignore")

    def record(self, entry: ManifestRow) -> None:
        try:
            self._writer.writerow(entry.neutralised())
        except OSError as exc:  # a full disk, a file-size limit: a clear error, not a bug
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from None
        if self.previous is not None and entry.key:
            self.previous.mark_seen(entry.key)

    def checkpoint(self, *, complete: bool = False) -> None:
        """Publish what is known: this run's entries, then (unless the run is complete) the
        previous run's entries for the rows not reached yet, so a rerun can still skip them."""
        try:
            self._journal.flush()
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from None
        with open_atomic(self.path) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            text.write("\ufeff")  # the BOM of MANIFEST_ENCODING, once at the very start
            csv.writer(text).writerow(self.fields)
            self._journal.seek(0)
            shutil.copyfileobj(self._journal, text)
            if not complete and self.previous is not None:
                tail = csv.DictWriter(text, self.fields, restval="", extrasaction="ignore")
                for entry in self.previous.unseen():
                    tail.writerow(entry.neutralised())
            text.flush()
            text.detach()
        self._journal.seek(0, io.SEEK_END)

    def close(self, *, complete: bool) -> None:
        try:
            self.checkpoint(complete=complete)
        finally:
            with contextlib.suppress(OSError):  # what it could not flush is reported above
                self._journal.close()
            with contextlib.suppress(FileNotFoundError):
                self.journal_path.unlink()
