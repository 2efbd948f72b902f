"""The fields of one patient's discharge, declared once for every front end.

Each ``PatientField`` says what the field is called (``name``: the parameter of
``parse_request``, which parses and checks every field, and the web form's control), the words
a person reads (the form's ``label`` and ``hint``, the command line's ``help``), and where it
appears: the command line's ``option``, the schedule's ``column``, the form's ``control``.

``options.py`` makes the command line's options from this list, ``batch/schedule.py`` its
columns, ``web/form.py`` its controls, and ``tests/test_fields.py`` fails when a front end
lacks a field or the README's table disagrees with it. To add a field: add it to
``parse_request`` and ``DischargeRequest``, then here; the tests say what else is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Control = Literal["select", "variant", "date", "time", "datetime", "text", "textarea", "checkbox"]


# eq=False, repr=False: nothing compares or prints them, and a command starts faster without
# the generated methods.
@dataclass(frozen=True, eq=False, repr=False)
class PatientField:
    name: str  # parse_request's parameter; the form control's name and id
    label: str  # the form's label: exact text, tests and screen readers find the field by it
    help: str  # the command line's --help text, and the README table's meaning
    option: str  # the command line's option ("--date")
    column: str  # the schedule's column ("patient_name")
    control: Control = "text"  # the form's control
    metavar: str = ""  # the option's value in --help ("YYYY-MM-DD"); "" for a flag
    hint: str = ""  # the form's hint under the label
    required: bool = False  # on every front end
    choices: tuple[str, ...] = ()  # the only values the option accepts (any case)
    repeat: bool = False  # the option may be given again; the column and the form: one a line
    flag: bool = False  # --large-print/--no-large-print; the column is yes/no

    @property
    def dest(self) -> str:
        """The command's parameter name (click's), for the few that differ from ``name``."""
        return _DEST.get(self.name, self.name)


# Where the command line's parameter differs from parse_request's (click names it after the
# option, and `date`/`time` would shadow the modules in the commands).
_DEST = {"date": "day", "time": "at"}

PATIENT_FIELDS: tuple[PatientField, ...] = (
    PatientField("procedure", "Procedure", "Procedure id, e.g. hsg or miscarriage.",
                 "--procedure", "procedure", "select", "ID", required=True),
    PatientField("variant", "Variant",
                 "The template's variant, e.g. medical (see: discharge procedures).",
                 "--variant", "variant", "variant", "NAME",
                 hint="How it was done or managed: it decides which date the timeline counts "
                      "from. Leave it for the procedure's usual one."),
    PatientField("date", "Date of procedure", "Date of the procedure.",
                 "--date", "date", "date", "YYYY-MM-DD", required=True),
    PatientField("time", "Time of procedure", "Time of the procedure (24-hour clock).",
                 "--time", "time", "time", "HH:MM",
                 hint="Optional. 24-hour clock, for the hour-by-hour advice."),
    PatientField("patient", "Patient name", "Patient's full name.",
                 "--patient", "patient_name", "text", "NAME", required=True,
                 hint="Full name, as it should be printed."),
    PatientField("dob", "Date of birth", "Patient's date of birth.",
                 "--dob", "dob", "date", "YYYY-MM-DD", hint="Optional."),
    PatientField("mrn", "Hospital number", "Hospital number (MRN).",
                 "--mrn", "mrn", "text", "ID", hint="Optional."),
    PatientField("clinician", "Clinician", "Clinician responsible for the discharge.",
                 "--clinician", "clinician", "text", "NAME", hint="Optional."),
    PatientField("follow_up", "Follow-up appointment",
                 "The next appointment, printed on the timeline and added to the calendar file.",
                 "--follow-up", "follow_up", "datetime", "'YYYY-MM-DD HH:MM'",
                 hint="Optional. The patient's next appointment, on the timeline and in the "
                      "calendar file."),
    PatientField("follow_up_place", "Where", "Where the follow-up appointment is.",
                 "--follow-up-place", "follow_up_place", "text", "TEXT",
                 hint="Optional. Where the follow-up appointment is, as the patient should read "
                      "it."),
    PatientField("medicines", "Medicines",
                 "A medicine to take at home, 'medicine | how to take it | for how long', "
                 "printed as written (repeat for each).",
                 "--medicine", "medicines", "textarea", "TEXT", repeat=True,
                 hint="Optional. One a line: medicine | how to take it | for how long. "
                      "Printed exactly as typed."),
    PatientField("notes", "Notes", "Clinician's notes, printed as written.",
                 "--notes", "notes", "textarea", "TEXT",
                 hint="Optional. Printed exactly as typed, line breaks kept."),
    PatientField("paper", "Paper size", "Paper size. Default: the clinic's setting.",
                 "--paper", "paper", "select", choices=("a4", "letter")),
    PatientField("language", "Language",
                 "Language of the instructions, e.g. es (see: discharge procedures). "
                 "Default: the clinic's.",
                 "--language", "language", "select", "CODE",
                 hint="The language the patient reads."),
    PatientField("large_print", "Large print",
                 "Large print for low vision (body text 18 pt or more). "
                 "Default: the clinic's setting.",
                 "--large-print", "large_print", "checkbox", flag=True,
                 hint="For low vision: text 18 pt or larger."),
)  # fmt: skip

FIELDS_BY_NAME = {field.name: field for field in PATIENT_FIELDS}


def schedule_columns() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The schedule's required and optional patient columns, in the order above."""
    required = tuple(f.column for f in PATIENT_FIELDS if f.required)
    optional = tuple(f.column for f in PATIENT_FIELDS if not f.required)
    return required, optional
