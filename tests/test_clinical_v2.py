"""Clinical content v2 (issue 19), read from the real PDFs' text.

Each sheet is rendered once, in-process (the same build_document and render_pdf the command
runs), and its pages' text extracted with pypdf: what a patient holds, not the model.
"""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from functools import cache

import pytest
from pypdf import PdfReader

from discharge.config import load_config
from discharge.dates import format_day
from discharge.document import build_document
from discharge.pdf.render import render_pdf
from discharge.request import parse_request

DAY = date(2026, 11, 21)  # a Saturday; three weeks on crosses into December
MISCARRIAGE = ("expectant", "medical", "surgical")
COMBINATIONS = [
    (procedure, variant, language, paper, large)
    for procedure, variants in (("hsg", ("fertility", "sterilisation-check")),
                                ("miscarriage", MISCARRIAGE))
    for variant in variants
    for language in ("en", "es")
    for paper in ("a4", "letter")
    for large in (False, True)
]  # fmt: skip


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@cache
def pages(procedure: str, variant: str, language: str = "en", paper: str = "a4",
          large: bool = False) -> tuple[str, ...]:  # fmt: skip
    request = parse_request(
        procedure=procedure, date=DAY.isoformat(), patient="Ada Lovelace", variant=variant,
        paper=paper, large_print=large, language=None if language == "en" else language,
    )  # fmt: skip
    document = build_document(request, load_config())
    reader = PdfReader(io.BytesIO(render_pdf(document)))
    return tuple(_flat(page.extract_text()) for page in reader.pages)


def text(procedure: str, variant: str, language: str = "en") -> str:
    return " ".join(pages(procedure, variant, language))


def emergency_part(sheet: str, language: str = "en") -> str:
    """The urgent level of the help box: from its heading to its 'Emergency' contact."""
    start, end = {"en": ("now, or go straight to", "Emergency 999"),
                  "es": ("ahora, o vaya directo a urgencias", "Emergencias 999")}[language]  # fmt: skip
    return sheet[sheet.index(start) : sheet.index(end)]


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("variant", MISCARRIAGE)
def test_heavy_soaking_on_its_own_is_an_emergency_sign(variant: str, language: str) -> None:
    urgent = emergency_part(text("miscarriage", variant, language), language)
    sign = {"en": "Heavy bleeding: you soak through 2 or more large pads an hour, for 2 hours "
                  "in a row.",
            "es": "Sangra mucho: empapa 2 o más toallas sanitarias grandes por hora, 2 horas "
                  "seguidas."}[language]  # fmt: skip
    assert sign in urgent
    assert ("clots" not in sign) and ("coágulos" not in sign)  # soaking alone is enough


@pytest.mark.parametrize("variant", MISCARRIAGE)
def test_the_clinic_level_has_a_bleeding_sign(variant: str) -> None:
    sheet = text("miscarriage", variant)
    clinic = sheet[sheet.index("Call us straight away") :]
    assert "heavier than a period" in clinic


@pytest.mark.parametrize("language", ["en", "es"])
def test_the_sterilisation_check_says_to_keep_using_contraception(language: str) -> None:
    check = text("hsg", "sterilisation-check", language)
    fertility = text("hsg", "fertility", language)
    advice = {
        "en": ["Keep using another kind of birth control (contraception) every time you have "
               "sex. Do this until your doctor tells you that the test showed your tubes are "
               "fully blocked.", "do a pregnancy test. If it is positive, call us straight away"],
        "es": ["Siga usando otro anticonceptivo cada vez que tenga relaciones sexuales. Hágalo "
               "hasta que su médico le diga que la prueba mostró que sus trompas están bien "
               "cerradas.", "hágase una prueba de embarazo. Si sale positiva, llámenos"],
    }[language]  # fmt: skip
    for sentence in advice:
        assert sentence in check
        assert sentence not in fertility
    # No link about trying for a baby on a sterilisation check (the demo clinic's resources).
    assert "Fertility Network" not in check and "Fertility Network" in fertility


def test_the_three_miscarriage_sheets_differ_as_their_care_does() -> None:
    expectant, medical, surgical = (text("miscarriage", v) for v in MISCARRIAGE)
    # Waiting: when the bleeding may start.
    assert "The bleeding may start in a few days, or it may take a few weeks." in expectant
    # Tablets: what to expect within hours, expected side effects, and where they stop.
    assert "Cramps and bleeding usually start about 2 hours after the tablets." in medical
    assert "These are side effects of the tablets. They should not last more than a day." in medical
    assert "No bleeding at all 24 hours after the tablets." in medical
    # An operation: the anaesthetic's first 24 hours, bleeding for up to 2 weeks.
    assert "Do not drive." in surgical and "Have an adult with you." in surgical
    assert "You may bleed for up to 2 weeks." in surgical
    for sheet, own in ((expectant, "Waiting for the miscarriage"), (medical, "After the tablets"),
                       (surgical, "After your operation")):  # fmt: skip
        others = {"Waiting for the miscarriage", "After the tablets", "After your operation"}
        assert own in sheet
        assert not any(heading in sheet for heading in others - {own})
    assert "pregnancy test" not in surgical
    for sheet in (expectant, medical, surgical):  # the same practical care and support on each
        assert "Use pads, not tampons or menstrual cups, until your next period." in sheet
        assert "you can take paracetamol or ibuprofen" in sheet
        assert "Do not go swimming until the bleeding settles." in sheet
        assert "If you have thoughts of harming yourself, call 999 now." in sheet


@pytest.mark.parametrize(
    ("variant", "anchor", "label"),
    [("expectant", "the day you went home", "Date you went home"),
     ("medical", "the day you took the tablets", "Date you took the tablets")],
)  # fmt: skip
def test_the_pregnancy_test_is_dated_21_days_after_the_day_she_knows(
    variant: str, anchor: str, label: str
) -> None:
    sheet = text("miscarriage", variant)
    assert label in sheet
    assert f"count from {format_day(DAY, 'en_GB')}, {anchor}." in sheet
    row = f"Do a home pregnancy test 3 weeks after {anchor}. If it is positive, call us."
    test_day = format_day(DAY + timedelta(days=21), "en_GB")
    assert test_day == "Saturday 12 December 2026"
    # The timeline prints the date, then the row's words.
    assert f"{test_day} {row}" in sheet


@pytest.mark.parametrize(("procedure", "variant", "language", "paper", "large"), COMBINATIONS)
def test_the_help_box_is_on_one_page(
    procedure: str, variant: str, language: str, paper: str, large: bool
) -> None:
    sheet = pages(procedure, variant, language, paper, large)
    heading, call_us, last = {
        "en": ("When to get help", "Call us straight away", "Out of hours 01632 960 999"),
        "es": ("Cuándo pedir ayuda", "Llámenos enseguida", "Fuera de horario 01632 960 999"),
    }[language]  # fmt: skip
    where = [n for n, page in enumerate(sheet, 1) if heading in page]
    assert len(where) == 1, where
    request = parse_request(procedure=procedure, date=DAY.isoformat(), patient="Ada Lovelace",
                            variant=variant, language=None if language == "en" else language)  # fmt: skip
    document = build_document(request, load_config())
    urgent = (document.help_urgent.heading, *document.help_urgent.signs)
    clinic = (document.help_clinic.heading, *document.help_clinic.signs, last)
    page = sheet[where[0] - 1]
    box = page[page.index(heading) :]
    if call_us not in box:
        # Only a large-print box taller than a page is split, and only between its two levels.
        assert large, "the box was split on standard print"
        box_two = sheet[where[0]]
        box_two = box_two[box_two.index(call_us) :]
        assert all(_flat(t) in box_two for t in clinic)
        clinic = ()
    for line in (*urgent, *clinic):
        assert _flat(line) in box, (line, where)
    if not large:
        assert where == [1]  # standard print: on page 1


def test_the_footer_is_large_enough_to_read_the_phone_number() -> None:
    from discharge.pdf.styles import LARGE, NORMAL

    assert NORMAL.footer_size >= 9 and LARGE.footer_size >= 16


def test_unapproved_wording_says_draft_on_every_page() -> None:
    for sheet in (pages("hsg", "fertility"), pages("miscarriage", "medical", "es")):
        assert all("Draft: not yet approved by Riverside Demo Clinic" in page
                   or "Borrador: aún no aprobado por Riverside Demo Clinic" in page
                   for page in sheet)  # fmt: skip


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("variant", MISCARRIAGE)
def test_a_miscarriage_sheet_opens_with_kind_words_before_any_warning_sign(
    variant: str, language: str
) -> None:
    kind, box = {"en": ("We are so sorry for your loss", "When to get help"),
                 "es": ("Sentimos mucho su pérdida", "Cuándo pedir ayuda")}[language]  # fmt: skip
    first = pages("miscarriage", variant, language)[0]
    assert kind in first and box in first
    assert first.index(kind) < first.index(box)
    assert "pregnant again" not in first[: first.index(kind)]
