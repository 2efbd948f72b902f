"""`discharge print`: print PDFs made earlier, confirmed and recorded."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from discharge.errors import ExitStatus, InputError
from discharge.options import (
    config_option,
    load_clinic_config,
    print_choice,
    print_options,
    report_printed,
)

if TYPE_CHECKING:
    from discharge.audit import AuditRecord


@click.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path), metavar="FILE...")  # fmt: skip
@print_options
@config_option
def print(  # noqa: A001 - the command's name
    files: tuple[Path, ...], printer: str | None, copies: int | None, config_path: Path | None
) -> None:
    """Print discharge PDFs made earlier, and wait until each has printed.

    A PDF this program made is found in the audit log by its exact bytes: the print queue shows
    its hospital number ("discharge - RX-104233"), never the patient's name, and the print is
    recorded against that patient.

    Exit status: 0 every file printed, 2 bad input or settings, 3 a file was not printed (or
    its printing was not confirmed), 4 the audit record could not be written.
    """
    from discharge.audit import AuditLog
    from discharge.channels.print import print_recorded
    from discharge.errors import PrintError
    from discharge.printing.jobs import job_title

    config = load_clinic_config(config_path)
    choice = print_choice(config, printer, copies)
    pdfs = [(file, _read_pdf(file)) for file in files]  # every file checked before printing
    failed = 0
    for file, pdf in pdfs:
        with AuditLog.open(config) as audit:
            made = [r for r in audit.find_pdf(pdf) if r.action == "made"][-1:]
        if not made:
            click.echo(
                f"warning: {file} is not in the audit log (not made here, or made before the "
                "log was kept): its print is recorded without a patient",
                err=True,
            )
        sheets = made or [_unrecorded(pdf)]
        try:
            result = print_recorded(
                pdf, config, sheets, printer=choice.printer, copies=choice.copies,
                title=job_title(sheets[0].mrn), timeout=choice.timeout, file=file.name,
            )  # fmt: skip
        except PrintError as exc:
            if len(pdfs) == 1:
                raise
            click.echo(f"discharge: error: {file}: {exc}", err=True)
            failed += 1
            continue
        click.echo(f"{file}: ", nl=False)
        report_printed(result)
    if failed:
        click.echo(f"{failed} of {len(pdfs)} files were not printed", err=True)
        sys.exit(ExitStatus.DELIVERY)


def _read_pdf(file: Path) -> bytes:
    try:
        if file.exists() and not file.is_file():
            raise InputError(f"{file} is not a regular file, expected a PDF")
        data = file.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{file} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror}") from None
    if not data.startswith(b"%PDF-"):
        raise InputError(f"{file} is not a PDF file")
    return data


def _unrecorded(pdf: bytes) -> AuditRecord:
    import hashlib

    from discharge.audit import MADE, AuditRecord, count_pages

    return AuditRecord(
        action=MADE, pdf_sha256=hashlib.sha256(pdf).hexdigest(), pages=count_pages(pdf)
    )
