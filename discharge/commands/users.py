"""`discharge users`: the web form's local accounts. The work is in ``discharge/accounts.py``."""

from __future__ import annotations

import sys

import click

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
def add(name: str, password_stdin: bool) -> None:
    """Add the user NAME (letters, digits, '.', '_', '-', '@'); she can sign in at once.

    The password is typed twice without being shown (at least 12 characters).
    Exit status: 0 added, 2 as for every users command (see: discharge users --help).
    """
    from discharge.accounts import Accounts, check_name

    name = check_name(name)  # before asking for a password
    stored = Accounts().add(name, _new_password(password_stdin))
    click.echo(f"added user {stored}")
    _record("added", stored)


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
def disable(name: str) -> None:
    """Stop NAME signing in; her open sessions end now (`users reset` enables her again)."""
    from discharge.accounts import Accounts, normalise_name

    ended = Accounts().disable(name)
    click.echo(f"disabled user {normalise_name(name)}; {ended} open session(s) ended")
    _record("disabled", normalise_name(name), sessions_ended=ended)


@users.command()
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help=_STDIN_HELP)
def reset(name: str, password_stdin: bool) -> None:
    """Give NAME a new password (typed twice, at least 12 characters) and enable her again;
    her open sessions end."""
    from discharge.accounts import Accounts

    stored = Accounts().reset(name, _new_password(password_stdin))
    click.echo(f"new password set for {stored}")
    _record("reset", stored)


def _record(change: str, account: str, **detail: int) -> None:
    """The change in the clinic's audit log: who made it (the OS account), to which account;
    never a password. A log that cannot be written stops with its error (the change is made)."""
    import json

    from discharge.audit import USER_ADDED, USER_DISABLED, USER_RESET, AuditLog, AuditRecord
    from discharge.config import load_config

    action = {"added": USER_ADDED, "disabled": USER_DISABLED, "reset": USER_RESET}[change]

    entry = AuditRecord(
        action=action, channel="cli", detail=json.dumps({"account": account, **detail})
    )
    with AuditLog.open(load_config()) as log:
        log.record(entry)


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
