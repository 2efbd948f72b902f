"""`discharge email`: make one patient's PDF and email it, or write the message to a file.

Registered on the group at the end of ``discharge/cli.py``; import it through that module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from discharge.cli import read_notes

if TYPE_CHECKING:
    from discharge.batch import Schedule
    from discharge.config import Config
    from discharge.email_config import EmailSettings
    from discharge.mail import Mailer


def _patient_params() -> list[click.Parameter]:
    """generate's own patient options, so the two commands cannot drift apart.

    generate's --output ("where to write the PDF") is left out: email has its own. Imported
    here, not at the top, because cli.py imports this module at its end (a cycle mypy can
    only follow inside a function).
    """
    from discharge.cli import generate

    return [p for p in generate.params if p.name != "output"]


@click.command(params=_patient_params())
@click.option("--to", "recipient", metavar="ADDRESS", help="The patient's email address.")
@click.option("--eml", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="Write the complete message to PATH (.eml) instead of sending it.")  # fmt: skip
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="Also keep the clinic's copy of the PDF at PATH.")  # fmt: skip
def email(
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
    recipient: str | None,
    eml: Path | None,
    output: Path | None,
) -> None:
    """Email one patient's instructions, with their dates as a calendar file.

    Settings come from the [smtp] and [email] sections of the clinic's settings file; the SMTP
    password from the environment variable that smtp.password_env names.
    """
    from discharge.config import load_config
    from discharge.document import parse_request
    from discharge.email_config import check_address, load_email_settings
    from discharge.errors import InputError
    from discharge.mail import Mailer, make_email
    from discharge.output import write_atomic

    if recipient is None and eml is None:
        raise click.UsageError("give the patient's address with --to ADDRESS (or --eml PATH)")
    if notes is not None and notes_file is not None:
        raise click.UsageError("give the notes with --notes or --notes-file, not both")
    if recipient is not None:
        try:
            recipient = check_address(recipient, "--to")
        except ValueError as exc:
            raise InputError(str(exc)) from None
    if notes_file is not None:
        notes = read_notes(notes_file)
    config = load_config(config_path)
    smtp, settings = load_email_settings(config, sending=eml is None)
    # Before any work: a missing password variable is found now, not after rendering.
    mailer = Mailer(smtp) if eml is None else None
    request = parse_request(
        procedure=procedure, date=day, time=at, patient=patient, dob=dob, mrn=mrn,
        clinician=clinician, notes=notes, paper=paper,
    )  # fmt: skip
    # AUDIT (issue 13): open the log before any work; each copy handed out is recorded.
    from discharge.audit import AuditLog, as_sent, describe_pdf

    audit = AuditLog.open(config)
    _document, pdf, message = make_email(request, config, recipient, smtp, settings)
    made = describe_pdf(request, _document, pdf)
    attached = as_sent(made, message.pdf, recipient, message.message_id)
    if output is not None:
        write_atomic(output, pdf)
        audit.record_or_remove(made, output)
        click.echo(f"Wrote {output}")
    if eml is not None:
        write_atomic(eml, message.message.as_bytes())
        audit.record_or_remove(attached, eml)
        click.echo(f"Wrote {eml} (not sent)")
        return
    assert mailer is not None
    with mailer, audit.sending(attached):
        message_id = mailer.send(message)
    audit.record_sent(attached)
    # END AUDIT
    click.echo(f"Sent to {recipient} (message id {message_id})")


# --- `discharge batch --email`: the options and the step, for cli_batch.py to call ------------


def batch_email_options(command: Any) -> Any:
    """Add --email and --resend to the batch command."""
    command = click.option(
        "--resend", is_flag=True, help="With --email: email again the rows already sent."
    )(command)
    return click.option(
        "--email",
        "email_rows",
        is_flag=True,
        help="Also email each row's PDF to the row's email column ([smtp] and [email] "
        "settings); a rerun emails only the rows not sent yet.",
    )(command)


@dataclass
class BatchEmail:
    mailer: Mailer
    settings: EmailSettings
    resend: bool


def prepare_batch_email(config: Config, email_rows: bool, resend: bool) -> BatchEmail | None:
    """Before anything is made: check the settings and that the password is there."""
    from discharge.email_config import load_email_settings
    from discharge.mail import Mailer

    if resend and not email_rows:
        raise click.UsageError("--resend goes with --email")
    if not email_rows:
        return None
    smtp, settings = load_email_settings(config)
    return BatchEmail(Mailer(smtp), settings, resend)


def send_batch_email(
    step: BatchEmail,
    schedule: Schedule,
    config: Config,
    out_dir: Path,
    date_order: str | None,
) -> bool:
    """Email the made PDFs; report; return True if any row's email failed."""
    from discharge.batch_email import email_batch

    with step.mailer:
        summary = email_batch(
            schedule, config, out_dir, step.mailer, step.settings, resend=step.resend,
            date_order=date_order, reporter=_EmailReporter(),
        )  # fmt: skip
    click.echo(
        f"email: {summary.sent} sent / {summary.failed} failed / "
        f"{summary.no_address} no address / {summary.already_sent} already sent"
    )
    return summary.failed > 0


class _EmailReporter:
    def email_sent(self, row: int, address: str) -> None:
        pass

    def email_failed(self, row: int, address: str, message: str) -> None:
        click.echo(f"row {row}: email to {address} not sent: {message}", err=True)
