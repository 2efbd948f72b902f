"""Lay a Document out as PDF bytes. Only layout lives here: every word comes from the model.

The story's order and each part's table and style are here; the flowables it is made of are in
``flowables.py``, what every page carries (footer, "continued" headings) in ``furniture.py``."""

from __future__ import annotations

import io
from typing import Any

from discharge.pdf import lazy_imports  # before reportlab: see that module

# isort: split
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import Flowable, Frame, PageTemplate, Paragraph, Spacer, TableStyle
from reportlab.platypus.doctemplate import LayoutError
from reportlab.platypus.flowables import _listWrapOn  # layout, not speed: tests/test_speedups.py

from discharge import speedups
from discharge.document import Block, Contact, Document
from discharge.errors import RenderError
from discharge.pdf import styles as st
from discharge.pdf.flowables import HeadedTable, KeepTogether, LinkPara, Para, QRCode, TickBox
from discharge.pdf.fonts import BODY, main_coverage, markup
from discharge.pdf.furniture import DocTemplate, PageFooter
from discharge.pdf.styles import Styles, styles_for
from discharge.pdf.tagging import ListTags, TableTags, Tag, TaggedImage, TaggedTable, language_tag

PAGE_SIZES = {"a4": A4, "letter": LETTER}


def render_pdf(document: Document) -> bytes:
    """Render the document to PDF bytes (deterministic: same document, same bytes)."""
    with speedups.pdf_writing():  # zlib level 1, no ASCII85: see there
        return _render(document)


def _render(document: Document) -> bytes:
    main_coverage()  # register fonts before any Paragraph measures text
    s = styles_for(document.large_print)
    buffer = io.BytesIO()
    page = PAGE_SIZES[document.paper]
    doc = DocTemplate(
        buffer,
        pagesize=page,
        leftMargin=st.MARGIN_X,
        rightMargin=st.MARGIN_X,
        topMargin=st.MARGIN_TOP,
        bottomMargin=s.margin_bottom,
        # Metadata is visible in mail previews and file managers: no patient data in it. The
        # title is the sheet's own ("After your HSG – Riverside Clinic"): what a title bar and
        # a screen reader announce; the subject says what kind of document it is.
        title=document.sheet_title,
        subject=document.labels.metadata_title,
        author=document.letterhead.name,
        creator="discharge",
        invariant=1,
        initialFontName=BODY,
    )
    frame = Frame(
        doc.leftMargin, doc.bottomMargin, doc.width, doc.height, id="body",
        leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0,
    )  # fmt: skip
    doc.addPageTemplates([PageTemplate(id="page", frames=[frame])])
    doc.notes_continued = document.labels.notes_continued
    doc.styles = s
    footer = PageFooter(document, s)
    try:
        story = _story(document, doc.width, s, height=doc.height)
        doc.build(story, canvasmaker=footer.canvas_class())
    except LayoutError:
        # reportlab's message quotes the flowable's text, which may be patient data: drop it.
        raise RenderError(
            "the document could not be laid out: a value is too long to fit on a page"
        ) from None
    return buffer.getvalue()


# --- the story --------------------------------------------------------------------------


def _p(text: str, style: Any, tag: Tag | None = None, **kw: Any) -> Paragraph:
    para = Para(markup(text), style, **kw)
    para.tag = tag
    return para


def _blocks(blocks: tuple[Block, ...], bullet_mark: str, s: Styles) -> list[Flowable]:
    para, bullet = s.body, s.bullet
    out: list[Flowable] = []
    for block in blocks:
        if block.kind == "para":
            out.append(_p(block.items[0], para))
        else:
            items = ListTags()
            out.extend(_p(i, bullet, items.item(), bulletText=bullet_mark) for i in block.items)
    return out


def _story(doc: Document, width: float, s: Styles, height: float = 0) -> list[Flowable]:
    labels = doc.labels
    story: list[Flowable] = [_header(doc, width, s), _p(doc.title, s.title, Tag("H1"))]
    if doc.subtitle:
        story.append(_p(doc.subtitle, s.subtitle))
    story.append(_patient_block(doc, width, s))
    # The sheet opens with its few kind words (after a loss, before any warning sign), then
    # page 1 holds what matters most: the dates and when to get help. The help box is never
    # split over two pages; on standard print it stays on page 1, before the timeline when the
    # two do not fit there together (the timeline then starts under it and runs on, its header
    # row repeated, rather than leaving the rest of page 1 empty).
    if doc.intro:
        story.append(Spacer(1, 6))
        story.extend(_blocks(doc.intro, labels.bullet, s))
        story.append(Spacer(1, 4))
    timeline = _timeline(doc, width, s)
    help_box = _help_box(doc, width, s, height)
    first = [*story, *timeline, Spacer(1, 10), *help_box]
    if not s.timeline_kept_whole or not height or _fits(first, width, height):
        story += [*timeline, Spacer(1, 10), *help_box]
    else:
        story += [*help_box, Spacer(1, 10), *_timeline(doc, width, s, kept_whole=False)]
    story.append(Spacer(1, 6))
    story.extend(_follow_up(doc, width, s))
    story.extend(_medicines(doc, width, s))
    for section in doc.sections:
        blocks = _blocks(section.blocks, labels.bullet, s)
        story.append(KeepTogether([_p(section.heading, s.heading, Tag("H2")), *blocks[:1]]))
        story.extend(blocks[1:])
    support = _support(doc, width, s)
    if support is not None:
        story.append(support)
    if doc.notes:
        notes = _notes(doc.notes, s)  # the heading never left alone at the foot of a page
        story.append(KeepTogether([_p(labels.notes, s.heading, Tag("H2")), *notes[:1]]))
        story.extend(notes[1:])
    teach_back = _teach_back(doc, width, s)
    if teach_back is not None:
        story.append(teach_back)
    story.append(_signature(doc, width, s))
    story.append(Spacer(1, 6))
    story.append(_p(doc.sources, s.small))
    return story


def _header(doc: Document, width: float, s: Styles) -> Flowable:
    clinic = doc.letterhead
    left: list[Flowable] = []
    if clinic.logo:
        lazy_imports.load_images()
        alt = doc.labels.logo_alt.format(clinic=clinic.name)
        left.append(TaggedImage(str(clinic.logo), alt=alt, width=40 * mm,
                                height=14 * mm, kind="proportional"))  # fmt: skip
    left.append(_p(clinic.name, s.clinic))
    if clinic.address:
        left.append(_p(", ".join(clinic.address), s.clinic_line))
    if s.header_side_by_side:
        right = [_p(line, s.clinic_contact) for line in doc.header_contacts]
        table = TaggedTable([[left, right]], colWidths=[width * 0.6, width * 0.4])
    else:  # large print: a phone number must not break over two lines
        left += [_p(line, s.clinic_line) for line in doc.header_contacts]
        table = TaggedTable([[left]], colWidths=[width])
    table.setStyle(
        TableStyle([
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 0),
            ("RIGHTPADDING", (0, 0), (-1, -1), 0),
            ("LINEBELOW", (0, 0), (-1, -1), 1.5, st.ACCENT),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
        ])
    )  # fmt: skip
    return table


def _patient_block(doc: Document, width: float, s: Styles) -> Flowable:
    # Read as a table of one row per pair: a row header (the label) and its value.
    tags = TableTags(header_cols=1)
    cells = [[_p(label, s.label, tags.cell(i, 0)), _p(value, s.value, tags.cell(i, 1))]
             for i, (label, value) in enumerate(doc.patient_rows)]  # fmt: skip
    # Two pairs a row keeps the block short (one in large print, where a long date needs the
    # room); a long name still wraps inside its cell.
    per_row = s.patient_pairs_per_row
    rows = []
    for i in range(0, len(cells), per_row):
        row: list[Any] = []
        for j in range(i, i + per_row):
            row += cells[j] if j < len(cells) else ["", ""]
        rows.append(row)
    # The label column fits the longest word of any label (no "Procedimient-o"), however the
    # language or the print size makes them; the rest is the value's.
    padding = 12  # the cell's left and right padding, 6 pt each
    longest = max(
        (stringWidth(word, s.label.fontName, s.label.fontSize)
         for label, _ in doc.patient_rows for word in label.split()),
        default=0,
    )  # fmt: skip
    label_w = min(max(s.patient_label_width, longest + padding), width / per_row * 0.45)
    value_w = width / per_row - label_w
    table = TaggedTable(rows, colWidths=[label_w, value_w] * per_row)
    table.setStyle(_tinted())
    return table


def _tinted() -> TableStyle:
    """Label and value pairs on a light tint (the patient block, the next appointment)."""
    return TableStyle([
        ("BACKGROUND", (0, 0), (-1, -1), st.ACCENT_TINT),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 4),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
    ])  # fmt: skip


def _striped(rows: int) -> TableStyle:
    """A table with a header row on the accent colour, a rule under each row and every other
    row tinted (the timeline, the medicines)."""
    commands: list[tuple[Any, ...]] = [
        ("BACKGROUND", (0, 0), (-1, 0), st.ACCENT),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 1), (-1, -1), 0.5, st.RULE),
        ("TOPPADDING", (0, 0), (-1, -1), 5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
    ]
    commands += [("BACKGROUND", (0, r), (-1, r), st.ROW_TINT) for r in range(2, rows, 2)]
    return TableStyle(commands)


def _timeline(
    doc: Document, width: float, s: Styles, kept_whole: bool | None = None
) -> list[Flowable]:
    labels = doc.labels
    tags = TableTags(header_rows=1)
    head = [_p(labels.timeline_when, s.table_head, tags.cell(0, 0)),
            _p(labels.timeline_what, s.table_head, tags.cell(0, 1))]  # fmt: skip
    rows: list[list[Any]] = [head]
    for r, row in enumerate(doc.timeline, 1):
        when = Para("<br/>".join(markup(line) for line in row.when), s.when)
        when.tag = tags.cell(r, 0)
        what = tags.cell(r, 1)  # one cell, however many labels
        rows.append([when, [_p(label, s.what, what) for label in row.labels]])
    table = TaggedTable(rows, colWidths=[width * s.when_share, width * (1 - s.when_share)],
                        repeatRows=1)  # fmt: skip
    table.setStyle(_striped(len(rows)))
    heading = _p(labels.timeline, s.heading, Tag("H2"))
    if s.timeline_kept_whole if kept_whole is None else kept_whole:
        return [KeepTogether([heading, table])]
    # Large print: the table is most of a page; start it on this page if its heading and first
    # row fit, and let it run on (its header row repeats).
    return [HeadedTable(heading, table)]


def _help_box(doc: Document, width: float, s: Styles, height: float = 0) -> list[Flowable]:
    """Two levels in one box: what cannot wait (on red), then when to call the clinic. Each
    level leads with what to do, then the signs, then whom to call, so one glance answers
    "whom do I call for this?".

    Each level is a table of its own (each with its own tags), and the two abut so they read
    as one box. The box is kept together: a patient never has to turn the page to find out
    whom to call (issue 19); if it does not fit where it falls, it moves whole. Only a box
    taller than a whole page (a long translation in large print) is split, between its levels.
    """
    bullet = doc.labels.bullet
    # The whole box is one element, so a reader knows where it ends: what follows it is not
    # read as part of its last level ("Call us straight away...").
    box = Tag("Div")
    parts: list[Flowable] = []
    for level, urgent in ((doc.help_urgent, True), (doc.help_clinic, False)):
        rows: list[list[Any]] = []
        if urgent:
            rows.append([_p(doc.help_heading, s.help_heading, Tag("H2", box))])
        first = len(rows)
        heading_style = s.help_urgent if urgent else s.help_level
        rows.append([_p(level.heading, heading_style, Tag("H3", box))])
        if level.intro:
            rows.append([_p(level.intro, s.help_text, Tag("P", box))])
        signs = ListTags(box)
        rows += [[_p(sign, s.help_bullet, signs.item(), bulletText=bullet)] for sign in level.signs]
        rows.append([_contacts(level.contacts, width - 20, s, box)])
        commands: list[tuple[Any, ...]] = [
            ("BACKGROUND", (0, 0), (-1, -1), st.ALERT_TINT),
            ("BOX", (0, 0), (-1, -1), 2, st.ALERT),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 10),
            ("RIGHTPADDING", (0, 0), (-1, -1), 10),
            ("TOPPADDING", (0, 0), (-1, -1), 2),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ("TOPPADDING", (0, 0), (-1, 0), 8),
            ("TOPPADDING", (0, -1), (-1, -1), 4),
            ("BOTTOMPADDING", (0, -1), (-1, -1), 8),
        ]
        if urgent:
            commands += [("BACKGROUND", (0, first), (-1, first), st.ALERT),
                         ("TOPPADDING", (0, first), (-1, first), 5),
                         ("BOTTOMPADDING", (0, first), (-1, first), 5)]  # fmt: skip
        table = TaggedTable(rows, colWidths=[width])
        table.setStyle(TableStyle(commands))
        parts.append(table)
    if height and not _fits(parts, width, height):
        return [KeepTogether([part]) for part in parts]
    return [KeepTogether(parts)]


def _fits(flowables: list[Flowable], width: float, height: float) -> bool:
    """Whether these flowables fit one after another in a frame ``height`` tall."""
    content: list[Flowable] = []
    for flowable in flowables:  # a KeepTogether measures as "split me": measure its content
        content += flowable._content if isinstance(flowable, KeepTogether) else [flowable]
    _, needed = _listWrapOn(content, width, None)
    return bool(needed <= height)


def _follow_up(doc: Document, width: float, s: Styles) -> list[Flowable]:
    """The next appointment, by the help box: when and where, read as row headers and values."""
    if doc.follow_up is None:
        return []
    labels = doc.labels
    pairs = [(labels.timeline_when, doc.follow_up.when)]
    if doc.follow_up.place:
        pairs.append((labels.where, doc.follow_up.place))
    tags = TableTags(header_cols=1)
    rows = [[_p(label, s.label, tags.cell(i, 0)), _p(value, s.value, tags.cell(i, 1))]
            for i, (label, value) in enumerate(pairs)]  # fmt: skip
    label_w = max(s.patient_label_width, width * 0.2)
    table = TaggedTable(rows, colWidths=[label_w, width - label_w])
    table.setStyle(_tinted())
    heading = _p(labels.next_appointment, s.heading, Tag("H2"))
    return [KeepTogether([heading, table]), Spacer(1, 6)]


def _medicines(doc: Document, width: float, s: Styles) -> list[Flowable]:
    """The medicines as a table with column headers, each cell exactly as written."""
    if not doc.medicines:
        return []
    labels = doc.labels
    tags = TableTags(header_rows=1)
    heads = (labels.medicine, labels.medicine_how, labels.medicine_how_long)
    rows: list[list[Any]] = [[_p(h, s.table_head, tags.cell(0, c)) for c, h in enumerate(heads)]]
    for r, medicine in enumerate(doc.medicines, 1):
        cells = (medicine.name, medicine.how, medicine.how_long)
        rows.append([_p(text, s.what, tags.cell(r, c)) for c, text in enumerate(cells)])
    shares = (0.38, 0.37, 0.25)
    table = TaggedTable(rows, colWidths=[width * share for share in shares], repeatRows=1)
    table.setStyle(_striped(len(rows)))
    heading = _p(labels.medicines, s.heading, Tag("H2"))
    return [HeadedTable(heading, table), Spacer(1, 6)]


def _contacts(
    contacts: tuple[Contact, ...], width: float, s: Styles, parent: Tag | None = None
) -> Flowable:
    """Whom to call: each number large, under the words that say who answers it."""
    cells = []
    for contact in contacts:
        tag = Tag("P", parent)  # "Out of hours 01632 960 999" reads as one line
        cells.append([_p(contact.who, s.help_who, tag), _p(contact.number, s.help_phone, tag)])
    columns = max(2, len(cells))
    table = TaggedTable([cells], colWidths=[width / columns] * len(cells), hAlign="LEFT")
    table.setStyle(
        TableStyle([
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 0),
            ("RIGHTPADDING", (0, 0), (-1, -1), 6),
            ("TOPPADDING", (0, 0), (-1, -1), 0),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 0),
        ])
    )  # fmt: skip
    return table


def _support(doc: Document, width: float, s: Styles) -> Flowable | None:
    """The clinic's resources: each with its phone number, its address in words, and a QR code
    a patient's phone camera opens (reportlab draws QR codes itself: no new dependency)."""
    if not doc.support:
        return None
    code = 24 * mm if s.body.fontSize < 14 else 36 * mm  # phones read 0.6 mm a module well
    rows = []
    for item in doc.support:
        # The clinic names its resources in its own language: say so where it differs.
        name_tag = Tag("P", lang=language_tag(item.language)) if item.language else None
        words: list[Flowable] = [_p(item.name, s.value, name_tag)]
        if item.note:  # "(in English)": in the sheet's language, so a paragraph of its own
            words.append(_p(item.note, s.body))
        if item.phone:
            words.append(_p(item.phone, s.body))
        if item.url:
            link = LinkPara(markup(item.url), s.body)
            link.tag, link.url, link.link_contents = Tag("Link", Tag("P")), item.url, item.name
            words.append(link)
        alt = doc.labels.qr_alt.format(url=item.url)
        qr = QRCode(item.url, code, alt=alt) if item.url else ""
        rows.append([qr, words])
    table = TaggedTable(rows, colWidths=[code + 8, width - code - 8], hAlign="LEFT")
    table.setStyle(
        TableStyle([
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("LEFTPADDING", (0, 0), (-1, -1), 0),
            ("TOPPADDING", (0, 0), (-1, -1), 3),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ])
    )  # fmt: skip
    heading = _p(doc.labels.support, s.heading, Tag("H2"))
    return KeepTogether([heading, _p(doc.labels.scan, s.body), table])


def _teach_back(doc: Document, width: float, s: Styles) -> Flowable | None:
    """The nurse's questions, each with a box to tick when the patient can answer it."""
    teach = doc.teach_back
    if teach is None:
        return None
    content: list[Flowable] = [_p(teach.heading, s.heading, Tag("H2"))]
    if teach.intro:
        content.append(_p(teach.intro, s.body))
    rows = [[TickBox(s.tick_box), _p(question, s.body)] for question in teach.questions]
    table = TaggedTable(rows, colWidths=[s.tick_column, width - s.tick_column], hAlign="LEFT")
    table.setStyle(
        TableStyle([
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 0),
            ("TOPPADDING", (0, 0), (-1, -1), 2),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ])
    )  # fmt: skip
    content.append(table)
    return KeepTogether(content)


# Longest piece of one line of notes in one Paragraph. reportlab re-breaks the rest of a
# paragraph each time it splits it across a page, so one long paragraph costs time quadratic
# in its length (a 80,000-character line: 1.3 s, 4x the 20,000-character one); bounded pieces
# keep the cost linear. About 12 lines of A4 text, cut at a sentence or word boundary.
_NOTES_PIECE = 1_000


def _notes(notes: str, s: Styles) -> list[Flowable]:
    """The clinician's notes verbatim: one Paragraph per line, so line breaks are kept and very
    long notes flow across pages without re-wrapping one giant paragraph on every page."""
    out: list[Flowable] = []
    for line in notes.split("\n"):
        if not line.strip():
            out.append(Spacer(1, 8))
            continue
        # Paragraph collapses runs of spaces; keep indentation and alignment with no-break spaces.
        stripped = line.lstrip(" ")
        text = "\u00a0" * (len(line) - len(stripped)) + stripped.replace("  ", " \u00a0")
        line_tag = Tag("P")  # a long line drawn in pieces is still one paragraph to a reader
        out.extend(_p(piece, s.notes, line_tag) for piece in _pieces(text))
    return out


def _pieces(text: str, size: int = _NOTES_PIECE) -> list[str]:
    """``text`` cut into pieces of at most ``size`` characters, after a sentence if one ends in
    the second half of a piece, else at a space, else (one very long word) anywhere."""
    pieces = []
    while len(text) > size:
        cut = text.rfind(". ", size // 2, size) + 1
        if cut <= 0:
            cut = text.rfind(" ", size // 2, size)
        if cut <= 0:
            cut = size
        pieces.append(text[:cut].rstrip(" "))
        text = text[cut:].lstrip(" ")
    if text:
        pieces.append(text)
    return pieces


def _signature(doc: Document, width: float, s: Styles) -> Flowable:
    labels = doc.labels
    gap = 6 * mm
    # Signature lines twice as long as date lines; all four fields on one row, or (large
    # print) a signature and its date a row.
    per_row = s.signature_fields_per_row
    field = (width - (per_row - 1) * gap) / (1.5 * per_row)
    widths = [2 * field, gap, field, gap, 2 * field, gap, field][: 2 * per_row - 1]
    blank: list[Any] = [""] * len(widths)
    rows = [[_p(labels.statement, s.body), *blank[1:]]]
    heights: list[float | None] = [None]
    lines = []
    for start in range(0, len(labels.signatures), per_row):
        label_row = list(blank)
        for i, label in enumerate(labels.signatures[start : start + per_row]):
            label_row[2 * i] = _p(label, s.sign_label)
        lines += [("LINEBELOW", (c, len(rows)), (c, len(rows)), 0.75, st.INK)
                  for c in range(0, len(widths), 2)]  # fmt: skip
        rows += [list(blank), label_row]
        heights += [s.signature_line_gap, None]
    table = TaggedTable(rows, colWidths=widths, rowHeights=heights, hAlign="LEFT")
    table.setStyle(
        TableStyle([
            ("SPAN", (0, 0), (-1, 0)),
            ("LEFTPADDING", (0, 0), (-1, -1), 0),
            ("RIGHTPADDING", (0, 0), (-1, -1), 0),
            # One line per field; the gap columns keep the lines apart.
            *lines,
        ])
    )  # fmt: skip
    return KeepTogether([_p(labels.before_you_go, s.heading, Tag("H2")), table])
