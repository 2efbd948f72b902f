"""Import reportlab without paying at start-up for the parts a document rarely uses.

Importing this module (before reportlab: each module of the wing that imports reportlab's
layout imports it first) saves about a tenth of a cold ``discharge generate``:

- reportlab imports Pillow (``PIL.Image``, about 8 ms) whether or not a page has an image. It
  is made a lazy module: loaded, by Python's ``importlib.util.LazyLoader``, the first time
  anything is read from it, which only a clinic's logo does. ``load_images`` loads it
  under a lock first, since a lazy module is not safe to load from two threads at once.
- reportlab's paragraph module imports Pyphen where it is installed (we install it for the
  templates' reading-level check), about 3 ms, to hyphenate paragraphs whose style names a
  ``hyphenationLang``. None of ours does, so it is imported as if Pyphen were missing, which
  reportlab handles (no hyphenation, as before); other code imports Pyphen as usual.
- reportlab's paragraph module compiles a regular expression for web addresses (``uri_pat``,
  about 20 ms: case-insensitive over most of Unicode) that is only used to hyphenate
  addresses, and its text splitter one for Chinese, Japanese and Korean characters (2 ms),
  which our fonts cannot print, and a few more we never use (about 1 ms). Each is compiled
  the first time it is used instead.

None of this changes what reportlab does, only when the work is done. The work itself is in
``speedups.py`` (with the other speed tricks, and off with ``DISCHARGE_SPEEDUPS=0``).
"""

from __future__ import annotations

from discharge.speedups import defer_reportlab_imports, load_images

__all__ = ["load_images"]

defer_reportlab_imports()
