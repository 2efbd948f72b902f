"""`discharge email`: make one patient's PDF and email it, or write the message to a file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from discharge.options import (
    load_clinic_config,
    patient_options,
    request_from_options,
    warn_if_demo,
    warn_stale_translation,
)

if TYPE_CHECKING:
    from discharge.config import Config
    from discharge.delivery.sent import Previous


@click.command()
@patient_options
@click.option("--to", "recipient", metavar="ADDRESS", help="The patient's email address.")
@click.option("--eml", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="Write the complete message to PATH (.eml) instead of sending it.")  # fmt: skip
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="Also keep the clinic's copy of the PDF at PATH.")  # fmt: skip
@click.option("--force", is_flag=True,
              help="Replace the --output file even if it is not this patient's PDF.")  # fmt: skip
@click.option("--resend", is_flag=True,
              help="Send even if these instructions were already emailed to this address, an "
                   "earlier version was, or a send's outcome is unknown.")  # fmt: skip
def email(
    config_path: Path | None,
    recipient: str | None,
    eml: Path | None,
    output: Path | None,
    force: bool,
    resend: bool,
    **patient: Any,
) -> None:
    """Email one patient's instructions, with their dates as a calendar file.

    Settings come from the [smtp] and [email] sections of the clinic's settings file; the SMTP
    password from the environment variable that smtp.password_env names.

    Each patient's instructions for a procedure and date go to an address once: the clinic
    keeps a record of what was sent (see README, "At most once"); --resend sends again.
    """
    from discharge.channels.email import email_instructions
    from discharge.request import check_email

    if recipient is None and eml is None:
        raise click.UsageError("give the patient's address with --to ADDRESS (or --eml PATH)")
    recipient = check_email(recipient, "--to") or None
    request = request_from_options(**patient)
    config = load_clinic_config(config_path)
    result = email_instructions(request, config, recipient, eml=eml, output=output, resend=resend,
                                force=force)  # fmt: skip
    warn_stale_translation(request, config)
    if output is not None:
        click.echo(f"Wrote {output}")
    warn_if_demo(config)
    if result.held is not None:
        _report_held(result.held, recipient or "", config)
        return
    if not result.sent:
        click.echo(f"Wrote {eml} (not sent)")
        return
    click.echo(f"Sent to {recipient} (message id {result.email.message_id})")


def _report_held(previous: Previous, recipient: str, config: Config) -> None:
    """Nothing was sent: say why, and how to send anyway."""
    from discharge.delivery.sent import CHANGED, SENT
    from discharge.errors import DeliveryError

    when = previous.when_text(config.clinic.tz)
    if previous.status == SENT:
        click.echo(
            f"Not sent: these instructions were already emailed to {recipient} on {when}; "
            "add --resend to send them again"
        )
    elif previous.status == CHANGED:
        click.echo(
            f"Not sent: an earlier version of these instructions was emailed to {recipient} on "
            f"{when}; add --resend to send this one"
        )
    else:  # UNKNOWN: the mail server may have it
        raise DeliveryError(
            f"not sent: an earlier send to {recipient} ({when}) has an unknown outcome, the "
            "mail server may already have it; check with the patient, then add --resend to "
            "send again"
        )
