"""Checking templates before a patient sees them (``discharge templates check``).

Clinics change templates; each change is checked here: the schema, every placeholder, every
variant rendered to a PDF with a sample patient, the reading level of each part, the review
date, and the provenance of translations. Each problem names the file and the field, so a
clinician can find it; nothing here prints or exits (the command does).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal

from discharge.config import Config
from discharge.document import Document, build_document
from discharge.errors import DischargeError, InputError
from discharge.guidance.loading import load_translations, parse_template_file
from discharge.guidance.model import Procedure
from discharge.guidance.parser import text_problems
from discharge.guidance.translations import stale_translations, translation_differences
from discharge.readability import GRADE_LIMIT, flesch_kincaid_grade
from discharge.request import DischargeRequest, Patient

# A fictional patient with long values, so a template that only just fits is caught here.
SAMPLE_PATIENT = Patient("Maximiliana Gonzalez-Oyelaran de la Fuente", date(1988, 9, 30),
                         "MRN-0012345678")  # fmt: skip
SAMPLE_DAY = date(2026, 11, 25)  # a Wednesday: the longest English day name
SAMPLE_TIME = time(14, 30)


@dataclass(frozen=True)
class Finding:
    """One problem (``fail``) or warning with a template: the file, the field, what is wrong."""

    level: Literal["fail", "warning"]
    file: str
    field: str
    message: str

    def __str__(self) -> str:
        warning = "warning: " if self.level == "warning" else ""
        return f"{self.file}: {self.field}: {warning}{self.message}"


def template_folder(folder: Path | None, config: Config) -> Path | None:
    """The folder to check: ``folder``, else the clinic's templates_dir, else None (bundled)."""
    if folder is None:
        return config.templates_dir
    if not folder.is_dir():
        raise InputError(f"templates folder {folder} does not exist or is not a folder")
    return folder


def check_templates(
    folder: Path | None, config: Config, *, today: date | None = None
) -> list[Finding]:
    """Every problem with every template in ``folder`` (None: the bundled templates)."""
    from discharge.resources import bundled_dir

    where = folder or bundled_dir("templates")
    files = sorted(f for f in where.glob("*.toml") if not f.name.startswith("_") and f.is_file())
    today = today or datetime.now(config.clinic.tz).date()
    findings: list[Finding] = []
    for file in files:
        findings += check_template(file, config, today)
    # Translations are compared with the English template beside them (or the bundled one).
    try:
        stale = stale_translations(folder)
    except DischargeError:  # a translation that does not load: reported above, by file
        stale = []
    for file, why in stale:
        if file.parent == where:
            message = why.removeprefix("translates: ")
            findings.append(Finding("fail", file.name, "translates", message))
    # A translation keeps its original's warning signs, timeline rows and sections.
    try:
        translations = load_translations(folder)
    except DischargeError:  # reported above, by file
        translations = []
    for translation in translations:
        if translation.path.parent == where:
            for problem in translation_differences(translation, folder):
                findings.append(_finding("fail", translation.path, problem))
    return findings


def check_template(file: Path, config: Config, today: date) -> list[Finding]:
    procedure, data, problems = parse_template_file(file)
    findings = [_finding("fail", file, problem) for problem in problems]
    if procedure is None:
        return findings
    findings += _review(file, procedure, data, config, today)
    variants: list[str | None] = [v.name for v in procedure.variants] or [None]
    bad_texts = False
    for variant in variants:
        for problem in text_problems(procedure, variant):
            finding = _finding("fail", file, problem)
            bad_texts = True
            if finding not in findings:
                findings.append(finding)
    if bad_texts:
        return findings  # the texts cannot be rendered, so neither can the variants
    grades: dict[str, float] = {}
    english = str(data.get("language", "en")).lower().startswith("en")
    for variant in variants:
        where = f"variants.{variant}" if variant else "(document)"
        try:
            document = build_document(_sample(procedure, variant), config, procedure)
            _render(document)
        except DischargeError as exc:
            findings.append(Finding("fail", file.name, where, f"does not render: {exc}"))
            continue
        if english:
            for field, text in _parts(procedure, document, variant):
                grades[field] = max(grades.get(field, 0.0), flesch_kincaid_grade(text))
    findings += [
        Finding("fail", file.name, field, f"reads at grade {grade:.1f} (at most {GRADE_LIMIT:g})")
        for field, grade in grades.items()
        if grade > GRADE_LIMIT
    ]
    return findings


def _finding(level: Literal["fail", "warning"], file: Path, problem: str) -> Finding:
    field, sep, message = problem.partition(": ")
    if not sep:
        field, message = "(file)", problem
    return Finding(level, file.name, field, message)


def _sample(procedure: Procedure, variant: str | None) -> DischargeRequest:
    return DischargeRequest(
        procedure=procedure.id, day=SAMPLE_DAY, at=SAMPLE_TIME, patient=SAMPLE_PATIENT,
        clinician="Dr Alexandra Smith-Jones", notes="Sample notes.", variant=variant or "",
    )  # fmt: skip


def _render(document: Document) -> None:
    from dataclasses import replace

    from discharge.pdf.render import render_pdf  # reportlab is heavy: only when checking

    render_pdf(document)
    render_pdf(replace(document, large_print=not document.large_print))


def _parts(procedure: Procedure, doc: Document, variant: str | None) -> Iterator[tuple[str, str]]:
    """Each part a patient reads, named by its template field, with its printed text (as
    ``readability.parts`` splits a document)."""
    yield "title", "\n".join(filter(None, (doc.title, doc.subtitle)))
    if doc.intro:
        chosen = next((v for v in procedure.variants if v.name == variant), None)
        field = chosen.intro.field if chosen and chosen.intro else "intro"
        yield field, "\n".join(i for b in doc.intro for i in b.items)
    for spec, milestone in zip(procedure.milestones_for(variant), doc.milestones, strict=True):
        yield spec.label.field, milestone.label
    for section_spec, section in zip(procedure.sections_for(variant), doc.sections, strict=True):
        body = "\n".join(i for b in section.blocks for i in b.items)
        yield section_spec.body.field, f"{section.heading}\n{body}"
    for field, level in (("help.urgent", doc.help_urgent), ("help.clinic", doc.help_clinic)):
        yield field, "\n".join(filter(None, (level.heading, level.intro, *level.signs)))
    if doc.teach_back:
        tb = doc.teach_back
        yield "teach_back", "\n".join(filter(None, (tb.heading, tb.intro, *tb.questions)))


def _review(
    file: Path, procedure: Procedure, data: dict[str, Any], config: Config, today: date
) -> list[Finding]:
    findings = []
    months = config.clinic.review_interval_months
    try:
        reviewed = date.fromisoformat(procedure.reviewed.strip())
    except ValueError:
        reviewed = None
    if reviewed is None:
        findings.append(Finding("warning", file.name, "reviewed",
                                "no review date (expected YYYY-MM-DD)"))  # fmt: skip
    elif _add_months(reviewed, months) < today:
        findings.append(Finding(
            "warning", file.name, "reviewed",
            f"last reviewed {reviewed.isoformat()}, more than {months} months ago "
            "(review_interval_months): have a clinician review it, then update the date",
        ))  # fmt: skip
    translation = "translates" in data or "language" in data
    if translation and not procedure.reviewed_by:
        findings.append(Finding("warning", file.name, "reviewed_by",
                                "not reviewed by a qualified translator"))  # fmt: skip
    elif not procedure.reviewed_by:
        findings.append(Finding("warning", file.name, "reviewed_by",
                                "no clinician has approved this wording: its sheets print "
                                '"Draft: not yet approved"'))  # fmt: skip
    if procedure.reviewed_version and procedure.reviewed_version != procedure.version:
        # The review date is of older wording: the sheet is a draft until it is reviewed again.
        findings.append(Finding(
            "warning", file.name, "reviewed",
            f"{procedure.reviewed or 'the review'} approved version {procedure.reviewed_version}, "
            f"but the wording is now version {procedure.version}: have a clinician review it, "
            "then update reviewed, reviewed_version and reviewed_by",
        ))  # fmt: skip
    return findings


def _add_months(day: date, months: int) -> date:
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def template_source(procedure_id: str, config: Config, language: str | None = None) -> Path:
    """The file a procedure's template (or its translation into ``language``) comes from."""
    from discharge.guidance.loading import available_procedures, template_dirs

    english = available_procedures(config.templates_dir)
    wanted = procedure_id.strip().lower()
    if wanted not in english:
        known = ", ".join(sorted(english))
        raise InputError(f"unknown template: expected one of: {known}")
    code = (language or "").strip().lower()
    if not code or code == "en":
        return english[wanted]
    translations: dict[str, Path] = {}
    for folder in template_dirs(config.templates_dir):  # the clinic's folder first
        for file in sorted(folder.glob(f"{wanted}.*.toml")):
            translations.setdefault(file.stem.partition(".")[2].lower(), file)
    if code not in translations:
        have = ", ".join(["en", *sorted(translations)])
        raise InputError(f"template {wanted!r} has no {code!r} version: expected one of: {have}")
    return translations[code]
