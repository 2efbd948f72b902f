"""`discharge generate`: one patient's instructions as a PDF (or a web page, or plain text)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from discharge.options import (
    load_clinic_config,
    patient_options,
    print_choice,
    print_options,
    report_printed,
    request_from_options,
    warn_if_demo,
    warn_stale_translation,
)


@click.command()
@patient_options
@click.option("--output", "-o", type=click.Path(path_type=Path), metavar="PATH",
              help="Where to write the file (default: discharge-PROCEDURE-DATE-MRN.pdf, "
                   ".html or .txt, with the date of birth when there is no hospital "
                   "number).")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["pdf", "html", "text"], case_sensitive=False),
              default="pdf", show_default=True,
              help="A printable PDF, an accessible web page, or plain text.")  # fmt: skip
@click.option("--force", is_flag=True,
              help="Replace the output file even if it is not this patient's.")  # fmt: skip
@click.option("--print", "to_printer", is_flag=True,
              help="Also print the PDF, and wait until the printer has printed it "
                   "(exit 3 if it did not).")  # fmt: skip
@print_options
def generate(
    config_path: Path | None,
    output: Path | None,
    fmt: str,
    force: bool,
    to_printer: bool,
    printer: str | None,
    copies: int | None,
    **patient: Any,
) -> None:
    """Make one patient's discharge instructions as a PDF (and print it, with --print), a web
    page or plain text.

    An existing file is replaced only if it is this patient's (or with --force).
    """
    from discharge.generate import SUFFIXES, default_output_name, generate_pdf

    if not to_printer and (printer is not None or copies is not None):
        raise click.UsageError("--printer and --copies go with --print")
    config = load_clinic_config(config_path)
    request = request_from_options(**patient)
    fmt = fmt.lower()
    if to_printer and fmt != "pdf":
        raise click.UsageError("--print prints the PDF: it cannot be used with --format " + fmt)
    choice = print_choice(config, printer, copies) if to_printer else None
    output = output or Path(default_output_name(request, SUFFIXES[fmt]))
    document = generate_pdf(request, config, output, force=force, fmt=fmt)
    warn_stale_translation(request, config)
    click.echo(f"Wrote {output}")
    warn_if_demo(config)
    if choice is not None:
        from discharge.audit import describe_pdf
        from discharge.channels.print import print_recorded
        from discharge.printing.jobs import job_title

        pdf = output.read_bytes()
        result = print_recorded(
            pdf, config, [describe_pdf(request, document, pdf)], printer=choice.printer,
            copies=choice.copies, title=job_title(request.patient.mrn), timeout=choice.timeout,
            file=output.name,
        )  # fmt: skip
        report_printed(result)
