"""The manifest: each row's outcome in ``DIR/manifest.csv``, the one file that owns its columns.

It is opened in spreadsheets, so it holds no names or notes, and cells a spreadsheet would run
as formulas are neutralised. It is republished atomically as a run goes, from a journal file,
so memory stays flat for any number of rows.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO

from discharge.errors import OutputError
from discharge.output import open_atomic

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
# The email step's columns, after the render step's; a batch rerun keeps them for the same PDF.
EMAIL_FIELDS = ["email_status", "message_id", "email_error"]
SENT, FAILED, NONE = "sent", "failed", "none"

# A spreadsheet treats a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


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


class PreviousManifest:
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
        self, out_dir: Path, fields: Iterable[str], previous: PreviousManifest | None = None
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


def carried_over(entry: Mapping[str, str], before: Mapping[str, str] | None) -> dict[str, str]:
    """Other commands' columns (e.g. email status) from the last run, for the same document.

    They describe the PDF they were recorded for: if the row now produces different bytes
    (its data was corrected), they no longer apply and are dropped.
    """
    if before is None or not entry.get("sha256") or entry.get("sha256") != before.get("sha256"):
        return {}
    return {k: v for k, v in before.items() if k not in MANIFEST_FIELDS}
