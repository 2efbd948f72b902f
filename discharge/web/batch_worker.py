"""One uploaded schedule, run by ``discharge.batch`` in its own process.

``discharge serve`` starts this as a separate program (``python -m discharge.web.batch_worker
JOB_DIR CONFIG SHOWN_AS DATE_ORDER USER``; USER: the nurse, for the audit log), so a long schedule
never holds up the form, and the batch's own process pool is forked from a process without
web-server threads. It runs at a lower priority than the form. Progress and the outcome go to
small JSON files in the job's private folder, which the web page reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from discharge.batch import DateOrders, ManifestRow

SCHEDULE = "schedule.csv"
OUT = "out"
COMBINED = "all.pdf"
PROGRESS = "progress.json"
RESULT = "result.json"


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


# The batch page's "Date order" choice: its values, as passed to the worker, and its labels.
DATE_ORDER_CHOICES = {"ymd": "Year-month-day", "dmy": "Day/month/year", "mdy": "Month/day/year"}


def _choose_date_order(order: str | None) -> str:
    if order is None:
        return (
            f'choose "{DATE_ORDER_CHOICES["dmy"]}" or "{DATE_ORDER_CHOICES["mdy"]}" as the '
            "Date order and upload the schedule again"
        )
    return f'choose "{DATE_ORDER_CHOICES[order]}" as the Date order and upload the schedule again'


class FileReporter:
    """The CLI's ``row N: ...`` messages and the progress, written for the web page."""

    def __init__(self, job: Path, shown_as: str) -> None:
        self.job = job
        self.shown_as = shown_as
        self.total = 0
        self.done = 0
        self.messages: dict[int, str] = {}
        self.date_note = ""
        self.written = 0.0

    def clean(self, message: str) -> str:
        # Messages name the schedule by its path: show the nurse's file name, not the server's.
        return message.replace(str(self.job / SCHEDULE), self.shown_as)

    def row_error(self, row: int, message: str) -> None:
        self.messages[row] = self.clean(message)

    def row_warning(self, row: int, message: str) -> None:
        # "row 19 repeats row 18": shown beside the row, unless the row also has an error.
        self.messages.setdefault(row, "warning: " + self.clean(message))

    def dates_need_order(self, rows: list[int], dates: DateOrders) -> None:
        # Once, above the rows, naming the page's own choice (it has no --date-order).
        from discharge.batch import date_order_note

        self.date_note = date_order_note(dates, _choose_date_order)

    def started(self, rows: int) -> None:
        self.total = rows
        self.write()

    def row_done(self, entry: ManifestRow) -> None:
        self.done += 1
        if time.monotonic() - self.written > 0.25:
            self.write()

    def write(self) -> None:
        self.written = time.monotonic()
        write_json(self.job / PROGRESS, {"done": self.done, "total": self.total})


def run(
    job: Path, config_path: str | None, shown_as: str, date_order: str | None = None
) -> dict[str, Any]:
    from discharge.batch import (
        OK,
        SKIPPED,
        ScheduleRow,
        combine_pdfs,
        open_schedule,
        read_manifest,
        read_rows,
        run_batch,
    )
    from discharge.config import load_config
    from discharge.errors import DischargeError

    reporter = FileReporter(job, shown_as)
    try:
        config = load_config(config_path)
        schedule = open_schedule(job / SCHEDULE)
        jobs = max(1, (os.cpu_count() or 1) - 1)  # leave a core for the form
        summary = run_batch(
            schedule, config, job / OUT, jobs=jobs, date_order=date_order, reporter=reporter
        )
        pages = combine_pdfs(job / OUT, job / COMBINED)
        names = {
            item.row: (item.request.patient.name, item.request.procedure, item.request.day)
            for item in read_rows(schedule, config, date_order)
            if isinstance(item, ScheduleRow)
        }
    except DischargeError as exc:
        return {"state": "failed", "message": reporter.clean(str(exc))}
    rows = []
    for entry in read_manifest(job / OUT):
        row = entry.row
        name, procedure, day = names.get(row, ("", entry.procedure, None))
        rows.append(
            {
                "row": row,
                "status": entry.status,
                "file": entry.file if entry.status in (OK, SKIPPED) else "",
                "patient": name,
                "procedure": procedure,
                "date": day.isoformat() if day else entry.date,
                "message": reporter.messages.get(row, reporter.clean(entry.error)),
            }
        )
    return {
        "state": "done",
        "ok": summary.ok,
        "errors": summary.errors,
        "seconds": round(summary.seconds, 1),
        "pages": pages,
        "date_note": reporter.date_note,
        "rows": rows,
    }


def main(argv: list[str]) -> int:
    job = Path(argv[0])
    config_path = argv[1] or None
    shown_as = argv[2] if len(argv) > 2 else SCHEDULE
    date_order = argv[3] if len(argv) > 3 and argv[3] in DATE_ORDER_CHOICES else None
    user = argv[4] if len(argv) > 4 else ""  # the nurse who uploaded it, for the audit log
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)  # the form's requests come first
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    from discharge.batch.lifeline import die_with_parent

    die_with_parent()  # `discharge serve` killed outright: this schedule stops too
    from discharge.audit import acting_as

    try:
        with acting_as(user):  # "" (no user given): the OS account, as without it
            result = run(job, config_path, shown_as, date_order)
    except Exception as exc:  # a bug: say so on the page, never with the patient data
        result = {"state": "failed", "message": f"internal error ({type(exc).__name__})"}
    write_json(job / RESULT, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
