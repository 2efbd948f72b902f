"""Reading a day's schedule: the CSV file, its columns, and each row validated.

A schedule is read as a stream, so memory stays flat however long it is. Each row is validated
through the same request layer as ``discharge generate`` and comes out as a ``ScheduleRow``
(ready to render) or a ``RowError`` (reported with the row number a spreadsheet shows).

To add a column: name it in ``OPTIONAL_COLUMNS`` and read it in ``parse_row``; the manifest's
own columns are in ``manifest.py``.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO

from discharge.config import DATE_ORDERS, Config
from discharge.errors import DischargeError, InputError
from discharge.procedures import load_procedure
from discharge.request import DischargeRequest, check_email, parse_request

REQUIRED_COLUMNS = ("patient_name", "procedure", "date")
OPTIONAL_COLUMNS = ("time", "dob", "mrn", "clinician", "notes", "email", "paper")
KNOWN_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

_SLASH_DATE = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\s*$")
_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


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
