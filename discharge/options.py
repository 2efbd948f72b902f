"""Click options shared by several commands, each defined once.

``patient_options`` is every option that describes one patient's discharge (``generate`` and
``email`` take the same ones, so they cannot drift apart); ``request_from_options`` turns their
values into a validated request through the one request layer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from discharge.config import Config
from discharge.errors import InputError
from discharge.fields import PATIENT_FIELDS, PatientField

if TYPE_CHECKING:
    from discharge.config import Config
from discharge.request import MAX_NOTES, DischargeRequest, parse_request

F = TypeVar("F", bound=Callable[..., Any])
DEBUG_ENV = "DISCHARGE_DEBUG"

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="DISCHARGE_CONFIG",
    help="Clinic settings file (TOML). Default: $DISCHARGE_CONFIG, else the demo clinic.",
)


def _option(field: PatientField) -> Callable[[F], F]:
    """The click option for one patient field (``discharge.fields`` declares them all)."""
    if field.flag:
        negative = field.option.replace("--", "--no-", 1)
        return click.option(f"{field.option}/{negative}", field.dest, default=None,
                            help=field.help)  # fmt: skip
    kind = click.Choice(field.choices, case_sensitive=False) if field.choices else None
    return click.option(field.option, field.dest, required=field.required, type=kind,
                        metavar=field.metavar or None, multiple=field.repeat,
                        help=field.help)  # fmt: skip


_NOTES_FILE = click.option(
    "--notes-file", type=click.Path(path_type=Path, allow_dash=True), metavar="PATH",
    help="Read the notes from a UTF-8 text file ('-' for standard input).",
)  # fmt: skip
_PATIENT_OPTIONS = []
for _field in PATIENT_FIELDS:
    _PATIENT_OPTIONS.append(_option(_field))
    if _field.name == "notes":
        _PATIENT_OPTIONS.append(_NOTES_FILE)
_PATIENT_OPTIONS.append(config_option)


DEMO_WARNING = (
    "warning: using the fictional demo clinic: its name and phone numbers are not real; "
    "set DISCHARGE_CONFIG or give --config with your clinic's settings file"
)


def load_clinic_config(config_path: Path | None) -> Config:
    """The clinic's settings (``--config``, ``$DISCHARGE_CONFIG``), else the demo clinic."""
    from discharge.config import load_config

    return load_config(config_path)


def warn_if_demo(config: Config) -> None:
    """After something was made with the demo clinic, say so on stderr, so nobody hands a
    patient a sheet with fictional phone numbers by mistake."""
    if config.source is None:
        click.echo(DEMO_WARNING, err=True)


def patient_options(command: F) -> F:
    """Add every patient option (and --config) to a command, in help order."""
    for option in reversed(_PATIENT_OPTIONS):
        command = option(command)
    return command


def request_from_options(
    *,
    procedure: str,
    day: str,
    at: str | None,
    patient: str,
    dob: str | None,
    mrn: str | None,
    clinician: str | None,
    notes: str | None,
    notes_file: Path | None,
    paper: str | None,
    variant: str | None = None,
    large_print: bool | None = None,
    language: str | None = None,
    follow_up: str | None = None,
    follow_up_place: str | None = None,
    medicines: tuple[str, ...] = (),
) -> DischargeRequest:
    """The validated request for the values of ``patient_options``."""
    if notes is not None and notes_file is not None:
        raise click.UsageError("give the notes with --notes or --notes-file, not both")
    if notes_file is not None:
        notes = read_notes(notes_file)
    return parse_request(
        procedure=procedure, date=day, time=at, patient=patient, dob=dob, mrn=mrn,
        clinician=clinician, notes=notes, paper=paper, variant=variant, large_print=large_print,
        language=language, follow_up=follow_up, follow_up_place=follow_up_place,
        medicines=medicines,
    )  # fmt: skip


def warn_stale_translation(request: DischargeRequest, config: Config) -> None:
    """On stderr: the template this request uses is a draft (not approved by a clinician), or
    a translation older than its original."""
    from discharge.guidance.loading import load_procedure
    from discharge.guidance.model import draft_warning
    from discharge.i18n import language_of

    default = language_of(config.clinic.locale)
    procedure = load_procedure(
        request.procedure, config.templates_dir, request.language, default_language=default
    )
    messages = [draft_warning(procedure)]
    if procedure.language:  # only a translation can be stale (its module is not needed else)
        from discharge.guidance.translations import stale_warning

        messages.append(stale_warning(procedure, config.templates_dir))
    for message in messages:
        if message:
            click.echo(f"warning: {message}", err=True)


def warn_drafts(config: Config) -> None:
    """On stderr: every template (in every language) that is a draft, one line each."""
    from discharge.errors import DischargeError
    from discharge.guidance.loading import available_procedures, load_procedure, procedure_languages
    from discharge.guidance.model import draft_warning
    from discharge.i18n import language_of

    default = language_of(config.clinic.locale)
    for pid in available_procedures(config.templates_dir):
        for language in procedure_languages(pid, config.templates_dir, default):
            try:
                procedure = load_procedure(
                    pid, config.templates_dir, language, default_language=default
                )
            except DischargeError:
                continue  # a template that does not load is reported where it is used
            if message := draft_warning(procedure):
                click.echo(f"warning: {message}", err=True)


def read_notes(path: Path) -> str:
    # Enough bytes for MAX_NOTES characters of UTF-8 and a BOM; a longer file is refused
    # without reading it all (a 2 GB file by mistake, or a device that never ends).
    limit = MAX_NOTES * 4 + 3
    try:
        if str(path) == "-":
            raw = sys.stdin.buffer.read(limit + 1)
        else:
            if path.exists() and not path.is_file() and not path.is_dir():
                # A named pipe or device would wait for a writer, or never end.
                raise InputError(
                    f"notes file {path} is not a regular file (use --notes-file - to read "
                    "the notes from standard input)"
                )
            with path.open("rb") as handle:
                raw = handle.read(limit + 1)
    except FileNotFoundError:
        raise InputError(f"notes file {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"notes file {path} is a folder, expected a text file") from None
    except OSError as exc:
        raise InputError(f"cannot read notes file {path}: {exc.strerror}") from None
    if len(raw) > limit:
        raise InputError(f"notes file {path} is longer than {MAX_NOTES:,} characters")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"notes file {path} is not UTF-8 text") from None


def debug_requested() -> bool:
    """Show tracebacks instead of one-line messages (``DISCHARGE_DEBUG=1``)."""
    return bool(os.environ.get(DEBUG_ENV))


# --- printing (generate --print, batch --print, print FILE) -------------------------------

_PRINT_OPTIONS = [
    click.option("--printer", metavar="NAME",
                 help="The printer, as the print system names it. Default: the first of the "
                      "clinic's [print] printer setting."),
    click.option("--copies", type=click.IntRange(min=1), metavar="N",
                 help="Copies to print. Default: the clinic's [print] copies, else 1."),
]  # fmt: skip


def print_options(command: F) -> F:
    """Add --printer and --copies (the commands add their own --print switch)."""
    for option in reversed(_PRINT_OPTIONS):
        command = option(command)
    return command


@dataclass(frozen=True)
class PrintChoice:
    """Where and how to print, from the options and the clinic's ``[print]`` settings."""

    printer: str
    copies: int
    timeout: float


def print_choice(config: Config, printer: str | None, copies: int | None) -> PrintChoice:
    """Checked before any work: a wrong setting stops the command before anything is made."""
    from discharge.printing.settings import check_copies, check_printer_name, load_print_settings

    settings = load_print_settings(config)
    name = check_printer_name(printer) if printer is not None else settings.default_printer
    if name is None:
        raise InputError(
            'say which printer with --printer NAME, or set printer = "NAME" in the [print] '
            "section of the clinic's settings (lpstat -e lists the printers)"
        )
    return PrintChoice(
        printer=name,
        copies=check_copies(copies) if copies is not None else settings.copies,
        timeout=settings.timeout,
    )


def report_printed(result: Any) -> None:
    """One line on standard output for a confirmed print (and a note on stderr, if any)."""
    copies = f", {result.copies} copies" if result.copies > 1 else ""
    two = ", two-sided" if result.sides == "two-sided-long-edge" else ""
    click.echo(f"Printed on {result.printer} (job {result.job}, {result.pages} pages{copies}{two})")
    if result.note:
        click.echo(f"warning: {result.note}", err=True)
