"""One print-ready PDF of a run: every patient's document, each starting on a new sheet."""

from __future__ import annotations

import os
import re
from pathlib import Path

from discharge.batch.manifest import MANIFEST_NAME, OK, SKIPPED, read_manifest
from discharge.errors import OutputError
from discharge.output import open_atomic

_PDF_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*\.pdf$")


def check_combined_path(
    out_dir: str | os.PathLike[str], destination: str | os.PathLike[str]
) -> None:
    """Refuse a print file that would replace the run's own records (the manifest, its journals,
    the folder's salt) or a patient's PDF: a rerun would then lose what was made and sent."""
    out = Path(out_dir).resolve()
    target = Path(destination).resolve()
    if target.parent != out:
        return
    name = target.name
    if name == MANIFEST_NAME or name.startswith(f".{MANIFEST_NAME}"):
        raise OutputError(
            f"--combined {destination} would replace the batch's manifest or its journal; "
            "write the print file somewhere else (for example DIR/print-all.pdf)"
        )
    if _PDF_NAME.match(name) and any(e.file == name for e in read_manifest(out)):
        raise OutputError(
            f"--combined {destination} would replace a patient's PDF; write the print file "
            "somewhere else (for example DIR/print-all.pdf)"
        )


def combine_pdfs(
    out_dir: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    every_row: bool = False,
) -> int:
    """One PDF of the rows made in the last run (with ``every_row``: also those a rerun found
    done and skipped), in row order; return its page count. A rerun that makes two corrected
    rows prints those two, not the whole day again.

    Each patient starts on the front of a new sheet: a document with an odd number of pages is
    followed by a blank page, so double-sided printing never puts two patients on one sheet.
    """
    from pypdf import PdfReader, PdfWriter
    from pypdf.errors import PyPdfError

    out = Path(out_dir)
    writer = PdfWriter()
    for entry in read_manifest(out):
        # Only names this module makes: a hand-edited manifest cannot point outside the folder.
        wanted = (OK, SKIPPED) if every_row else (OK,)
        if entry.status not in wanted or not _PDF_NAME.match(entry.file):
            continue
        try:
            reader = PdfReader(out / entry.file)
            pages = len(reader.pages)
            for page in reader.pages:
                writer.add_page(page)
        except (OSError, PyPdfError) as exc:
            raise OutputError(
                f"cannot add {entry.file} (row {entry.row}) to the combined PDF: {exc}"
            ) from None
        if pages % 2:
            last = reader.pages[-1].mediabox
            writer.add_blank_page(width=last.width, height=last.height)
    if not writer.pages:
        return 0
    writer.add_metadata({"/Title": "Discharge instructions", "/Creator": "discharge"})
    with open_atomic(Path(destination)) as handle:
        writer.write(handle)
    return len(writer.pages)


def made_files(out_dir: str | os.PathLike[str]) -> list[str]:
    """The PDFs the last run made (not those it found done), in row order."""
    return [e.file for e in read_manifest(Path(out_dir)) if e.status == OK and e.file]
