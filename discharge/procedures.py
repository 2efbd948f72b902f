"""Procedure templates: TOML data plus Jinja2 text, validated on load.

Templates are clinic content, so every problem is reported with the file, the field and what
was expected. Text is rendered in the sandboxed Jinja2 environment of ``templating.py``, where
an unknown placeholder is an error, and patient data only ever enters as values, never as
template source. ``template_context`` gives the values a template's placeholders see.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Template
from jinja2 import TemplateError as JinjaTemplateError

from discharge import templating
from discharge.config import Clinic
from discharge.dates import format_day, format_moment
from discharge.errors import InputError, TemplateError, UnknownProcedureError
from discharge.milestones import Offset, apply_offset, parse_offset
from discharge.resources import bundled_dir
from discharge.templating import environment

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_TOP_FIELDS = {
    "id", "version", "title", "subtitle", "reviewed", "sources", "intro",
    "milestones", "sections", "help",
}  # fmt: skip


@dataclass(frozen=True)
class Text:
    """One piece of template text, compiled once per process."""

    field: str  # e.g. "sections[2].body", for error messages
    source: str
    template: Template


@dataclass(frozen=True)
class MilestoneSpec:
    key: str
    start: Offset
    end: Offset | None
    label: Text


@dataclass(frozen=True)
class SectionSpec:
    heading: Text
    body: Text


@dataclass(frozen=True)
class Procedure:
    id: str
    version: str
    title: str
    subtitle: str
    reviewed: str
    sources: tuple[str, ...]
    intro: Text | None
    milestones: tuple[MilestoneSpec, ...]
    sections: tuple[SectionSpec, ...]
    help_heading: str
    help_intro: Text | None
    help_signs: tuple[Text, ...]
    path: Path

    def render(self, text: Text, context: Mapping[str, Any]) -> str:
        try:
            return templating.render(text.template, context)
        except TemplateError as exc:
            raise TemplateError(f"template {self.path.name}, field {text.field}: {exc}") from None


def template_dirs(extra: Path | None = None) -> tuple[Path, ...]:
    """Where templates are looked up: the clinic's own folder first, then the bundled one."""
    bundled = bundled_dir("templates")
    return (extra, bundled) if extra else (bundled,)


def available_procedures(extra: Path | None = None) -> dict[str, Path]:
    """Map procedure id to its template file (a clinic's own folder wins over the bundled one)."""
    folders = template_dirs(extra)
    try:
        stamps = tuple(folder.stat().st_mtime_ns for folder in folders)
    except OSError as exc:
        raise TemplateError(f"cannot read the templates folder: {exc}") from None
    return dict(_listing(folders, stamps))


@cache
def _listing(folders: tuple[Path, ...], _stamps: tuple[int, ...]) -> tuple[tuple[str, Path], ...]:
    # A batch asks once per row: list each folder again only when its contents change.
    found: dict[str, Path] = {}
    for folder in reversed(folders):
        for file in sorted(folder.glob("*.toml")):
            # Only regular files: reading a FIFO (or a device) named *.toml would wait forever.
            if not file.name.startswith("_") and file.is_file():
                found[file.stem] = file
    return tuple(found.items())


def load_procedure(procedure_id: str, extra: Path | None = None) -> Procedure:
    files = available_procedures(extra)
    file = files.get(procedure_id.strip().lower())
    if file is None:
        known = sorted(files)
        close = difflib.get_close_matches(procedure_id.strip().lower(), known, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        # The value itself is not repeated: in a schedule it may be a name in the wrong column.
        raise UnknownProcedureError(f"unknown procedure: {hint}expected one of: {', '.join(known)}")
    return _load_file(file, file.stat().st_mtime_ns)


def load_all(extra: Path | None = None) -> list[Procedure]:
    return [_load_file(f, f.stat().st_mtime_ns) for f in available_procedures(extra).values()]


@cache
def _load_file(file: Path, _mtime: int) -> Procedure:
    try:
        # utf-8-sig: Windows Notepad starts a UTF-8 file with a byte order mark; allow it.
        data = tomllib.loads(file.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise TemplateError(f"template {file.name} is not UTF-8 text") from None
    except OSError as exc:
        raise TemplateError(f"cannot read template {file}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"template {file.name} is not valid TOML: {exc}") from None
    except RecursionError:
        raise TemplateError(
            f"template {file.name} is not valid TOML: tables or lists nested too deeply"
        ) from None
    return _Parser(file).parse(data)


class _Parser:
    """Builds a Procedure, collecting every problem before raising one TemplateError."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.problems: list[str] = []

    def parse(self, data: dict[str, Any]) -> Procedure:
        for key in data:
            if key not in _TOP_FIELDS:
                self.problems.append(f"{key}: not a known field")
        proc_id = self.string(data, "id")
        if proc_id and not _ID.match(proc_id):
            self.problems.append("id: expected lowercase letters, digits and '-'")
        elif proc_id and proc_id != self.file.stem:
            self.problems.append(f"id: {proc_id!r} must match the file name {self.file.stem!r}")
        sources = data.get("sources")
        if not (isinstance(sources, list) and sources and all(_nonblank(s) for s in sources)):
            self.problems.append("sources: expected a list naming at least one source")
            sources = []
        milestones = tuple(
            self.milestone(m, i) for i, m in enumerate(self.table_list(data, "milestones"))
        )
        keys = [m.key for m in milestones if m]
        for dup in sorted({k for k in keys if keys.count(k) > 1}):
            self.problems.append(f"milestones: key {dup!r} is used more than once")
        sections = tuple(
            SectionSpec(
                self.text(s, "heading", f"sections[{i}].heading"),
                self.text(s, "body", f"sections[{i}].body"),
            )
            for i, s in enumerate(self.table_list(data, "sections"))
        )
        help_ = data.get("help")
        if not isinstance(help_, dict):
            self.problems.append("help: expected a [help] table with heading and signs")
            help_ = {}
        for key in help_:
            if key not in ("heading", "intro", "signs"):
                self.problems.append(f"help.{key}: not a known field")
        signs = help_.get("signs")
        if not (isinstance(signs, list) and signs and all(_nonblank(s) for s in signs)):
            self.problems.append("help.signs: expected a list of at least one warning sign")
            signs = []
        procedure = Procedure(
            id=proc_id,
            version=self.string(data, "version"),
            title=self.string(data, "title"),
            subtitle=self.string(data, "subtitle", required=False),
            reviewed=self.string(data, "reviewed", required=False),
            sources=tuple(s.strip() for s in sources),
            intro=self.optional_text(data, "intro", "intro"),
            milestones=milestones,
            sections=sections,
            help_heading=self.string(help_, "heading", field="help.heading"),
            help_intro=self.optional_text(help_, "intro", "help.intro"),
            help_signs=tuple(self.compile(s, f"help.signs[{i}]") for i, s in enumerate(signs)),
            path=self.file,
        )
        if self.problems:
            raise TemplateError(f"template {self.file.name}: " + "; ".join(self.problems))
        self.check_placeholders(procedure)
        return procedure

    def string(
        self, data: Mapping[str, Any], key: str, *, required: bool = True, field: str = ""
    ) -> str:
        value = data.get(key)
        if value is None and not required:
            return ""
        if not _nonblank(value):
            self.problems.append(f"{field or key}: expected non-empty text")
            return ""
        return str(value).strip()

    def table_list(self, data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
        value = data.get(key)
        if not (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
            self.problems.append(f"{key}: expected one or more [[{key}]] blocks")
            return []
        return value

    def text(self, data: Mapping[str, Any], key: str, field: str) -> Text:
        value = data.get(key)
        if not _nonblank(value):
            self.problems.append(f"{field}: expected non-empty text")
            value = ""
        return self.compile(str(value), field)

    def optional_text(self, data: Mapping[str, Any], key: str, field: str) -> Text | None:
        return None if data.get(key) is None else self.text(data, key, field)

    def compile(self, source: str, field: str) -> Text:
        try:
            template = environment().from_string(source.strip())
        except JinjaTemplateError as exc:
            self.problems.append(f"{field}: {exc}")
            template = environment().from_string("")
        return Text(field, source.strip(), template)

    def milestone(self, data: dict[str, Any], index: int) -> MilestoneSpec:
        field = f"milestones[{index}]"
        for name in data:
            if name not in ("key", "start", "end", "label"):
                self.problems.append(f"{field}.{name}: not a known field")
        key = data.get("key")
        if not (isinstance(key, str) and _KEY.match(key)):
            self.problems.append(f"{field}.key: expected a short lowercase name like sex or period")
            key = f"_{index}"
        start = self.offset(data.get("start"), f"{field}.start")
        end = self.offset(data["end"], f"{field}.end") if "end" in data else None
        if start and end and _rough_hours(end) <= _rough_hours(start):
            self.problems.append(f"{field}.end: must be later than start ({start})")
        label = self.text(data, "label", f"{field}.label")
        return MilestoneSpec(key, start or Offset(0, "d"), end, label)

    def offset(self, value: Any, field: str) -> Offset | None:
        try:
            return parse_offset(value)
        except ValueError as exc:
            self.problems.append(f"{field}: {exc}")
            return None

    def check_placeholders(self, procedure: Procedure) -> None:
        """Render every text once with sample values so a typo fails at load, not for a patient."""
        context = template_context(procedure, date(2026, 1, 1), None, Clinic()).values
        for text in _texts(procedure):
            procedure.render(text, context)


@dataclass(frozen=True)
class DatedMilestone:
    spec: MilestoneSpec
    start: date | datetime  # a datetime (aware, clinic time zone) only for hour offsets + time
    end: date | datetime | None
    start_text: str  # as printed: "Monday 23 November 2026" (or "... at 10:30")
    end_text: str  # "" without an end


@dataclass(frozen=True)
class TemplateContext:
    """What a template's placeholders see, and the milestones' dates it was made from."""

    values: dict[str, Any]
    milestones: tuple[DatedMilestone, ...]


def template_context(
    procedure: Procedure, day: date, at: time | None, clinic: Clinic
) -> TemplateContext:
    """The placeholders of ``templates/README.md`` for one procedure date, in the clinic's style."""
    dated: list[DatedMilestone] = []
    for spec in procedure.milestones:
        try:
            start = apply_offset(day, at, clinic.tz, spec.start)
            end = apply_offset(day, at, clinic.tz, spec.end) if spec.end else None
        except (OverflowError, ValueError):
            raise InputError(
                f"date: the {procedure.id} timeline runs past the year 9999 "
                "(expected the date of a procedure, such as today's)"
            ) from None
        end_text = format_moment(end, clinic.locale) if end is not None else ""
        dated.append(
            DatedMilestone(spec, start, end, format_moment(start, clinic.locale), end_text)
        )
    values = {
        "m": {
            d.spec.key: {
                "start": d.start_text,
                "end": d.end_text,
                "when": f"{d.start_text} to {d.end_text}" if d.end_text else d.start_text,
            }
            for d in dated
        },
        "procedure_date": format_day(day, clinic.locale),
        "locale": clinic.locale,
        "clinic": {
            "name": clinic.name,
            "phone": clinic.phone,
            "after_hours_phone": clinic.after_hours_phone,
            "emergency_number": clinic.emergency_number,
        },
    }
    return TemplateContext(values, tuple(dated))


def _texts(procedure: Procedure) -> Iterable[Text]:
    if procedure.intro:
        yield procedure.intro
    for m in procedure.milestones:
        yield m.label
    for s in procedure.sections:
        yield s.heading
        yield s.body
    if procedure.help_intro:
        yield procedure.help_intro
    yield from procedure.help_signs


def _nonblank(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _rough_hours(offset: Offset) -> float:
    return offset.amount * {"h": 1, "d": 24, "w": 168, "m": 730}[offset.unit]
