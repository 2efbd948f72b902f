"""`discharge batch`: options and reporting only; the work is in ``discharge.batch``."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import click

from discharge import cli as _cli
from discharge.cli_email import batch_email_options
from discharge.errors import ExitStatus

# cli.py imports this module at its end: in that cycle mypy cannot infer the option's type.
config_option: Callable[[Callable[..., Any]], Callable[..., Any]] = _cli.config_option  # type: ignore[has-type, unused-ignore]


@click.command()
@click.argument("schedule", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Folder for the PDFs and manifest.csv (created if missing).")  # fmt: skip
@click.option("--jobs", "-j", type=click.IntRange(min=1), metavar="N",
              help="Documents made at once. Default: the number of CPU cores.")  # fmt: skip
@click.option("--force", is_flag=True, help="Make every PDF again, even rows already done.")
@click.option("--combined", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="Also write one print-ready PDF of the whole run; each patient starts on "
                   "a new sheet when printed double-sided.")  # fmt: skip
@config_option
@click.option("--check", is_flag=True, help="Only check the schedule and report bad rows.")
@click.option("--date-order", type=click.Choice(["dmy", "mdy"], case_sensitive=False),
              help="How to read dates like 21/11/2026. Default: the clinic config; "
                   "without one such dates are errors.")  # fmt: skip
@batch_email_options
def batch(
    schedule: Path,
    out_dir: Path | None,
    jobs: int | None,
    force: bool,
    combined: Path | None,
    config_path: Path | None,
    check: bool,
    date_order: str | None,
    email_rows: bool,
    resend: bool,
) -> None:
    """Make the discharge instructions for every row of a CSV schedule.

    Columns: patient_name, procedure, date (required); time, dob, mrn, clinician, notes,
    email, paper, variant. Each row's outcome is recorded in DIR/manifest.csv; running the same
    command again skips the rows already done and makes the rest.

    Exit status: 0 every row done, 1 some rows failed (the others were made), 2 the run could
    not start, 3 with --email: an email was not sent (the PDFs are kept), 130 interrupted.
    """
    from discharge.batch import check_schedule, combine_pdfs, open_schedule, run_batch
    from discharge.cli_email import prepare_batch_email, send_batch_email
    from discharge.config import load_config

    if check and combined:
        raise click.UsageError("--combined makes a PDF; it cannot be used with --check")
    if not check and out_dir is None:
        raise click.UsageError("--out-dir DIR is required: the folder for the PDFs")
    config = load_config(config_path)
    emailer = prepare_batch_email(config, email_rows, resend)
    opened = open_schedule(schedule)
    for column in opened.unknown_columns:
        click.echo(f"warning: column {column!r} is not used (not a known column)", err=True)
    reporter = TerminalReporter(progress=sys.stderr.isatty())
    order = date_order.lower() if date_order else None

    if check:
        result = check_schedule(opened, config, date_order=order, reporter=reporter)
        click.echo(f"check: {result.valid} ok / {result.errors} error (nothing written)")
        sys.exit(ExitStatus.ROWS_FAILED if result.errors else ExitStatus.OK)

    assert out_dir is not None
    with _sigterm_as_interrupt():
        summary = run_batch(
            opened, config, out_dir, jobs=jobs, force=force, date_order=order, reporter=reporter
        )
        reporter.clear()
        counts = f"{summary.ok} ok / {summary.errors} error / {summary.skipped} skipped"
        if summary.interrupted:
            click.echo(
                f"batch: interrupted: {counts} in {summary.seconds:.1f} s; "
                "run the same command again to finish"
            )
            sys.exit(ExitStatus.INTERRUPTED)
        click.echo(f"batch: {counts} in {summary.seconds:.1f} s")
        if combined is not None:
            pages = combine_pdfs(out_dir, combined)
            click.echo(f"Wrote {combined} ({pages} pages)" if pages else "No PDFs to combine")
    if emailer is not None and send_batch_email(emailer, opened, config, out_dir, order):
        click.echo(f"see {summary.manifest} for every row's outcome", err=True)
        sys.exit(ExitStatus.DELIVERY)
    if summary.errors:
        click.echo(f"see {summary.manifest} for every row's outcome", err=True)
        sys.exit(ExitStatus.ROWS_FAILED)


class TerminalReporter:
    """Row errors as ``row N: message``; a progress line only when stderr is a terminal."""

    def __init__(self, *, progress: bool) -> None:
        self.progress = progress
        self.total = 0
        self.done = 0
        self.began = time.monotonic()
        self.drawn = 0.0
        self.width = 0

    def row_error(self, row: int, message: str) -> None:
        self.clear()
        click.echo(f"row {row}: {message}", err=True)

    def started(self, rows: int) -> None:
        self.total, self.done, self.began = rows, 0, time.monotonic()

    def row_done(self, entry: Mapping[str, str]) -> None:
        self.done += 1
        now = time.monotonic()
        if self.progress and (now - self.drawn >= 0.2 or self.done == self.total):
            self.drawn = now
            self._draw(now - self.began)

    def _draw(self, elapsed: float) -> None:
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate else 0.0
        line = (
            f"{self.done}/{self.total} rows  {rate:.0f}/s  "
            f"{int(left // 60)}:{int(left % 60):02d} left"
        )
        click.echo("\r" + line.ljust(self.width), err=True, nl=False)
        self.width = len(line)

    def clear(self) -> None:
        if self.width:
            click.echo("\r" + " " * self.width + "\r", err=True, nl=False)
            self.width = 0


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (a service stop, `kill`) like Ctrl-C: stop cleanly and keep the manifest."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
