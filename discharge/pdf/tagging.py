"""Tagged PDF (PDF/UA-1) on top of reportlab, which draws but does not tag.

How it works:

- A flowable says *what it is* with a :class:`Tag` (a structure role such as ``"H1"``, ``"P"``,
  ``"LI"``, ``"TH"``; its parent tag; a table header's scope; a figure's alternative text). Tags
  are declared when the story is built; the structure elements are made only when something is
  drawn, in drawing order, which is the story's reading order. Several flowables may share one
  tag: the two halves of a paragraph split over a page break, or the paragraphs of one table
  cell, are one element with content on one or two pages.
- :class:`TaggedFlowable` (a mixin) wraps what a flowable draws in ``/Role <</MCID n>> BDC ...
  EMC``; a list item's bullet becomes ``Lbl`` and its text ``LBody``; a paragraph's wrapped
  lines keep a space between them in the text. A flowable drawn a second
  time (a table's header row repeated on the next page) is drawn as an artifact.
- :class:`TaggedTable` draws its backgrounds and rules as artifacts; the cells' flowables carry
  their own ``TH``/``TD`` tags (see :class:`TableTags`, which also makes the ``TR`` rows).
- :func:`artifact` wraps page furniture (the footer, "Page X of Y").
- :class:`TaggedCanvas` collects the marked content per page and, when the document is saved,
  writes ``/StructTreeRoot`` with its ``/ParentTree``, each page's ``/StructParents`` and
  ``/Tabs /S``, and in the catalog ``/MarkInfo``, ``/Lang``, ``/ViewerPreferences
  <</DisplayDocTitle true>>`` and XMP metadata with ``dc:title`` and ``pdfuaid:part 1``.

Everything written is a function of what was drawn, so the output stays deterministic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from discharge.pdf import lazy_imports  # noqa: F401 - before reportlab: see that module

# isort: split
from reportlab.pdfbase.pdfdoc import PDFObject, PDFString
from reportlab.pdfgen.canvas import Canvas
from reportlab.pdfgen.textobject import PDFTextObject
from reportlab.platypus import Image, Table

from discharge import speedups

__all__ = [
    "Tag",
    "TableTags",
    "ListTags",
    "TaggedFlowable",
    "TaggedTable",
    "TaggedImage",
    "TaggedLink",
    "TaggedCanvas",
    "artifact",
    "language_tag",
]


class Tag:
    """A structure element to be: role, parent (None: the document), and its attributes."""

    __slots__ = ("role", "parent", "scope", "alt", "lang")

    def __init__(
        self, role: str, parent: Tag | None = None, *, scope: str | None = None,
        alt: str | None = None, lang: str | None = None,
    ) -> None:  # fmt: skip
        self.role = role
        self.parent = parent
        self.scope = scope  # TH only: "Column" or "Row"
        self.alt = alt  # Figure only
        self.lang = lang  # a BCP 47 tag, where the element's language is not the document's

    def __repr__(self) -> str:
        return f"Tag({self.role!r})"


class ListTags:
    """One ``L`` element; :meth:`item` gives each ``LI`` (drawn as ``Lbl`` + ``LBody``)."""

    def __init__(self, parent: Tag | None = None) -> None:
        self.tag = Tag("L", parent)

    def item(self) -> Tag:
        return Tag("LI", self.tag)


class TableTags:
    """The logical structure of one ``Table``: rows (``TR``) of ``TH`` and ``TD`` cells.

    The logical grid need not be the drawn one: the patient block draws two label/value pairs
    a line but reads as one row per pair. Rows before ``header_rows`` are column headers
    (``TH /Scope /Column``); columns before ``header_cols`` are row headers (``/Scope /Row``).
    """

    def __init__(self, header_rows: int = 0, header_cols: int = 0,
                 parent: Tag | None = None) -> None:  # fmt: skip
        self.tag = Tag("Table", parent)
        self.header_rows = header_rows
        self.header_cols = header_cols
        self._rows: dict[int, Tag] = {}

    def cell(self, row: int, col: int) -> Tag:
        tr = self._rows.get(row)
        if tr is None:
            tr = self._rows[row] = Tag("TR", self.tag)
        if row < self.header_rows:
            return Tag("TH", tr, scope="Column")
        if col < self.header_cols:
            return Tag("TH", tr, scope="Row")
        return Tag("TD", tr)


def language_tag(locale: str) -> str:
    """A Babel/POSIX locale name as a BCP 47 language tag: ``en_GB`` -> ``en-GB``."""
    return locale.split(".")[0].split("@")[0].replace("_", "-")


# --- drawing --------------------------------------------------------------------------------


def _structure(canvas: Any) -> _Structure | None:
    return getattr(canvas, "structure", None)


class TaggedFlowable:
    """Mixin for a Flowable: what it draws is marked content of its tag (default ``P``)."""

    tag: Tag | None = None
    _tag_drawn = False

    def structure_tag(self) -> Tag:
        if self.tag is None:
            self.tag = Tag("P")
        return self.tag

    def drawOn(self, canvas: Any, x: float, y: float, _sW: float = 0) -> None:  # noqa: N802
        structure = _structure(canvas)
        if structure is None:
            super().drawOn(canvas, x, y, _sW)  # type: ignore[misc]
            return
        closing = structure.begin(canvas, self)
        try:
            super().drawOn(canvas, x, y, _sW)  # type: ignore[misc]
        finally:
            structure.end(canvas, closing)

    def beginText(self, x: float, y: float) -> Any:  # noqa: N802 (Paragraph's hook)
        return _SpacedLines(self.canv, x, y)  # type: ignore[attr-defined]

    def split(self, availWidth: float, availHeight: float) -> list[Any]:  # noqa: N803
        # Both halves of a split paragraph are one structure element, on two pages.
        parts: list[Any] = super().split(availWidth, availHeight)  # type: ignore[misc]
        tag = self.structure_tag()
        for part in parts:
            part.tag = tag
        return parts


class _SpacedLines(PDFTextObject):
    """A text object that ends every line with a space.

    reportlab drops the space where it wraps a line, so text read from the structure (as
    poppler and some screen readers do) glued the last word of a line to the first of the
    next: "gettingpregnant". The space drawn after the line's last word is invisible."""

    def _textOut(self, text: str, TStar: int = 0) -> None:  # noqa: N803 (reportlab's name)
        super()._textOut(text + " " if TStar else text, TStar)


class TaggedLink(TaggedFlowable):
    """Mixin for a Flowable whose text is a web address: a ``Link`` element (its ``tag``) that
    holds both the drawn text and a link annotation over it, which has ``/Contents`` (what the
    link is, for a screen reader) and is tied to the element through the ``/ParentTree``."""

    url: str = ""
    link_contents: str = ""

    def drawOn(self, canvas: Any, x: float, y: float, _sW: float = 0) -> None:  # noqa: N802
        super().drawOn(canvas, x, y, _sW)
        widths: list[float] = getattr(self, "getActualLineWidths0", list)()
        width = max(widths, default=0) or getattr(self, "width", 0)
        height = getattr(self, "height", 0)
        canvas.linkURL(self.url, (x, y, x + width, y + height), relative=1, thickness=0,
                       Contents=PDFString(self.link_contents or self.url))  # fmt: skip
        structure = _structure(canvas)
        if structure is not None and not structure.artifact_depth:
            name = canvas._doc.annotationName(f"NUMBER{canvas._annotationCount}")
            annotation = canvas._doc.idToObject[name]
            structure.add_link(canvas, self.structure_tag(), annotation)


class TaggedImage(TaggedFlowable, Image):
    """An Image that is a ``Figure`` with alternative text."""

    def __init__(self, filename: str, alt: str, **kw: Any) -> None:
        super().__init__(filename, **kw)
        self.tag = Tag("Figure", alt=alt)


class TaggedTable(Table):
    """A Table whose backgrounds and rules are artifacts; its cells' flowables are tagged.

    Empty string cells (reportlab draws an empty text object for them) are not drawn; other
    string cells are read as a ``P``. Use Paragraphs with :class:`TableTags` tags for cells."""

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:  # noqa: N803
        # Measured once per width where it can be: see speedups.wrap_table.
        return speedups.wrap_table(self, availWidth, availHeight, super().wrap)

    def _drawBkgrnd(self) -> None:  # noqa: N802 (reportlab's name)
        with artifact(self.canv):
            super()._drawBkgrnd()

    def _drawLines(self) -> None:  # noqa: N802 (reportlab's name)
        with artifact(self.canv):
            super()._drawLines()

    def _drawCell(self, cellval: Any, cellstyle: Any, pos: Any, size: Any) -> None:  # noqa: N802
        if not isinstance(cellval, str):
            # Flowables set their own font and colour: skip reportlab's setting the cell's
            # (a Helvetica that would otherwise be in the file, not embedded, for nothing).
            self._curcellstyle = cellstyle
        else:
            if not cellval:
                return
            structure = _structure(self.canv)
            if structure is not None:
                closing = structure.begin_tag(self.canv, Tag("P"))
                try:
                    super()._drawCell(cellval, cellstyle, pos, size)
                finally:
                    structure.end(self.canv, closing)
                return
        super()._drawCell(cellval, cellstyle, pos, size)


@contextlib.contextmanager
def artifact(canvas: Any, kind: str = "") -> Iterator[None]:
    """Mark what is drawn inside as an artifact (page furniture a screen reader skips).

    ``kind="Footer"`` marks a pagination footer. Tagged flowables inside draw untagged."""
    structure = _structure(canvas)
    if structure is None:
        yield
        return
    closing = structure.begin_artifact(canvas, kind)
    try:
        yield
    finally:
        structure.end(canvas, closing)


class _Elem:
    """A structure element: its kids are elements and (page, mcid) content items."""

    __slots__ = ("tag", "role", "parent", "kids", "page", "num")

    def __init__(self, tag: Tag | None, role: str, parent: _Elem | None) -> None:
        self.tag = tag
        self.role = role
        self.parent = parent
        self.kids: list[_Elem | tuple[int, int] | _Annotation] = []
        self.page = -1  # the page of its first content item
        self.num = 0  # its PDF object number, once written
        if parent is not None:
            parent.kids.append(self)


class _Annotation:
    """An annotation a structure element holds (an ``OBJR`` kid), on a page."""

    __slots__ = ("obj", "page")

    def __init__(self, obj: Any, page: int) -> None:
        self.obj = obj
        self.page = page


_EMC = "EMC"
_ARTIFACT = "artifact"
_NESTED = "nested artifact"
_LIST_ITEM = "list item"


class _Structure:
    """The structure tree of one document, built as the canvas draws."""

    def __init__(self) -> None:
        self.root = _Elem(None, "Document", None)
        self.elems: dict[Tag, _Elem] = {}
        self.li_parts: dict[Tag, tuple[_Elem, _Elem]] = {}  # LI -> (Lbl, LBody)
        self.pages: dict[int, list[_Elem]] = {}  # page index -> element of each MCID
        self.artifact_depth = 0
        self.links: list[tuple[_Elem, _Annotation]] = []  # annotations, in drawing order

    def add_link(self, canvas: Any, tag: Tag, annotation: Any) -> None:
        """``annotation`` (drawn on this page) belongs to ``tag``'s element."""
        elem = self.element(tag)
        kid = _Annotation(annotation, canvas._pageNumber - 1)
        elem.kids.append(kid)
        self.links.append((elem, kid))

    def element(self, tag: Tag) -> _Elem:
        elem = self.elems.get(tag)
        if elem is None:
            parent = self.root if tag.parent is None else self.element(tag.parent)
            elem = self.elems[tag] = _Elem(tag, tag.role, parent)
        return elem

    def _mark(self, canvas: Any, elem: _Elem) -> str:
        page = canvas._pageNumber - 1
        owners = self.pages.setdefault(page, [])
        mcid = len(owners)
        owners.append(elem)
        if elem.page < 0:
            elem.page = page
        elem.kids.append((page, mcid))
        return f"/{elem.role}<</MCID {mcid}>>BDC"

    def begin_artifact(self, canvas: Any, kind: str = "") -> str:
        self.artifact_depth += 1
        if self.artifact_depth > 1:
            return _NESTED
        if kind:
            canvas._code.append(f"/Artifact <</Type /Pagination /Subtype /{kind}>> BDC")
        else:
            canvas._code.append("/Artifact BMC")
        return _ARTIFACT

    def begin_tag(self, canvas: Any, tag: Tag) -> str:
        if self.artifact_depth:
            return ""
        canvas._code.append(self._mark(canvas, self.element(tag)))
        return _EMC

    def begin(self, canvas: Any, flowable: TaggedFlowable) -> str:
        """Open the marked content of a flowable; returns what :meth:`end` closes."""
        if self.artifact_depth:
            return ""
        if flowable._tag_drawn:  # drawn again: a repeated table header row
            return self.begin_artifact(canvas)
        flowable._tag_drawn = True
        tag = flowable.structure_tag()
        if tag.role != "LI":
            canvas._code.append(self._mark(canvas, self.element(tag)))
            return _EMC
        parts = self.li_parts.get(tag)
        if parts is None:
            item = self.element(tag)
            parts = self.li_parts[tag] = (_Elem(None, "Lbl", item), _Elem(None, "LBody", item))
        label, body = parts
        if not getattr(flowable, "bulletText", None):  # the rest of an item split over pages
            canvas._code.append(self._mark(canvas, body))
            return _EMC
        # reportlab draws the bullet first, as its own text object: the first drawText.
        canvas._code.append(self._mark(canvas, label))
        draw_text: Callable[[Any], None] = canvas.drawText

        def bullet_then_body(text: Any) -> None:
            draw_text(text)
            del canvas.drawText
            canvas._code.append(_EMC)
            canvas._code.append(self._mark(canvas, body))

        canvas.drawText = bullet_then_body
        return _LIST_ITEM

    def end(self, canvas: Any, closing: str) -> None:
        """Close what :meth:`begin` (or :meth:`begin_tag`, :meth:`begin_artifact`) opened."""
        if not closing:
            return
        code = canvas._code
        if closing == _LIST_ITEM:
            canvas.__dict__.pop("drawText", None)  # no bullet was drawn after all
        elif closing != _EMC:
            self.artifact_depth -= 1
            if closing == _NESTED:
                return
            if code[-1] == "/Artifact BMC":  # nothing was drawn: leave nothing
                code.pop()
                return
        code.append(_EMC)

    # --- writing ----------------------------------------------------------------------------

    def write(self, canvas: Any, lang: str) -> None:
        doc = canvas._doc
        pages = doc.Pages.pages
        page_nums = [_number(doc, doc.Reference(page)) for page in pages]
        elems: list[_Elem] = []
        _walk(self.root, elems)
        root_obj = _Raw()
        root_num = _number(doc, doc.Reference(root_obj))
        objs = []
        for elem in elems:
            obj = _Raw()
            elem.num = _number(doc, doc.Reference(obj))
            objs.append(obj)
        for elem, obj in zip(elems, objs, strict=True):
            obj.data = _elem_bytes(elem, root_num, page_nums, doc)
        nums = []
        for index in range(len(pages)):
            owners = self.pages.get(index, [])
            nums.append(f"{index} [{' '.join(f'{e.num} 0 R' for e in owners)}]")
        # Each link annotation's key follows the pages' keys: its element is its parent.
        for key, (elem, kid) in enumerate(self.links, len(pages)):
            kid.obj["StructParent"] = key
            nums.append(f"{key} {elem.num} 0 R")
        root_obj.data = (
            f"<< /Type /StructTreeRoot /K {self.root.num} 0 R /ParentTree << /Nums "
            f"[{' '.join(nums)}] >> /ParentTreeNextKey {len(pages) + len(self.links)} >>"
        ).encode("latin-1")
        for index, page in enumerate(pages):
            page.__NoDefault__ = [*page.__NoDefault__, "StructParents", "Tabs"]
            page.StructParents = index
            page.Tabs = b"/S"
        catalog = doc.Catalog
        catalog.StructTreeRoot = root_obj
        catalog.MarkInfo = _Raw(b"<< /Marked true >>")
        catalog.Lang = _text(lang)  # a plain value: Catalog.Lang is not in its references
        catalog.ViewerPreferences = _Raw(b"<< /DisplayDocTitle true >>")
        catalog.Metadata = _Raw(_metadata(str(doc.info.title), lang))


def _walk(elem: _Elem, out: list[_Elem]) -> None:
    out.append(elem)
    for kid in elem.kids:
        if isinstance(kid, _Elem):
            _walk(kid, out)


def _number(doc: Any, ref: Any) -> int:
    number: int = doc.idToObjectNumberAndVersion[ref.name][0]
    return number


def _elem_bytes(elem: _Elem, root_num: int, page_nums: list[int], doc: Any) -> bytes:
    parent = root_num if elem.parent is None else elem.parent.num
    # As compact as PDF allows (/Type /StructElem is optional): a two-page document has
    # about a hundred elements, each its own object.
    out = [f"<</S/{elem.role}/P {parent} 0 R"]
    if elem.page >= 0:
        out.append(f"/Pg {page_nums[elem.page]} 0 R")
    tag = elem.tag
    if tag is not None:
        if tag.scope:
            out.append(f"/A<</O/Table/Scope/{tag.scope}>>")
        if tag.alt is not None:
            out.append("/Alt" + _text(tag.alt).decode("latin-1"))
        if tag.lang:
            out.append("/Lang" + _text(tag.lang).decode("latin-1"))
    kids = []
    for kid in elem.kids:
        if isinstance(kid, _Elem):
            kids.append(f"{kid.num} 0 R")
        elif isinstance(kid, _Annotation):
            number = _number(doc, doc.Reference(kid.obj))
            kids.append(f"<</Type/OBJR/Obj {number} 0 R/Pg {page_nums[kid.page]} 0 R>>")
        elif kid[0] == elem.page:
            kids.append(str(kid[1]))
        else:
            kids.append(f"<</Type/MCR/Pg {page_nums[kid[0]]} 0 R/MCID {kid[1]}>>")
    if len(kids) == 1:
        out.append(f"/K {kids[0]}")
    elif kids:
        out.append(f"/K[{' '.join(kids)}]")
    out.append(">>")
    return "".join(out).encode("latin-1")


def _text(value: str) -> bytes:
    """A PDF text string: literal when plain ASCII, else UTF-16BE with a byte order mark."""
    if value.isascii() and value.isprintable() and not any(c in value for c in "()\\"):
        return f"({value})".encode("ascii")
    return b"<FEFF" + value.encode("utf-16-be").hex().upper().encode("ascii") + b">"


def _xml(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _metadata(title: str, lang: str) -> bytes:
    xmp = f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:pdfuaid="http://www.aiim.org/pdfua/ns/id/">
<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{_xml(title)}</rdf:li></rdf:Alt></dc:title>
<dc:language><rdf:Bag><rdf:li>{_xml(lang)}</rdf:li></rdf:Bag></dc:language>
<pdfuaid:part>1</pdfuaid:part>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="r"?>""".encode()  # noqa: E501
    head = f"<< /Type /Metadata /Subtype /XML /Length {len(xmp)} >>\nstream\n".encode("ascii")
    return head + xmp + b"\nendstream"


class _Raw(PDFObject):
    """A PDF object written exactly as given (compact, and free to refer by object number)."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def format(self, document: Any) -> bytes:
        return self.data


class TaggedCanvas(Canvas):
    """A Canvas that records the structure of what is drawn and writes it on save.

    Subclasses set ``lang`` (a BCP 47 tag, see :func:`language_tag`)."""

    lang = "en"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.structure = _Structure()

    def save(self) -> None:
        self.structure.write(self, self.lang)
        super().save()
