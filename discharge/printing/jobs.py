"""Printing one PDF at the desk: sent to the ward's printer, and confirmed.

``print_pdf`` prints: PDF bytes, a printer, copies and a title in; a
``PrintResult`` out only once the print system reports the job *completed*; otherwise a
``PrintError`` that says why (unknown printer, printer stopped or refusing jobs, job cancelled
or aborted, job still waiting when ``timeout`` ran out). The audit records of each patient's
sheet on it, printed or not, are the print channel's (``discharge/channels/print.py``). The
print system is CUPS (``cups.py``).

Spooled copies: a job the program cancels is purged (``cancel -x``). A completed job's document
stays in the scheduler's private spool folder for as long as its ``PreserveJobFiles`` says
(CUPS's default is one day; ``PreserveJobFiles No`` in cupsd.conf removes it at once): CUPS
refuses to purge a single completed job on request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from discharge.audit import count_pages
from discharge.errors import PrintError
from discharge.printing import cups

TWO_SIDED = "two-sided-long-edge"
ONE_SIDED = "one-sided"

# printer-state-reasons (RFC 8011, PWG 5100.9) in a nurse's words; a suffix -error, -warning or
# -report is dropped first.
_REASONS = {
    "media-empty": "out of paper",
    "media-needed": "out of paper",
    "media-low": "paper is low",
    "media-jam": "paper jam",
    "toner-empty": "out of toner",
    "marker-supply-empty": "out of toner or ink",
    "cover-open": "a cover is open",
    "door-open": "a door is open",
    "input-tray-missing": "a paper tray is missing",
    "output-area-full": "the output tray is full",
    "offline": "the printer is offline",
    "connecting-to-device": "cannot reach the printer",
    "timed-out": "the printer does not answer",
    "paused": "stopped by an administrator",
    "shutdown": "the printer is switched off",
}


class PrinterStopped(PrintError):
    """The printer is stopped or refuses jobs: nothing was printed (or it stopped mid-job)."""


class PrintJobFailed(PrintError):
    """The job was cancelled or aborted: the sheet was not printed."""


class PrintTimeout(PrintError):
    """The job had not completed when the time ran out."""


@dataclass(frozen=True)
class PrintResult:
    printer: str
    job_id: int
    copies: int
    sides: str  # what was asked for: "two-sided-long-edge", "one-sided", or "" (the default)
    pages: int  # of the document (each copy prints them all)
    seconds: float
    note: str = ""  # e.g. that a two-sided job went out one-sided

    @property
    def job(self) -> str:
        return f"{self.printer}-{self.job_id}"


def job_title(mrn: str) -> str:
    """What the print queue shows: the hospital number, never the patient's name."""
    return f"discharge \N{EN DASH} {mrn}" if mrn else "discharge"


def print_pdf(
    pdf: bytes,
    *,
    printer: str,
    copies: int = 1,
    title: str = "discharge",
    two_sided: bool = False,
    timeout: float = 120.0,
    poll: float = 0.2,
) -> PrintResult:
    """Print ``pdf`` and wait until the print system says the job completed.

    Raises ``PrinterUnknown``, ``PrinterStopped``, ``PrintJobFailed`` or ``PrintTimeout`` (all
    ``PrintError``); their ``unknown`` is True when the sheet may still come out (the printer
    stopped while printing it), and ``job`` names the job when one was queued.
    """
    started = time.monotonic()
    state = cups.printer_state(printer)
    _check_ready(state)
    sides, note = "", ""
    if two_sided:
        if TWO_SIDED in state.sides_supported:
            sides = TWO_SIDED
        else:
            sides = ONE_SIDED
            note = f"printer {printer!r} cannot print two-sided: printed on one side"
    options = {"sides": sides} if sides else {}
    job_id = cups.submit_job(printer, pdf, title=title, copies=copies, options=options)
    job = f"{printer}-{job_id}"
    deadline = started + timeout
    while True:
        status = cups.job_state(job_id)
        if status.state == "completed":
            return PrintResult(
                printer, job_id, copies, sides, count_pages(pdf),
                time.monotonic() - started, note,
            )  # fmt: skip
        if status.state in ("canceled", "aborted"):
            said = f" ({_words(status.message)})" if status.message else ""
            what = "cancelled" if status.state == "canceled" else "stopped by the print system"
            raise _failed(PrintJobFailed, f"job {job} was {what}{said}: not printed", job)
        if status.state in ("pending", "pending-held"):
            state = cups.printer_state(printer)
            if state.state == "stopped" or not state.accepting:
                cups.cancel_job(job_id)
                raise _failed(PrinterStopped, f"{_problem(state)}: job {job} cancelled", job)
        elif status.state == "processing-stopped":
            state = cups.printer_state(printer)
            raise _failed(
                PrinterStopped,
                f"{_problem(state)} while printing job {job}: the sheet may print when the "
                "printer is fixed; check the printer before printing again",
                job,
                unknown=True,
            )
        if time.monotonic() >= deadline:
            return _timed_out(printer, job_id, status.state, timeout)
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        poll = min(poll * 1.5, 1.0)


def _timed_out(printer: str, job_id: int, state: str, timeout: float) -> PrintResult:
    job = f"{printer}-{job_id}"
    problem = _problem(cups.printer_state(printer))
    if state in ("pending", "pending-held") and cups.cancel_job(job_id):
        raise _failed(
            PrintTimeout,
            f"job {job} had not started after {timeout:g} s ({problem}): cancelled, "
            "nothing printed",
            job,
        )
    raise _failed(
        PrintTimeout,
        f"job {job} had not finished after {timeout:g} s ({problem}): it may still print; "
        "check the printer before printing again",
        job,
        unknown=True,
    )


def _failed(
    kind: type[PrintError], message: str, job: str = "", *, unknown: bool = False
) -> PrintError:
    return kind(message, job=job, unknown=unknown)


def _check_ready(state: cups.PrinterState) -> None:
    if state.state == "stopped" or not state.accepting:
        raise _failed(PrinterStopped, f"{_problem(state)}: nothing was printed")


def _problem(state: cups.PrinterState) -> str:
    """'printer 'Ward3-Laser' is stopped (out of paper)', in words a nurse can act on."""
    words = [_REASONS.get(_plain(r), "") for r in state.reasons]
    words = [w for w in dict.fromkeys(words) if w]
    if state.message:
        words.append(_words(state.message))
    said = f" ({'; '.join(words)})" if words else ""
    if state.state == "stopped":
        return f"printer {state.name!r} is stopped{said}"
    if not state.accepting:
        return f"printer {state.name!r} is not accepting jobs{said}"
    return f"printer {state.name!r} is {state.state}{said}"


def _plain(reason: str) -> str:
    for suffix in ("-error", "-warning", "-report"):
        reason = reason.removesuffix(suffix)
    return reason


def _words(text: str) -> str:
    return " ".join(text.split())[:200]
