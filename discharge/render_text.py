"""Lay a Document out as plain text: the same content in reading order, for the records that
take only text and for an email's plain-text part. Only layout lives here: every word comes
from the model, dates as printed on the sheet.

Template wording is wrapped at 76 characters (never inside a word or an address); the
clinician's notes keep their lines exactly as written.
"""

from __future__ import annotations

import textwrap

from discharge.document import Block, Document, HelpLevel

WIDTH = 76


def render_text(document: Document) -> bytes:
    """The document as UTF-8 plain text (deterministic: same document, same bytes)."""
    return ("\n".join(_lines(document)).rstrip("\n") + "\n").encode("utf-8")


def _wrap(text: str, indent: str = "", first: str | None = None) -> list[str]:
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first or indent]


def _heading(text: str, rule: str = "-") -> list[str]:
    return ["", text, rule * min(len(text), WIDTH)]


def _blocks(blocks: tuple[Block, ...], bullet: str) -> list[str]:
    out: list[str] = []
    for block in blocks:
        out.append("")
        if block.kind == "para":
            out += _wrap(block.items[0])
        else:
            for item in block.items:
                out += _wrap(item, "  ", f"{bullet} ")
    return out


def _level(level: HelpLevel, bullet: str) -> list[str]:
    out = [""] + _wrap(level.heading)
    if level.intro:
        out += _wrap(level.intro)
    out += [line for sign in level.signs for line in _wrap(sign, "  ", f"{bullet} ")]
    out += [f"{contact.who}: {contact.number}" for contact in level.contacts]
    return out


def _lines(doc: Document) -> list[str]:
    labels = doc.labels
    bullet = labels.bullet
    # Unapproved wording: said first, as at the top of every printed page.
    out = [doc.draft, "!" * min(len(doc.draft), WIDTH), ""] if doc.draft else []
    out.append(doc.letterhead.name)
    if doc.letterhead.address:
        out.append(", ".join(doc.letterhead.address))
    out += list(doc.header_contacts)
    out += _heading(doc.title, "=")
    if doc.subtitle:
        out += _wrap(doc.subtitle)
    out.append("")
    out += [f"{label}: {value}" for label, value in doc.patient_rows]

    out += _blocks(doc.intro, bullet)  # the sheet's order: its introduction first
    out += _heading(labels.timeline)
    for row in doc.timeline:
        out.append("")
        out += list(row.when)
        out += [line for label in row.labels for line in _wrap(label, "    ", f"  {bullet} ")]

    out += _heading(doc.help_heading, "=")
    out += _level(doc.help_urgent, bullet)
    out += _level(doc.help_clinic, bullet)
    out.append("=" * min(len(doc.help_heading), WIDTH))

    if doc.follow_up is not None:
        out += _heading(labels.next_appointment)
        out += ["", f"{labels.timeline_when}: {doc.follow_up.when}"]
        if doc.follow_up.place:
            out.append(f"{labels.where}: {doc.follow_up.place}")
    if doc.medicines:
        out += _heading(labels.medicines)
        for m in doc.medicines:
            out += ["", m.name]
            cells = ((labels.medicine_how, m.how), (labels.medicine_how_long, m.how_long))
            out += [f"  {label}: {value}" for label, value in cells if value]
    for section in doc.sections:
        out += _heading(section.heading)
        out += _blocks(section.blocks, bullet)
    if doc.support:
        out += _heading(labels.support)
        for item in doc.support:
            out.append("")
            out += _wrap(f"{item.name} {item.note}" if item.note else item.name)
            out += [value for value in (item.phone, item.url) if value]
    if doc.notes:
        out += _heading(labels.notes)
        out.append("")
        out += doc.notes.split("\n")
    if doc.teach_back:
        teach = doc.teach_back
        out += _heading(teach.heading)
        if teach.intro:
            out += ["", *_wrap(teach.intro)]
        out.append("")
        out += [line for q in teach.questions for line in _wrap(q, "    ", "[ ] ")]
    out += _heading(labels.before_you_go)
    out += ["", *_wrap(labels.statement), ""]
    out += [f"{label}: ____________________" for label in labels.signatures]
    out.append("")
    out += _wrap(doc.sources)
    footer = doc.footer
    out += ["", "-- ", footer.patient_name]
    if footer.ids:
        out.append(footer.ids)
    out += [footer.clinic_line, footer.template]
    return out
