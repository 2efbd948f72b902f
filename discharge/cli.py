"""The `discharge` command: parse options, call the library, report. No logic lives here."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from discharge import __version__
from discharge.errors import DischargeError, ExitStatus, InputError

DEBUG_ENV = "DISCHARGE_DEBUG"

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="DISCHARGE_CONFIG",
    help="Clinic settings file (TOML). Default: $DISCHARGE_CONFIG, else the demo clinic.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="discharge")
def cli() -> None:
    """Personalised, printable discharge instructions with real recovery dates."""


@cli.command()
@click.option(
    "--procedure", required=True, metavar="ID", help="Procedure id, e.g. hsg or miscarriage."
)
@click.option("--date", "day", required=True, metavar="YYYY-MM-DD", help="Date of the procedure.")
@click.option("--time", "at", metavar="HH:MM", help="Time of the procedure (24-hour clock).")
@click.option("--patient", required=True, metavar="NAME", help="Patient's full name.")
@click.option("--dob", metavar="YYYY-MM-DD", help="Patient's date of birth.")
@click.option("--mrn", metavar="ID", help="Hospital number (MRN).")
@click.option("--clinician", metavar="NAME", help="Clinician responsible for the discharge.")
@click.option("--notes", metavar="TEXT", help="Clinician's notes, printed as written.")
@click.option("--notes-file", type=click.Path(path_type=Path, allow_dash=True), metavar="PATH",
              help="Read the notes from a UTF-8 text file ('-' for standard input).")  # fmt: skip
@click.option("--paper", type=click.Choice(["a4", "letter"], case_sensitive=False),
              help="Paper size. Default: the clinic's setting.")  # fmt: skip
@config_option
@click.option("--output", "-o", type=click.Path(path_type=Path), metavar="PATH",
              help="Where to write the PDF (default: discharge-PROCEDURE-DATE.pdf).")  # fmt: skip
def generate(
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
    config_path: Path | None,
    output: Path | None,
) -> None:
    """Make one patient's discharge instructions as a PDF."""
    from discharge.config import load_config
    from discharge.document import parse_request
    from discharge.generate import generate_pdf

    if notes is not None and notes_file is not None:
        raise click.UsageError("give the notes with --notes or --notes-file, not both")
    if notes_file is not None:
        notes = read_notes(notes_file)
    config = load_config(config_path)
    request = parse_request(
        procedure=procedure, date=day, time=at, patient=patient, dob=dob, mrn=mrn,
        clinician=clinician, notes=notes, paper=paper,
    )  # fmt: skip
    output = output or Path(f"discharge-{request.procedure}-{request.day.isoformat()}.pdf")
    generate_pdf(request, config, output)
    click.echo(f"Wrote {output}")


@cli.command()
@config_option
def procedures(config_path: Path | None) -> None:
    """List the procedures that have templates, with their titles."""
    from discharge.config import load_config
    from discharge.procedures import load_all

    config = load_config(config_path)
    for procedure in load_all(config.templates_dir):
        click.echo(f"{procedure.id:<14} {procedure.title}  (version {procedure.version})")


def read_notes(path: Path) -> str:
    from discharge.document import MAX_NOTES

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


def main(argv: list[str] | None = None) -> Any:
    """Entry point: one place turns errors into a one-line message and an exit code."""
    debug = bool(os.environ.get(DEBUG_ENV))
    try:
        code = cli.main(args=argv, prog_name="discharge", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("discharge: interrupted", err=True)
        sys.exit(ExitStatus.INTERRUPTED)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `discharge`: show the help
        click.echo(exc.format_message(), err=True)
        sys.exit(ExitStatus.USAGE)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "discharge"
        click.echo(f"discharge: error: {exc.format_message()} (see: {where} --help)", err=True)
        sys.exit(ExitStatus.USAGE)
    except click.ClickException as exc:
        click.echo(f"discharge: error: {exc.format_message()}", err=True)
        sys.exit(ExitStatus.USAGE)
    except DischargeError as exc:
        if debug:
            raise
        click.echo(f"discharge: error: {exc}", err=True)
        sys.exit(exc.exit_status)
    except KeyboardInterrupt:
        click.echo("discharge: interrupted", err=True)
        sys.exit(ExitStatus.INTERRUPTED)
    except Exception as exc:  # a bug: say so plainly, show the traceback only on request
        if debug:
            raise
        click.echo(
            f"discharge: internal error ({type(exc).__name__}); "
            f"run again with {DEBUG_ENV}=1 to see the details",
            err=True,
        )
        sys.exit(ExitStatus.INTERNAL)
    # Without standalone mode click returns a command's ctx.exit(code) instead of exiting.
    sys.exit(code if isinstance(code, int) else ExitStatus.OK)


from discharge.cli_email import email  # noqa: E402  (it imports generate's options from here)

cli.add_command(email)

from discharge.cli_batch import batch  # noqa: E402  (it imports config_option from here)

cli.add_command(batch)
