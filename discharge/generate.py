"""The one code path from a request to PDF bytes, shared by `generate`, `batch` and `email`;
and to the same document as a web page or plain text (``render_as``)."""

from __future__ import annotations

from pathlib import Path

from discharge.audit import AuditLog, describe_pdf
from discharge.config import Config
from discharge.document import Document, build_document
from discharge.output import write_atomic
from discharge.request import DischargeRequest


def make_pdf(request: DischargeRequest, config: Config) -> tuple[Document, bytes]:
    from discharge.render import render_pdf  # reportlab is heavy: import it only when drawing

    document = build_document(request, config)
    return document, render_pdf(document)


FORMATS = ("pdf", "html", "text")
SUFFIXES = {"pdf": ".pdf", "html": ".html", "text": ".txt"}


def render_as(document: Document, fmt: str) -> bytes:
    """One document in one of ``FORMATS``: the same model, so the same words and dates."""
    if fmt == "html":
        from discharge.render_html import render_html

        return render_html(document)
    if fmt == "text":
        from discharge.render_text import render_text

        return render_text(document)
    from discharge.render import render_pdf

    return render_pdf(document)


def generate_pdf(
    request: DischargeRequest,
    config: Config,
    output: Path,
    *,
    channel: str = "cli",
    fmt: str = "pdf",
) -> Document:
    """Build, render and atomically write one patient's PDF (or, ``fmt``, its web page or
    plain text), and record it in the audit log (the digest of the file made).

    A file that cannot be recorded is removed again: nothing is handed out unrecorded.
    """
    audit = AuditLog.open(config)  # a broken [audit] setting stops us before any work
    if fmt == "pdf":
        document, pdf = make_pdf(request, config)
    else:
        document = build_document(request, config)
        pdf = render_as(document, fmt)
    write_atomic(output, pdf)
    with audit:
        audit.record_or_remove(describe_pdf(request, document, pdf, channel=channel), output)
    return document
