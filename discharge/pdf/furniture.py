"""Page furniture: what every page carries besides the story.

The footer (the patient's name and identifiers, the clinic's line, the template's code and
"Page X of Y") is drawn on every page once the page count is known; a draft's warning at the
top of every page; a "(continued)" heading where the notes run on to a new page; and the
document information's ``/DischargePatient`` marker. All of it is an artifact to a screen
reader (``tagging.artifact``), which reads the story once.
"""

from __future__ import annotations

from typing import Any

from discharge.pdf import lazy_imports  # noqa: F401 - before reportlab: see that module

# isort: split
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfdoc
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate, Flowable, Paragraph

from discharge.document import Document
from discharge.pdf import styles as st
from discharge.pdf.fonts import BODY, FALLBACK, markup, segments
from discharge.pdf.styles import Styles
from discharge.pdf.tagging import TaggedCanvas, artifact, language_tag

__all__ = ["DocTemplate", "PageFooter", "RunningHeading"]


class DocTemplate(BaseDocTemplate):
    """Notes that run on to a later page start it with a heading of their own, "(continued)",
    so a patient who turns the page knows whose words these still are."""

    notes_continued = ""
    styles: Styles
    _notes_started = False

    def handle_flowable(self, flowables: list[Flowable]) -> None:
        first = flowables[0] if flowables else None
        if (
            self.notes_continued
            and self._notes_started
            and getattr(first, "style", None) is self.styles.notes
            and self.frame._atTop
        ):
            heading = RunningHeading(markup(self.notes_continued), self.styles.heading)
            flowables.insert(0, heading)
        super().handle_flowable(flowables)

    def afterFlowable(self, flowable: Flowable) -> None:  # noqa: N802 (reportlab's name)
        if getattr(flowable, "style", None) is self.styles.notes:
            self._notes_started = True


class RunningHeading(Paragraph):
    """A heading repeated for the eye on a later page: page furniture to a screen reader,
    which has already read the heading once."""

    def drawOn(self, canvas: Canvas, x: float, y: float, _sW: float = 0) -> None:  # noqa: N802
        with artifact(canvas):
            super().drawOn(canvas, x, y, _sW)


class _OwnedInfo(pdfdoc.PDFInfo):
    """The document information dictionary with ``/DischargePatient``: whose PDF this is, as a
    digest (``Patient.marker``), which ``generate`` reads back before replacing a file. Viewers
    and file managers do not show a key of this name."""

    def __init__(self, info: Any, owner: str) -> None:
        self.__dict__.update(info.__dict__)
        self.owner = owner

    def format(self, document: Any) -> bytes:
        formatted: bytes = super().format(document)
        end = formatted.rstrip().rfind(b">>")
        key = f"/DischargePatient ({self.owner})".encode("ascii")
        return formatted[:end].rstrip() + b" " + key + b" " + formatted[end:]


class PageFooter:
    """Draws the footer on every page once the page count is known ("Page X of Y")."""

    def __init__(self, document: Document, styles: Styles) -> None:
        self.document = document
        self.styles = styles

    def canvas_class(self) -> type[Canvas]:
        footer = self

        class FooterCanvas(TaggedCanvas):
            lang = language_tag(footer.document.locale)  # the patient's language, not the clinic's

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self._pages: list[dict[str, Any]] = []
                if footer.document.owner:
                    self._doc.info = _OwnedInfo(self._doc.info, footer.document.owner)

            def showPage(self) -> None:  # noqa: N802 (reportlab's name)
                self._pages.append(dict(self.__dict__))
                self._startPage()

            def save(self) -> None:
                total = len(self._pages)
                for number, state in enumerate(self._pages, 1):
                    self.__dict__.update(state)
                    footer.draw(self, number, total)
                    super().showPage()
                super().save()

        return FooterCanvas

    def draw(self, canvas: Canvas, number: int, total: int) -> None:
        with artifact(canvas, "Footer"):  # a screen reader does not read it out on every page
            self._draw(canvas, number, total)

    def _draw(self, canvas: Canvas, number: int, total: int) -> None:
        footer = self.document.footer
        s = self.styles
        size, gap = s.footer_size, s.footer_line_gap
        width, _ = canvas._pagesize
        left, right = st.MARGIN_X, width - st.MARGIN_X
        y = s.footer_y
        canvas.saveState()
        canvas.setStrokeColor(st.RULE)
        canvas.setLineWidth(0.5)
        canvas.line(left, y + gap, right, y + gap)
        canvas.setFillColor(st.INK)
        page = self.document.labels.page(number, total)
        page_w = stringWidth(page, BODY, size)
        canvas.setFont(BODY, size)
        canvas.drawString(right - page_w, y, page)
        room = right - page_w - 10 * mm - left
        if footer.ids and s.footer_ids_own_line:  # large print: the name and ids both whole
            _draw_fitted(canvas, left, y, footer.patient_name, room, size)
            y -= gap
            _draw_fitted(canvas, left, y, footer.ids, right - left, size)
        elif footer.ids:
            ids = "  ·  " + footer.ids
            ids_w = sum(stringWidth(r, FALLBACK if fb else BODY, size)
                        for fb, r in segments(ids))  # fmt: skip
            name_w = _draw_fitted(canvas, left, y, footer.patient_name, max(room - ids_w, room / 3),
                                  size)  # fmt: skip
            _draw_fitted(canvas, left + name_w, y, ids, room - name_w, size)
        else:
            _draw_fitted(canvas, left, y, footer.patient_name, room, size)
        canvas.setFillColor(st.MUTED)
        ref = footer.template  # a code for staff: which template made this sheet
        if s.footer_ids_own_line:  # large print: the clinic's line (its phone number) whole,
            _draw_fitted(canvas, left, y - gap, footer.clinic_line, right - left, size)
            ref_size = 11  # and the staff code under it, small
            canvas.setFont(BODY, ref_size)
            canvas.drawString(right - stringWidth(ref, BODY, ref_size), y - gap - 13, ref)
        else:
            canvas.setFont(BODY, size)
            ref_w = stringWidth(ref, BODY, size)
            canvas.drawString(right - ref_w, y - gap, ref)
            room = max(right - left - ref_w - 8 * mm, (right - left) / 3)
            _draw_fitted(canvas, left, y - gap, footer.clinic_line, room, size)
        if self.document.draft:  # unapproved wording: said at the top of every page
            _, height = canvas._pagesize
            canvas.setFillColor(st.ALERT)
            large = self.document.large_print  # above the body: at body size in large print
            top = height - (11 if large else 8.5) * mm
            draft_size = 18 if large else size
            _draw_fitted(canvas, left, top, self.document.draft, right - left, draft_size)
        canvas.restoreState()


def _draw_fitted(canvas: Canvas, x: float, y: float, text: str, room: float,
                 size: float) -> float:  # fmt: skip
    """Draw one line of text, switching to the fallback font where needed, cut to fit `room`.

    Returns the width drawn."""
    start = x
    runs = segments(text)
    full = sum(stringWidth(run, FALLBACK if fb else BODY, size) for fb, run in runs)
    ellipsis = "…"
    budget = room - (stringWidth(ellipsis, BODY, size) if full > room else 0)
    for fallback, run in runs:
        font = FALLBACK if fallback else BODY
        while run and stringWidth(run, font, size) > budget:
            run = run[:-1]
        canvas.setFont(font, size)
        canvas.drawString(x, y, run)
        x += stringWidth(run, font, size)
        budget -= stringWidth(run, font, size)
        if budget <= 0:
            break
    if full > room:
        canvas.setFont(BODY, size)
        canvas.drawString(x, y, ellipsis)
        x += stringWidth(ellipsis, BODY, size)
    return x - start
