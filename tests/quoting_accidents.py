"""Schedules with quoting accidents, every patient's fields tagged (issue 18, finding 1).

Shared by ``tests/test_quoting.py`` (bounded, in the suite) and
``benchmarks/bench_quoting.py`` (the long run). Each row written n-th carries the tag ``Tq{n}x``
in its name, hospital number, clinician, notes and email, and a date of birth no other row
has. Nothing else in a schedule contains a ``q``, so the tags in a row read back (or in a PDF's
text) say exactly whose details it holds.

An accident is one of the ways a hand-edited or badly exported CSV breaks its quoting, at any
column of any row: a quote opened and never closed, a closing quote dropped or doubled (so it
no longer closes), a stray quote anywhere in a cell, a quote removed. Other rows' notes have
line breaks inside quotes now and then, which is what lets the csv reader close one row's
open quote at another row's opening quote.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from discharge.batch import RowError, ScheduleRow, open_schedule, read_rows
from discharge.config import Config

TAG = re.compile(r"Tq(\d+)x", re.IGNORECASE)
COLUMNS = ("patient_name", "procedure", "date", "dob", "mrn", "clinician", "notes", "email")
REQUIRED = ("patient_name", "procedure", "date")
ACCIDENTS = ("unclosed", "closing dropped", "doubled", "stray", "removed")
_WORDS = ["Rest", "today", "Call", "if", "fever", "bleeding", "Dr", "Okafor", "ward", "7",
          "Zoë", "Łucja", "王", "Ann, Jr", "10:30", "2026-11-21", "hsg", "a;b", "tablets,"]  # fmt: skip
_FIRST = ["Ann", "Zoë", "O'Brien", "Ann, Jr", "Nguyễn Thị", "Anna; B", "王", 'Bo "Bee"']
_FIRST_DOB = date(1950, 1, 1)


@dataclass
class Tagged:
    """One generated schedule: its bytes, and what was done to it."""

    text: str
    rows: int
    accidents: list[tuple[str, int, str]] = field(default_factory=list)  # kind, row, column


def _notes(rnd: random.Random, tag: str) -> str:
    parts = [f"Notes {tag}."]
    for _ in range(rnd.randint(0, 8)):
        parts.append(rnd.choice(_WORDS))
        if rnd.random() < 0.15:
            parts.append(rnd.choice(["\n", "\r\n", '"quoted"', '""']))
    return " ".join(parts)


def _row(rnd: random.Random, n: int, breaks: bool) -> dict[str, str]:
    tag = f"Tq{n}x"
    notes = _notes(rnd, tag)
    if breaks and rnd.random() < 0.5:
        notes += rnd.choice(["\nCall us.", "\r\nSecond line.", '\n"Quoted" line.'])
    return {
        "patient_name": f"{rnd.choice(_FIRST)} {tag}",
        "procedure": rnd.choice(["hsg", "miscarriage"]),
        "date": rnd.choice(["2026-11-21", "2026-11-23", "2026-12-01"]),
        "dob": (_FIRST_DOB + timedelta(days=n)).isoformat(),
        "mrn": f"RX-{tag}",
        "clinician": f"Dr {tag}",
        "notes": notes,
        "email": f"p.{tag}@patient.example",
    }


def _cell(value: str, delimiter: str, quote_all: bool) -> str:
    if quote_all or any(c in value for c in (delimiter, '"', "\n", "\r")):
        return '"' + value.replace('"', '""') + '"'
    return value


def _damage(rnd: random.Random, cell: str, kinds: tuple[str, ...]) -> tuple[str, str]:
    kind = rnd.choice(kinds)
    quoted = len(cell) >= 2 and cell.startswith('"') and cell.endswith('"')
    if kind == "unclosed":
        return kind, ('"' + cell) if not quoted else ('"' + cell[1:-1].replace('""', '"'))
    if kind == "closing dropped":
        return kind, cell[:-1] if quoted else ('"' + cell)
    if kind == "doubled":
        if quoted:
            return kind, cell + '"'
        at = rnd.randint(0, len(cell))
        return kind, cell[:at] + '""' + cell[at:]
    if kind == "stray":
        at = rnd.randint(0, len(cell))
        return kind, cell[:at] + '"' + cell[at:]
    quotes = [i for i, c in enumerate(cell) if c == '"']
    if not quotes:
        return "stray", '"' + cell
    at = rnd.choice(quotes)
    return kind, cell[:at] + cell[at + 1 :]


def tagged_schedule(
    rnd: random.Random,
    rows: int | None = None,
    kinds: tuple[str, ...] = ACCIDENTS,
    breaks: bool | None = None,
    hit: str = "",
) -> Tagged:
    """A schedule of tagged rows with one to three quoting accidents of these kinds (none:
    a well-formed schedule, quoted as a spreadsheet would).

    ``breaks``: whether rows' notes have line breaks now and then (default: at random);
    ``hit``: the column the accidents fall in (default: any).
    """
    optional = [c for c in COLUMNS if c not in REQUIRED and (c == hit or rnd.random() < 0.8)]
    columns = list(REQUIRED) + optional
    rnd.shuffle(columns)
    delimiter = rnd.choice([",", ",", ";", "\t"])
    terminator = rnd.choice(["\r\n", "\n"])
    quote_all = rnd.random() < 0.3
    if breaks is None:
        breaks = rnd.random() < 0.7
    count = rows or rnd.randint(2, 8)
    lines = []
    for n in range(1, count + 1):
        values = _row(rnd, n, breaks)
        lines.append([_cell(values[c], delimiter, quote_all) for c in columns])
    tagged = Tagged("", count)
    for _ in range(rnd.choice([1, 1, 1, 2, 3]) if kinds else 0):
        n = rnd.randrange(count)
        c = columns.index(hit) if hit else rnd.randrange(len(columns))
        kind, lines[n][c] = _damage(rnd, lines[n][c], kinds)
        tagged.accidents.append((kind, n + 1, columns[c]))
    header = delimiter.join(columns)
    body = terminator.join(delimiter.join(line) for line in lines)
    tagged.text = header + terminator + body + terminator
    return tagged


def tags_in(texts: Iterable[str]) -> set[int]:
    return {int(found) for text in texts for found in TAG.findall(text)}


def dob_tag(born: date | None) -> set[int]:
    return {(born - _FIRST_DOB).days} if born else set()


@dataclass
class ReadBack:
    made: dict[int, set[int]]  # spreadsheet row -> the tags its request holds
    errors: dict[int, str]


def read_back(path: Path, config: Config) -> ReadBack:
    """The schedule as `discharge batch` (and `--check`, and the web upload) reads it."""
    made: dict[int, set[int]] = {}
    errors: dict[int, str] = {}
    for item in read_rows(open_schedule(path), config):
        if isinstance(item, RowError):
            errors[item.row] = item.message
            continue
        assert isinstance(item, ScheduleRow)
        request = item.request
        made[item.row] = tags_in(
            [
                request.patient.name,
                request.patient.mrn,
                request.clinician,
                request.notes,
                item.email,
            ]  # fmt: skip
        ) | dob_tag(request.patient.dob)
    return ReadBack(made, errors)


def check_one_patient_each(made: dict[int, set[int]], what: str) -> None:
    """No row (or PDF) holds two patients' details, and no patient is in two rows (or PDFs)."""
    seen: dict[int, int] = {}
    for row, tags in made.items():
        assert len(tags) <= 1, f"{what} of row {row} holds the details of rows {sorted(tags)}"
        for tag in tags:
            assert tag not in seen, f"patient {tag} is in the {what} of rows {seen[tag]}, {row}"
            seen[tag] = row


def write(text: str, path: Path) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path
