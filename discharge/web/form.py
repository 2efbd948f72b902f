"""``/``: one patient's form. The answer to its POST is the PDF itself, or the form again.

Validation is the command line's own (``parse_request``, the procedure's template, the fonts):
the page only places each problem beside its field, in the nurse's words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request

from discharge.config import Config
from discharge.errors import DischargeError, FieldErrors, InputError
from discharge.fields import PATIENT_FIELDS
from discharge.guidance.loading import available_procedures, available_templates, load_procedure
from discharge.i18n import language_of
from discharge.request import parse_request
from discharge.web.security import StaleForm

bp = Blueprint("form", __name__)


# Every patient field, with its label, hint and control, as discharge/fields.py declares it
# for every front end.
FIELDS = PATIENT_FIELDS
# "Email to patient" follows them when the clinic has email settings (see emailing.py).
_LABELS = {**{field.name: field.label for field in FIELDS}, "email": "Email to patient"}


def procedure_choices(config: Config) -> list[tuple[str, str]]:
    """(id, title) of every procedure, by title; a broken template is left out of the list."""
    choices = []
    for procedure_id in available_procedures(config.templates_dir):
        try:
            choices.append((procedure_id, load_procedure(procedure_id, config.templates_dir).title))
        except DischargeError:
            continue
    return sorted(choices, key=lambda choice: choice[1].lower())


@dataclass(frozen=True)
class VariantGroup:
    """One procedure's variants for the form's grouped list: (value, text) each."""

    title: str  # the procedure's title, as in the Procedure list
    options: tuple[tuple[str, str], ...]  # value "procedure:variant"; text "Medical: ..."


def variant_choices(config: Config) -> list[VariantGroup]:
    """A group per procedure with variants, each variant with its one-line meaning.

    The value names the procedure too, so the form can say when the variant chosen belongs to
    another procedure than the one chosen (the page has no script to hide the others).
    """
    groups = []
    for procedure_id, title in procedure_choices(config):
        procedure = load_procedure(procedure_id, config.templates_dir)
        if not procedure.variants:
            continue
        options = []
        for spec in procedure.variants:
            usual = " (usual)" if spec.name == procedure.default_variant else ""
            name = spec.name.replace("-", " ").capitalize()
            # "Medical management (...)" says its name already; "HSG to look for..." does not.
            said = spec.label.lower().startswith(name.lower())
            text = f"{spec.label}{usual}" if said else f"{name}: {spec.label}{usual}"
            options.append((f"{procedure_id}:{spec.name}", text))
        groups.append(VariantGroup(title, tuple(options)))
    return groups


def language_choices(config: Config) -> list[tuple[str, str]]:
    """("", the clinic's language), then every language a template is translated into."""
    from babel import Locale

    def name(code: str) -> str:
        try:
            locale = Locale.parse(code)
        except ValueError:
            return code
        english = str(locale.get_display_name("en") or code)
        own = str(locale.get_display_name(code) or "")
        return f"{english} ({own})" if own and own.lower() != english.lower() else english

    clinic = language_of(config.clinic.locale)
    translated = sorted(
        {lang for (_, lang) in available_templates(config.templates_dir) if lang and lang != clinic}
    )
    return [("", name(clinic)), *((code, name(code)) for code in translated)]


def today(config: Config) -> str:
    return datetime.now(config.clinic.tz).date().isoformat()


# The checks are the command line's; these say the same thing in a nurse's words, beside the
# field (a CLI message names the option and the format a script must use). Anything not listed
# here is shown as the command line says it.
_NURSE_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), words)
    for pattern, words in (
        (r"^patient name is empty", "Enter the patient's full name."),
        (r"^date '\s*' is not a date", "Enter the date of the procedure."),
        (r"is not a date in the form", "Enter the whole date: day, month and year."),
        (r"is not a real calendar date", "This date does not exist. Check the day and month."),
        (r"is after the procedure date", "This is after the date of the procedure. Check both."),
        (r"is not a time of day", "Enter a time such as 09:30 or 14:00, or leave it empty."),
        (r"^medicine (\d+) is (\d+) characters long \(expected at most (\d+)\)",
         r"Line \1 is \2 characters long. A medicine's line can be at most \3."),
        (r"^medicine (\d+) is not in the form",
         r"Line \1: write it as medicine | how to take it | for how long (the name first, "
         r"at most two | marks)."),
        (r"is (\d+) characters long \(expected at most (\d+)\)",
         r"This is \1 characters long. It can be at most \2."),
        (r"is not a paper size", "Choose A4 or Letter."),
        (r"^unknown procedure", "Choose a procedure from the list."),
        (r"^unknown variant|has no variants", "Choose a variant from the list."),
        (r"^variant of another procedure", "This variant is for another procedure. Choose one "
         "listed under the procedure chosen, or leave it for the usual one."),
        (r"appointment is before the procedure date",
         "This is before the date of the procedure. Check both."),
        (r"^follow-up appointment is not a date",
         "Enter the date (and time) of the appointment, or leave it empty."),
        (r"given without its appointment",
         "Enter the date of the follow-up appointment too, or leave this empty."),
        (r"^choose the procedure", "Choose the procedure."),
        (r"^cannot print the character '(.+)' \(U\+[0-9A-F]+ [^)]*\): no bundled font",
         r"The character “\1” cannot be printed: no font here has it. Type it another way."),
        (r"^cannot print the character '(.+)' \(U\+[0-9A-F]+ [^)]*\): right-to-left",
         r"“\1” is written right to left, which these PDFs cannot print yet."),
    )
)  # fmt: skip


def for_nurse(message: str) -> str:
    for pattern, words in _NURSE_WORDS:
        match = pattern.search(message)
        if match:
            return match.expand(words)
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def check_form(values: dict[str, str], config: Config) -> tuple[Any, dict[str, str]]:
    """The request, or every problem keyed by field: the CLI's checks, all at once."""
    from discharge.pdf.fonts import segments

    problems: dict[str, str] = {}
    request_ = None
    fields = {field.name: values[field.name] for field in FIELDS}
    # A checkbox sends nothing when cleared: that is "no", not the clinic's default.
    fields["large_print"] = "yes" if values["large_print"] else "no"
    # The variant list's values are "procedure:variant": the variant must be the procedure's.
    for_procedure, _, fields["variant"] = values["variant"].rpartition(":")
    chosen = values["procedure"].strip().lower()
    if for_procedure and chosen and for_procedure != chosen:
        problems["variant"] = "variant of another procedure than the one chosen"
    try:
        request_ = parse_request(**fields)
    except FieldErrors as exc:
        problems.update(exc.problems)
    if not values["procedure"].strip():
        problems["procedure"] = "choose the procedure"
    else:
        try:
            procedure = load_procedure(values["procedure"], config.templates_dir)
        except DischargeError as exc:
            problems["procedure"] = str(exc)
        else:
            if "variant" not in problems:
                try:
                    procedure.variant(fields["variant"])
                except DischargeError as exc:
                    problems["variant"] = str(exc)
            if request_ is not None and request_.language:
                try:
                    load_procedure(
                        request_.procedure,
                        config.templates_dir,
                        request_.language,
                        default_language=language_of(config.clinic.locale),
                    )
                except DischargeError as exc:
                    problems["language"] = str(exc)
    for name in ("patient", "mrn", "clinician", "follow_up_place", "medicines", "notes"):
        if name not in problems:
            try:  # the fonts' own check: a character none of them can print
                segments(values[name])
            except DischargeError as exc:
                problems[name] = str(exc)
    return (None if problems else request_), problems


def show_form(
    values: dict[str, str],
    problems: dict[str, str],
    status: int = 200,
    *,
    sent: str = "",
    ask: str = "",
) -> Any:
    config: Config = current_app.config["CLINIC"]
    emailer = current_app.extensions.get("discharge.email")
    if emailer is not None and not values.get("send_id"):
        values = {**values, "send_id": emailer.new_send_id()}
    printing = current_app.extensions.get("discharge.print")
    return (
        render_template(
            "form.html",
            fields=FIELDS,
            values=values,
            problems={
                name: for_nurse(problems[name])
                for name in ("_form", *_LABELS)  # in the order of the form
                if name in problems
            },
            labels=_LABELS,
            procedures=procedure_choices(config),
            papers=(("a4", "A4"), ("letter", "Letter")),
            languages=language_choices(config),
            variants=variant_choices(config),
            email=emailer is not None,
            printers=printing.printers if printing is not None else (),
            sent=sent,
            ask=ask,  # a send that may have happened before: asked before sending again
        ),
        status,
    )


@bp.get("/")
def index() -> Any:
    config: Config = current_app.config["CLINIC"]
    values = {field.name: "" for field in FIELDS}
    values.update(date=today(config), paper=config.clinic.paper,
                  large_print="yes" if config.clinic.large_print else "")  # fmt: skip
    return show_form(values, {})


@bp.errorhandler(StaleForm)
def stale_form(exc: StaleForm) -> Any:
    """The form, typed values kept, with a fresh token: nothing is made until it is sent again."""
    values = {field.name: request.form.get(field.name, "") for field in FIELDS}
    values["email"] = request.form.get("email", "")
    problem = "This form had expired. Check the details and press the button again."
    return show_form(values, {"_form": problem}, 403)


@bp.post("/")
def make_pdf() -> Any:
    config: Config = current_app.config["CLINIC"]
    values = {field.name: request.form.get(field.name, "") for field in FIELDS}
    if request.form.get("action") in ("email", "email-again"):
        return send_email(values, config, again=request.form.get("action") == "email-again")
    if request.form.get("action") == "print":
        return print_sheet(values, config)
    checked, problems = check_form(values, config)
    if checked is None:
        return show_form(values, problems, 422)
    if request.form.get("action") == "html":
        return web_page(checked)
    try:
        pdf = current_app.extensions["discharge.renderer"].render(checked)
    except DischargeError as exc:  # e.g. a template that does not render, text that cannot fit
        return show_form(values, {"_form": str(exc)}, 422)
    name = f"discharge-{checked.procedure}-{checked.day.isoformat()}.pdf"
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "no-store"},
    )


def web_page(checked: Any) -> Any:
    """The same instructions as an accessible web page, under the page's own strict policy:
    its inline style only; no script, no outside request, no form, never in a frame."""
    from discharge.render_html import CSP

    try:
        page = current_app.extensions["discharge.renderer"].render_page(checked)
    except DischargeError as exc:
        values = {field.name: request.form.get(field.name, "") for field in FIELDS}
        return show_form(values, {"_form": str(exc)}, 422)
    policy = f"{CSP}; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    return Response(
        page,
        mimetype="text/html",
        headers={"Content-Security-Policy": policy, "Cache-Control": "no-store"},
    )


def send_email(values: dict[str, str], config: Config, *, again: bool = False) -> Any:
    from discharge.request import check_email

    emailer = current_app.extensions.get("discharge.email")
    if emailer is None:
        return show_form(values, {"_form": "email is not set up for this clinic"}, 422)
    values = {**values, "email": request.form.get("email", ""),
              "send_id": request.form.get("send_id", "")}  # fmt: skip
    checked, problems = check_form(values, config)
    try:
        address = check_email(values["email"], "the address")
    except InputError:
        address = ""
    if not address:
        problems["email"] = "enter one email address, such as name@example.org"
    if checked is None or "email" in problems:
        return show_form(values, problems, 422)
    claimed = emailer.claim(values["send_id"])
    if not claimed and emailer.sending(values["send_id"]):
        notice = "This form is being emailed now. Nothing was sent again."
        return show_form(values, {}, 409, sent=notice)
    renderer = current_app.extensions["discharge.renderer"]
    # A form whose send is over (a reload): the clinic's record answers; nothing is sent.
    resend = again and claimed
    try:
        outcome = emailer.send(checked, config, address, renderer.in_this_process, resend=resend)
    finally:
        emailer.finished(values["send_id"])
    if outcome.ask:
        # Not sent now, but it may have been before: the nurse decides, with a fresh send id
        # (this one stays used when the mail server may have the message).
        if not outcome.unknown:
            emailer.release(values["send_id"])
        values = {**values, "send_id": ""}
        return show_form(values, {}, 502 if outcome.unknown else 409, ask=outcome.message)
    if not outcome.sent:
        emailer.release(values["send_id"])
        return show_form(values, {"_form": outcome.message}, 502)
    return show_form(values, {}, 200, sent=outcome.message)


def print_sheet(values: dict[str, str], config: Config) -> Any:
    """The **Print** button: make the PDF, print it, and say on the page whether it printed."""
    printing = current_app.extensions.get("discharge.print")
    if printing is None:
        return show_form(values, {"_form": "printing is not set up for this desk"}, 422)
    values = {**values, "printer": request.form.get("printer", "")}
    checked, problems = check_form(values, config)
    printer = printing.choose(values["printer"])
    if printer is None:
        problems["_form"] = "choose one of the printers in the list"
    if checked is None or printer is None:
        return show_form(values, problems, 422)
    renderer = current_app.extensions["discharge.renderer"]
    try:
        pdf, sheet = renderer.render_recorded(checked)
    except DischargeError as exc:
        return show_form(values, {"_form": str(exc)}, 422)
    outcome = printing.print_sheet(pdf, config, sheet, printer)
    if not outcome.printed:
        return show_form(values, {"_form": outcome.message}, 502)
    return show_form(values, {}, 200, sent=outcome.message)
