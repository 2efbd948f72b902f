"""The manifest: each row's outcome in ``DIR/manifest.csv``, the one file that owns its columns.

It is opened in spreadsheets, so it holds no names or notes, and cells a spreadsheet would run
as formulas are neutralised. It is republished atomically as a run goes, from a journal file,
so memory stays flat for any number of rows.
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


def read_manifest(out_dir: str | os.PathLike[str]) -> Iterator[dict[str, str]]:
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


def _manifest_rows(handle: IO[str]) -> Iterator[dict[str, str]]:
    try:
        for raw in csv.DictReader(handle):
            entry = {k: restore(v or "") for k, v in raw.items() if isinstance(k, str)}
            if entry.get("row", "").isdigit():
                yield entry
    except (csv.Error, UnicodeDecodeError):
        return


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
                try:
                    self.fields = next(csv.reader(io.StringIO(handle.readline())), [])
                except UnicodeDecodeError:  # not ours any more: its rows are simply made again
                    return db
                handle.seek(0)
                db.executemany(
                    "INSERT OR IGNORE INTO previous (key, entry) VALUES (?, ?)",
                    ((e["key"], json.dumps(e)) for e in _manifest_rows(handle) if e.get("key")),
                )
            db.commit()
        except BaseException:
            db.close()
            raise
        return db

    def entry(self, key: str) -> dict[str, str] | None:
        """The previous run's entry for this key, if it had one."""
        if self._db is None:
            return None
        found = self._db.execute("SELECT entry FROM previous WHERE key = ?", (key,)).fetchone()
        return json.loads(found[0]) if found else None

    def mark_seen(self, key: str) -> None:
        """This run has recorded the row with this key (marked here, not kept in a set: memory
        stays flat however many rows the run records)."""
        if self._db is not None:
            self._db.execute("UPDATE previous SET seen = 1 WHERE key = ?", (key,))

    def unseen(self) -> Iterator[dict[str, str]]:
        """Previous entries whose keys this run has not reached (kept when a run stops early)."""
        if self._db is None:
            return
        query = "SELECT entry FROM previous WHERE NOT seen ORDER BY position"
        for (entry,) in self._db.execute(query):
            yield json.loads(entry)

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

    def record(self, entry: Mapping[str, str]) -> None:
        try:
            self._writer.writerow({k: neutralise(str(v)) for k, v in entry.items()})
        except OSError as exc:  # a full disk, a file-size limit: a clear error, not a bug
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from None
        if self.previous is not None and entry.get("key"):
            self.previous.mark_seen(entry["key"])

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
                    tail.writerow({k: neutralise(v) for k, v in entry.items()})
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


def carried_over(entry: Mapping[str, str], before: Mapping[str, str] | None) -> dict[str, str]:
    """Other commands' columns (e.g. email status) from the last run, for the same document.

    They describe the PDF they were recorded for: if the row now produces different bytes
    (its data was corrected), they no longer apply and are dropped.
    """
    if before is None or not entry.get("sha256") or entry.get("sha256") != before.get("sha256"):
        return {}
    return {k: v for k, v in before.items() if k not in MANIFEST_FIELDS}
