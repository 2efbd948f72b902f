"""The speed tricks: every use of a private name of reportlab, Babel, multiprocessing or Python
that only makes ``discharge`` faster, in one place, each with what it relies on.

The domain modules (``pdf/render.py``, ``pdf/flowables.py``, ``pdf/fonts.py``,
``pdf/tagging.py``, ``pdf/lazy_imports.py``, ``locale_data.py``, ``batch/run.py``) call in here;
none of them reaches into a library's private names for speed. The README's "Speed" section
measures what each trick is worth.

**The plain path.** ``DISCHARGE_SPEEDUPS=0`` in the environment (read once, when this module is
first imported) turns every trick off: reportlab, Babel and multiprocessing are used through
their public API only. The PDFs read the same (the same text, structure tree and pages:
``tests/test_speedups.py``); their bytes differ only where a trick changes the encoding (zlib
level 1 and no ASCII85 for the page contents: ``pdf_writing``).

**A library that changed.** Each trick names the private names it relies on (``_TRICKS``);
before it is first used, they are checked (cheaply: attributes of classes and the names their
code uses, never by drawing anything). A trick whose names are gone is off and the plain path
runs, so a new reportlab or Babel slows ``discharge`` down rather than stopping it.
``tests/test_speedups.py`` fails, naming the trick and the name, when that happens.

Nothing here imports reportlab, Babel or multiprocessing at import time: each trick imports
what it needs when it is first used (its callers have already imported them).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from fnmatch import fnmatch
from functools import cache, partial
from typing import Any

from discharge.lru import Lru

_OFF_WORDS = {"0", "off", "false", "no"}
ENABLED = os.environ.get("DISCHARGE_SPEEDUPS", "").strip().lower() not in _OFF_WORDS


# --- checking the private names -----------------------------------------------------------


def _names_in(cls: Any) -> set[str]:
    """Every name the code of ``cls`` (and its bases) uses: attributes it reads or sets."""
    names: set[str] = set()
    for klass in getattr(cls, "__mro__", (cls,)):
        for value in vars(klass).values():
            func = getattr(value, "fget", value)  # a property's getter
            code = getattr(func, "__code__", None)
            if code is not None:
                names.update(code.co_names)
    return names


def _need(problems: list[str], ok: bool, what: str) -> None:
    if not ok:
        problems.append(what)


def _check_lazy_imports() -> list[str]:
    problems: list[str] = []
    _need(problems, callable(getattr(sys, "_getframe", None)), "sys._getframe")
    return problems


def _check_pdf_writing() -> list[str]:
    from reportlab import rl_config
    from reportlab.pdfbase import pdfdoc

    problems: list[str] = []
    filt = getattr(pdfdoc, "PDFStreamFilterZCompress", None)
    _need(problems, isinstance(filt, type), "pdfdoc.PDFStreamFilterZCompress")
    _need(
        problems,
        isinstance(filt, type) and isinstance(getattr(pdfdoc, "PDFZCompress", None), filt),
        "pdfdoc.PDFZCompress (a PDFStreamFilterZCompress)",
    )
    _need(problems, callable(getattr(pdfdoc, "pdfdocEnc", None)), "pdfdoc.pdfdocEnc")
    _need(problems, hasattr(rl_config, "useA85"), "rl_config.useA85")
    return problems


def _check_paragraphs() -> list[str]:
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen.canvas import Canvas
    from reportlab.platypus import Paragraph

    problems: list[str] = []
    used = _names_in(Paragraph)
    for name in ("caseSensitive", "encoding", "frags", "bulletText", "style", "text", "debug"):
        _need(problems, name in used, f"Paragraph.{name}")
    for name in ("breakLines", "draw", "_setup"):
        _need(problems, callable(getattr(Paragraph, name, None)), f"Paragraph.{name}()")
    _need(problems, "blPara" in used, "Paragraph.blPara")
    canvas_uses = _names_in(Canvas)
    for name in ("_code", "_doc"):
        _need(problems, name in canvas_uses, f"Canvas.{name}")
    _need(problems, "fontMapping" in _names_in(Canvas) | _doc_names(), "PDFDocument.fontMapping")
    _need(
        problems,
        callable(getattr(TTFont, "getSubsetInternalName", None)),
        "TTFont.getSubsetInternalName()",
    )
    return problems


def _doc_names() -> set[str]:
    from reportlab.pdfbase.pdfdoc import PDFDocument

    return _names_in(PDFDocument)


def _check_keep_together() -> list[str]:
    from reportlab.platypus import KeepTogether, flowables

    problems: list[str] = []
    wrap_on = getattr(flowables, "_listWrapOn", None)
    code = getattr(wrap_on, "__code__", None)
    _need(
        problems,
        code is not None
        and code.co_varnames[:3] == ("F", "availWidth", "canv")
        and "dims" in code.co_varnames,
        "flowables._listWrapOn(F, availWidth, canv, ..., dims=)",
    )
    used = _names_in(KeepTogether)
    for name in ("_content", "_H", "_H0", "_wrapInfo"):
        _need(problems, name in used, f"KeepTogether.{name}")
    return problems


def _check_tables() -> list[str]:
    from reportlab.platypus import Table

    problems: list[str] = []
    used = _names_in(Table)
    for name in ("_hmax", "_argH", "_width", "_height", "availWidth"):
        _need(problems, name in used, f"Table.{name}")
    return problems


def _check_font_objects() -> list[str]:
    from reportlab.pdfbase import pdfdoc, ttfonts

    problems: list[str] = []
    _need(problems, callable(getattr(ttfonts.TTFontFace, "makeSubset", None)),
          "TTFontFace.makeSubset()")  # fmt: skip
    _need(problems, callable(getattr(ttfonts.TTFont, "addObjects", None)), "TTFont.addObjects()")
    cmap = getattr(getattr(ttfonts, "makeToUnicodeCMap", None), "__code__", None)
    _need(problems, cmap is not None and cmap.co_argcount == 2,
          "ttfonts.makeToUnicodeCMap(fontname, subset)")  # fmt: skip
    _need(problems, callable(getattr(pdfdoc, "format", None)), "pdfdoc.format()")
    _need(problems, "sequence" in _names_in(pdfdoc.PDFArray), "PDFArray.sequence")
    _need(problems, "Widths" in _names_in(ttfonts.TTFont), "the PDF font's Widths")
    _need(problems, "idToObject" in _doc_names(), "PDFDocument.idToObject")
    return problems


def _check_ascii_text() -> list[str]:
    from reportlab.pdfbase.ttfonts import TTFont

    problems: list[str] = []
    _need(problems, "_asciiReadable" in _names_in(TTFont), "TTFont._asciiReadable")
    _need(problems, callable(getattr(TTFont, "splitString", None)), "TTFont.splitString()")
    return problems


def _check_font_cache() -> list[str]:
    from reportlab import rl_config
    from reportlab.pdfbase.ttfonts import TTFont, TTFontFace

    problems: list[str] = []
    _need(problems, hasattr(rl_config, "unShapedFontGlob"), "rl_config.unShapedFontGlob")
    _need(problems, hasattr(rl_config, "ttfAsciiReadable"), "rl_config.ttfAsciiReadable")
    face_uses = _names_in(TTFontFace)
    for name in ("_ttf_data", "_pdfScale", "unitsPerEm", "charToGlyph"):
        _need(problems, name in face_uses, f"TTFontFace.{name}")
    font_uses = _names_in(TTFont)
    for name in ("fontName", "face", "encoding", "state", "_asciiReadable", "shapable"):
        _need(problems, name in font_uses, f"TTFont.{name}")
    return problems


def _check_quiet_pool() -> list[str]:
    from multiprocessing.pool import Pool

    problems: list[str] = []
    _need(problems, callable(getattr(Pool, "_get_sentinels", None)), "Pool._get_sentinels()")
    _need(problems, "_change_notifier" in _names_in(Pool), "Pool._change_notifier")
    return problems


def _check_babel_locale() -> list[str]:
    from babel import Locale, localedata

    problems: list[str] = []
    # (_Locale__data_identifier is read where there is one, in newer Babel; else str(locale).)
    _need(problems, "_Locale__data" in _names_in(Locale), "Locale._Locale__data")
    _need(problems, isinstance(getattr(localedata, "LocaleDataDict", None), type),
          "localedata.LocaleDataDict")  # fmt: skip
    _need(problems, callable(getattr(localedata, "load", None)), "localedata.load()")
    return problems


# name -> (what it saves, its check: the private names it relies on that are missing)
_TRICKS: dict[str, tuple[str, Callable[[], list[str]]]] = {
    "lazy-imports": ("reportlab's rare imports and patterns on first use", _check_lazy_imports),
    "pdf-writing": ("zlib level 1, no ASCII85, ASCII names by the fast codec", _check_pdf_writing),
    "paragraphs": ("a paragraph parsed, broken and drawn once per process", _check_paragraphs),
    "keep-together": ("KeepTogether measured without copying the frame", _check_keep_together),
    "tables": ("a table measured in full answers its next measure", _check_tables),
    "font-objects": ("font subsets, widths and character maps made once", _check_font_objects),
    "ascii-text": ("printable ASCII encoded without the per-character loop", _check_ascii_text),
    "font-cache": ("parsed fonts kept in the installation's cache", _check_font_cache),
    "quiet-pool": ("the batch pool's minding thread not woken by every result", _check_quiet_pool),
    "babel-locale": ("only the locale data our dates read, from the cache", _check_babel_locale),
}  # fmt: skip
TRICKS = tuple(_TRICKS)


def missing(trick: str) -> list[str]:
    """The private names ``trick`` relies on that the installed libraries lack."""
    return _TRICKS[trick][1]()


@cache
def usable(trick: str) -> bool:
    """Whether ``trick`` runs: speedups on, and every private name it relies on present."""
    if not ENABLED:
        return False
    try:
        return not missing(trick)
    except Exception:  # a library changed so much that even checking fails: plain path
        return False


# --- lazy imports (used by pdf/lazy_imports.py) ----------------------------------------------
#
# Relies on: sys._getframe (the module compiling a pattern); reportlab's module names below
# and its paragraph module importing Pyphen only if it can (``try: import pyphen``).

_PARAGRAPH = "reportlab.platypus.paragraph"
_IMAGE = "PIL.Image"
_HYPHENATION = "pyphen"
_import_lock = threading.Lock()


class _LazyPattern:
    """A compiled regular expression, compiled on first use."""

    def __init__(self, compile_: Any, pattern: str, flags: int) -> None:
        self._compile = compile_
        self._args = pattern, flags
        self._compiled: re.Pattern[str] | None = None

    def __getattr__(self, name: str) -> Any:
        if self._compiled is None:
            self._compiled = self._compile(*self._args)
        return getattr(self._compiled, name)


# module -> the length above which its patterns are compiled on first use
_DEFERRED_PATTERNS = {
    _PARAGRAPH: 300,
    "reportlab.lib.textsplit": 0,
    "reportlab.lib.PyFontify": 0,  # colours Python source code in listings
    "reportlab.lib.rl_safe_eval": 300,  # a list of names unsafe to evaluate
}


@contextlib.contextmanager
def _patterns_compiled_on_use() -> Iterator[None]:
    """While reportlab's paragraph module is imported, the patterns in ``_DEFERRED_PATTERNS``
    compile on first use (only theirs: the caller's module is checked, so another thread's
    patterns are not affected)."""
    real = re.compile

    def compile_(pattern: Any, flags: Any = 0) -> Any:
        caller = sys._getframe(1).f_globals.get("__name__")
        longer_than = _DEFERRED_PATTERNS.get(caller, -1) if isinstance(caller, str) else -1
        if longer_than >= 0 and isinstance(pattern, str) and len(pattern) > longer_than:
            return _LazyPattern(real, pattern, flags)
        return real(pattern, flags)

    re.compile = compile_
    try:
        yield
    finally:
        re.compile = real


def _defer(name: str) -> None:
    """Make the submodule ``name`` lazy: loaded when something is first read from it. (Not a
    top-level module: ``import name`` reads its ``__spec__``, which loads it at once.)"""
    if name in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(name)
    except ImportError:
        return
    if spec is None or spec.loader is None:
        return
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, module)


def load_images() -> None:
    """Load Pillow now, once, under a lock (before drawing a logo)."""
    with _import_lock:
        module = sys.modules.get(_IMAGE)
        if module is not None:
            getattr(module, "open", None)  # the first read loads a lazy module


@contextlib.contextmanager
def _without(module: str) -> Iterator[None]:
    """While inside, ``import module`` fails (unless it is already imported), as if it were not
    installed; afterwards it can be imported as usual."""
    if module in sys.modules:
        yield
        return
    sys.modules[module] = None  # type: ignore[assignment]  # Python's "not importable" mark
    try:
        yield
    finally:
        if sys.modules.get(module, 0) is None:
            del sys.modules[module]


def defer_reportlab_imports() -> None:
    """Import reportlab's paragraph module with Pillow lazy, without Pyphen, and its unused
    patterns compiled on first use (see ``pdf/lazy_imports.py``)."""
    if _PARAGRAPH in sys.modules or not usable("lazy-imports"):
        return
    with _import_lock:
        _defer(_IMAGE)
        with _patterns_compiled_on_use(), _without(_HYPHENATION):
            importlib.import_module(_PARAGRAPH)


# --- writing the PDF (used by pdf/render.py) ------------------------------------------------
#
# Relies on: pdfdoc.PDFZCompress (the one shared stream filter, a PDFStreamFilterZCompress,
# looked up each time a stream is written), pdfdoc.pdfdocEnc (looked up each time a name,
# number or keyword is written) and rl_config.useA85.

# A few dozen subsets of two fonts, and their maps: a few MB at most.
_DEFLATED: Lru[str | bytes, bytes] = Lru(256)
_NOT_PDFDOC = re.compile("[\x18-\x1f]")  # ASCII that PDFDocEncoding does not have
_deflate_lock = threading.Lock()
_deflate_users = 0
_deflate_saved: Any = None


@cache
def _fast_deflate_filter() -> Any:
    from reportlab.pdfbase import pdfdoc

    class FastDeflate(pdfdoc.PDFStreamFilterZCompress):
        # reportlab deflates every stream at zlib's default level 6. Our streams are small
        # page contents and font subsets: level 1 renders a document about 9% faster for
        # about 4% more bytes (measured: 10.0 -> 9.1 ms, 33.9 -> 35.2 KB).
        #
        # The font programs (bytes: each subset is made once per process, see
        # ``speed_up_font``) and their character maps (text beginning "/CIDInit") repeat from
        # document to document: each is deflated once per process too (0.5 ms a document).
        # Page contents (other text) never repeat and are not kept.
        def encode(self, text: str | bytes) -> bytes:
            if isinstance(text, bytes) or text.startswith("/CIDInit"):
                found: bytes | None = _DEFLATED.find(text)
                if found is None:
                    data = text.encode("utf8") if isinstance(text, str) else text
                    found = _DEFLATED.put(text, zlib.compress(data, 1))
                return found
            return zlib.compress(text.encode("utf8"), 1)

    return FastDeflate()


def _pdfdoc_encode(value: str | bytes) -> bytes:
    # reportlab's pdfdocEnc, which writes every name, number and keyword of a PDF (about 800
    # a document) through a Python-level codec. PDFDocEncoding is ASCII for every ASCII
    # character it has, so plain ASCII takes the built-in codec: the same bytes, 10x faster.
    if isinstance(value, str):
        if value.isascii() and not _NOT_PDFDOC.search(value):
            return value.encode("ascii")
        encoded: bytes = value.encode("extpdfdoc")
        return encoded
    return value


@contextlib.contextmanager
def pdf_writing() -> Iterator[None]:
    """Use level-1 deflate, no ASCII85 and a faster PDFDocEncoding while our documents are
    drawn, and only then.

    reportlab also writes page contents in ASCII85 on top of deflate (a quarter bigger, for
    7-bit channels that PDF files no longer go through).

    reportlab looks its one shared filter object (``pdfdoc.PDFZCompress``) and its encoder
    (``pdfdoc.pdfdocEnc``) up each time it uses them, so they are swapped for the duration of
    our renders (counted, so concurrent renders in threads all keep them) and put back
    afterwards: other reportlab users in the same process are not affected, and importing this
    module changes nothing. On the plain path, nothing is swapped.
    """
    if not usable("pdf-writing"):
        yield
        return
    from reportlab import rl_config
    from reportlab.pdfbase import pdfdoc

    global _deflate_users, _deflate_saved
    with _deflate_lock:
        if _deflate_users == 0:
            _deflate_saved = pdfdoc.PDFZCompress, rl_config.useA85, pdfdoc.pdfdocEnc
            pdfdoc.PDFZCompress, rl_config.useA85 = _fast_deflate_filter(), 0
            pdfdoc.pdfdocEnc = _pdfdoc_encode
        _deflate_users += 1
    try:
        yield
    finally:
        with _deflate_lock:
            _deflate_users -= 1
            if _deflate_users == 0:
                pdfdoc.PDFZCompress, rl_config.useA85, pdfdoc.pdfdocEnc = _deflate_saved


# --- paragraphs (used by pdf/flowables.py's Para) ------------------------------------------
#
# Relies on: the attributes Paragraph.__init__ sets (caseSensitive, encoding, frags,
# bulletText, style, text, debug) being all its state before layout; breakLines() depending
# only on them and the widths; the canvas's list of operators (canvas._code) and document
# (canvas._doc), its fontMapping, and a paragraph's drawing depending only on its broken lines
# (blPara) and the document's names for its fonts.

_MEMO_MAX_CHARS = 1000  # so the memos stay small (4,096 short paragraphs each at most)
_PARSED: Lru[Any, Any] = Lru(4096)
_BROKEN: Lru[Any, Any] = Lru(4096)
_DRAWN: Lru[Any, Any] = Lru(4096)
_FONT_USE = re.compile(r"/(F\d+)\+0 ")  # a subset-0 font selected in drawn text: "/F1+0 11 Tf"


def init_paragraph(
    para: Any,
    init: Callable[..., None],
    text: Any,
    style: Any,
    bullet_text: Any,
    frags: Any,
    kw: dict[str, Any],
) -> Any:
    """Paragraph.__init__ (``init``), or the state it set for the same markup and style
    before. Returns the key the paragraph's lines and drawing are kept under (None: not
    kept). Profiling showed markup parsing and line breaking dominate rendering, and most
    text (the template's wording, the table cells that reportlab wraps several times) repeats
    exactly; reportlab only reads the parse result afterwards, so it is safe to share."""
    # reportlab's own split() passes frags: no caching there; nor for long paragraphs (a
    # patient's notes), which do not repeat and would only fill the memos.
    if frags is not None or kw or len(text) > _MEMO_MAX_CHARS or not usable("paragraphs"):
        init(text, style, bullet_text, frags, **kw)
        return None
    key = (text, style.name, bullet_text)
    hit = _PARSED.find(key)
    if hit is None:
        init(text, style, bullet_text)
        _PARSED.put(key, (para.frags, para.bulletText, para.style, para.text))
    else:
        para.caseSensitive = 1
        para.encoding = "utf8"
        para.frags, para.bulletText, para.style, para.text = hit
        para.debug = 0
    return key


def break_lines(key: Any, width: Any, break_: Callable[[Any], Any]) -> Any:
    """Paragraph.breakLines (``break_``), or its answer for the same paragraph and widths."""
    if key is None:
        return break_(width)
    key = (key, tuple(width))
    hit = _BROKEN.find(key)
    return hit if hit is not None else _BROKEN.put(key, break_(width))


def _subset_name(font: str, doc: Any) -> str:
    from reportlab.pdfbase.pdfmetrics import getFont

    name: str = getFont(font).getSubsetInternalName(0, doc)
    return name


def draw_paragraph(para: Any, key: Any, draw: Callable[[], None]) -> None:
    """Draw as reportlab does (``draw``), or repeat what it drew for the same paragraph.

    A paragraph's drawing is PDF operators relative to its own origin (the frame moves the
    canvas there first), made from its broken lines, its style and the names the document
    gives its fonts: nothing else. So when the same lines (the same memoised object) are
    drawn again in a document that names the fonts the same, the operators are the same, and
    are reused (a fifth of a document's time). Only paragraphs whose text is printable ASCII
    qualify, which every document encodes alike (see ``speed_up_font``); not a list item's
    (its bullet is tagged separately) nor one with links or underlines.
    """
    draw_key = _draw_key(para, key)
    if draw_key is None:
        draw()
        return
    canvas = para.canv
    doc = canvas._doc
    hit = _DRAWN.find(draw_key)
    # Naming a font in a document registers it there, as drawing would have.
    if (
        hit is not None
        and hit[0] is para.blPara
        and all(_subset_name(name, doc) == internal for name, internal in hit[1])
    ):
        canvas._code.extend(hit[2])
        return
    start = len(canvas._code)
    draw()
    code = canvas._code[start:]
    used = {m.group(1) for m in _FONT_USE.finditer(" ".join(code))}
    fonts = tuple(
        (name, f"{internal}+0")
        for name, internal in doc.fontMapping.items()
        if internal.lstrip("/") in used
    )
    _DRAWN.put(draw_key, (para.blPara, fonts, tuple(code)))


def _draw_key(para: Any, key: Any) -> tuple[Any, ...] | None:
    if key is None or para.bulletText:
        return None
    for frag in para.frags:
        text = getattr(frag, "text", "")
        if not (isinstance(text, str) and text.isascii() and text.isprintable()):
            return None
        if getattr(frag, "link", None) or getattr(frag, "us_lines", None):
            return None
    return (key, para.width, para.height)


# --- KeepTogether (used by pdf/flowables.py's KeepTogether) ------------------------------
#
# Relies on: flowables._listWrapOn(content, width, canv, dims=) and KeepTogether.wrap setting
# _H, _H0 and _wrapInfo, which its split() reads.


def wrap_together(flowable: Any, aW: float, aH: float) -> tuple[float, float] | None:
    """KeepTogether.wrap without copying the page frame each time, or None (plain path: the
    caller wraps as reportlab does).

    reportlab deep-copies the frame on every measurement in case the content adds generated
    content (frame actions); ours is only paragraphs and tables, and the copies cost about 7%
    of rendering time."""
    if not usable("keep-together"):
        return None
    from reportlab.platypus.flowables import _listWrapOn

    dims: list[tuple[float, float]] = []
    width, height = _listWrapOn(flowable._content, aW, None, dims=dims)
    flowable._H = height
    flowable._H0 = dims[0][1] if dims else 0
    flowable._wrapInfo = aW, aH
    return width, 0xFFFFFF  # as KeepTogether: always asks to be split into its content


# --- tables (used by pdf/tagging.py's TaggedTable) ---------------------------------------------
#
# Relies on: Table.wrap setting _width, _height and availWidth, and _hmax (rows measured)
# equal to len(_argH) (all rows) once every row has been measured.


def wrap_table(
    table: Any, aW: float, aH: float, wrap: Callable[[float, float], tuple[float, float]]
) -> tuple[float, float]:
    """Table.wrap (``wrap``), or its last full answer for the same width.

    reportlab measures a table again on every wrap (a page's layout asks two or three times),
    and the answer only depends on the width offered once every row has been measured and fits
    in the height offered. Repeat that answer instead: half of all wraps, about 4% of a
    document's time."""
    if not usable("tables"):
        return wrap(aW, aH)
    measured = table.__dict__.get("_measured")
    if measured is not None and measured[0] == aW and aH >= measured[1]:
        table.availWidth = aW
        return table._width, table._height
    width, height = wrap(aW, aH)
    complete = table._hmax == len(table._argH)
    table._measured = (aW, height) if complete else None
    return width, height


# --- fonts (used by pdf/fonts.py) ----------------------------------------------------------------
#
# Relies on: TTFontFace.makeSubset(subset), TTFont.addObjects(doc) adding the PDF fonts to
# doc.idToObject["BasicFonts"] with their Widths as a PDFArray (its .sequence), pdfdoc.format,
# ttfonts.makeToUnicodeCMap(fontname, subset) looked up each time it is used, and
# TTFont._asciiReadable / splitString(text, doc, encoding).

_SUBSETS_KEPT = 64  # per font: a batch's documents use a few dozen distinct subsets
_PRINTABLE_ASCII = range(32, 127)


def speed_up_font(font: Any) -> None:
    """Reuse what a registered font makes from document to document (see each part)."""
    if usable("font-objects"):
        _reuse_subsets(font.face)
        _reuse_font_objects(font)
        _to_unicode_cmap()
    if usable("ascii-text"):
        _ascii_shortcut(font)


def _reuse_subsets(face: Any) -> None:
    """Make each font subset once per process. Every document embeds the subset of the font
    with the characters it uses, in the order it first used them: in a batch the same few
    dozen subsets come back (28 distinct in 900), and making one costs about 0.5 ms of the
    10 ms a document takes. The subset depends only on the font and that list of characters.
    """
    make = face.makeSubset
    made: Lru[tuple[int, ...], bytes] = Lru(_SUBSETS_KEPT)

    def make_subset(subset: list[int]) -> bytes:
        data: bytes = made.get(tuple(subset), lambda: make(subset))
        return data

    face.makeSubset = make_subset


@cache
def _preformatted() -> Any:
    from reportlab.pdfbase import pdfdoc

    class Preformatted(pdfdoc.PDFObject):
        """A PDF value written as the bytes reportlab formatted it the first time."""

        def __init__(self, data: bytes) -> None:
            self.data = data

        def format(self, document: Any) -> bytes:
            return self.data

        @classmethod
        def of(cls, value: Any, document: Any) -> Any:
            return cls(pdfdoc.format(value, document))

    return Preformatted


def _reuse_font_objects(font: Any) -> None:
    """Write each subset's width table and character map the way it was written before. Like
    the subsets themselves (above) they repeat from document to document, and formatting them
    number by number took a twentieth of a document's time. The bytes are reportlab's own,
    formatted once per process: the same PDF."""
    from reportlab.pdfbase import pdfdoc

    add = font.addObjects
    widths: Lru[tuple[Any, ...], Any] = Lru(_SUBSETS_KEPT)
    preformatted = _preformatted()

    def add_objects(doc: Any) -> None:
        before = set(doc.idToObject["BasicFonts"].dict)
        add(doc)
        for name, pdf_font in doc.idToObject["BasicFonts"].dict.items():
            array = getattr(pdf_font, "Widths", None)
            if name in before or not isinstance(array, pdfdoc.PDFArray):
                continue
            made = partial(preformatted.of, array, doc)  # called now, in this iteration
            pdf_font.Widths = widths.get(tuple(array.sequence), made)

    font.addObjects = add_objects


def _to_unicode_cmap() -> None:
    """reportlab's character map of a subset, made once per subset and process (see above).
    A pure function of its arguments, so sharing it with other reportlab users is safe."""
    from reportlab.pdfbase import ttfonts

    make = ttfonts.makeToUnicodeCMap
    if getattr(make, "reused", False):
        return
    made: Lru[tuple[str, tuple[int, ...]], str] = Lru(4 * _SUBSETS_KEPT)

    def make_cmap(fontname: str, subset: list[int]) -> str:
        cmap: str = made.get((fontname, tuple(subset)), lambda: make(fontname, subset))
        return cmap

    make_cmap.reused = True  # type: ignore[attr-defined]
    ttfonts.makeToUnicodeCMap = make_cmap


def _ascii_shortcut(font: Any) -> None:
    """Encode printable ASCII text without reportlab's character-by-character loop (a twelfth
    of a document's time). reportlab gives ASCII its own codes in a document's first subset
    before anything is drawn (``asciiReadable``), so such text always encodes as itself in
    subset 0 and assigns nothing new: the same result, with no state to update. Any other text,
    or a font lacking an ASCII glyph, goes through reportlab as before."""
    if not font._asciiReadable or not all(c in font.face.charToGlyph for c in _PRINTABLE_ASCII):
        return
    split = font.splitString

    def split_string(text: Any, doc: Any, encoding: str = "utf-8") -> list[tuple[int, bytes]]:
        if isinstance(text, str) and text.isascii() and text.isprintable():
            return [(0, text.encode("ascii"))] if text else []
        pieces: list[tuple[int, bytes]] = split(text, doc, encoding)
        return pieces

    font.splitString = split_string


# --- the font cache (used by pdf/fonts.py's _load) ----------------------------------------------
#
# Relies on: a TTFontFace's state being its __dict__ (parsed tables) plus _ttf_data (the
# file's bytes) and _pdfScale; TTFont.__init__ setting exactly fontName, face, encoding,
# state, _asciiReadable (from rl_config.ttfAsciiReadable) and shapable (from
# rl_config.unShapedFontGlob, new in reportlab 4.4). The cache key holds reportlab's version.


def font_state(font: Any, raw: bytes) -> dict[str, Any] | None:
    """What to keep of a font parsed from ``raw`` to make it again without parsing (None:
    keep nothing, on the plain path or when rebuilding from it would not give what reportlab
    made: a reportlab that builds fonts differently is not cached)."""
    if not usable("font-cache"):
        return None
    face = font.face
    state = {k: v for k, v in vars(face).items() if k not in ("_pdfScale", "_ttf_data")}
    rebuilt = font_from_state(font.fontName, state, raw)
    if (
        face._ttf_data == raw  # the file read is the one parsed
        and vars(rebuilt).keys() == vars(font).keys()
        and vars(rebuilt.face).keys() == vars(face).keys()
    ):
        return state
    return None


def font_from_state(name: str, state: dict[str, Any], raw: bytes) -> Any:
    """The font ``font_state`` kept, made again given the file's bytes; None on the plain
    path (the caller parses the file)."""
    if not usable("font-cache"):
        return None
    from weakref import WeakKeyDictionary

    from reportlab import rl_config
    from reportlab.pdfbase.ttfonts import TTEncoding, TTFont, TTFontFace

    # As TTFontFace(path) leaves it: its parsed tables, the file's bytes (for subsetting) and
    # its scale to PDF's 1000 units an em, the same arithmetic as reportlab's.
    face = TTFontFace.__new__(TTFontFace)
    face.__dict__.update(state)
    face._ttf_data = raw
    units = face.unitsPerEm
    if units == 1000:
        face._pdfScale = lambda x: x
    else:
        per_unit = 1000 / units
        face._pdfScale = lambda x: x * per_unit
    # As TTFont.__init__ (reportlab's version is part of the cache key), given the face.
    font = TTFont.__new__(TTFont)
    font.fontName = name
    font.face = face
    font.encoding = TTEncoding()
    font.state = WeakKeyDictionary()
    font._asciiReadable = rl_config.ttfAsciiReadable
    font.shapable = not any(fnmatch(name, glob) for glob in rl_config.unShapedFontGlob)
    return font


# --- the batch's pool (used by batch/run.py) -------------------------------------------------
#
# Relies on: Pool._get_sentinels(), the objects its worker-minding thread waits on, and
# Pool._change_notifier, the queue that wakes it when the pool changes state.


@cache
def pool_class() -> type[Any]:
    """multiprocessing's Pool, without its worker-minding thread's spin on every result.

    That thread (which replaces workers that exit) also waits on the results pipe, which stays
    readable until the result thread has read the result: each row's result made it loop,
    taking the GIL from the parent's main thread, about 0.3 ms of the parent's CPU a row. It
    still wakes when a worker exits or the pool changes state, which is all it acts on.
    """
    from multiprocessing.pool import Pool

    if not usable("quiet-pool"):
        return Pool

    class QuietPool(Pool):
        def _get_sentinels(self) -> list[Any]:
            return [self._change_notifier._reader]  # type: ignore[attr-defined]

    return QuietPool


# --- Babel's locale data (used by locale_data.py) ----------------------------------------------
#
# Relies on: Locale keeping its data in the name-mangled attribute _Locale__data (loaded, when
# None, by the identifier _Locale__data_identifier in newer Babel, by str(locale) in 2.14),
# and localedata.LocaleDataDict / localedata.load.


def locale_identifier(loc: Any) -> str:
    """The identifier Babel loads the locale's data by (``en_GB``)."""
    return str(getattr(loc, "_Locale__data_identifier", str(loc)))


def set_locale_data(loc: Any, data: Any) -> None:
    """Give the Babel locale ``loc`` this data instead of loading its own."""
    loc._Locale__data = data
