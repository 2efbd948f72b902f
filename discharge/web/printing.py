"""The form's **Print** button: the sheet goes to the desk's printer, and the page says whether
it came out.

Shown only when the clinic's settings name a printer (``[print] printer``, checked when the
server starts). With several printers the nurse chooses one from the list; a printer the
settings do not name is never used, whatever the form sends. The page answers once the print
system reports the job completed, or says plainly why not (the sheet can still be made with
**Make PDF** and printed by hand).
"""

from __future__ import annotations

from dataclasses import dataclass

from discharge.audit import AuditRecord
from discharge.config import Config
from discharge.printing.settings import PrintSettings, load_print_settings


@dataclass(frozen=True)
class PrintOutcome:
    printed: bool
    message: str  # for the nurse


class FormPrint:
    def __init__(self, settings: PrintSettings) -> None:
        self.settings = settings

    @property
    def printers(self) -> tuple[str, ...]:
        return self.settings.printers

    def choose(self, asked: str) -> str | None:
        """The printer the nurse chose, if the settings name it; the default when none."""
        if not asked:
            return self.settings.default_printer
        return asked if asked in self.settings.printers else None

    def print_sheet(
        self, pdf: bytes, config: Config, sheet: AuditRecord, printer: str
    ) -> PrintOutcome:
        from discharge.channels.print import print_recorded
        from discharge.errors import PrintError
        from discharge.printing.jobs import job_title

        try:
            result = print_recorded(
                pdf, config, [sheet], printer=printer, copies=self.settings.copies,
                title=job_title(sheet.mrn), timeout=self.settings.timeout, channel="web",
            )  # fmt: skip
        except PrintError as exc:
            return PrintOutcome(False, f"Not printed: {exc}. Press Make PDF to print it by hand.")
        note = f" Note: {result.note}." if result.note else ""
        return PrintOutcome(
            True,
            f"Printed on {result.printer} (job {result.job}, {result.pages} pages): "
            f"collect it from the printer.{note}",
        )


def form_print(config: Config) -> FormPrint | None:
    """The desk's printing, or None when the settings name no printer."""
    settings = load_print_settings(config)
    return FormPrint(settings) if settings.printers else None
