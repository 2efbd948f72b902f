"""Bundled fonts, registered once per process, and text turned into safe Paragraph markup.

Every character is checked against the fonts before it is printed: a character the main font
lacks is drawn with the fallback font, and one that no bundled font has stops the document with
an error naming it. Nothing is ever printed as an empty box.
"""

from __future__ import annotations

import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from fnmatch import fnmatch
from functools import cache, lru_cache, partial
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from discharge import lazy_imports  # noqa: F401 - before reportlab: see that module

# isort: split
import reportlab
from reportlab import rl_config
from reportlab.lib.fonts import addMapping
from reportlab.pdfbase import pdfdoc, pdfmetrics, ttfonts
from reportlab.pdfbase.pdfdoc import PDFObject
from reportlab.pdfbase.ttfonts import TTEncoding, TTFont, TTFontFace
from reportlab.rl_config import unShapedFontGlob

from discharge import cache as install_cache
from discharge.errors import RenderError
from discharge.resources import bundled_dir

BODY = "Body"
BOLD = "Body-Bold"
FALLBACK = "Fallback"
_FILES = {
    BODY: "NotoSans-Regular.ttf",
    BOLD: "NotoSans-Bold.ttf",
    FALLBACK: "DejaVuSans.ttf",
    FALLBACK + "-Bold": "DejaVuSans-Bold.ttf",
}
# Right-to-left scripts need shaping and reordering that this renderer does not do: they would
# print as disconnected letters in the wrong order, which is worse than no document at all.
_RTL = {"R", "AL"}
_ALWAYS_OK = frozenset("\n")


def _register(name: str) -> frozenset[str]:
    font, chars = _load(name, bundled_dir("fonts") / _FILES[name])
    _reuse_subsets(font.face)
    _reuse_font_objects(font)
    _to_unicode_cmap()
    _ascii_shortcut(font)
    pdfmetrics.registerFont(font)
    return chars


_SUBSETS_KEPT = 64  # per font: a batch's documents use a few dozen distinct subsets


class _Kept:
    """The last ``size`` values made, by key: a small least-recently-used map, safe to use
    from several threads (documents may be drawn in several at once)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Any, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self.lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
                return found
        found = make()
        with self.lock:
            self.items[key] = found
            if len(self.items) > self.size:
                self.items.popitem(last=False)
        return found


def _reuse_subsets(face: TTFontFace) -> None:
    """Make each font subset once per process. Every document embeds the subset of the font
    with the characters it uses, in the order it first used them: in a batch the same few
    dozen subsets come back (28 distinct in 900), and making one costs about 0.5 ms of the
    10 ms a document takes. The subset depends only on the font and that list of characters.
    """
    make = face.makeSubset
    made = _Kept(_SUBSETS_KEPT)

    def make_subset(subset: list[int]) -> bytes:
        data: bytes = made.get(tuple(subset), lambda: make(subset))
        return data

    face.makeSubset = make_subset


class _Preformatted(PDFObject):
    """A PDF value written as the bytes reportlab formatted it the first time."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def format(self, document: Any) -> bytes:
        return self.data

    @classmethod
    def of(cls, value: Any, document: Any) -> _Preformatted:
        return cls(pdfdoc.format(value, document))


def _reuse_font_objects(font: TTFont) -> None:
    """Write each subset's width table and character map the way it was written before. Like
    the subsets themselves (above) they repeat from document to document, and formatting them
    number by number took a twentieth of a document's time. The bytes are reportlab's own,
    formatted once per process: the same PDF."""
    add = font.addObjects
    widths = _Kept(_SUBSETS_KEPT)

    def add_objects(doc: Any) -> None:
        before = set(doc.idToObject["BasicFonts"].dict)
        add(doc)
        for name, pdf_font in doc.idToObject["BasicFonts"].dict.items():
            array = getattr(pdf_font, "Widths", None)
            if name in before or not isinstance(array, pdfdoc.PDFArray):
                continue
            made = partial(_Preformatted.of, array, doc)  # called now, in this iteration
            pdf_font.Widths = widths.get(tuple(array.sequence), made)

    font.addObjects = add_objects


def _to_unicode_cmap() -> None:
    """reportlab's character map of a subset, made once per subset and process (see above).
    A pure function of its arguments, so sharing it with other reportlab users is safe."""
    make = ttfonts.makeToUnicodeCMap
    if getattr(make, "reused", False):
        return
    made = _Kept(4 * _SUBSETS_KEPT)

    def make_cmap(fontname: str, subset: list[int]) -> str:
        cmap: str = made.get((fontname, tuple(subset)), lambda: _utf16(make, fontname, subset))
        return cmap

    make_cmap.reused = True  # type: ignore[attr-defined]
    ttfonts.makeToUnicodeCMap = make_cmap


def _utf16(make: Any, fontname: str, subset: list[int]) -> str:
    """reportlab's map, with characters beyond U+FFFF (𝔸, 😀) written as the UTF-16 pairs
    a ToUnicode map holds: reportlab writes their code point as it is (<1D538>), which text
    extraction, copy and paste and screen readers cannot read."""
    cmap: str = make(fontname, subset)
    for index, code in enumerate(subset):
        if code > 0xFFFF:
            pair = chr(code).encode("utf-16-be").hex().upper()
            cmap = cmap.replace(f"<{index:02X}> <{code:04X}>\n", f"<{index:02X}> <{pair}>\n")
    return cmap


_PRINTABLE_ASCII = range(32, 127)


def _ascii_shortcut(font: TTFont) -> None:
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


def _load(name: str, path: Path) -> tuple[TTFont, frozenset[str]]:
    """The font and the characters it has. Parsing a font's tables takes about 5 ms; the
    result is kept in the installation's cache (see cache.py), keyed by the file's content."""
    raw = path.read_bytes()
    key = (str(path), install_cache.file_digest(raw), reportlab.Version, _code_digest())
    entry = install_cache.fetch("font", key)
    if entry is not None:
        state, chars = entry
        return _font(name, _face(state, raw)), chars
    font = TTFont(name, str(path))
    state = {k: v for k, v in vars(font.face).items() if k not in ("_pdfScale", "_ttf_data")}
    chars = frozenset(map(chr, font.face.charToGlyph))
    # Kept only if rebuilding from it gives the same attributes reportlab set (and the file
    # read above is the one parsed): a reportlab that builds fonts differently is not cached.
    rebuilt = _font(name, _face(state, raw))
    if (
        font.face._ttf_data == raw
        and vars(rebuilt).keys() == vars(font).keys()
        and vars(rebuilt.face).keys() == vars(font.face).keys()
    ):
        install_cache.store("font", key, (state, chars))
    return font, chars


def _code_digest() -> str:
    return install_cache.source_digest(__file__)


def _face(state: dict[str, Any], raw: bytes) -> TTFontFace:
    # As TTFontFace(path) leaves it: its parsed tables, the file's bytes (for subsetting) and
    # its scale to PDF's 1000 units an em, the same arithmetic as reportlab's.
    face: TTFontFace = TTFontFace.__new__(TTFontFace)
    face.__dict__.update(state)
    face._ttf_data = raw
    units = face.unitsPerEm
    if units == 1000:
        face._pdfScale = lambda x: x
    else:
        per_unit = 1000 / units
        face._pdfScale = lambda x: x * per_unit
    return face


def _font(name: str, face: TTFontFace) -> TTFont:
    # As TTFont.__init__ (reportlab's version is part of the cache key), given the face.
    font: TTFont = TTFont.__new__(TTFont)
    font.fontName = name
    font.face = face
    font.encoding = TTEncoding()
    font.state = WeakKeyDictionary()
    font._asciiReadable = rl_config.ttfAsciiReadable
    font.shapable = not any(fnmatch(name, glob) for glob in unShapedFontGlob)
    return font


@cache
def main_coverage() -> frozenset[str]:
    """Register the main fonts (once) and return the characters they can draw."""
    chars = _register(BODY) & _register(BOLD)
    addMapping(BODY, 0, 0, BODY)
    addMapping(BODY, 1, 0, BOLD)
    addMapping(BODY, 0, 1, BODY)
    addMapping(BODY, 1, 1, BOLD)
    return chars | _ALWAYS_OK


@cache
def fallback_coverage() -> frozenset[str]:
    """Register the fallback fonts on first need: most documents never load them."""
    chars = _register(FALLBACK) & _register(FALLBACK + "-Bold")
    addMapping(FALLBACK, 0, 0, FALLBACK)
    addMapping(FALLBACK, 1, 0, FALLBACK + "-Bold")
    addMapping(FALLBACK, 0, 1, FALLBACK)
    addMapping(FALLBACK, 1, 1, FALLBACK + "-Bold")
    return chars


def check_printable(ch: str) -> None:
    """Raise RenderError for a character no bundled font can show correctly."""
    if unicodedata.bidirectional(ch) in _RTL:
        raise RenderError(
            f"cannot print {_describe(ch)}: right-to-left scripts are not supported yet"
        )
    if ch not in fallback_coverage():
        raise RenderError(f"cannot print {_describe(ch)}: no bundled font has this character")


def segments(text: str) -> list[tuple[bool, str]]:
    """Split text into runs of (needs_fallback, run)."""
    missing = set(text) - main_coverage()
    if not missing:
        return [(False, text)]
    for ch in dict.fromkeys(text):  # in reading order, so the message names the first one
        if ch in missing:
            check_printable(ch)
    runs: list[tuple[bool, str]] = []
    for ch in text:
        fallback = ch in missing
        if runs and runs[-1][0] == fallback:
            runs[-1] = (fallback, runs[-1][1] + ch)
        else:
            runs.append((fallback, ch))
    return runs


def markup(text: str) -> str:
    """Plain text to Paragraph markup: escaped, with fallback-font runs. Never user markup."""
    # A template's texts repeat on every sheet: short texts are kept (a patient's long notes,
    # which do not repeat, would only fill memory).
    return _short_markup(text) if len(text) <= 400 else _markup(text)


@lru_cache(maxsize=4096)
def _short_markup(text: str) -> str:
    return _markup(text)


def _markup(text: str) -> str:
    runs = segments(text)
    if len(runs) == 1 and not runs[0][0]:
        return escape(text)
    return "".join(
        f'<font face="{FALLBACK}">{escape(run)}</font>' if fallback else escape(run)
        for fallback, run in runs
    )


def escape(text: str) -> str:
    # xml.sax.saxutils.escape does the same but imports urllib.request: 15 ms of every start-up.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _describe(ch: str) -> str:
    name = unicodedata.name(ch, "unnamed character")
    return f"the character {ch!r} (U+{ord(ch):04X} {name})"
