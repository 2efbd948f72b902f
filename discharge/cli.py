"""The `discharge` command: the click group, and the one place errors become exit codes.

Each command lives in ``discharge/commands/``; none of them has logic of its own.
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import Any

import click

from discharge import __version__
from discharge.errors import DischargeError, ExitStatus
from discharge.options import DEBUG_ENV, debug_requested

# Each command is the function of the same name in discharge/commands/NAME.py.
COMMANDS = (
    "generate", "procedures", "batch", "email", "log", "serve", "templates", "print", "users",
    "listen",
)  # fmt: skip
_LONG_RUNNING = {"batch", "serve", "listen"}  # may handle thousands of documents


class _Commands(click.Group):
    """Imports a command's module only when it is used: `generate` does not pay for loading
    the web server's or the batch runner's modules (and `--help` lists them all)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module = importlib.import_module(f"discharge.commands.{cmd_name}")
            self.add_command(getattr(module, cmd_name))
            if cmd_name in _LONG_RUNNING and not gc.isenabled():
                # The cycle collector is off while the program starts (__main__.py); a
                # command that keeps running needs it. What exists now is kept to the end:
                # frozen, the collector never looks through it again (nor touches the
                # memory forked batch workers share with this process).
                gc.freeze()
                gc.enable()
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="discharge")
def cli() -> None:
    """Personalised, printable discharge instructions with real recovery dates."""


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
        for line in str(exc).splitlines() or [""]:  # a settings file's problems: a line each
            click.echo(f"discharge: error: {line}", err=True)
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
