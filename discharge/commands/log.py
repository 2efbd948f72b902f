"""`discharge log`: read, export, verify and prune the audit log. The work is in ``audit.py``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from discharge.errors import ExitStatus, InputError
from discharge.options import config_option

if TYPE_CHECKING:
    from discharge.audit import AuditLog, AuditRecord
    from discharge.config import Config


# The table on a terminal: (heading, how to get the cell, widest it may be).
_TABLE: list[tuple[str, Callable[[AuditRecord], str], int]] = [
    ("#", lambda r: str(r.id), 8),
    ("time", lambda r: r.time_local[:16].replace("T", " "), 16),
    ("action", lambda r: r.action, 14),
    ("procedure", lambda r: f"{r.procedure} {r.template_version}".strip(), 16),
    ("pages", lambda r: str(r.pages or ""), 5),
    ("patient", lambda r: r.patient_name, 24),
    ("MRN", lambda r: r.mrn, 14),
    ("clinician", lambda r: r.clinician, 18),
    ("user", lambda r: r.user, 20),
    ("by", lambda r: f"{r.operator}@{r.workstation}" if r.operator else "", 24),
    ("via", lambda r: _via(r), 14),
    ("email", lambda r: r.email_address, 28),
    ("printer", lambda r: _printed_on(r), 28),
    ("pdf sha256", lambda r: r.pdf_sha256[:12], 12),
]


@click.command()
@click.option("--since", metavar="YYYY-MM-DD", help="Only records from this day on (clinic time).")
@click.option("--until", metavar="YYYY-MM-DD", help="Only records up to the end of this day.")
@click.option("--mrn", metavar="ID", help="Only this patient's records (hospital number).")
@click.option("--procedure", metavar="ID", help="Only this procedure's records, e.g. hsg.")
@click.option("--user", metavar="NAME",
              help="Only what this user did (a nurse's sign-in name, `shared`, or an OS account), "
                   "and her failed sign-ins.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"], case_sensitive=False),
              default="table", show_default=True,
              help="A table to read, or CSV / JSON to export (all columns).")  # fmt: skip
@click.option(
    "--verify",
    is_flag=True,
    help="Check the hash chain: exit 0 intact, 1 naming the first bad one.",
)
@click.option("--show-pdf-hash", "pdf_file", metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Show the records of this exact PDF file (by its sha256).")  # fmt: skip
@click.option(
    "--prune-before",
    metavar="YYYY-MM-DD",
    help="Remove the records made before this day (the chain stays verifiable).",
)
@config_option
def log(
    since: str | None,
    until: str | None,
    mrn: str | None,
    procedure: str | None,
    user: str | None,
    fmt: str,
    verify: bool,
    pdf_file: Path | None,
    prune_before: str | None,
    config_path: Path | None,
) -> None:
    """Show the audit log: every PDF made, emailed or printed, for whom, by whom, and how;
    and every sign-in to the web form.

    The log is the clinic settings' [audit] path, else $DISCHARGE_AUDIT_DB, else audit.sqlite3
    in your data folder. Dates are the clinic's local days.

    Exit status: 0 done (--verify: the chain is intact), 1 --verify found a changed, deleted
    or inserted record (or --show-pdf-hash found no record), 2 bad input or settings,
    4 the log could not be read or written.
    """
    from discharge.audit import AuditLog, audit_settings
    from discharge.config import load_config

    actions = [name for name, on in (("--verify", verify), ("--show-pdf-hash", pdf_file),
               ("--prune-before", prune_before)) if on]  # fmt: skip
    filters = [name for name, on in (("--since", since), ("--until", until), ("--mrn", mrn),
               ("--procedure", procedure), ("--user", user)) if on is not None]  # fmt: skip
    if len(actions) > 1:
        raise click.UsageError(f"give one of {' or '.join(actions)}, not both")
    if actions and filters:
        raise click.UsageError(
            f"{filters[0]} only filters the list; it cannot go with {actions[0]}"
        )
    config = load_config(config_path)
    settings = audit_settings(config)
    if not settings.enabled:
        raise InputError(
            f"the audit log is turned off ([audit] enabled = false in {config.source})"
        )
    digest = _file_sha256(pdf_file) if pdf_file is not None else None
    if not settings.path.is_file():
        click.echo(f"no audit log at {settings.path} yet: nothing has been recorded", err=True)
        sys.exit(ExitStatus.ROWS_FAILED if verify or pdf_file else ExitStatus.OK)

    with AuditLog.open(config, create=False) as audit:
        if verify:
            sys.exit(_verify(audit))
        if prune_before is not None:
            _prune(audit, config, prune_before)
            return
        if digest is not None:
            assert pdf_file is not None
            records = list(audit.query(pdf_sha256=digest))
            if not records:
                click.echo(f"no record of {pdf_file} (sha256 {digest}) in the audit log", err=True)
                sys.exit(ExitStatus.ROWS_FAILED)
            if fmt == "table":
                click.echo(f"{pdf_file}: sha256 {digest}")
            _write(records, fmt.lower(), sys.stdout)
            return
        records_iter = audit.query(
            since=_day_start(since, config, "--since") if since else None,
            until=_day_start(until, config, "--until", next_day=True) if until else None,
            mrn=mrn,
            procedure=procedure,
            user=user,
        )
        _write(records_iter, fmt.lower(), sys.stdout)


def _verify(audit: AuditLog) -> int:
    result = audit.verify()
    if not result.ok:
        click.echo(f"audit log {audit.path} is NOT intact: {result.problem}", err=True)
        return ExitStatus.ROWS_FAILED
    span = f" (#{result.first_id} to #{result.last_id})" if result.records else ""
    click.echo(f"audit log {audit.path}: intact, {result.records} records{span}")
    if result.records:
        # Written down elsewhere, this proves later that no newer record was taken away.
        click.echo(f"last hash: {result.head}")
    return ExitStatus.OK


def _prune(audit: AuditLog, config: Config, day: str) -> None:
    removed = audit.prune_before(_day_start(day, config, "--prune-before"))
    if removed:
        click.echo(f"removed {removed} records made before {day}; the chain still verifies")
    else:
        click.echo(f"no records made before {day}")


def _write(records: Iterable[AuditRecord], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        _write_json(records, out)
    elif fmt == "csv":
        _write_csv(records, out)
    else:
        _write_table(records, out)


def _write_csv(records: Iterable[AuditRecord], out: TextIO) -> None:
    import csv

    from discharge.audit import COLUMNS
    from discharge.batch import neutralise

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for record in records:
        # Names and addresses come from schedules: never let a spreadsheet run one as a formula.
        writer.writerow([neutralise(str(v)) for v in record.as_dict().values()])


def _write_json(records: Iterable[AuditRecord], out: TextIO) -> None:
    import json

    out.write("[")
    empty = True
    for record in records:  # streamed: the log may hold years of records
        out.write("\n  " if empty else ",\n  ")
        out.write(json.dumps(record.as_dict(), ensure_ascii=False))
        empty = False
    out.write("]\n" if empty else "\n]\n")


def _write_table(records: Iterable[AuditRecord], out: TextIO) -> None:
    rows = [[_cell(get(r), width) for _, get, width in _TABLE] for r in records]
    if not rows:
        click.echo("no records", err=True)
        return
    # Columns empty in every row (no emails, no batches) are left out.
    keep = [i for i in range(len(_TABLE)) if any(row[i] for row in rows)]
    widths = {i: max(len(_TABLE[i][0]), *(len(row[i]) for row in rows)) for i in keep}
    lines = [[_TABLE[i][0] for i in keep], *([row[i] for i in keep] for row in rows)]
    for line in lines:
        cells = (cell.ljust(widths[i]) for i, cell in zip(keep, line, strict=True))
        out.write("  ".join(cells).rstrip() + "\n")


def _printed_on(record: AuditRecord) -> str:
    """'Ward3-Laser job 12' for a print record (its detail is JSON written by printing)."""
    if not record.action.startswith("print"):
        return ""
    import json

    try:
        detail = json.loads(record.detail)
    except ValueError:
        return ""
    if not isinstance(detail, dict):
        return ""
    printer, job = str(detail.get("printer", "")), str(detail.get("job", ""))
    return f"{printer} job {job.removeprefix(printer + '-')}" if job else printer


def _cell(text: str, width: int) -> str:
    text = " ".join(text.split())  # a line break in a name must not break the table
    return text if len(text) <= width else text[: width - 1] + "…"


def _day_start(text: str, config: Config, option: str, *, next_day: bool = False) -> datetime:
    from discharge.request import parse_date

    day: date = parse_date(text, option)
    if next_day:
        day += timedelta(days=1)
    return datetime.combine(day, time.min, tzinfo=config.clinic.tz)


def _file_sha256(path: Path) -> str:
    import hashlib
    import stat

    try:
        # A pipe or a device would never end (or block until something writes to it).
        if not stat.S_ISREG(path.stat().st_mode):
            raise InputError(
                f"{path} is not a regular file (a pipe, a device or a folder): give the PDF file"
            )
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def _via(record: AuditRecord) -> str:
    if not record.batch_row:
        return record.channel
    # A sheet `discharge listen` made: its row in the ready folder's manifest.
    return f"{'hl7' if record.channel == 'hl7' else 'batch'} row {record.batch_row}"
