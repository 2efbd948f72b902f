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
              help="Where to write the file (default: discharge-PROCEDURE-DATE.pdf, "
                   ".html or .txt).")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["pdf", "html", "text"], case_sensitive=False),
              default="pdf", show_default=True,
              help="A printable PDF, an accessible web page, or plain text.")  # fmt: skip
def generate(config_path: Path | None, output: Path | None, fmt: str, **patient: Any) -> None:
    """Make one patient's discharge instructions as a PDF, a web page or plain text."""
    from discharge.generate import SUFFIXES, generate_pdf

    config = load_clinic_config(config_path)
    request = request_from_options(**patient)
    fmt = fmt.lower()
    default = f"discharge-{request.procedure}-{request.day.isoformat()}{SUFFIXES[fmt]}"
    output = output or Path(default)
    generate_pdf(request, config, output, fmt=fmt)
    warn_stale_translation(request, config)
    click.echo(f"Wrote {output}")
    warn_if_demo(config)
