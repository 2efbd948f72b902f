"""`discharge generate`: one patient's instructions as a PDF."""

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
              help="Where to write the PDF (default: discharge-PROCEDURE-DATE-MRN.pdf, with "
                   "the date of birth when there is no hospital number).")  # fmt: skip
@click.option("--force", is_flag=True,
              help="Replace the output file even if it is not this patient's PDF.")  # fmt: skip
def generate(config_path: Path | None, output: Path | None, force: bool, **patient: Any) -> None:
    """Make one patient's discharge instructions as a PDF.

    An existing file is replaced only if it is this patient's PDF (or with --force).
    """
    from discharge.generate import default_output_name, generate_pdf

    config = load_clinic_config(config_path)
    request = request_from_options(**patient)
    output = output or Path(default_output_name(request))
    generate_pdf(request, config, output, force=force)
    warn_stale_translation(request, config)
    click.echo(f"Wrote {output}")
    warn_if_demo(config)
