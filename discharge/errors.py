"""One exception root for the library, and the exit codes the command line maps them to.

Library code raises; only ``cli.py`` turns an error into a message and an exit code.
Messages are one line, name the problem and what was expected, and never echo clinical notes.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Exit codes of the ``discharge`` command (documented in the README)."""

    OK = 0
    ROWS_FAILED = 1  # batch: some rows failed, the others were produced
    USAGE = 2  # bad input, config or template: nothing was produced
    DELIVERY = 3  # email could not be sent, or a sheet not printed (the PDFs are kept)
    AUDIT = 4  # the audit record could not be written: the document was not handed out
    INTERRUPTED = 130  # Ctrl-C / SIGTERM
    INTERNAL = 70  # a bug: please report it (run with DISCHARGE_DEBUG=1 for the traceback)


class DischargeError(Exception):
    """Root of every error this package raises on purpose."""

    exit_status: ExitStatus = ExitStatus.USAGE


class InputError(DischargeError):
    """A value the user supplied (option, CSV cell, file) is not usable."""


class FieldErrors(InputError):
    """Every problem with one request's fields at once, for a form to show beside each field.

    ``problems`` maps the field (``parse_request``'s parameter name: procedure, date, time,
    patient, dob, mrn, clinician, notes, paper) to its message. As text it is still one line.
    """

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__("; ".join(self.problems.values()))

    def __reduce__(self) -> tuple[type[FieldErrors], tuple[dict[str, str]]]:
        return (FieldErrors, (self.problems,))  # crosses process boundaries whole


class ConfigError(DischargeError):
    """The clinic settings file is missing, unreadable or invalid."""


class TemplateError(DischargeError):
    """A procedure template is missing, unreadable or invalid."""


class UnknownProcedureError(InputError):
    """The procedure id does not match any template."""


class RenderError(DischargeError):
    """The document could not be laid out (for example a character no bundled font has)."""


class OutputError(DischargeError):
    """The output file or folder cannot be written."""


class DeliveryError(DischargeError):
    """An email could not be sent."""

    exit_status = ExitStatus.DELIVERY


class PrintError(DischargeError):
    """A sheet was not printed, or its printing was not confirmed (``discharge.printing``).

    ``job`` names the print job when one was queued; ``unknown`` is True when the sheet may
    still come out (the printer stopped, or the time ran out, while it was printing).
    """

    exit_status = ExitStatus.DELIVERY

    def __init__(self, message: str, *, job: str = "", unknown: bool = False) -> None:
        super().__init__(message)
        self.job = job
        self.unknown = unknown

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_print_error, (type(self), str(self), self.job, self.unknown))


def _rebuild_print_error(
    kind: type[PrintError], message: str, job: str, unknown: bool
) -> PrintError:
    return kind(message, job=job, unknown=unknown)


def reason(exc: BaseException) -> str:
    """A short reason for an operating-system failure: its strerror, its text, else its type."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
