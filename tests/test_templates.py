"""The bundled templates: valid, sourced, and written in plain words."""

from __future__ import annotations

import re
from datetime import date

import pyphen
import pytest

from discharge.config import load_config
from discharge.document import build_document
from discharge.procedures import available_procedures, load_all
from discharge.request import parse_request

PROCEDURES = sorted(available_procedures())
_HYPHENATOR = pyphen.Pyphen(lang="en_US")


def test_the_documented_procedures_exist() -> None:
    assert {"hsg", "miscarriage"} <= set(PROCEDURES)


@pytest.mark.parametrize("procedure", load_all(), ids=lambda p: p.id)
def test_template_declares_id_version_sources(procedure) -> None:
    assert procedure.id == procedure.path.stem
    assert re.match(r"^\d+(\.\d+)*$", procedure.version)
    assert procedure.sources and all(len(s) > 10 for s in procedure.sources)
    assert procedure.milestones and procedure.help_signs


def _syllables(word: str) -> int:
    # pyphen's hyphenation points approximate syllables well enough for a reading-level check.
    return max(1, len(_HYPHENATOR.positions(word)) + 1)


def flesch_kincaid_grade(text: str) -> float:
    sentences = [s for s in re.split(r"[.!?:]+(?:\s|$)", text) if re.search(r"[A-Za-z]", s)]
    words = re.findall(r"[A-Za-z][A-Za-z'’-]*", text)
    syllables = sum(_syllables(w) for w in words)
    return 0.39 * len(words) / len(sentences) + 11.8 * syllables / len(words) - 15.59


def test_reading_level_check_tells_plain_from_dense() -> None:
    plain = "Use pads, not tampons. Rest today. Call us if you feel unwell."
    dense = ("Hysterosalpingography necessitates intrauterine instrumentation, "
             "consequently predisposing susceptible individuals to ascending pelvic infection.")  # fmt: skip
    assert flesch_kincaid_grade(plain) < 4 < 14 < flesch_kincaid_grade(dense)


@pytest.mark.parametrize("procedure", PROCEDURES)
def test_patient_text_reads_at_about_sixth_grade(procedure: str) -> None:
    request = parse_request(procedure=procedure, date=date(2026, 11, 21).isoformat(), patient="A")
    doc = build_document(request, load_config())
    parts = [doc.title, doc.help_intro, *doc.help_signs, *(m.label for m in doc.milestones)]
    for section in [*doc.sections]:
        parts.append(section.heading + ".")
        parts.extend(item for block in section.blocks for item in block.items)
    parts.extend(item for block in doc.intro for item in block.items)
    # Dates are names, not hard words: leave them out of the count.
    text = " ".join(parts)
    text = re.sub(r"(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday) \d+ \w+ \d{4}",
                  "that day", text)  # fmt: skip
    grade = flesch_kincaid_grade(text)
    assert grade <= 6.5, f"{procedure}: Flesch-Kincaid grade {grade:.1f}"
