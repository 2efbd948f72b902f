"""`discharge generate`: one patient's instructions as a PDF (or a web page, or plain text)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from discharge.options import (
    load_clinic_config,
    patient_options,
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
def generate(
    config_path: Path | None, output: Path | None, fmt: str, force: bool, **patient: Any
) -> None:
    """Make one patient's discharge instructions as a PDF, a web page or plain text.

    An existing file is replaced only if it is this patient's (or with --force).
    """
    from discharge.generate import SUFFIXES, default_output_name, generate_pdf

    config = load_clinic_config(config_path)
    request = request_from_options(**patient)
    fmt = fmt.lower()
    output = output or Path(default_output_name(request, SUFFIXES[fmt]))
    generate_pdf(request, config, output, force=force, fmt=fmt)
    warn_stale_translation(request, config)
    click.echo(f"Wrote {output}")
    warn_if_demo(config)
