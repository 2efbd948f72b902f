"""`discharge users`: the web form's local accounts. The work is in ``discharge/accounts.py``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from discharge.options import config_option

if TYPE_CHECKING:
    from discharge.audit import AuditLog

_STDIN_HELP = "Read the password from one line of standard input (for scripts), not the terminal."


@click.group()
def users() -> None:
    """The web form's local accounts: each nurse signs in as herself.

    Used when the clinic settings say [serve] sign_in = "accounts". Accounts (and the signed-in
    sessions) are kept in users.sqlite3 in the clinic's data folder ($DISCHARGE_DATA_DIR, else
    your data folder), readable by its owner only.

    Exit status: 0 done; 2 bad input (unknown or duplicate user, a name that cannot be one,
    passwords that differ, a password shorter than 12 characters) or an accounts file that
    cannot be used.
    """


@users.command()
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help=_STDIN_HELP)
@config_option
def add(name: str, password_stdin: bool, config_path: Path | None) -> None:
    """Add the user NAME (letters, digits, '.', '_', '-', '@'); she can sign in at once.

    The password is typed twice without being shown (at least 12 characters).
    Exit status: 0 added, 2 as for every users command (see: discharge users --help).
    """
    from discharge.accounts import Accounts, check_name
    from discharge.audit import USER_ADDED

    name = check_name(name)  # before asking for a password
    password = _new_password(password_stdin)
    with _audit_log(config_path) as log:
        stored = Accounts().add(name, password)
        click.echo(f"added user {stored}")
        _record(log, USER_ADDED, stored)


@users.command(name="list")
def list_() -> None:
    """List the users: name, enabled, when added and last signed in (never a password)."""
    from discharge.accounts import Accounts

    rows = [("name", "enabled", "created", "last sign-in")]
    for user in Accounts().users():
        rows.append(
            (user.name, "yes" if user.enabled else "no", _when(user.created_utc),
             _when(user.last_sign_in_utc) or "never")
        )  # fmt: skip
    if len(rows) == 1:
        click.echo("no users yet (add one: discharge users add NAME)", err=True)
        return
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@users.command()
@click.argument("name")
@config_option
def disable(name: str, config_path: Path | None) -> None:
    """Stop NAME signing in; her open sessions end now (`users reset` enables her again)."""
    from discharge.accounts import Accounts, normalise_name
    from discharge.audit import USER_DISABLED

    with _audit_log(config_path) as log:
        ended = Accounts().disable(name)
        click.echo(f"disabled user {normalise_name(name)}; {ended} open session(s) ended")
        _record(log, USER_DISABLED, normalise_name(name), sessions_ended=ended)


@users.command()
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help=_STDIN_HELP)
@config_option
def reset(name: str, password_stdin: bool, config_path: Path | None) -> None:
    """Give NAME a new password (typed twice, at least 12 characters) and enable her again;
    her open sessions end."""
    from discharge.accounts import Accounts
    from discharge.audit import USER_RESET

    password = _new_password(password_stdin)
    with _audit_log(config_path) as log:
        stored = Accounts().reset(name, password)
        click.echo(f"new password set for {stored}")
        _record(log, USER_RESET, stored)


@contextlib.contextmanager
def _audit_log(config_path: Path | None) -> Iterator[AuditLog]:
    """The clinic's audit log (its [audit] settings, as `discharge serve --config` uses them),
    opened before an account is changed: a log that cannot be used changes nothing."""
    from discharge.audit import AuditLog
    from discharge.options import load_clinic_config

    with AuditLog.open(load_clinic_config(config_path)) as log:
        yield log


def _record(log: AuditLog, action: str, account: str, **detail: int) -> None:
    """The change in the audit log: who made it (the OS account), to which account; never a
    password."""
    import json

    from discharge.audit import AuditRecord

    detail_text = json.dumps({"account": account, **detail})
    log.record(AuditRecord(action=action, channel="cli", detail=detail_text))


def _new_password(from_stdin: bool) -> str:
    from discharge.accounts import BadPassword, check_password

    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password.removesuffix("\r")
    else:
        password = click.prompt("Password", hide_input=True, prompt_suffix=": ", err=True)
        again = click.prompt("Password again", hide_input=True, prompt_suffix=": ", err=True)
        if again != password:
            raise BadPassword("the two passwords differ; nothing was changed")
    check_password(password)
    return password


def _when(text: str) -> str:
    return text[:16].replace("T", " ") + " UTC" if text else ""
