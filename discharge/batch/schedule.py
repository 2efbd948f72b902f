"""Reading a day's schedule: the CSV file, its columns, and each row validated.

A schedule is read as a stream, so memory stays flat however long it is. Each row is validated
through the same request layer as ``discharge generate`` and comes out as a ``ScheduleRow``
(ready to render) or a ``RowError`` (reported with the row number a spreadsheet shows).

The patient's columns are declared with the other front ends' fields in ``discharge/fields.py``
(a new one is read in ``parse_row``; tests/test_fields.py fails until it is); the manifest's
own columns are in ``manifest.py``.
"""

from __future__ import annotations

import csv
import os
import re
import stat
import time
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any, TypeVar

from discharge.config import DATE_ORDERS, Config
from discharge.errors import DischargeError, FieldErrors, InputError
from discharge.fields import schedule_columns
from discharge.guidance.loading import available_procedures, load_procedure
from discharge.i18n import language_of
from discharge.lru import Lru
from discharge.request import (
    DischargeRequest,
    check_email,
    clean_text,
    parse_request,
    parse_yes_no,
)

_T = TypeVar("_T")

REQUIRED_COLUMNS = ("patient_name", "procedure", "date")
# Every optional patient field's column (discharge/fields.py), and whom to email the PDF to.
OPTIONAL_COLUMNS = (*schedule_columns()[1], "email")
KNOWN_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

# A row longer than this is an export accident or a quote that never closes: far above any
# real row (notes are limited to a few thousand words).
MAX_ROW_CHARS = 100_000
_SLASH_DATE = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\s*$")
_ISO_LIKE = re.compile(r"^\s*\d{4}-\d{1,2}-\d{1,2}\s*$")
_ID_LIKE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}$")
# How many columns to the right a row swallowed by a quote may have its procedure and date
# (a comma in its name or notes whose quotes were lost moves them on).
_SHIFT = 2
_UNCLOSED_OVER_ROWS = (
    "a quote opened here is never closed: the lines after it look like other patients' rows, "
    "so this row and those rows are stopped; add the closing quote where this row's cell "
    "ends, or remove the stray quote"
)
_CLOSED_MID_CELL = (
    "a quote opened here closes only on a later line, in the middle of a cell (at another "
    "row's quote or a stray one), so this row and the lines after it are stopped; add the "
    "closing quote where this row's cell ends, or remove the stray quote"
)
_OWN_ROW_INSIDE = (
    "a quote opened here is never closed: it takes in the rest of this row (its date) and "
    "the lines after it, so this row and those lines are stopped; add the closing quote where "
    "this row's cell ends, or remove the stray quote"
)
_INSIDE_QUOTE = (
    "this row was read inside the quote opened in row {row}, so it is stopped too; fix the "
    "quote in row {row} and run again"
)
_LINE_BREAK = (
    "the {column} cell runs over several lines (only the notes and medicines may); check for a "
    "quote that opens in this row and closes rows later"
)
_UNCLOSED_AT_END = (
    "a quote opened here is never closed (it runs to the end of the file); add the closing "
    "quote at the end of this row's notes"
)
_TOO_LONG = (
    f"the row is longer than {MAX_ROW_CHARS:,} characters (expected a few lines of notes); "
    "check for a quote that is never closed"
)
_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
_MULTILINE = ("notes", "medicines")  # the cells that may run over lines: one medicine a line


@dataclass(frozen=True)
class Schedule:
    """A schedule file whose header has been read and checked."""

    path: Path
    delimiter: str
    header: tuple[str, ...]  # normalised column names, "" for a column without a name
    unknown_columns: tuple[str, ...]

    def records(self, procedures: Collection[str] = ()) -> Iterator[ScheduleRecord]:
        """Every non-empty record after the header, streamed.

        The row number is the record index, not the line number: a quoted note that spans three
        lines is still one row in a spreadsheet, and the coordinator looks the row up there
        (the header is row 1). A record that is not a row (an unclosed quote, a runaway length)
        comes out with its ``problem`` set, and reading goes on with the lines after it.
        ``procedures``: the procedure ids there are templates for, if known (they make the
        weakest sign of a row swallowed by a quote a sure one, see ``_a_row_from_here``).
        """
        known = frozenset(procedures)
        with _open_text(self.path) as handle:
            lines = _Lines(handle)
            row = 1
            try:
                next(csv.reader(lines, delimiter=self.delimiter), None)  # the header
                reader = csv.reader(lines, delimiter=self.delimiter)
                while True:
                    opened_in = lines.start_record()
                    row += 1
                    try:
                        cells = next(reader, None)
                    except _RowTooLong:
                        lines.give_back()
                        reader = csv.reader(lines, delimiter=self.delimiter)
                        yield ScheduleRecord(row, {}, problem=_TOO_LONG)
                        continue
                    if cells is None:
                        return
                    unclosed = self._unclosed_quote(lines.taken, cells, known)
                    if unclosed:
                        if unclosed in (_UNCLOSED_OVER_ROWS, _CLOSED_MID_CELL, _OWN_ROW_INSIDE):
                            # The lines are read again as the rows they are, each stopped.
                            lines.give_back(opened_in=opened_in or row)
                        reader = csv.reader(lines, delimiter=self.delimiter)
                        yield ScheduleRecord(row, {}, problem=unclosed)
                    elif opened_in:
                        if any(cell.strip() for cell in cells):
                            problem = _INSIDE_QUOTE.format(row=opened_in)
                            yield ScheduleRecord(row, {}, problem=problem)
                    elif any(cell.strip() for cell in cells):
                        yield self._record(row, cells)
            except csv.Error as exc:
                raise InputError(f"schedule {self.path}: row {row}: {exc}") from None
            except UnicodeDecodeError:
                raise InputError(_not_utf8(self.path, f" (near row {row})")) from None

    def _unclosed_quote(
        self, taken: list[str], cells: list[str], procedures: frozenset[str] = frozenset()
    ) -> str:
        """The problem if this record's quote runs over lines that are rows, or to the end.

        Python's csv module reads on to the end of the file inside an open quote, so one
        forgotten closing quote would swallow every later patient into one cell of this row.
        Only the notes may run over several lines: a line break in any other cell (a name, a
        date) means a quote opened there and closed rows later.
        """
        if '"' not in taken[0]:
            return ""
        if len(taken) > 1:
            texts, mid_cell = _inside_quotes(taken, self.delimiter)
            if any(self._looks_like_a_row(text, procedures) for text in texts) or any(
                self._a_row_from_here(taken[line:], procedures)
                for line in range(1, min(len(taken), 200))
            ):
                return _UNCLOSED_OVER_ROWS
            opened = _quote_left_open(taken[0], self.delimiter)
            if opened and self._looks_like_a_row(opened[1], procedures, opened[0]):
                return _OWN_ROW_INSIDE
            if mid_cell:
                return _CLOSED_MID_CELL
            broken = [
                name
                for name, cell in zip(self.header, cells, strict=False)
                if name in KNOWN_COLUMNS
                and name not in _MULTILINE
                and ("\n" in cell or "\r" in cell)
            ]
            if broken:
                return _LINE_BREAK.format(column=broken[0])
        elif taken[0].endswith(("\n", "\r")) and not (cells and cells[-1].endswith(("\n", "\r"))):
            # One line, ended by its own line break: every quote in it closed. (A quote left
            # open would have taken the line break into the last cell, and the next line too.)
            return ""
        try:
            for _ in csv.reader(taken, delimiter=self.delimiter, strict=True):
                pass
        except csv.Error as exc:
            if "end of data" in str(exc):
                return _UNCLOSED_AT_END
        return ""

    def _looks_like_a_row(
        self, line: str, procedures: frozenset[str], first_column: int = 0
    ) -> bool:
        """A line with a procedure id and a date in their columns: someone's row, not notes.

        ``first_column``: the column the line's text starts in (the rest of a line after a
        quote that opens there); the date must then lie in the text, and the text must run to
        the last column (the row's own later cells, all taken into the quote).

        The line is read both as CSV and split at every delimiter, with stray quotes ignored,
        and the two cells may sit up to two columns further right: a row whose own quoting is
        damaged too (a quote inside its procedure or date, one opening its date cell, a comma
        in a name whose quotes were lost) still reads as a row to the person who typed it.
        Moved right, the procedure must be one there is a template for (``procedures``, if
        known): a note's "tablets, 2026-11-21" is not a row.
        """
        try:
            parsed = next(csv.reader([line], delimiter=self.delimiter), [])
        except csv.Error:
            parsed = []
        where = {name: i for i, name in enumerate(self.header)}
        procedure, day = where["procedure"] - first_column, where["date"] - first_column
        if day < 0:
            return False
        for cells in (parsed, line.split(self.delimiter)):
            # Taken into its own quote, a row's later cells are all there, and at least two
            # of them: ", 2026-11-21" ending a note's first line is not a row.
            later = len(self.header) - first_column
            if first_column and (later < 3 or len(cells) < later):
                continue
            cells = [cell.replace('"', "").strip() for cell in cells]
            if procedure < 0:
                found = True
            else:
                found = any(
                    _ID_LIKE.match(cell)
                    and not _ISO_LIKE.match(cell)
                    and (not shift or not procedures or cell.lower() in procedures)
                    for shift, cell in enumerate(cells[procedure : procedure + _SHIFT + 1])
                )
            if found and any(
                _ISO_LIKE.match(cell) or _SLASH_DATE.match(cell)
                for cell in cells[day : day + _SHIFT + 1]
            ):
                return True
        return False

    def _a_row_from_here(self, lines: list[str], procedures: frozenset[str]) -> bool:
        """Read from the start of a later line of the record to its end, as someone's row:
        a procedure id and a date in their columns, one of them inside the quote.

        Another row whose own quoting is damaged too (its notes lost their opening quote, so
        its line break is now inside this record's quote) has its first cells inside the quote
        and its last ones after it, as if they were this record's own; no one line of it reads
        as a row. (A real multi-line cell is followed by this record's own later cells only:
        neither the procedure nor the date is then inside the quote.)
        """
        text = "".join(lines)
        close = _closing_quote(text)
        inside = text[:close].count(self.delimiter)  # cells that end before the quote does
        cells = [cell.replace('"', "").strip() for cell in text.split(self.delimiter)]
        where = {name: i for i, name in enumerate(self.header)}
        procedure, day = where["procedure"], where["date"]
        if max(procedure, day) >= len(cells) or min(procedure, day) >= inside:
            return False
        what, when = cells[procedure], cells[day]
        # Only one cell of it is inside the quote: the procedure must be one there is a
        # template for, not any word (a note's "a;b" would move its own date into place).
        known = what.lower() in procedures if procedures else _ID_LIKE.match(what)
        return bool(known) and bool(_ISO_LIKE.match(when) or _SLASH_DATE.match(when))

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


def _inside_quotes(taken: list[str], delimiter: str) -> tuple[list[str], bool]:
    """The text of the record's later lines that lies inside the quoted cell they start in,
    and whether one of those cells closed in the middle of a cell.

    A record runs on to its next line only inside a quote, so each later line starts inside
    one: its text up to the quote that closes the cell (a doubled quote is a quote mark, not
    an end) was typed as part of that cell. If that quote is followed by anything but a
    delimiter or the line's end, it is not the cell's real end but another row's opening
    quote or a stray one: the whole line is given too, and the record is not one row. (A line
    ending a cell properly goes on with the record's own later cells, which of course look
    like a row.)
    """
    texts, mid_cell = [], False
    for line in taken[1:]:
        at, text = 0, []
        while True:
            quote = line.find('"', at)
            if quote < 0:
                text.append(line[at:])
                break
            text.append(line[at:quote])
            if line.startswith('""', quote):
                text.append('"')
                at = quote + 2
                continue
            after = line[quote + 1 : quote + 2]
            if after not in ("", delimiter, "\n", "\r"):
                texts.append(line)
                mid_cell = True
            break
        texts.append("".join(text))
    return texts, mid_cell


def _closing_quote(text: str) -> int:
    """Where the quoted cell that ``text`` starts inside ends (a doubled quote is a quote
    mark, not an end); the length of the text if it does not."""
    at = 0
    while True:
        quote = text.find('"', at)
        if quote < 0:
            return len(text)
        if not text.startswith('""', quote):
            return quote
        at = quote + 2


def _quote_left_open(line: str, delimiter: str) -> tuple[int, str] | None:
    """The column of the quoted cell this line ends inside, and the line's text after that
    cell's opening quote; None if the line ends outside quotes. (Read as the csv module reads:
    a quote opens a cell only at its start; a quote that closes one may be followed by text.)
    """
    column, inside, start, at = 0, False, 0, 0
    cell_start = True
    while at < len(line):
        char = line[at]
        if inside:
            if char == '"':
                if line.startswith('""', at):
                    at += 1
                else:
                    inside = False
        elif char == delimiter:
            column, cell_start = column + 1, True
            at += 1
            continue
        elif char == '"' and cell_start:
            inside, start = True, at + 1
        elif char in "\r\n":
            return None
        cell_start = False
        at += 1
    return (column, line[start:].rstrip("\r\n")) if inside else None


class _RowTooLong(Exception):
    pass


class _Lines:
    """The schedule's physical lines, for csv.reader, remembering those of the current record.

    A record whose quote never closes can then be given back, all but its first line, and
    those lines read again as the rows they are. A record is cut off at ``MAX_ROW_CHARS``, so
    a runaway quote or a huge cell costs a bounded amount of memory and only its own row.
    """

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.pending: deque[tuple[str, int]] = deque()
        self.taken: list[str] = []
        self.chars = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = (
            self.pending.popleft()[0] if self.pending else self.handle.readline(MAX_ROW_CHARS + 1)
        )
        if not line:
            raise StopIteration
        self.taken.append(line)
        self.chars += len(line)
        if self.chars > MAX_ROW_CHARS:
            if not line.endswith("\n"):
                self._skip_rest_of_line()
            raise _RowTooLong
        return line

    def _skip_rest_of_line(self) -> None:
        while True:
            part = self.handle.readline(MAX_ROW_CHARS)
            if not part or part.endswith("\n"):
                return

    def start_record(self) -> int:
        """Begin a record; the row whose unclosed quote held its first line, or 0."""
        self.taken = []
        self.chars = 0
        return self.pending[0][1] if self.pending else 0

    def give_back(self, opened_in: int = 0) -> None:
        """Read the record's lines again, all but its first; ``opened_in``: the row whose
        unclosed quote took them in, so the records read from them are stopped."""
        again = [(line, opened_in) for line in self.taken[1:]]
        self.pending.extendleft(reversed(again))
        self.taken = []


@dataclass(frozen=True)
class ScheduleRecord:
    """One row's raw text, by column name."""

    row: int
    values: dict[str, str]
    stray: bool = False  # a value in a column without a header: the row is probably shifted
    problem: str = ""  # the record is not a row at all (an unclosed quote, a runaway length)


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
    # Its only problem: a date like 03/04/2026, which the schedule's date order would settle.
    # Such rows are reported together, once (see DateOrders), not one line each.
    needs_date_order: bool = False


# A date such as 03/04/2026, read without a date order. The message names the column, never
# the value: in a schedule it may be a name in the wrong column.
AMBIGUOUS_DATE = "{field} could be day/month or month/day"
_AMBIGUOUS_TAIL = "could be day/month or month/day"


@dataclass
class DateOrders:
    """The schedule's dates written with slashes and no date order given, counted over the
    whole file: one date that can only be day/month (21/11/2026) shows how the others were
    meant, so the problem is explained once for the file, not on every row."""

    day_first: int = 0  # real only as day/month/year (21/11/2026)
    month_first: int = 0  # real only as month/day/year (11/21/2026)
    either: int = 0  # real both ways (03/04/2026): the rows that need the order
    alike: int = 0  # the same both ways (05/05/2026)

    @property
    def total(self) -> int:
        return self.day_first + self.month_first + self.either + self.alike

    def looks_like(self) -> str | None:
        """``dmy`` or ``mdy`` when every date fits that order (and some fit no other)."""
        if self.day_first and not self.month_first:
            return "dmy"
        if self.month_first and not self.day_first:
            return "mdy"
        return None


def date_order_note(dates: DateOrders, fix: Callable[[str | None], str]) -> str:
    """The one note for the rows whose dates need the order. ``fix(order)`` says how to give
    it in the front end's own words (an option on the command line, a choice on the web page);
    ``order`` is None when the dates do not tell."""
    order = dates.looks_like()
    if order is not None:
        shape = "DD/MM/YYYY" if order == "dmy" else "MM/DD/YYYY"
        return f"all {dates.total} dates look like {shape}: {fix(order)}"
    some = "1 date" if dates.either == 1 else f"{dates.either} dates"
    if dates.day_first and dates.month_first:
        return (
            f"{some} could be day/month or month/day, and the other dates are written both "
            "ways: write the dates as YYYY-MM-DD"
        )
    return f"{some} could be day/month or month/day: {fix(None)}"


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
    schedule: Schedule,
    config: Config,
    date_order: str | None = None,
    dates: DateOrders | None = None,
) -> Iterator[ScheduleRow | RowError]:
    """Every row of the schedule, validated, in order: a ScheduleRow or a RowError.

    ``dates``, if given, counts the dates written with slashes that no order settled."""
    order = date_order or config.clinic.date_order
    language = language_of(config.clinic.locale)
    templates = Recent()
    for record in schedule.records(available_procedures(config.templates_dir)):
        try:
            yield parse_row(
                record,
                date_order=order,
                templates_dir=config.templates_dir,
                default_language=language,
                templates=templates,
                dates=dates,
            )
        except FieldErrors as exc:  # every problem of the row, at once
            only_dates = all(_AMBIGUOUS_TAIL in text for text in exc.problems.values())
            yield RowError(record.row, str(exc), needs_date_order=only_dates)
        except DischargeError as exc:  # bad data, or a broken template for this procedure
            yield RowError(record.row, str(exc))


class Recent:
    """Values read from files that may change during a run (a procedure's template, its
    digest), each read again at most once a second: a schedule names a few templates thousands
    of times, and each read costs several system calls a row, in a process that shares the CPU
    with the workers. A file changed during a run is still picked up; a failure (an unknown
    procedure or language) is never remembered, so each such row reports it itself."""

    SECONDS = 1.0
    KEPT = 256

    def __init__(self) -> None:
        self.found: Lru[Hashable, Any] = Lru(self.KEPT)
        self.until = 0.0

    def get(self, key: Hashable, make: Callable[[], _T]) -> _T:
        now = time.monotonic()
        if now >= self.until:
            self.found.clear()
            self.until = now + self.SECONDS
        found: _T = self.found.get(key, make)
        return found


def parse_row(
    record: ScheduleRecord,
    *,
    date_order: str | None = None,
    templates_dir: Path | None = None,
    default_language: str = "en",
    templates: Recent,
    dates: DateOrders | None = None,
) -> ScheduleRow:
    """Validate one row through the same code as ``discharge generate``.

    Every problem of the row is reported at once (a FieldErrors): a bad date does not hide a
    misspelt procedure, so one correction fixes the row.
    """
    if record.problem:
        raise InputError(record.problem)
    if record.stray:
        raise InputError(
            "there is a value in a column without a header; check that a comma or semicolon "
            "inside a value is in quotes"
        )
    values = record.values
    problems: dict[str, str] = {}

    def read(key: str, field: str) -> str:
        try:
            return read_date(values.get(key, ""), date_order, field, dates)
        except InputError as exc:
            problems[key] = str(exc)
            return ""

    day = read("date", "date")
    dob = read("dob", "date of birth") if values.get("dob", "").strip() else None
    try:
        follow_up = read_follow_up(values.get("follow_up", ""), date_order, dates)
    except InputError as exc:
        problems["follow_up"] = str(exc)
        follow_up = ""
    try:  # checked here so the message names the column; empty: the clinic's default
        large_print = parse_yes_no(values.get("large_print"), "large_print")
    except InputError as exc:
        problems["large_print"] = str(exc)
        large_print = None
    request = None
    try:
        request = parse_request(
            procedure=values.get("procedure", ""),
            date=day,
            patient=values.get("patient_name", ""),
            time=values.get("time"),
            dob=dob or None,
            mrn=values.get("mrn"),
            clinician=values.get("clinician"),
            notes=values.get("notes"),
            paper=values.get("paper"),
            variant=values.get("variant"),
            large_print=large_print,
            language=values.get("language"),
            follow_up=follow_up,
            follow_up_place=values.get("follow_up_place"),
            medicines=values.get("medicines"),
        )
    except FieldErrors as exc:
        for key, text in exc.problems.items():
            problems.setdefault(key, text)  # a date's own message first
    procedure = None
    if request is not None:
        procedure_id, language = request.procedure, request.language
    else:
        procedure_id = clean_text(values.get("procedure")).lower()
        language = clean_text(values.get("language")).lower()
    if procedure_id and "procedure" not in problems and "language" not in problems:
        # An unknown procedure, or a language it is not translated into, is this row's error.
        try:
            procedure = templates.get(
                (procedure_id, templates_dir, language or None, default_language),
                lambda: load_procedure(
                    procedure_id, templates_dir, language or None, default_language=default_language
                ),
            )
            # an unknown variant is this row's error, found now
            procedure.variant(request.variant if request else values.get("variant"))
        except DischargeError as exc:
            problems.setdefault("variant" if procedure else "procedure", str(exc))
    try:
        email = check_email(values.get("email", ""))
    except InputError as exc:
        problems["email"] = str(exc)
    if problems or request is None or procedure is None:
        raise FieldErrors(problems)
    return ScheduleRow(record.row, request, email, procedure.path)


def read_date(text: str, order: str | None, field: str, dates: DateOrders | None = None) -> str:
    """Turn ``21/11/2026`` into ISO form; ISO dates pass through unchanged.

    A date that is real in only one order (21/11/2026, 11/21/2026) has one reading. Otherwise
    it is an error, never a guess, unless the schedule's order is given (``dmy``, ``mdy``):
    03/04/2026 is the 3rd of April in London and the 4th of March in New York. ``dates``
    counts what the dates read without an order allow. The value is never repeated.
    """
    match = _SLASH_DATE.match(text or "")
    if not match:
        return text
    first, second, year = map(int, match.groups())
    if order in DATE_ORDERS:
        day, month = (first, second) if order == "dmy" else (second, first)
        reading = "day/month/year" if order == "dmy" else "month/day/year"
        try:
            return date(year, month, day).isoformat()
        except ValueError:
            raise InputError(f"{field} is not a real calendar date (read as {reading})") from None
    as_dmy, as_mdy = _real(year, second, first), _real(year, first, second)
    if dates is not None and (as_dmy or as_mdy):
        if as_dmy and as_mdy:
            if as_dmy == as_mdy:
                dates.alike += 1
            else:
                dates.either += 1
        elif as_dmy and not as_mdy:
            dates.day_first += 1
        elif as_mdy and not as_dmy:
            dates.month_first += 1
    if as_dmy and as_mdy and as_dmy != as_mdy:
        raise InputError(
            AMBIGUOUS_DATE.format(field=field)
            + " (write it as YYYY-MM-DD, or give the schedule's date order)"
        )
    if as_dmy or as_mdy:
        return as_dmy or as_mdy
    raise InputError(f"{field} is not a real calendar date")


def _real(year: int, month: int, day: int) -> str:
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return ""


def read_follow_up(text: str, order: str | None, dates: DateOrders | None = None) -> str:
    """The follow-up's day read as the schedule's other dates are (``14/12/2026 10:00``)."""
    day, _, clock = text.strip().partition(" ")
    if not day:
        return text
    return f"{read_date(day, order, 'follow-up appointment', dates)} {clock}".strip()


def _open_text(path: Path) -> IO[str]:
    # The schedule is read more than once (checked, then made), so it must be a regular file:
    # opening a pipe would also block until something writes to it.
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"schedule {path} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read schedule {path}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"schedule {path} is a folder, expected a CSV file")
    if not stat.S_ISREG(mode):
        raise InputError(
            f"schedule {path} is not a regular file (a pipe or a device); save the CSV to a file, "
            "or give - to read it from standard input"
        )
    # newline="" lets the csv module handle CRLF and line breaks inside quoted notes.
    try:
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"cannot read schedule {path}: {exc.strerror}") from None


def _not_utf8(path: Path, where: str) -> str:
    return (
        f"schedule {path} is not UTF-8 text{where}; "
        "in Excel, save it with 'Save as type: CSV UTF-8'"
    )
