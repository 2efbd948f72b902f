"""Import reportlab without paying at start-up for the parts a document rarely uses.

Importing this module (before reportlab: ``fonts.py`` and ``render.py`` import it first)
saves about a tenth of a cold ``discharge generate``:

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

None of this changes what reportlab does, only when the work is done.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any

_PARAGRAPH = "reportlab.platypus.paragraph"
_IMAGE = "PIL.Image"
_HYPHENATION = "pyphen"
_lock = threading.Lock()


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
    with _lock:
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


def _prepare() -> None:
    if _PARAGRAPH in sys.modules:  # reportlab already imported: nothing left to save
        return
    with _lock:
        _defer(_IMAGE)
        with _patterns_compiled_on_use(), _without(_HYPHENATION):
            importlib.import_module(_PARAGRAPH)


_prepare()
