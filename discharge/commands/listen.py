"""`discharge listen`: options and reporting only; the work is in ``discharge.hl7``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from discharge.options import (
    config_option,
    load_clinic_config,
    print_choice,
    print_options,
    warn_drafts,
    warn_if_demo,
)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. MLLP is not encrypted: anything but this computer "
                   "needs --allow-network.")  # fmt: skip
@click.option("--port", default=2575, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")  # fmt: skip
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              default=Path("ready"), show_default=True,
              help="Folder of the ready PDFs and manifest.csv (created if missing).")  # fmt: skip
@click.option("--allow-network", is_flag=True,
              help="Listen on an address other computers reach: patient data then crosses "
                   "the network unencrypted (only for the interface engine's own host or a "
                   "VPN).")  # fmt: skip
@click.option("--jobs", "-j", type=click.IntRange(min=1), metavar="N",
              help="PDFs made at once (for messages on several connections). Default: the "
                   "number of CPU cores.")  # fmt: skip
@click.option("--email", "email_sheets", is_flag=True,
              help="Also email each sheet made to the booking's address (PID-13), once "
                   "([smtp] and [email] settings), as batch --email does.")  # fmt: skip
@click.option("--print", "to_printer", is_flag=True,
              help="Also print each sheet made on the clinic's printer.")  # fmt: skip
@print_options
@config_option
def listen(
    host: str,
    port: int,
    out_dir: Path,
    allow_network: bool,
    config_path: Path | None,
    jobs: int | None = None,
    email_sheets: bool = False,
    to_printer: bool = False,
    printer: str | None = None,
    copies: int | None = None,
) -> None:
    """Take the scheduling system's bookings (HL7 v2 SIU^S12-S15 over MLLP) and keep a folder
    of each booked patient's ready PDF, as `discharge batch` makes them.

    Stop it with Ctrl-C or SIGTERM. Exit status: 0 stopped, 2 bad settings or the address
    cannot be used.
    """
    from discharge.errors import ConfigError, OutputError
    from discharge.hl7.handouts import Handouts, Printing
    from discharge.hl7.listener import listen as serve_mllp
    from discharge.hl7.settings import filing_settings, load_hl7_settings
    from discharge.hl7.sheets import ReadyFolder
    from discharge.web.settings import is_loopback

    if not is_loopback(host) and not allow_network:
        raise ConfigError(
            f"--host {host} lets other computers send bookings and read acknowledgements, "
            "unencrypted (MLLP has no TLS); add --allow-network if the interface engine is "
            "on a trusted network path (the same host or a VPN)"
        )
    if not to_printer and (printer is not None or copies is not None):
        raise click.UsageError("--printer and --copies go with --print")
    config = load_clinic_config(config_path)
    settings = load_hl7_settings(config)
    choice = print_choice(config, printer, copies) if to_printer else None
    if not settings.procedures:
        click.echo("warning: [hl7.procedures] maps no appointment type: every booking will be "
                   "ignored", err=True)  # fmt: skip
    handouts = None
    filing = filing_settings(settings)
    if email_sheets or choice is not None or filing is not None:
        printing = Printing(choice.printer, choice.copies, choice.timeout) if choice else None
        # The settings, and the SMTP password's variable, are checked now, before listening.
        handouts = Handouts(
            config, out_dir, filing=filing, email=email_sheets, printing=printing, report=_report
        )
    folder = ReadyFolder(config, settings, out_dir, handouts=handouts)
    warn_drafts(config)

    def started(bound: int) -> None:
        shown = f"[{host.strip('[]')}]" if ":" in host else host
        click.echo(f"Listening for HL7 (MLLP) on {shown}:{bound}; ready sheets in {out_dir}")
        warn_if_demo(config)
        sys.stdout.flush()

    try:
        serve_mllp(folder, host.strip("[]"), port, jobs=jobs, started=started, report=_report)
    except OSError as exc:
        raise OutputError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    click.echo("Stopped.")


def _report(line: str) -> None:
    """One line a message or a hand-out, from any thread: never a patient's details."""
    click.echo(line)
