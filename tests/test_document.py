"""The document model: what the patient will read, checked without drawing a PDF."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from discharge.config import Config, load_config
from discharge.document import (
    Letterhead,
    Milestone,
    build_document,
    group_timeline,
    parse_blocks,
)
from discharge.errors import InputError, TemplateError, UnknownProcedureError
from discharge.request import clean_text, parse_request


def _doc(procedure: str = "hsg", day: str = "2026-11-21", config: Config | None = None, **kw):
    request = parse_request(procedure=procedure, date=day, patient="Ada Lovelace", **kw)
    return build_document(request, config or load_config())


def _when(doc, key: str) -> str:
    # A time is joined to its date with no-break spaces (so it never wraps alone): read as one.
    return next(m.when for m in doc.milestones if m.key == key).replace("\u00a0", " ")


def test_hsg_timeline_has_real_dates_with_weekdays() -> None:
    doc = _doc(day="2026-11-21")  # a Saturday
    assert _when(doc, "cramping") == "Saturday 21 November 2026"
    assert _when(doc, "spotting") == "Saturday 21 November 2026 to Monday 23 November 2026"
    assert _when(doc, "sex") == "Sunday 22 November 2026 to Monday 23 November 2026"
    # The possible "flushing" effect runs from the test to about 6 months after (issue 9).
    assert _when(doc, "flushing") == "Saturday 21 November 2026 to Friday 21 May 2027"


def test_hsg_hour_milestones_use_the_clock_when_a_time_is_given() -> None:
    # The clocks go forward overnight: 24 elapsed hours after 10:00 is 11:00 on the Sunday.
    doc = _doc(day="2026-03-28", time="10:00")
    assert _when(doc, "sex") == "Sunday 29 March 2026 at 11:00 to Monday 30 March 2026 at 11:00"


def test_month_milestones_clamp_at_month_end_and_know_leap_years() -> None:
    assert _when(_doc(day="2026-11-30"), "flushing") == (
        "Monday 30 November 2026 to Sunday 30 May 2027"
    )
    assert _when(_doc(day="2027-08-31"), "flushing").endswith("Tuesday 29 February 2028")
    assert _when(_doc(day="2026-08-31"), "flushing").endswith("Sunday 28 February 2027")


def test_miscarriage_milestones() -> None:
    doc = _doc("miscarriage", day="2026-08-31")
    assert _when(doc, "contraception") == "Saturday 5 September 2026"
    assert _when(doc, "sex") == "Monday 14 September 2026"
    assert _when(doc, "period") == "Monday 28 September 2026 to Monday 12 October 2026"
    text = " ".join(m.label for m in doc.milestones)
    assert "pregnant" in text
    # The contraception date is said plainly in the guidance, not only in the table.
    body = " ".join(i for s in doc.sections for b in s.blocks for i in b.items)
    assert "Saturday 5 September 2026" in body


def test_same_day_milestones_share_one_timeline_row() -> None:
    doc = _doc()
    whens = [row.when for row in doc.timeline]
    assert len(whens) == len(set(whens))
    first = doc.timeline[0]
    assert first.when == ("Saturday 21 November 2026",) and len(first.labels) == 2


def test_a_range_prints_its_start_and_end_on_lines_of_their_own() -> None:
    doc = _doc(time="10:30")
    sex = next(row for row in doc.timeline if any("have sex" in label for label in row.labels))
    assert sex.when == (
        "Sunday 22 November 2026\u00a0at\u00a010:30",
        "to Monday 23 November 2026\u00a0at\u00a010:30",
    )


def test_us_locale_dates_and_temperatures() -> None:
    config = load_config()
    us = replace(config, clinic=replace(config.clinic, locale="en_US", timezone="America/Chicago"))
    doc = _doc(config=us)
    assert _when(doc, "flushing").endswith("Friday, May 21, 2027")
    assert any("100.4 °F (38 °C)" in sign for sign in doc.help_clinic.signs)
    uk = _doc()
    assert any("38 °C (100.4 °F)" in sign for sign in uk.help_clinic.signs)


def test_help_box_has_the_clinic_numbers() -> None:
    doc = _doc()
    clinic = doc.letterhead
    numbers = [c.number for c in (*doc.help_urgent.contacts, *doc.help_clinic.contacts)]
    assert clinic.phone in numbers and clinic.after_hours_phone in numbers
    assert any(clinic.emergency_number in n for n in numbers)
    assert len(doc.help_urgent.signs) + len(doc.help_clinic.signs) >= 5


def test_the_document_carries_the_letterhead_not_the_clinic_settings(tmp_path: Path) -> None:
    logo = tmp_path / "logo.png"
    clinic = replace(load_config().clinic, name="Northgate Unit", address=("Ward 4", "Leeds"),
                     after_hours_phone="", logo=logo, templates_dir=tmp_path)  # fmt: skip
    doc = _doc(config=Config(clinic=clinic))
    assert doc.letterhead == Letterhead(
        "Northgate Unit", ("Ward 4", "Leeds"), clinic.phone, "", clinic.emergency_number, logo
    )
    assert not hasattr(doc, "clinic")  # the renderers see what is printed, not the settings
    assert doc.sheet_title == "After your HSG \u2013 Northgate Unit"


def test_footer_identifies_the_patient() -> None:
    doc = _doc(dob="1990-02-01", mrn="RX-1")
    assert doc.patient_name == "Ada Lovelace"
    assert doc.footer.ids == "Born 1 Feb 1990  ·  Hospital number RX-1"
    assert doc.footer.template == "hsg v1.3 (fertility)"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("date", "2026-02-30", "not a real calendar date"),
        ("date", "21/11/2026", "not a date in the form YYYY-MM-DD"),
        ("time", "25:00", "not a time of day"),
        ("time", "noon", "not a time of day"),
        ("dob", "2030-01-01", "after the procedure date"),
        ("patient", "   ", "patient name is empty"),
        ("paper", "a5", "expected a4 or letter"),
        ("patient", "x" * 501, "patient name is 501 characters long"),
        ("mrn", "9" * 65, "at most 64"),
        ("clinician", "Dr " + "y" * 300, "at most 300"),
    ],
)
def test_bad_values_are_named(field: str, value: str, message: str) -> None:
    fields = {"procedure": "hsg", "date": "2026-11-21", "patient": "Ada", field: value}
    with pytest.raises(InputError, match=message):
        parse_request(**fields)


def test_unknown_procedure_suggests_the_nearest() -> None:
    with pytest.raises(UnknownProcedureError, match="did you mean 'miscarriage'"):
        _doc("miscariage")


def test_clean_text_normalises_and_drops_control_characters() -> None:
    assert clean_text("Zoe\u0308\x00  Nguy\u1ec5n\n") == "Zoë Nguyễn"
    assert clean_text("line 1\r\nline\x07 2\n", multiline=True) == "line 1\nline 2"


def _custom(tmp_path: Path, body: str) -> Config:
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    source = (Path(__file__).parents[1] / "templates" / "hsg.toml").read_text()
    (folder / "hsg.toml").write_text(source.replace('heading = "Your results"', body))
    config = load_config()
    return replace(config, clinic=replace(config.clinic, templates_dir=folder))


def test_template_typo_names_file_and_field(tmp_path: Path) -> None:
    config = _custom(tmp_path, 'heading = "Results for {{ m.sexx.start }}"')
    with pytest.raises(TemplateError, match=r"hsg.toml, field sections\[5\].heading"):
        _doc(config=config)


def test_templates_are_sandboxed(tmp_path: Path) -> None:
    config = _custom(tmp_path, 'heading = "{{ clinic.__class__.__mro__ }}"')
    with pytest.raises(TemplateError, match="hsg.toml"):
        _doc(config=config)


def test_patient_values_are_never_template_code() -> None:
    doc = _doc(notes="{{ 7*7 }} <b>x</b>", clinician="{{ clinic.phone }}")
    assert doc.notes == "{{ 7*7 }} <b>x</b>"
    assert ("Clinician", "{{ clinic.phone }}") in doc.patient_rows


# --- the pieces build_document is made of -------------------------------------------------


def test_parse_blocks_paragraphs_and_bullets() -> None:
    text = (
        "First line\nsame paragraph.\n\nSecond paragraph.\n- one\n- two\n  wrapped\n* three\nAfter."
    )
    blocks = parse_blocks(text)
    assert [b.kind for b in blocks] == ["para", "para", "bullets", "para"]
    assert blocks[0].items == ("First line same paragraph.",)
    assert blocks[2].items == ("one", "two wrapped", "three")
    assert blocks[3].items == ("After.",)


def test_parse_blocks_of_empty_text_is_empty() -> None:
    assert parse_blocks("") == () and parse_blocks("\n \n") == ()


def _milestone(key: str, start: date, end: date | None = None) -> Milestone:
    lines = (start.isoformat(),) + ((f"to {end.isoformat()}",) if end else ())
    return Milestone(key, start, end, " ".join(lines), f"label {key}", lines)


def test_group_timeline_joins_same_dates_in_template_order() -> None:
    a, b = date(2026, 11, 21), date(2026, 11, 23)
    rows = group_timeline((
        _milestone("x", a), _milestone("range", a, b), _milestone("y", a), _milestone("z", b),
    ))  # fmt: skip
    assert [row.when for row in rows] == [
        ("2026-11-21",), ("2026-11-21", "to 2026-11-23"), ("2026-11-23",),
    ]  # fmt: skip
    assert rows[0].labels == ("label x", "label y")
    assert rows[1].labels == ("label range",)
