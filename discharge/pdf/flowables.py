"""The PDF's own flowables: paragraphs that reuse their layout, a heading never left alone
above its table, a QR code drawn as one path, a box to tick by hand.

Each says what it is in the tagged PDF (``tagging.py``); what they draw comes from the model
through ``render.py``, never from here.
"""

from __future__ import annotations

import functools
from typing import Any

from discharge.pdf import lazy_imports  # noqa: F401 - before reportlab: see that module

# isort: split
from reportlab import platypus
from reportlab.platypus import Flowable, Paragraph

from discharge import speedups
from discharge.pdf import styles as st
from discharge.pdf.qr import QUIET, qr_runs
from discharge.pdf.tagging import Tag, TaggedFlowable, TaggedLink, artifact

__all__ = ["HeadedTable", "KeepTogether", "LinkPara", "Para", "QRCode", "TickBox"]


class Para(TaggedFlowable, Paragraph):
    """A Paragraph that reuses parsing and line breaking across paragraphs and documents.

    Profiling showed markup parsing and line breaking dominate rendering, and most text (the
    template's wording, the table cells that reportlab wraps several times) repeats exactly.
    The parse result and the broken lines depend only on the markup, the style and the widths,
    and reportlab only reads them afterwards, so they are safe to share. Its `tag` (default
    `P`) is what it is in the structure tree of the tagged PDF.
    """

    frags: Any
    bulletText: Any  # noqa: N815 (reportlab's name)
    style: Any
    text: Any

    def __init__(self, text: Any, style: Any = None, bulletText: Any = None, frags: Any = None,
                 **kw: Any) -> None:  # fmt: skip
        init = super().__init__
        self._memo_key = speedups.init_paragraph(self, init, text, style, bulletText, frags, kw)

    def breakLines(self, width: Any) -> Any:  # noqa: N802 (reportlab's name)
        return speedups.break_lines(self._memo_key, width, super().breakLines)

    def draw(self) -> None:
        """Draw as reportlab does, or repeat what it drew for the same paragraph before."""
        speedups.draw_paragraph(self, self._memo_key, super().draw)


class LinkPara(TaggedLink, Para):
    """A paragraph that is a web address: a link annotation over it, tagged ``Link``."""


class HeadedTable(Flowable):
    """A heading and a table that may run on over pages, but never leaves its heading alone:
    the heading goes to the next page unless the table's header and first row fit under it."""

    def __init__(self, heading: Flowable, table: Flowable) -> None:
        super().__init__()
        self.heading = heading
        self.table = table

    def wrap(self, aW: float, aH: float) -> tuple[float, float]:
        return aW, 0xFFFFFF  # always split: the frame then places the heading and the parts

    def split(self, aW: float, aH: float) -> list[Flowable]:
        _, height = self.heading.wrap(aW, aH)
        room = aH - height - self.heading.getSpaceBefore() - self.heading.getSpaceAfter()
        self.table.wrap(aW, room)
        parts = self.table.split(aW, room)
        frame = getattr(self, "_frame", None)
        if parts or getattr(frame, "_atTop", True):  # at a page's top: nowhere better to go
            return [self.heading, *(parts or [self.table])]
        return []  # not even the first row fits here: all of it to the next page


class KeepTogether(platypus.KeepTogether):
    """KeepTogether that measures its content without copying the page frame each time.

    reportlab deep-copies the frame on every measurement in case the content adds generated
    content (frame actions); ours is only paragraphs and tables, and the copies cost about 7%
    of rendering time.
    """

    def wrap(self, aW: float, aH: float) -> tuple[float, float]:
        wrapped = speedups.wrap_together(self, aW, aH)
        return wrapped if wrapped is not None else super().wrap(aW, aH)


class QRCode(TaggedFlowable, Flowable):
    """A QR code of ``url``: a Figure whose alternative text is the address it opens."""

    def __init__(self, url: str, size: float, *, alt: str) -> None:
        super().__init__()
        self.url = url
        self.size = size
        self.tag = Tag("Figure", alt=alt)

    def wrap(self, aW: float, aH: float) -> tuple[float, float]:
        return self.size, self.size

    def draw(self) -> None:
        count, path = qr_path(self.url)
        module = self.size / (count + 2 * QUIET)
        canvas = self.canv
        canvas.saveState()
        canvas.setFillColor(st.INK)
        # The path is in modules, row 0 at the top: scale and flip it into the box.
        canvas.transform(module, 0, 0, -module, QUIET * module, self.size - QUIET * module)
        canvas.addLiteral(path)
        canvas.restoreState()


@functools.lru_cache(maxsize=32)
def qr_path(url: str) -> tuple[int, str]:
    """The QR code of ``url`` as its number of modules a side and one PDF path that fills its
    dark modules, in module units with row 0 at the top: each run of dark modules in a row is
    one rectangle. Drawn as a path, not reportlab's QR widget, which goes through its graphics
    renderer and names a non-embedded font. The runs are the web page's too (``discharge.pdf.qr``,
    encoded once per installation and once per process)."""
    count, runs = qr_runs(url)
    return count, "\n".join(f"{col} {row} {length} 1 re" for col, row, length in runs) + "\nf"


class TickBox(Flowable):
    """An empty square to tick by hand, on the first line of its question."""

    def __init__(self, size: float) -> None:
        super().__init__()
        self.size = size

    def wrap(self, aW: float, aH: float) -> tuple[float, float]:
        return self.size, self.size + 3

    def draw(self) -> None:
        with artifact(self.canv):  # the question is read; the box is for the pen
            self.canv.setStrokeColor(st.INK)
            self.canv.setLineWidth(1)
            self.canv.rect(0, 0, self.size, self.size, stroke=1, fill=0)
