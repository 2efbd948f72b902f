"""The `discharge` command: the click group, and the one place errors become exit codes.

Each command lives in ``discharge/commands/``; none of them has logic of its own.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from discharge import __version__
from discharge.commands.batch import batch
from discharge.commands.email import email
from discharge.commands.generate import generate
from discharge.commands.log import log
from discharge.commands.procedures import procedures
from discharge.commands.serve import serve
from discharge.commands.templates import templates
from discharge.errors import DischargeError, ExitStatus
from discharge.options import DEBUG_ENV, debug_requested


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="discharge")
def cli() -> None:
    """Personalised, printable discharge instructions with real recovery dates."""


for command in (generate, procedures, batch, email, log, serve, templates):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: one place turns errors into a one-line message and an exit code."""
    debug = debug_requested()
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
