"""`discharge email`: make one patient's PDF and email it, or write the message to a file."""

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
@click.option("--to", "recipient", metavar="ADDRESS", help="The patient's email address.")
@click.option("--eml", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="Write the complete message to PATH (.eml) instead of sending it.")  # fmt: skip
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="Also keep the clinic's copy of the PDF at PATH.")  # fmt: skip
def email(
    config_path: Path | None,
    recipient: str | None,
    eml: Path | None,
    output: Path | None,
    **patient: Any,
) -> None:
    """Email one patient's instructions, with their dates as a calendar file.

    Settings come from the [smtp] and [email] sections of the clinic's settings file; the SMTP
    password from the environment variable that smtp.password_env names.
    """
    from discharge.delivery import email_instructions
    from discharge.request import check_email

    if recipient is None and eml is None:
        raise click.UsageError("give the patient's address with --to ADDRESS (or --eml PATH)")
    recipient = check_email(recipient, "--to") or None
    request = request_from_options(**patient)
    config = load_clinic_config(config_path)
    result = email_instructions(request, config, recipient, eml=eml, output=output)
    warn_stale_translation(request, config)
    if output is not None:
        click.echo(f"Wrote {output}")
    warn_if_demo(config)
    if not result.sent:
        click.echo(f"Wrote {eml} (not sent)")
        return
    click.echo(f"Sent to {recipient} (message id {result.email.message_id})")
