"""Click options shared by several commands, each defined once.

``patient_options`` is every option that describes one patient's discharge (``generate`` and
``email`` take the same ones, so they cannot drift apart); ``request_from_options`` turns their
values into a validated request through the one request layer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from discharge.config import Config
from discharge.errors import InputError

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

_PATIENT_OPTIONS = [
    click.option("--procedure", required=True, metavar="ID",
                 help="Procedure id, e.g. hsg or miscarriage."),
    click.option("--date", "day", required=True, metavar="YYYY-MM-DD",
                 help="Date of the procedure."),
    click.option("--time", "at", metavar="HH:MM", help="Time of the procedure (24-hour clock)."),
    click.option("--patient", required=True, metavar="NAME", help="Patient's full name."),
    click.option("--dob", metavar="YYYY-MM-DD", help="Patient's date of birth."),
    click.option("--mrn", metavar="ID", help="Hospital number (MRN)."),
    click.option("--clinician", metavar="NAME", help="Clinician responsible for the discharge."),
    click.option("--notes", metavar="TEXT", help="Clinician's notes, printed as written."),
    click.option("--notes-file", type=click.Path(path_type=Path, allow_dash=True), metavar="PATH",
                 help="Read the notes from a UTF-8 text file ('-' for standard input)."),
    click.option("--paper", type=click.Choice(["a4", "letter"], case_sensitive=False),
                 help="Paper size. Default: the clinic's setting."),
    click.option("--variant", metavar="NAME",
                 help="The template's variant, e.g. medical (see: discharge procedures)."),
    click.option("--large-print/--no-large-print", "large_print", default=None,
                 help="Large print for low vision (body text 18 pt or more). "
                      "Default: the clinic's setting."),
    click.option("--language", metavar="CODE",
                 help="Language of the instructions, e.g. es (see: discharge procedures). "
                      "Default: the clinic's."),
    config_option,
]  # fmt: skip


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
) -> DischargeRequest:
    """The validated request for the values of ``patient_options``."""
    if notes is not None and notes_file is not None:
        raise click.UsageError("give the notes with --notes or --notes-file, not both")
    if notes_file is not None:
        notes = read_notes(notes_file)
    return parse_request(
        procedure=procedure, date=day, time=at, patient=patient, dob=dob, mrn=mrn,
        clinician=clinician, notes=notes, paper=paper, variant=variant, large_print=large_print,
        language=language,
    )  # fmt: skip


def warn_stale_translation(request: DischargeRequest, config: Config) -> None:
    """On stderr: the template this request uses is a draft (not approved by a clinician), or
    a translation older than its original."""
    from discharge.i18n import language_of
    from discharge.procedures import draft_warning, load_procedure, stale_warning

    default = language_of(config.clinic.locale)
    procedure = load_procedure(
        request.procedure, config.templates_dir, request.language, default_language=default
    )
    for message in (draft_warning(procedure), stale_warning(procedure, config.templates_dir)):
        if message:
            click.echo(f"warning: {message}", err=True)


def warn_drafts(config: Config) -> None:
    """On stderr: every template (in every language) that is a draft, one line each."""
    from discharge.errors import DischargeError
    from discharge.i18n import language_of
    from discharge.procedures import (
        available_procedures,
        draft_warning,
        load_procedure,
        procedure_languages,
    )

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
