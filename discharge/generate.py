"""The one code path from a request to PDF bytes, shared by `generate`, `batch` and `email`;
and to the same document as a web page or plain text (``render_as``)."""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from pathlib import Path

from discharge.audit import AuditLog, describe_pdf
from discharge.config import Config
from discharge.document import Document, build_document
from discharge.errors import OutputError
from discharge.output import write_atomic
from discharge.request import DischargeRequest


def make_pdf(request: DischargeRequest, config: Config) -> tuple[Document, bytes]:
    from discharge.pdf.render import render_pdf  # reportlab is heavy: import it only when drawing

    document = build_document(request, config)
    return document, render_pdf(document)


SUFFIXES = {"pdf": ".pdf", "html": ".html", "text": ".txt"}


def render_as(document: Document, fmt: str) -> bytes:
    """One document as "pdf", "html" or "text": the same model, so the same words and dates."""
    if fmt == "html":
        from discharge.render_html import render_html

        return render_html(document)
    if fmt == "text":
        from discharge.render_text import render_text

        return render_text(document)
    from discharge.pdf.render import render_pdf

    return render_pdf(document)


def generate_pdf(
    request: DischargeRequest,
    config: Config,
    output: Path,
    *,
    channel: str = "cli",
    force: bool = False,
    fmt: str = "pdf",
) -> Document:
    """Build, render and atomically write one patient's PDF (or, ``fmt``, its web page or
    plain text), and record it in the audit log (the digest of the file made).

    A file that cannot be recorded is removed again: nothing is handed out unrecorded. An
    existing file is replaced only if it is this patient's, or with ``force``.
    """
    if not force and fmt != "text":
        check_replace(output, request.patient.marker)
    audit = AuditLog.open(config)  # a broken [audit] setting stops us before any work
    if fmt == "pdf":
        document, pdf = make_pdf(request, config)
    else:
        document = build_document(request, config)
        pdf = render_as(document, fmt)
        if not force and fmt == "text":
            check_replace_text(output, pdf)
    write_atomic(output, pdf)
    with audit:
        audit.record_or_remove(describe_pdf(request, document, pdf, channel=channel), output)
    return document


# The marker pdf/furniture.py writes in the document information dictionary (Patient.marker), and
# render_html.py in the page's head.
_OWNER = re.compile(
    rb"/DischargePatient \(([0-9a-f]{32})\)"
    rb'|<meta name="discharge-patient" content="([0-9a-f]{32})">'
)
_READ_AT_MOST = 64 * 1024 * 1024  # far above any discharge PDF: a bigger file is not ours


def pdf_owner(path: Path) -> str | None:
    """The patient marker of the discharge PDF at ``path``, else None (no file, or a file this
    program did not make for a patient). Only a regular file is read."""
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _READ_AT_MOST:
            return None
        data = Path(path).read_bytes()
    except OSError:
        return None
    found = _OWNER.findall(data)
    return b"".join(found[-1]).decode("ascii") if found else None


def check_replace_text(output: Path, text: bytes) -> None:
    """:func:`check_replace` for plain text, which carries no marker: an existing file is this
    patient's if it ends with the same signature block (name, date of birth and hospital
    number, clinic, template)."""
    try:
        info = os.lstat(output)
        if not stat.S_ISREG(info.st_mode):
            return  # write_atomic refuses it with its own message
        with open(output, "rb") as handle:
            old = handle.read(_READ_AT_MOST)
    except OSError:
        return
    if _signature_block(old) is not None and _signature_block(old) == _signature_block(text):
        return
    raise OutputError(
        f"output {output} is not this patient's discharge text: it was not replaced (give "
        "another file name with -o, or add --force to replace it)"
    )


def _signature_block(text: bytes) -> bytes | None:
    head, found, tail = text.rpartition(b"\n-- \n")
    return tail if found else None


def check_replace(output: Path, marker: str) -> None:
    """Refuse to replace a file that is not this patient's PDF: a default file name, or a
    reused one, must never silently swap one patient's instructions for another's."""
    try:
        mode = os.lstat(output).st_mode
    except OSError:
        return  # no file (or one write_atomic will report on)
    if not stat.S_ISREG(mode):
        return  # a folder, link or pipe: write_atomic refuses it with its own message
    owner = pdf_owner(output)
    if owner == marker:
        return
    what = (
        "another patient's discharge PDF"
        if owner is not None
        else "a file that is not a discharge PDF for this patient"
    )
    raise OutputError(
        f"output {output} is {what}: it was not replaced (give another file name with -o, "
        "or add --force to replace it)"
    )


def default_output_name(request: DischargeRequest, suffix: str = ".pdf") -> str:
    """``discharge-hsg-2026-12-07-rx-104233.pdf``: one per patient, procedure and date.

    It carries the hospital number (else the date of birth) so two patients on the same day
    get two files, but never the name: a file name is seen by more people and programs (mail
    previews, print queues, backups) than the document.
    """
    patient = request.patient
    if patient.mrn:
        who = _file_safe(patient.mrn)
    elif patient.dob:
        who = "born-" + patient.dob.isoformat()
    else:
        who = ""
    parts = ["discharge", _file_safe(request.procedure), request.day.isoformat(), who]
    return "-".join(part for part in parts if part) + suffix


def _file_safe(text: str, limit: int = 40) -> str:
    """ASCII letters, digits and single hyphens: safe in any file system, whatever was typed."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")[:limit].strip("-")
