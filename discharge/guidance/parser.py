"""The template parser: a template file's TOML data checked field by field and built into a
``Procedure``, every text compiled and rendered once per variant with sample values, so that a
typo fails when the template is loaded, not for a patient. Every problem is collected and
reported at once, each as "field: what was expected".
"""

from __future__ import annotations

import contextlib
import re
import time as clock
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from discharge.config import Clinic
from discharge.errors import TemplateError
from discharge.guidance.context import template_context
from discharge.guidance.filling import Text, fill, plan
from discharge.guidance.model import (
    TRANSLATES,
    HelpLevelSpec,
    Item,
    MilestoneSpec,
    Procedure,
    SectionSpec,
    SourceSpec,
    TeachBackSpec,
    Variants,
    VariantSpec,
    applies,
    items_for,
    template_key,
    texts_of,
)
from discharge.milestones import Offset, parse_offset

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_TOP_FIELDS = {
    "id", "version", "title", "subtitle", "reviewed", "sources", "intro", "default_variant",
    "variants", "milestones", "sections", "help", "teach_back",
    "language", "translates", "reviewed_by", "reviewed_version",
}  # fmt: skip
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_SOURCE_FIELDS = ("title", "publisher", "author", "url", "reviewed", "note")
_VARIANT_FIELDS = ("label", "date_label", "intro")
_MAX_QUESTIONS = 6
# Checking a template has a time budget: a file of a thousand long sections once took minutes
# (its size is limited too, see loading.py).
LOAD_SECONDS = 10.0


class Parser:
    """Builds a Procedure, collecting every problem before raising one TemplateError."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.problems: list[str] = []
        self.variant_names: set[str] = set()
        self.deadline = clock.monotonic() + LOAD_SECONDS
        self.timed_out = ""

    def check_time(self) -> None:
        """Stop a template that takes longer than LOAD_SECONDS to check (every text is
        compiled, then rendered once per variant: each is bounded, their number is not)."""
        if clock.monotonic() > self.deadline:
            self.timed_out = (
                f"template {self.file.name}: checking it took longer than {LOAD_SECONDS:g} s "
                "(expected well under a second); it has too many or too long texts"
            )
            raise TemplateError(self.timed_out)

    def parse(self, data: dict[str, Any], *, placeholders: bool = True) -> Procedure:
        for key in data:
            if key not in _TOP_FIELDS:
                self.problems.append(f"{key}: not a known field")
        proc_id = self.string(data, "id")
        stem, file_language = template_key(self.file)
        if proc_id and not _ID.match(proc_id):
            self.problems.append("id: expected lowercase letters, digits and '-'")
        elif proc_id and proc_id != stem:
            self.problems.append(f"id: {proc_id!r} must match the file name {stem!r}")
        provenance = self.provenance(data, proc_id, file_language)
        variants = self.variants(data)
        default = self.default_variant(data, variants)
        milestones = tuple(
            self.milestone(m, i) for i, m in enumerate(self.table_list(data, "milestones"))
        )
        names: list[str | None] = [*sorted(self.variant_names)] or [None]
        for name in names:
            keys = [m.key for m in milestones if applies(m.variants, name)]
            where = f" (variant {name})" if name else ""
            if not keys and milestones:
                self.problems.append(f"milestones: no timeline row is left{where}")
            for dup in sorted({k for k in keys if keys.count(k) > 1}):
                self.problems.append(f"milestones: key {dup!r} is used more than once{where}")
        sections = tuple(
            self.section(s, i) for i, s in enumerate(self.table_list(data, "sections"))
        )
        help_urgent, help_clinic = self.help(data)
        procedure = Procedure(
            id=proc_id,
            version=self.string(data, "version"),
            title=self.string(data, "title"),
            subtitle=self.string(data, "subtitle", required=False),
            reviewed=self.string(data, "reviewed", required=False),
            reviewed_version=self.string(data, "reviewed_version", required=False),
            sources=self.sources(data),
            intro=self.optional_text(data, "intro", "intro"),
            milestones=milestones,
            sections=sections,
            help_urgent=help_urgent,
            help_clinic=help_clinic,
            teach_back=self.teach_back(data),
            variants=variants,
            default_variant=default,
            path=self.file,
            **provenance,
        )
        if not self.problems:
            self.check_variants_complete(procedure)
        if self.problems:
            raise TemplateError(f"template {self.file.name}: " + "; ".join(self.problems))
        if placeholders:
            self.check_placeholders(procedure)
        return procedure

    # --- fields -------------------------------------------------------------------------

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

    def table(self, data: Mapping[str, Any], key: str, field: str) -> dict[str, Any] | None:
        value = data.get(key)
        if not isinstance(value, dict):
            self.problems.append(f"{field}: expected a [{field}] table")
            return None
        return value

    def unknown(self, data: Mapping[str, Any], allowed: Iterable[str], field: str) -> None:
        allowed = set(allowed)
        for name in data:
            if name not in allowed:
                self.problems.append(f"{field}.{name}: not a known field")

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
        from jinja2 import TemplateError as JinjaTemplateError

        from discharge.guidance.sandbox import compile_text

        self.check_time()
        try:
            template, code = compile_text(source.strip())
        except JinjaTemplateError as exc:
            self.problems.append(f"{field}: {exc}")
            template, code = compile_text("")
        static = None
        if "{" not in source:  # nothing Jinja reads starts without "{": no placeholders
            with contextlib.suppress(TemplateError):
                static = fill(template, {})
        planned = plan(source.strip()) if static is None else None
        text = Text(field, source.strip(), code, static, planned)
        text.__dict__["template"] = template  # made already (Text.template)
        return text

    def provenance(
        self, data: Mapping[str, Any], proc_id: str, file_language: str
    ) -> dict[str, str]:
        """A translation (``ID.LANG.toml``) names its language, the id and version it translates,
        and who reviewed it (``reviewed_by = ""`` until a qualified reviewer has)."""
        if not file_language:
            if "translates" in data:
                self.problems.append(
                    "translates: only a translation has this field (name the file ID.LANG.toml, "
                    "for example hsg.es.toml)"
                )
            language = data.get("language", "")
            if language and not (isinstance(language, str) and _LANGUAGE.match(language)):
                self.problems.append("language: expected a language code such as en or es")
            reviewed_by = data.get("reviewed_by", "")
            if not isinstance(reviewed_by, str):
                self.problems.append(
                    "reviewed_by: expected the name of the clinician who approved this wording "
                    '(reviewed_by = "" until one has)'
                )
                reviewed_by = ""
            return {
                "language": language if isinstance(language, str) else "",
                "reviewed_by": reviewed_by.strip(),
            }
        if not _LANGUAGE.match(file_language):
            self.problems.append(
                f"file name: {file_language!r} is not a language code (expected ID.LANG.toml, "
                "for example hsg.es.toml)"
            )
        if data.get("language") != file_language:
            self.problems.append(
                f"language: expected {file_language!r}, the language in the file name"
            )
        translates = data.get("translates")
        match = TRANSLATES.match(translates) if isinstance(translates, str) else None
        if not match or match.group("id") != proc_id:
            self.problems.append(
                f"translates: expected the id and version of the template this translates, "
                f'such as "{proc_id or "hsg"} 1.2"'
            )
        reviewed_by = data.get("reviewed_by")
        if not isinstance(reviewed_by, str):
            self.problems.append(
                "reviewed_by: expected the name of the qualified reviewer of this translation "
                '(reviewed_by = "" until it has been reviewed)'
            )
            reviewed_by = ""
        return {
            "language": file_language,
            "translates": " ".join(translates.split()) if match and translates else "",
            "reviewed_by": reviewed_by.strip(),
        }

    def sources(self, data: Mapping[str, Any]) -> tuple[SourceSpec, ...]:
        value = data.get("sources")
        if not (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
            self.problems.append(
                "sources: expected one or more [[sources]] blocks, each with at least a title"
            )
            return ()
        out = []
        for i, source in enumerate(value):
            field = f"sources[{i}]"
            self.unknown(source, _SOURCE_FIELDS, field)
            fields = {
                name: self.string(source, name, required=name == "title", field=f"{field}.{name}")
                for name in _SOURCE_FIELDS
            }
            if fields["url"] and not fields["url"].startswith("https://"):
                self.problems.append(f"{field}.url: expected an address starting https://")
            out.append(SourceSpec(**fields))
        return tuple(out)

    def variants(self, data: Mapping[str, Any]) -> tuple[VariantSpec, ...]:
        value = data.get("variants")
        if value is None:
            return ()
        tables = isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())
        if not (tables and value):
            self.problems.append("variants: expected one or more [variants.NAME] tables")
            return ()
        out = []
        for name, spec in value.items():
            field = f"variants.{name}"
            if not _ID.match(name):
                self.problems.append(f"{field}: a variant name uses lowercase letters, digits, -")
            self.unknown(spec, _VARIANT_FIELDS, field)
            out.append(
                VariantSpec(
                    name=name,
                    label=self.string(spec, "label", field=f"{field}.label"),
                    date_label=self.string(
                        spec, "date_label", required=False, field=f"{field}.date_label"
                    ),
                    intro=self.optional_text(spec, "intro", f"{field}.intro"),
                )
            )
        self.variant_names = {v.name for v in out}
        return tuple(out)

    def default_variant(self, data: Mapping[str, Any], variants: tuple[VariantSpec, ...]) -> str:
        value = data.get("default_variant")
        if value is None:
            if len(variants) > 1:
                self.problems.append("default_variant: expected the name of one of the variants")
            return variants[0].name if variants else ""
        name = self.string(data, "default_variant")
        if name and name not in self.variant_names:
            known = ", ".join(sorted(self.variant_names)) or "none are declared"
            self.problems.append(f"default_variant: {name!r} is not a variant ({known})")
        return name

    def only_for(self, data: Mapping[str, Any], field: str) -> Variants:
        """An entry's optional `variants = [...]`: the variants it is printed for."""
        if "variants" not in data:
            return None
        value = data["variants"]
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            self.problems.append(f"{field}.variants: expected a list of variant names")
            return None
        for name in value:
            if name not in self.variant_names:
                known = ", ".join(sorted(self.variant_names)) or "none are declared"
                self.problems.append(f"{field}.variants: {name!r} is not a variant ({known})")
        return frozenset(value)

    def items(self, data: Mapping[str, Any], key: str, field: str, what: str) -> tuple[Item, ...]:
        """A list of texts; each may instead be a table {text = "...", variants = [...]}."""
        value = data.get(key)
        if not (isinstance(value, list) and value):
            self.problems.append(f"{field}.{key}: expected a list of at least one {what}")
            return ()
        out = []
        for i, entry in enumerate(value):
            where = f"{field}.{key}[{i}]"
            if isinstance(entry, dict):
                self.unknown(entry, ("text", "variants"), where)
                out.append(Item(self.text(entry, "text", where), self.only_for(entry, where)))
            elif _nonblank(entry):
                out.append(Item(self.compile(entry, where)))
            else:
                self.problems.append(f"{where}: expected non-empty text")
        return tuple(out)

    def help(self, data: Mapping[str, Any]) -> tuple[HelpLevelSpec, HelpLevelSpec]:
        help_ = data.get("help")
        levels = ("urgent", "clinic")
        if not (isinstance(help_, dict) and all(isinstance(help_.get(k), dict) for k in levels)):
            self.problems.append(
                "help: expected two tables, [help.urgent] (call the emergency number now) and "
                "[help.clinic] (call the clinic), each with a heading and signs"
            )
            help_ = {k: {} for k in levels}
        self.unknown(help_, levels, "help")
        out = []
        for level in levels:
            field = f"help.{level}"
            spec = help_[level]
            self.unknown(spec, ("heading", "intro", "signs"), field)
            out.append(
                HelpLevelSpec(
                    heading=self.text(spec, "heading", f"{field}.heading"),
                    intro=self.optional_text(spec, "intro", f"{field}.intro"),
                    signs=self.items(spec, "signs", field, "warning sign"),
                )
            )
        return out[0], out[1]

    def teach_back(self, data: Mapping[str, Any]) -> TeachBackSpec | None:
        if "teach_back" not in data:
            return None
        spec = self.table(data, "teach_back", "teach_back")
        if spec is None:
            return None
        self.unknown(spec, ("heading", "intro", "questions"), "teach_back")
        questions = self.items(spec, "questions", "teach_back", "question")
        if len(questions) > _MAX_QUESTIONS:
            self.problems.append(f"teach_back.questions: at most {_MAX_QUESTIONS} questions")
        return TeachBackSpec(
            heading=self.text(spec, "heading", "teach_back.heading"),
            intro=self.optional_text(spec, "intro", "teach_back.intro"),
            questions=questions,
        )

    def section(self, data: dict[str, Any], index: int) -> SectionSpec:
        field = f"sections[{index}]"
        self.unknown(data, ("heading", "body", "variants"), field)
        return SectionSpec(
            self.text(data, "heading", f"{field}.heading"),
            self.text(data, "body", f"{field}.body"),
            self.only_for(data, field),
        )

    def milestone(self, data: dict[str, Any], index: int) -> MilestoneSpec:
        field = f"milestones[{index}]"
        self.unknown(data, ("key", "start", "end", "label", "variants"), field)
        key = data.get("key")
        if not (isinstance(key, str) and _KEY.match(key)):
            self.problems.append(f"{field}.key: expected a short lowercase name like sex or period")
            key = f"_{index}"
        start = self.offset(data.get("start"), f"{field}.start")
        end = self.offset(data["end"], f"{field}.end") if "end" in data else None
        if start and end and _rough_hours(end) <= _rough_hours(start):
            self.problems.append(f"{field}.end: must be later than start ({start})")
        label = self.text(data, "label", f"{field}.label")
        variants = self.only_for(data, field)
        return MilestoneSpec(key, start or Offset(0, "d"), end, label, variants)

    def offset(self, value: Any, field: str) -> Offset | None:
        try:
            return parse_offset(value)
        except ValueError as exc:
            self.problems.append(f"{field}: {exc}")
            return None

    # --- whole-template checks ----------------------------------------------------------

    def check_variants_complete(self, procedure: Procedure) -> None:
        """Every variant keeps at least one urgent sign, one clinic sign and one question."""
        for spec in procedure.variants or (None,):
            name = spec.name if spec else None
            where = f" for variant {name}" if name else ""
            for field, items in (
                ("help.urgent.signs", procedure.help_urgent.signs),
                ("help.clinic.signs", procedure.help_clinic.signs),
                *(
                    [("teach_back.questions", procedure.teach_back.questions)]
                    if procedure.teach_back
                    else []
                ),
            ):
                if items and not items_for(items, name):
                    self.problems.append(f"{field}: none is left{where}")

    def check_placeholders(self, procedure: Procedure) -> None:
        """Render every text once per variant with sample values, so a typo fails at load."""
        for spec in procedure.variants or (None,):
            name = spec.name if spec else None
            context = template_context(procedure, date(2026, 1, 1), None, Clinic(), name).values
            for text in texts_of(procedure, name):
                self.check_time()
                procedure.render(text, context)


def text_problems(procedure: Procedure, variant: str | None) -> list[str]:
    """Every text of one variant rendered with sample values: "field: what is wrong" each."""
    context = template_context(procedure, date(2026, 1, 1), None, Clinic(), variant).values
    problems = []
    for text in texts_of(procedure, variant):
        try:
            fill(text.template, context)  # by Jinja2 itself, not the quicker ways
        except TemplateError as exc:
            problems.append(f"{text.field}: bad placeholder or expression ({exc})")
    return problems


def _nonblank(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _rough_hours(offset: Offset) -> float:
    return offset.amount * {"h": 1, "d": 24, "w": 168, "m": 730}[offset.unit]
