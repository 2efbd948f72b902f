"""Issue 9: guidance a patient can act on safely.

Two levels of help with whom to call, honest timeline rows, variants that change the wording
and the date the timeline counts from, teach-back questions, and sources a patient can read.
Mostly the document model; a few checks run the real command and read the PDF's text.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from discharge.config import Config, load_config
from discharge.document import build_document
from discharge.errors import InputError
from discharge.request import parse_request
from tests.helpers import pdf_text, run_discharge
from tests.test_batch import batch, manifest, pdf_files, statuses, write_schedule


def _doc(procedure: str = "hsg", variant: str | None = None, config: Config | None = None, **kw):
    request = parse_request(
        procedure=procedure, date="2026-11-21", patient="Ada Lovelace", variant=variant, **kw
    )
    return build_document(request, config or load_config())


def _text(doc) -> str:
    """Everything the guidance says, as one string."""
    parts = [doc.title, *(i for b in doc.intro for i in b.items)]
    parts += [m.label for m in doc.milestones]
    parts += [s.heading for s in doc.sections]
    parts += [i for s in doc.sections for b in s.blocks for i in b.items]
    for level in (doc.help_urgent, doc.help_clinic):
        parts += [level.heading, level.intro, *level.signs]
    if doc.teach_back:
        parts += [doc.teach_back.heading, doc.teach_back.intro, *doc.teach_back.questions]
    return " ".join(parts)


def _when(doc, key: str) -> str:
    return next(m.when for m in doc.milestones if m.key == key)


# --- the HSG flushing row and wording fixes ----------------------------------------------


def test_flushing_row_runs_from_the_test_to_about_six_months_and_says_not_proven() -> None:
    doc = _doc("hsg")
    flushing = next(m for m in doc.milestones if m.key == "flushing")
    assert flushing.when == "Saturday 21 November 2026 to Friday 21 May 2027"
    assert "3 to 6 months after the test" in flushing.label
    assert "not proven" in flushing.label


def test_hsg_says_to_arrange_a_driver_and_names_ibuprofen_not_nsaids() -> None:
    text = _text(_doc("hsg"))
    assert "Have someone drive you home after the test." in text
    assert "ibuprofen" in text
    assert "NSAID" not in text and "Anti-inflammatory" not in text


# --- two levels of help, with whom to call -------------------------------------------------


@pytest.mark.parametrize("procedure", ["hsg", "miscarriage"])
def test_help_has_two_levels_each_saying_whom_to_call(procedure: str) -> None:
    doc = _doc(procedure)
    clinic = doc.letterhead
    urgent, call_us = doc.help_urgent, doc.help_clinic
    # Each level leads with what to do, then lists its signs.
    assert urgent.heading.startswith(f"Call {clinic.emergency_number} now")
    assert call_us.heading.startswith("Call us straight away")
    assert urgent.signs and call_us.signs
    assert [(c.who, c.number) for c in urgent.contacts] == [("Emergency", clinic.emergency_number)]
    assert [(c.who, c.number) for c in call_us.contacts] == [
        (clinic.name, clinic.phone),
        ("Out of hours", clinic.after_hours_phone),
    ]
    # No phone number is written into the template text: the model carries them.
    assert clinic.phone not in " ".join((*urgent.signs, *call_us.signs))


def test_without_an_out_of_hours_number_the_clinic_level_has_one_number() -> None:
    config = load_config()
    config = replace(config, clinic=replace(config.clinic, after_hours_phone=""))
    doc = _doc("hsg", config=config)
    assert [c.number for c in doc.help_clinic.contacts] == [config.clinic.phone]
    assert "Out of hours" not in " ".join(c.who for c in doc.help_clinic.contacts)


def test_hsg_signs_sit_at_the_right_level() -> None:
    doc = _doc("hsg")
    urgent, call_us = " ".join(doc.help_urgent.signs), " ".join(doc.help_clinic.signs)
    assert "Very heavy bleeding" in urgent and "Very bad pain" in urgent
    assert "38 °C (100.4 °F)" in call_us and "smells bad" in call_us
    assert "vomiting" in call_us
    # "Stop having sex" no longer opens the box: the heading says to call first.
    assert doc.help_clinic.intro == "Do not have sex until you have talked to us."


def test_miscarriage_has_urgent_warning_signs_from_named_sources() -> None:
    doc = _doc("miscarriage")
    urgent = " ".join(doc.help_urgent.signs)
    assert "soak through a pad every 30 to 60 minutes" in urgent and "large clots" in urgent
    assert "Very bad pain" in urgent and "dizzy or faint" in urgent
    assert "emergency department" in doc.help_urgent.heading
    call_us = " ".join(doc.help_clinic.signs)
    assert "38 °C (100.4 °F)" in call_us
    assert "does not get better with pain relief" in call_us
    assert "smells bad" in call_us
    assert "Tommy's: I think I'm having a miscarriage" in doc.sources
    assert "North West Anglia NHS Foundation Trust: Miscarriage aftercare" in doc.sources


# --- teach-back ----------------------------------------------------------------------------


@pytest.mark.parametrize("procedure", ["hsg", "miscarriage"])
def test_teach_back_asks_for_the_warning_signs(procedure: str) -> None:
    tb = _doc(procedure).teach_back
    assert tb is not None and tb.heading == "Check you understand"
    assert "Tick each box" in tb.intro
    assert 3 <= len(tb.questions) <= 6
    assert "Which signs mean you call 999 now?" in tb.questions
    assert "Which signs of an infection mean you call us?" in tb.questions
    # No question gives its own answer away ("pads or tampons?").
    assert not any(" or tampons" in q for q in tb.questions)


# --- variants ------------------------------------------------------------------------------


def test_hsg_sterilisation_check_leaves_out_trying_for_a_baby() -> None:
    fertility, check = _doc("hsg"), _doc("hsg", "sterilisation-check")
    assert fertility.variant == "fertility" and check.variant == "sterilisation-check"
    assert "flushing" in [m.key for m in fertility.milestones]
    assert "flushing" not in [m.key for m in check.milestones]
    assert "Sex and trying for a baby" in [s.heading for s in fertility.sections]
    text = _text(check)
    assert "trying for a baby" not in text and "ovulate" not in text
    assert "fully blocked after your sterilisation" in text
    assert check.footer.template == "hsg v1.3 (sterilisation-check)"


@pytest.mark.parametrize(
    ("variant", "label", "counted_from"),
    [
        (None, "Date of your operation", "the day of your operation"),
        ("surgical", "Date of your operation", "the day of your operation"),
        ("expectant", "Date you went home", "the day you went home"),
        ("medical", "Date you took the tablets", "the day you took the tablets"),
    ],
)
def test_miscarriage_variant_says_which_date_the_timeline_counts_from(
    variant: str | None, label: str, counted_from: str
) -> None:
    doc = _doc("miscarriage", variant)
    assert (label, "Saturday 21 November 2026") in doc.patient_rows
    assert doc.date_label == label
    # The first section (after the kind words of the intro) names the day the dates count from.
    first = " ".join(i for b in doc.sections[0].blocks for i in b.items)
    assert f"count from Saturday 21 November 2026, {counted_from}." in first
    assert _when(doc, "contraception") == "Thursday 26 November 2026"


def test_default_variant_keeps_the_hsg_date_label() -> None:
    doc = _doc("hsg")
    assert ("Date", "Saturday 21 November 2026") in doc.patient_rows


def test_variant_names_are_case_insensitive() -> None:
    assert _doc("miscarriage", "  Medical ").variant == "medical"


def test_unknown_variant_names_the_available_ones() -> None:
    with pytest.raises(InputError, match=r"unknown variant 'waiting' for procedure "
                       r"'miscarriage': expected one of: surgical, expectant, medical"):  # fmt: skip
        _doc("miscarriage", "waiting")


# --- sources as a patient reads them --------------------------------------------------------


def test_sources_are_printed_in_words_a_patient_understands() -> None:
    for procedure in ("hsg", "miscarriage"):
        line = _doc(procedure).sources
        assert "not named" not in line and "(article" not in line
        assert "http" not in line
    assert _doc("hsg").sources == (
        "This guidance is based on: Cleveland Clinic: Hysterosalpingogram (HSG); "
        "How Long After an HSG Can I Have Intercourse?; "  # no named publisher: its title only
        "ACOG: Hysterosalpingography (HSG); ASRM: Hysterosalpingogram (HSG) fact sheet; "
        "NHS: Female sterilisation (Your contraception guide); "
        "The Dudley Group NHS Foundation Trust: Hysterosalpingogram; "
        "NICE: Hysteroscopic sterilisation (IPG315)."
    )


# --- the real commands ---------------------------------------------------------------------


PATIENT = ("--patient", "Zoë Nguyễn", "--date", "2026-11-21")


def test_generate_with_a_variant_prints_its_wording(tmp_path: Path) -> None:
    out = tmp_path / "m.pdf"
    result = run_discharge("generate", "--procedure", "miscarriage", "--variant", "medical",
                           *PATIENT, "-o", out)  # fmt: skip
    assert result.code == 0, result.stderr
    text = pdf_text(out)
    for expected in [
        "Date you took the tablets", "the day you took the tablets",
        "Call 999 now, or go straight to the emergency department",
        "soak through a pad every 30 to 60 minutes", "You feel dizzy or faint.",
        "38 °C (100.4 °F)", "Tommy's: I think I'm having a miscarriage",
        "miscarriage v2.0 (medical)",
    ]:  # fmt: skip
        assert expected in text, expected
    assert "publisher not named" not in text


def test_generate_hsg_pdf_has_the_new_rows_and_no_nsaids(tmp_path: Path) -> None:
    out = tmp_path / "h.pdf"
    result = run_discharge("generate", "--procedure", "hsg", *PATIENT, "-o", out)
    assert result.code == 0, result.stderr
    text = pdf_text(out)
    assert "Friday 21 May 2027" in text and "not proven" in text
    assert "Have someone drive you home" in text and "ibuprofen" in text
    assert "NSAID" not in text and "(article, publisher not named)" not in text


def test_unknown_variant_exits_2_naming_the_variants_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "x.pdf"
    result = run_discharge("generate", "--procedure", "hsg", "--variant", "ivf", *PATIENT,
                           "-o", out)  # fmt: skip
    assert result.code == 2
    assert result.stderr.strip() == (
        "discharge: error: unknown variant 'ivf' for procedure 'hsg': "
        "expected one of: fertility, sterilisation-check"
    )
    assert not out.exists()


def test_email_takes_the_variant_option_too() -> None:
    result = run_discharge("email", "--help")
    assert result.code == 0 and "--variant NAME" in result.stdout


def test_procedures_lists_the_variants() -> None:
    result = run_discharge("procedures")
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("--variant sterilisation-check" in line for line in lines)
    assert any("--variant surgical" in line and "(default)" in line for line in lines)
    assert any("--variant expectant" in line for line in lines)


def test_batch_reads_a_variant_column(tmp_path: Path) -> None:
    schedule = write_schedule(
        tmp_path / "s.csv",
        [
            "patient_name,procedure,date,variant",
            "Ann Example,miscarriage,2026-11-21,expectant",
            "Bea Example,hsg,2026-11-21,",
            "Cy Example,hsg,2026-11-21,ivf",
        ],
    )
    out = tmp_path / "out"
    run = batch(schedule, "--out-dir", out, "--jobs", "1")
    assert run.code == 1
    assert statuses(out) == {2: "ok", 3: "ok", 4: "error"}
    failed = next(e for e in manifest(out) if e["row"] == "4")
    assert "unknown variant 'ivf'" in str(failed)
    assert "Date you went home" in pdf_text(pdf_files(out)[2])
    assert "Friday 21 May 2027" in pdf_text(pdf_files(out)[3])
