"""The one code path from a request to PDF bytes, shared by `generate`, `batch` and `email`."""

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


def generate_pdf(
    request: DischargeRequest, config: Config, output: Path, *, channel: str = "cli"
) -> Document:
    """Build, render and atomically write one patient's PDF, and record it in the audit log.

    A PDF that cannot be recorded is removed again: nothing is handed out unrecorded.
    """
    audit = AuditLog.open(config)  # a broken [audit] setting stops us before any work
    document, pdf = make_pdf(request, config)
    write_atomic(output, pdf)
    with audit:
        audit.record_or_remove(describe_pdf(request, document, pdf, channel=channel), output)
    return document
