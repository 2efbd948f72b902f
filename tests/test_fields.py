"""One set of patient fields for every front end (discharge/fields.py).

The parity tests give every declared field a value through each front end (the command line's
options, a schedule's columns, the web form's controls) and check that each value reaches the
request; a field a front end lacks, or a field without a sample here, fails. The README's table
and the lists of columns in `batch --help`, the web page's hint and the README are checked
against the same declaration. The new fields (follow-up appointment, medicines) are followed
to the PDF's text from each front end.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, time
from pathlib import Path

import pytest
from markupsafe import escape
from pypdf import PdfReader

from discharge.batch import KNOWN_COLUMNS, REQUIRED_COLUMNS
from discharge.batch.schedule import Recent, ScheduleRecord, parse_row
from discharge.commands.email import email
from discharge.commands.generate import generate
from discharge.config import parse_config
from discharge.errors import FieldErrors
from discharge.fields import FIELDS_BY_NAME, PATIENT_FIELDS
from discharge.guidance.loading import load_procedure
from discharge.options import request_from_options
from discharge.request import DischargeRequest, Medicine, parse_request
from discharge.web import create_app
from discharge.web.form import check_form
from tests.helpers import pdf_text, run_discharge

README = Path(__file__).resolve().parent.parent / "README.md"
MEDICINES = (
    Medicine("Ibuprofen 400 mg", "3 times a day with food", "for 3 days"),
    Medicine("Paracetamol <b>1 g</b>", "up to 4 times a day", ""),
)
MEDICINE_LINES = ("Ibuprofen 400 mg | 3 times a day with food | for 3 days",
                  "Paracetamol <b>1 g</b> | up to 4 times a day")  # fmt: skip

# Each field: its value as typed (command line and schedule), and what the request must hold.
# Every value differs from the field's default, so a field a front end drops fails.
SAMPLES: dict[str, tuple[str | tuple[str, ...], object]] = {
    "procedure": ("miscarriage", "miscarriage"),
    "variant": ("medical", "medical"),
    "date": ("2026-12-07", date(2026, 12, 7)),
    "time": ("09:30", time(9, 30)),
    "patient": ("Łucja Wróbel-Şahin", "Łucja Wróbel-Şahin"),
    "dob": ("1985-12-31", date(1985, 12, 31)),
    "mrn": ("4410293", "4410293"),
    "clinician": ("Dr Amara Okafor", "Dr Amara Okafor"),
    "follow_up": ("2026-12-14 10:00", (date(2026, 12, 14), time(10, 0))),
    "follow_up_place": ("Early pregnancy unit, Ward 5", "Early pregnancy unit, Ward 5"),
    "medicines": (MEDICINE_LINES, MEDICINES),
    "notes": ("Rest today.", "Rest today."),
    "paper": ("letter", "letter"),
    "language": ("es", "es"),
    "large_print": ("yes", True),
}


def held(request: DischargeRequest, name: str) -> object:
    """What the request holds for one field (by parse_request's parameter name)."""
    return {
        "date": request.day,
        "time": request.at,
        "patient": request.patient.name,
        "dob": request.patient.dob,
        "mrn": request.patient.mrn,
        "follow_up": (request.follow_up, request.follow_up_at),
    }.get(name, getattr(request, name, None))


def assert_every_field(request: DischargeRequest) -> None:
    for name, (_, expected) in SAMPLES.items():
        assert held(request, name) == expected, name


def test_every_field_has_a_sample_here() -> None:
    assert set(SAMPLES) == set(FIELDS_BY_NAME)


def test_every_field_is_a_parameter_of_parse_request() -> None:
    from inspect import signature

    assert set(FIELDS_BY_NAME) <= set(signature(parse_request).parameters)


@pytest.mark.parametrize("command", [generate, email], ids=["generate", "email"])
def test_the_command_line_has_every_field(command) -> None:  # type: ignore[no-untyped-def]
    args: list[str] = []
    for field in PATIENT_FIELDS:
        value = SAMPLES[field.name][0]
        if field.flag:
            args.append(field.option)
        else:
            for one in value if isinstance(value, tuple) else (value,):
                args += [field.option, one]
    ctx = command.make_context(command.name, [*args, "--to", "a@example.org"]
                               if command is email else args)  # fmt: skip
    options = {p.name: p for p in command.params}
    for field in PATIENT_FIELDS:
        assert field.option in options[field.dest].opts, field.name
        assert options[field.dest].help == field.help, field.name
    patient = {field.dest: ctx.params[field.dest] for field in PATIENT_FIELDS}
    patient["notes_file"] = ctx.params["notes_file"]
    assert_every_field(request_from_options(**patient))


def test_generate_help_shows_every_option_and_required_ones_marked() -> None:
    result = run_discharge("generate", "--help")
    help_text = " ".join(result.stdout.split())
    for field in PATIENT_FIELDS:
        assert field.option in help_text, field.name
    assert "--follow-up 'YYYY-MM-DD HH:MM'" in help_text and "--medicine TEXT" in help_text
    for option in ("--procedure ID", "--date YYYY-MM-DD", "--patient NAME"):
        assert re.search(re.escape(option) + r" [^-]*\[required\]", help_text), option


def test_the_schedule_has_every_field() -> None:
    columns = {f.column for f in PATIENT_FIELDS}
    assert columns <= set(KNOWN_COLUMNS) and set(REQUIRED_COLUMNS) <= columns
    assert {f.column for f in PATIENT_FIELDS if f.required} == set(REQUIRED_COLUMNS)
    values = {}
    for field in PATIENT_FIELDS:
        value = SAMPLES[field.name][0]
        values[field.column] = "\n".join(value) if isinstance(value, tuple) else value
    row = parse_row(ScheduleRecord(2, values), templates=Recent())
    assert_every_field(row.request)


def form_values(**changes: str) -> dict[str, str]:
    values = {}
    for field in PATIENT_FIELDS:
        value = SAMPLES[field.name][0]
        values[field.name] = "\n".join(value) if isinstance(value, tuple) else value
    values["variant"] = "miscarriage:medical"  # the grouped list names the procedure too
    values["follow_up"] = "2026-12-14T10:00"  # as a browser's datetime-local sends it
    return {**values, **changes}


def test_the_web_form_has_every_field() -> None:
    config = parse_config({})
    request, problems = check_form(form_values(), config)
    assert not problems
    assert_every_field(request)


def test_the_web_form_draws_a_labelled_control_for_every_field() -> None:
    app = create_app(parse_config({}))
    html = app.test_client().get("/").get_data(as_text=True)
    for field in PATIENT_FIELDS:
        assert f'<label for="{field.name}">{field.label}</label>' in html, field.name
        assert re.search(
            rf'<(input|select|textarea)[^>]* id="{field.name}" name="{field.name}"', html
        ), field.name
        if field.hint:
            assert f'id="{field.name}-hint">{escape(field.hint)}</p>' in html, field.name


def test_the_form_lists_each_procedures_variants_with_their_meaning() -> None:
    app = create_app(parse_config({}))
    html = app.test_client().get("/").get_data(as_text=True)
    group = re.search(r'<optgroup label="After your miscarriage">(.*?)</optgroup>', html, re.S)
    assert group, "no group for the miscarriage's variants"
    options = re.findall(r'<option value="([^"]+)"\s*>([^<]+)</option>', group.group(1))
    procedure = load_procedure("miscarriage")
    assert [name for name, _ in options] == [f"miscarriage:{v.name}" for v in procedure.variants]
    assert len(options) == 3
    for (_, text), variant in zip(options, procedure.variants, strict=True):
        # "Medical management (tablets ...)": the label says the name already
        usual = " (usual)" if variant.name == procedure.default_variant else ""
        assert text == escape(variant.label + usual)
    assert '<option value="hsg:sterilisation-check" >Sterilisation check: HSG to check' in html


def test_a_variant_of_another_procedure_is_a_form_error() -> None:
    config = parse_config({})
    request, problems = check_form(form_values(procedure="hsg"), config)
    assert request is None and set(problems) == {"variant"}
    app = create_app(parse_config({}))
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    answer = client.post("/", data={**form_values(procedure="hsg"), "csrf_token": csrf})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert re.search(r'id="variant-problem">This variant is for another procedure', html)
    assert re.search(r'id="variant"[^>]*aria-describedby="variant-hint variant-problem"', html)
    assert '<a href="#variant">Variant: This variant is for another procedure' in html


# --- the column lists agree: batch --help, the web page's hint, the README -------------------


def listed_columns(text: str) -> set[str]:
    return set(re.findall(r"\b[a-z]+(?:_[a-z]+)*\b", text)) & (set(KNOWN_COLUMNS) | {"x"})


def readme_table() -> str:
    """The README's table of the patient's fields, as discharge/fields.py declares them."""
    lines = ["| form label | command line | schedule column | required |", "|---|---|---|---|"]
    for field in PATIENT_FIELDS:
        option = field.option + (f" {field.metavar}" if field.metavar else "")
        if field.flag:
            option = f"{field.option}` / `{field.option.replace('--', '--no-', 1)}"
        elif field.choices:
            option = f"{field.option} {'|'.join(field.choices)}".replace("|", "\\|")
        repeat = " (repeat it)" if field.repeat else ""
        lines.append(f"| {field.label} | `{option}`{repeat} | `{field.column}` | "
                     f"{'yes' if field.required else ''} |")  # fmt: skip
    return "\n".join(lines)


def test_readme_table_of_fields_is_the_declared_one() -> None:
    readme = README.read_text(encoding="utf-8")
    start, end = "<!-- fields table: tests/test_fields.py -->\n", "\n<!-- end of fields table -->"
    assert start in readme and end in readme
    table = readme[readme.index(start) + len(start) : readme.index(end)]
    assert table == readme_table(), "README's table differs; the declared one:\n" + readme_table()


def test_column_lists_agree_everywhere() -> None:
    help_text = " ".join(run_discharge("batch", "--help").stdout.split())
    columns = help_text[help_text.index("Columns:") : help_text.index("Each row's outcome")]
    assert listed_columns(columns) == set(KNOWN_COLUMNS)

    app = create_app(parse_config({}))
    html = app.test_client().get("/batch/").get_data(as_text=True)
    hint = re.search(r'id="schedule-hint">([^<]*)</p>', html).group(1)  # type: ignore[union-attr]
    assert listed_columns(hint) == set(KNOWN_COLUMNS)

    readme = README.read_text(encoding="utf-8")
    bullet = readme[readme.index("- **Columns**:") :].split("\n- ")[0]
    assert listed_columns(bullet) == set(KNOWN_COLUMNS)


def test_out_dir_is_marked_required_in_help() -> None:
    help_text = " ".join(run_discharge("batch", "--help").stdout.split())
    assert re.search(r"--out-dir DIR [^-]*\[required unless --check\]", help_text)


# --- the new fields: parsed, refused clearly, and printed from every front end -------------


def test_medicines_are_kept_exactly_as_written_and_refused_clearly() -> None:
    request = parse_request(procedure="hsg", date="2026-12-07", patient="A",
                            medicines="  Co-codamol 30/500 |  2 tablets | 5 days \n\n\nx")  # fmt: skip
    assert request.medicines == (
        Medicine("Co-codamol 30/500", "2 tablets", "5 days"),
        Medicine("x"),
    )
    for bad, words in [("a | b | c | d", "medicine 1 is not in the form"),
                       ("ok\n\n | no name", "medicine 3 is not in the form"),
                       ("y" * 301, "medicine 1 is 301 characters long"),
                       ("\n".join(["z"] * 31), "there are 31 medicines")]:  # fmt: skip
        with pytest.raises(FieldErrors) as caught:
            parse_request(procedure="hsg", date="2026-12-07", patient="A", medicines=bad)
        assert words in caught.value.problems["medicines"]
        assert "y" * 20 not in str(caught.value)


def test_follow_up_is_a_day_or_a_day_and_time_after_the_procedure() -> None:
    base = {"procedure": "hsg", "date": "2026-12-07", "patient": "A"}
    assert parse_request(**base, follow_up="2026-12-14").follow_up_at is None
    assert parse_request(**base, follow_up="2026-12-14T10:00").follow_up_at == time(10, 0)
    for changes, field, words in [
        ({"follow_up": "2026-12-01 10:00"}, "follow_up", "before the procedure date"),
        ({"follow_up": "14/12/2026"}, "follow_up", "YYYY-MM-DD HH:MM"),
        ({"follow_up": "2026-12-14 25:00"}, "follow_up", "YYYY-MM-DD HH:MM"),
        ({"follow_up_place": "Ward 5"}, "follow_up_place", "without its appointment"),
    ]:
        with pytest.raises(FieldErrors) as caught:
            parse_request(**base, **changes)
        assert words in caught.value.problems[field], changes


def assert_printed(text: str) -> None:
    """The follow-up appointment and medicines on a sheet (miscarriage, medical variant)."""
    text = " ".join(text.split())
    medical = load_procedure("miscarriage").variant("medical")
    assert medical is not None and medical.date_label
    assert f"{medical.date_label} Monday 7 December 2026" in text  # the variant's own date
    assert "Monday 14 December 2026 at 10:00 Your next appointment Early pregnancy unit" in text
    assert (
        "Your next appointment When Monday 14 December 2026 at 10:00 Where Early pregnancy" in text
    )
    assert "Medicine How to take it For how long" in text
    assert "Ibuprofen 400 mg 3 times a day with food for 3 days" in text
    assert "Paracetamol <b>1 g</b> up to 4 times a day" in text  # as written: never markup


PATIENT_ARGS = ["--procedure", "miscarriage", "--variant", "medical", "--date", "2026-12-07",
                "--patient", "Ana Ruiz", "--follow-up", "2026-12-14 10:00",
                "--follow-up-place", "Early pregnancy unit, Ward 5",
                "--medicine", MEDICINE_LINES[0], "--medicine", MEDICINE_LINES[1]]  # fmt: skip


def test_follow_up_and_medicines_reach_the_pdf_from_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "a.pdf"
    result = run_discharge("generate", *PATIENT_ARGS, "-o", out)
    assert result.code == 0, result.stderr
    assert_printed(pdf_text(out))


def test_follow_up_and_medicines_reach_the_pdf_from_a_schedule(tmp_path: Path) -> None:
    schedule = tmp_path / "day.csv"
    with schedule.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient_name", "procedure", "variant", "date", "mrn", "follow_up",
                         "follow_up_place", "medicines"])  # fmt: skip
        writer.writerow(["Ana Ruiz", "miscarriage", "medical", "07/12/2026", "A1",
                         "14/12/2026 10:00", "Early pregnancy unit, Ward 5",
                         "\n".join(MEDICINE_LINES)])  # fmt: skip
    result = run_discharge("batch", schedule, "--out-dir", tmp_path / "out", "--date-order", "dmy")
    assert result.code == 0, result.stderr
    (made,) = (tmp_path / "out").glob("*.pdf")
    assert_printed(pdf_text(made))


def test_follow_up_and_medicines_reach_the_pdf_from_the_web_form() -> None:
    app = create_app(parse_config({}))
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    values = form_values(language="", large_print="", paper="a4", date="2026-12-07", time="")
    answer = client.post("/", data={**values, "csrf_token": csrf})
    assert answer.status_code == 200, answer.get_data(as_text=True)[:2000]
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(answer.data)).pages)
    assert_printed(text)


def test_follow_up_is_an_appointment_in_the_calendar_file(tmp_path: Path) -> None:
    eml = tmp_path / "m.eml"
    result = run_discharge("email", *PATIENT_ARGS, "--eml", eml)
    assert result.code == 0, result.stderr
    from email import message_from_bytes

    message = message_from_bytes(eml.read_bytes())
    (ics,) = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    from icalendar import Calendar

    events = Calendar.from_ical(ics.get_payload(decode=True)).walk("VEVENT")
    (appointment,) = [e for e in events if str(e["summary"]) == "Your next appointment"]
    start = appointment.decoded("dtstart")
    assert start.isoformat() == "2026-12-14T10:00:00+00:00"
    assert str(start.tzinfo) == "Europe/London"
    assert str(appointment["location"]) == "Early pregnancy unit, Ward 5"
    assert str(appointment["transp"]) == "OPAQUE"
    (body,) = [p for p in message.walk() if p.get_content_type() == "text/plain"]
    plain = " ".join(body.get_payload(decode=True).decode("utf-8").split())
    assert "Your next appointment: Monday 14 December 2026 at 10:00, Early pregnancy unit" in plain
    # the PDF attached prints it too
    (pdf,) = [p for p in message.walk() if p.get_content_type() == "application/pdf"]
    assert_printed(
        " ".join(
            p.extract_text() for p in PdfReader(io.BytesIO(pdf.get_payload(decode=True))).pages
        )
    )


def test_the_form_says_which_line_of_medicines_to_fix() -> None:
    config = parse_config({})
    _, problems = check_form(
        form_values(medicines="Ibuprofen | 3 times a day\nA | b | c | d"), config
    )
    from discharge.web.form import for_nurse

    assert for_nurse(problems["medicines"]).startswith("Line 2: write it as medicine |")


def test_a_schedules_follow_up_date_is_read_as_its_other_dates() -> None:
    values = {"patient_name": "Ana Ruiz", "procedure": "hsg", "date": "07/12/2026",
              "follow_up": "04/01/2027 10:00", "follow_up_place": "Ward 5"}  # fmt: skip
    row = parse_row(ScheduleRecord(2, values), templates=Recent(), date_order="dmy")
    assert (row.request.follow_up, row.request.follow_up_at) == (date(2027, 1, 4), time(10, 0))
    with pytest.raises(FieldErrors) as caught:
        parse_row(ScheduleRecord(2, values), templates=Recent())  # no order: 04/01 is either
    assert (
        "follow-up appointment could be day/month or month/day"
        in caught.value.problems["follow_up"]
    )
    assert "04/01" not in str(caught.value)
