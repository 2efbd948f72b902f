"""What a procedure template is: the records a checked template becomes (``Procedure`` and its
parts), which of them each variant prints, and whether its wording is approved.

A template file is named ``ID.toml`` (the clinic's own language) or ``ID.LANG.toml`` (a
translation). ``parser.py`` builds these records, ``loading.py`` finds and caches them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discharge.errors import InputError, TemplateError
from discharge.guidance.filling import Text, fill
from discharge.milestones import Offset

TRANSLATES = re.compile(r"^(?P<id>\S+)\s+(?P<version>\S+)$")  # translates = "hsg 1.2"


Variants = frozenset[str] | None  # the variants an entry is printed for; None: all of them


def applies(variants: Variants, variant: str | None) -> bool:
    return variants is None or variant in variants


# The records below are built, read and cached, never compared or printed: eq=False and
# repr=False spare every start the methods a dataclass would generate for that (about 5 ms
# of a cold `discharge generate` over the package).
@dataclass(frozen=True, eq=False, repr=False)
class Item:
    """One warning sign or teach-back question, optionally for some variants only."""

    text: Text
    variants: Variants = None


@dataclass(frozen=True, eq=False, repr=False)
class MilestoneSpec:
    key: str
    start: Offset
    end: Offset | None
    label: Text
    variants: Variants = None


@dataclass(frozen=True, eq=False, repr=False)
class SectionSpec:
    heading: Text
    body: Text
    variants: Variants = None


@dataclass(frozen=True, eq=False, repr=False)
class HelpLevelSpec:
    """One level of the help box: a heading that says what to do, then the signs."""

    heading: Text
    intro: Text | None
    signs: tuple[Item, ...]


@dataclass(frozen=True, eq=False, repr=False)
class TeachBackSpec:
    heading: Text
    intro: Text | None
    questions: tuple[Item, ...]


@dataclass(frozen=True, eq=False, repr=False)
class VariantSpec:
    name: str
    label: str  # listed by `discharge procedures`
    date_label: str  # the patient block's label for the date; "" for the usual "Date"
    intro: Text | None  # replaces the template's intro for this variant


@dataclass(frozen=True, eq=False, repr=False)
class SourceSpec:
    """Where the guidance comes from: full provenance here, one plain line on the sheet."""

    title: str
    publisher: str = ""
    author: str = ""
    url: str = ""
    reviewed: str = ""
    note: str = ""

    @property
    def printed(self) -> str:
        """What the patient reads: "Cleveland Clinic: Hysterosalpingogram (HSG)"."""
        return f"{self.publisher}: {self.title}" if self.publisher else self.title


@dataclass(frozen=True, eq=False, repr=False)
class Procedure:
    id: str
    version: str
    title: str
    subtitle: str
    reviewed: str
    sources: tuple[SourceSpec, ...]
    intro: Text | None
    milestones: tuple[MilestoneSpec, ...]
    sections: tuple[SectionSpec, ...]
    help_urgent: HelpLevelSpec
    help_clinic: HelpLevelSpec
    teach_back: TeachBackSpec | None
    variants: tuple[VariantSpec, ...]
    default_variant: str  # "" when the template declares no variants
    path: Path
    # A translation (a file named ID.LANG.toml) says what it is and where it comes from:
    language: str = ""  # "es"; "" in a file named ID.toml: the clinic's own language
    translates: str = ""  # the template id and version it translates: "hsg 1.2"
    reviewed_by: str = ""  # who approved this wording ("" until a qualified reviewer has)
    reviewed_version: str = ""  # the version that review approved ("": the current one)

    @property
    def approved(self) -> bool:
        """Signed off: a reviewer is named, and the review was of this version's wording. An
        unapproved template prints a "Draft" line on every page and a warning on stderr."""
        current = not self.reviewed_version or self.reviewed_version == self.version
        return bool(self.reviewed_by) and current

    @property
    def translated_version(self) -> str:
        """The version of the original that this translation was made from ("" if none)."""
        match = TRANSLATES.match(self.translates)
        return match.group("version") if match else ""

    def render(self, text: Text, context: Mapping[str, Any]) -> str:
        """One of this template's texts filled for a patient (see filling.py)."""
        try:
            return fill(text, context)
        except TemplateError as exc:
            raise TemplateError(f"template {self.path.name}, field {text.field}: {exc}") from None

    def variant(self, name: str | None) -> VariantSpec | None:
        """The variant a nurse asked for (None: the default); an unknown name is an InputError."""
        wanted = (name or "").strip().lower() or self.default_variant
        if not wanted:
            return None
        for spec in self.variants:
            if spec.name == wanted:
                return spec
        known = ", ".join(v.name for v in self.variants)
        if not known:
            raise InputError(f"procedure {self.id!r} has no variants (leave the variant out)")
        raise InputError(
            f"unknown variant {wanted!r} for procedure {self.id!r}: expected one of: {known}"
        )

    def milestones_for(self, variant: str | None) -> tuple[MilestoneSpec, ...]:
        return tuple(m for m in self.milestones if applies(m.variants, variant))

    def sections_for(self, variant: str | None) -> tuple[SectionSpec, ...]:
        return tuple(s for s in self.sections if applies(s.variants, variant))


def items_for(items: tuple[Item, ...], variant: str | None) -> tuple[Text, ...]:
    return tuple(i.text for i in items if applies(i.variants, variant))


def texts_of(procedure: Procedure, variant: str | None) -> Iterable[Text]:
    """Every text printed for ``variant``, in the order of the sheet."""
    chosen = next((v for v in procedure.variants if v.name == variant), None)
    intro = chosen.intro if chosen and chosen.intro else procedure.intro
    if intro:
        yield intro
    for m in procedure.milestones_for(variant):
        yield m.label
    for s in procedure.sections_for(variant):
        yield s.heading
        yield s.body
    for level in (procedure.help_urgent, procedure.help_clinic):
        yield level.heading
        if level.intro:
            yield level.intro
        yield from items_for(level.signs, variant)
    if procedure.teach_back:
        yield procedure.teach_back.heading
        if procedure.teach_back.intro:
            yield procedure.teach_back.intro
        yield from items_for(procedure.teach_back.questions, variant)


def draft_warning(procedure: Procedure) -> str | None:
    """Why this template is a draft (its sheets say so on every page), or None if approved."""
    if procedure.approved:
        return None
    if procedure.reviewed_by:
        why = (
            f"the review by {procedure.reviewed_by} was of version {procedure.reviewed_version}, "
            f"the wording is now version {procedure.version}"
        )
    else:
        why = "no clinician has approved its wording (reviewed_by is empty)"
    return (
        f"{procedure.path.name} is a draft: {why}; every page it prints says "
        '"Draft: not yet approved"'
    )


def template_key(file: Path) -> tuple[str, str]:
    """``hsg.es.toml`` -> ``("hsg", "es")``; ``hsg.toml`` -> ``("hsg", "")``."""
    procedure_id, _, language = file.stem.partition(".")
    return procedure_id, language
