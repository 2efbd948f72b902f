"""`discharge batch`: options and reporting only; the work is in ``discharge.batch``."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from discharge.errors import ExitStatus
from discharge.options import (
    config_option,
    debug_requested,
    load_clinic_config,
    print_choice,
    print_options,
    report_printed,
    warn_drafts,
    warn_if_demo,
)

if TYPE_CHECKING:
    from discharge.batch import DateOrders, ManifestRow, Schedule
    from discharge.batch_email import BatchEmail, Resend
    from discharge.config import Config
    from discharge.options import PrintChoice


@click.command()
@click.argument("schedule", type=click.Path(dir_okay=False, path_type=Path, allow_dash=True))
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Folder for the PDFs and manifest.csv (created if missing).  "
                   "[required unless --check]")  # fmt: skip
@click.option("--jobs", "-j", type=click.IntRange(min=1), metavar="N",
              help="Documents made at once. Default: the number of CPU cores.")  # fmt: skip
@click.option("--force", is_flag=True, help="Make every PDF again, even rows already done.")
@click.option("--combined", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="Also write one print-ready PDF of the whole run; each patient starts on "
                   "a new sheet when printed double-sided. It holds the rows this run made; "
                   "a rerun's, only the rows made again.")  # fmt: skip
@click.option("--combined-all", is_flag=True,
              help="With --combined: every row's PDF, also those done before.")  # fmt: skip
@click.option("--print", "to_printer", is_flag=True,
              help="Print the combined PDF (--combined, default DIR/print-all.pdf) "
                   "two-sided where the printer can, and wait until it has printed "
                   "(exit 3 if not).")  # fmt: skip
@print_options
@config_option
@click.option("--check", is_flag=True, help="Only check the schedule and report bad rows.")
@click.option("--date-order", type=click.Choice(["dmy", "mdy"], case_sensitive=False),
              help="How to read dates like 03/04/2026. Default: the clinic config; without "
                   "one, a date that could be either is an error.")  # fmt: skip
@click.option("--email", "email_rows", is_flag=True,
              help="Also email each row's PDF to the row's email column ([smtp] and [email] "
                   "settings); a rerun emails only the rows not sent yet.")  # fmt: skip
@click.option("--resend", metavar="PATIENTS", is_flag=False, flag_value="all", default=None,
              help="With --email: email these patients again although they were sent, or "
                   "their sending is unknown: hospital numbers or keys from manifest.csv, "
                   "comma-separated (not row numbers); --resend alone: every row.")  # fmt: skip
@click.option("--resend-changed", is_flag=True,
              help="With --email: send the new version to patients who were emailed an "
                   "earlier version (a template or clinic setting changed).")  # fmt: skip
@click.option("--formats", "formats_text", metavar="LIST", default="pdf", show_default=True,
              help="What each row makes: pdf, and beside it html (an accessible web page) "
                   "and/or text, e.g. --formats pdf,html,text.")  # fmt: skip
def batch(
    schedule: Path,
    out_dir: Path | None,
    jobs: int | None,
    force: bool,
    combined: Path | None,
    combined_all: bool,
    config_path: Path | None,
    check: bool,
    date_order: str | None,
    email_rows: bool,
    resend: str | None,
    resend_changed: bool,
    to_printer: bool = False,
    printer: str | None = None,
    copies: int | None = None,
    formats_text: str = "pdf",
) -> None:
    """Make the discharge instructions for every row of a CSV schedule.

    Columns: patient_name, procedure, date (required); variant, time, dob, mrn, clinician,
    follow_up, follow_up_place, medicines, notes, paper, language, large_print, email. Each
    row's outcome is recorded in DIR/manifest.csv; running the same
    command again skips the rows already done and makes the rest.

    Exit status: 0 every row done, 1 some rows failed (the others were made), 2 the run could
    not start, 3 with --email: an email was not sent, or with --print: not printed (the PDFs are
    kept), 130 interrupted.
    """
    from discharge.batch import (
        check_combined_path,
        check_schedule,
        combine_pdfs,
        made_files,
        open_schedule,
        run_batch,
    )
    from discharge.batch_email import prepare_batch_email

    if combined_all and combined is None and not to_printer:
        raise click.UsageError("--combined-all goes with --combined PATH")
    if check and combined:
        raise click.UsageError("--combined makes a PDF; it cannot be used with --check")
    if not check and out_dir is None:
        raise click.UsageError("--out-dir DIR is required: the folder for the PDFs")
    if (resend is not None or resend_changed) and not email_rows:
        raise click.UsageError("--resend and --resend-changed go with --email")
    if to_printer and check:
        raise click.UsageError("--print prints the PDFs made; it cannot be used with --check")
    if not to_printer and (printer is not None or copies is not None):
        raise click.UsageError("--printer and --copies go with --print")
    formats = _formats(formats_text)
    config = load_clinic_config(config_path)
    choice = print_choice(config, printer, copies) if to_printer else None
    if choice is not None and combined is None and out_dir is not None:
        combined = out_dir / "print-all.pdf"
    emailer = prepare_batch_email(config, _resend(resend, resend_changed)) if email_rows else None
    if combined is not None and out_dir is not None:
        check_combined_path(out_dir, combined)
    opened = open_schedule(_spool_stdin() if str(schedule) == "-" else schedule)
    for column in opened.unknown_columns:
        click.echo(f"warning: column {column!r} is not used (not a known column)", err=True)
    reporter = TerminalReporter(progress=sys.stderr.isatty())
    order = date_order.lower() if date_order else None

    if check:
        result = check_schedule(opened, config, date_order=order, reporter=reporter)
        click.echo(f"check: {result.valid} ok / {result.errors} error (nothing written)")
        sys.exit(ExitStatus.ROWS_FAILED if result.errors else ExitStatus.OK)

    assert out_dir is not None
    not_printed = False
    with _sigterm_as_interrupt():
        summary = run_batch(
            opened, config, out_dir, jobs=jobs, force=force, date_order=order, reporter=reporter,
            debug=debug_requested(), formats=formats,
        )  # fmt: skip
        reporter.clear()
        counts = f"{summary.ok} ok / {summary.errors} error / {summary.skipped} skipped"
        if summary.duplicates:
            counts += f" / {summary.duplicates} repeated"
        if summary.interrupted:
            click.echo(
                f"batch: interrupted: {counts} in {summary.seconds:.1f} s; "
                "run the same command again to finish"
            )
            sys.exit(ExitStatus.INTERRUPTED)
        click.echo(f"batch: {counts} in {summary.seconds:.1f} s")
        _list_made(out_dir, made_files(out_dir) if summary.ok else [])
        if summary.ok:
            warn_drafts(config)
            warn_if_demo(config)
        if combined is not None:
            pages = combine_pdfs(out_dir, combined, every_row=combined_all)
            if pages:
                click.echo(f"Wrote {combined} ({pages} pages)")
            elif summary.skipped and not combined_all:
                click.echo("No new PDFs to combine (add --combined-all for every row's PDF)")
            else:
                click.echo("No PDFs to combine")
            if choice is not None and pages:
                not_printed = not _print_combined(combined, out_dir, config, choice, combined_all)
    if emailer is not None and _send_batch_email(emailer, opened, config, out_dir, order):
        click.echo(f"see {summary.manifest} for every row's outcome", err=True)
        sys.exit(ExitStatus.DELIVERY)
    if not_printed:
        sys.exit(ExitStatus.DELIVERY)
    if summary.errors:
        click.echo(f"see {summary.manifest} for every row's outcome", err=True)
        sys.exit(ExitStatus.ROWS_FAILED)


def _formats(text: str) -> tuple[str, ...]:
    chosen: list[str] = []
    for item in text.split(","):
        name = item.strip().lower()
        if name not in ("pdf", "html", "text"):
            raise click.BadParameter(
                f"{item.strip()!r} is not a format: expected pdf, html or text, such as pdf,html",
                param_hint="--formats",
            )
        if name not in chosen:
            chosen.append(name)
    if "pdf" not in chosen:
        raise click.BadParameter(
            "a batch always makes the PDFs (its manifest records them): add pdf, such as pdf,html",
            param_hint="--formats",
        )
    return tuple(chosen)


def row_numbers(rows: list[int]) -> str:
    """``rows 2-5, 9``: the rows (in order) as a spreadsheet user reads them."""
    spans: list[list[int]] = []
    for row in rows:
        if spans and row == spans[-1][1] + 1:
            spans[-1][1] = row
        else:
            spans.append([row, row])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
    return f"row {text}" if len(rows) == 1 else f"rows {text}"


SHOWN_FILES = 20  # new PDFs listed by name after a run; more are counted


def _list_made(out_dir: Path, files: list[str]) -> None:
    """Name the PDFs this run made, so a rerun's few new files are easy to find."""
    for name in files[:SHOWN_FILES]:
        click.echo(f"made {out_dir / name}")
    if len(files) > SHOWN_FILES:
        more = len(files) - SHOWN_FILES
        click.echo(f"made {more} more: the rows with status ok in {out_dir / 'manifest.csv'}")


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

    def row_warning(self, row: int, message: str) -> None:
        self.clear()
        click.echo(f"warning: {message}", err=True)

    def dates_need_order(self, rows: list[int], dates: DateOrders) -> None:
        from discharge.batch import date_order_note

        def fix(order: str | None) -> str:
            if order is None:
                return (
                    "add --date-order dmy or --date-order mdy, or date_order in the clinic config"
                )
            return f"add --date-order {order} or date_order in the clinic config"

        self.clear()
        click.echo(f"{row_numbers(rows)}: {date_order_note(dates, fix)}", err=True)

    def started(self, rows: int) -> None:
        self.total, self.done, self.began = rows, 0, time.monotonic()

    def row_done(self, entry: ManifestRow) -> None:
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


def _send_batch_email(
    step: BatchEmail, schedule: Schedule, config: Config, out_dir: Path, date_order: str | None
) -> bool:
    """Email the made PDFs; report; return True if any row's email failed."""
    from discharge.batch_email import email_batch

    with step.mailer:
        summary = email_batch(
            schedule, config, out_dir, step.mailer, step.settings, resend=step.resend,
            date_order=date_order, reporter=_EmailReporter(),
        )  # fmt: skip
    unknown = f" / {summary.unknown} unknown" if summary.unknown else ""
    changed = f" / {summary.changed} earlier version sent" if summary.changed else ""
    click.echo(
        f"email: {summary.sent} sent / {summary.failed} failed{unknown} / "
        f"{summary.no_address} no address / {summary.already_sent} already sent{changed}"
    )
    if summary.changed:
        patients = "1 patient was" if summary.changed == 1 else f"{summary.changed} patients were"
        click.echo(
            f"{patients} already emailed an earlier version: use --resend-changed to send "
            "the new one",
            err=True,
        )
    return summary.failed > 0 or summary.unknown > 0


class _EmailReporter:
    def email_sent(self, row: int, address: str) -> None:
        pass

    def email_failed(self, row: int, address: str, message: str) -> None:
        click.echo(f"row {row}: email to {address} not sent: {message}", err=True)

    def email_unknown(self, row: int, key: str, address: str, message: str) -> None:
        click.echo(
            f"row {row}: email to {address} may have been sent; rerun with --resend {key} to "
            f"send again ({message})",
            err=True,
        )


def _spool_stdin() -> Path:
    """``-``: standard input, kept in a private temporary file (the schedule is read twice)."""
    import shutil
    import tempfile

    folder = tempfile.TemporaryDirectory(prefix="discharge-schedule-")
    click.get_current_context().call_on_close(folder.cleanup)
    path = Path(folder.name) / "schedule.csv"
    with path.open("wb") as handle:
        shutil.copyfileobj(sys.stdin.buffer, handle)
    return path


def _resend(value: str | None, changed: bool) -> Resend:
    """``--resend`` alone: every row; ``--resend RX-1,3f9a...``: those patients, by hospital
    number or manifest key (checked against the schedule before anything is sent)."""
    from discharge.batch_email import Resend

    if value is None:
        return Resend(changed=changed)
    if value.strip().lower() == "all":
        return Resend(every=True, changed=changed)
    patients = frozenset(part.strip() for part in value.split(",") if part.strip())
    if not patients:
        raise click.BadParameter(
            "expected hospital numbers or keys from manifest.csv, such as RX-104233 "
            "(or --resend alone for every row)",
            param_hint="--resend",
        )
    return Resend(patients=patients, changed=changed)


def _print_combined(
    combined: Path, out_dir: Path, config: Config, choice: PrintChoice, every_row: bool
) -> bool:
    """Print the run's combined PDF two-sided, each patient's sheet in it recorded (the rows
    ``combine_pdfs`` puts in it); True if printed."""
    from discharge.audit import AuditLog, AuditRecord
    from discharge.batch import OK, SKIPPED, read_manifest
    from discharge.channels.print import print_recorded
    from discharge.errors import PrintError
    from discharge.printing.jobs import job_title

    sheets: list[AuditRecord] = []
    wanted = (OK, SKIPPED) if every_row else (OK,)
    with AuditLog.open(config) as audit:
        for entry in read_manifest(out_dir):
            if entry.status in wanted and entry.file and entry.sha256:
                made = [r for r in audit.query(pdf_sha256=entry.sha256) if r.action == "made"]
                sheets.extend(made[-1:])
    title = job_title(f"batch of {len(sheets)}")
    try:
        result = print_recorded(
            combined.read_bytes(), config, sheets, printer=choice.printer, copies=choice.copies,
            title=title, two_sided=True, timeout=choice.timeout, channel="batch",
            file=combined.name,
        )  # fmt: skip
    except PrintError as exc:
        click.echo(f"discharge: error: {exc} (the PDFs are kept: {combined})", err=True)
        return False
    report_printed(result)
    return True
