"""Bundled fonts, registered once per process, and text turned into safe Paragraph markup.

Every character is checked against the fonts before it is printed: a character the main font
lacks is drawn with the fallback font, and one that no bundled font has stops the document with
an error naming it. Nothing is ever printed as an empty box.
"""

from __future__ import annotations

import unicodedata
from functools import cache, lru_cache
from pathlib import Path

from discharge.pdf import lazy_imports  # noqa: F401 - before reportlab: see that module

# isort: split
import reportlab
from reportlab.lib.fonts import addMapping
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

from discharge import cache as install_cache
from discharge import speedups
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
    _utf16_text_map()  # before speedups keeps the maps it makes
    speedups.speed_up_font(font)  # reuse what it makes between documents: see there
    pdfmetrics.registerFont(font)
    return chars


def _utf16_text_map() -> None:
    """Characters beyond U+FFFF (𝔸, 😀) in a subset's ToUnicode map as the UTF-16 pairs a
    PDF reader expects: reportlab writes their code point as it is (<1D538>), which text
    extraction, copy and paste and screen readers cannot read. A fix, not a speed trick: on
    whatever DISCHARGE_SPEEDUPS says. (reportlab looks ``makeToUnicodeCMap`` up each time.)"""
    from reportlab.pdfbase import ttfonts

    make = ttfonts.makeToUnicodeCMap
    if getattr(make, "utf16", False):
        return

    def make_cmap(fontname: str, subset: list[int]) -> str:
        cmap: str = make(fontname, subset)
        for index, code in enumerate(subset):
            if code > 0xFFFF:
                pair = chr(code).encode("utf-16-be").hex().upper()
                cmap = cmap.replace(f"<{index:02X}> <{code:04X}>\n", f"<{index:02X}> <{pair}>\n")
        return cmap

    make_cmap.utf16 = True  # type: ignore[attr-defined]
    ttfonts.makeToUnicodeCMap = make_cmap


def _load(name: str, path: Path) -> tuple[TTFont, frozenset[str]]:
    """The font and the characters it has. Parsing a font's tables takes about 5 ms; the
    result is kept in the installation's cache (see cache.py), keyed by the file's content."""
    if not speedups.usable("font-cache"):
        font = TTFont(name, str(path))
        return font, frozenset(map(chr, font.face.charToGlyph))
    raw = path.read_bytes()
    key = (str(path), install_cache.file_digest(raw), reportlab.Version, _code_digest())
    entry = install_cache.fetch("font", key)
    if entry is not None:
        state, chars = entry
        return speedups.font_from_state(name, state, raw), chars
    font = TTFont(name, str(path))
    chars = frozenset(map(chr, font.face.charToGlyph))
    state = speedups.font_state(font, raw)
    if state is not None:
        install_cache.store("font", key, (state, chars))
    return font, chars


def _code_digest() -> str:
    return install_cache.source_digest(__file__, speedups.__file__)


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
