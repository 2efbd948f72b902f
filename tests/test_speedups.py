"""The speed tricks (discharge/speedups.py): the plain path makes the same document, the private
names they rely on still exist, and a trick whose names are gone falls back to the plain path.

A new reportlab, Babel or Python that renames a private name fails ``test_canary`` here, naming
the trick and the name, instead of slowing or stopping ``discharge`` for a nurse.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pikepdf
import pytest

from discharge import speedups
from tests.helpers import PATIENT, pdf_pages, run_discharge
from tests.test_pdfua import pdfinfo

_NOTES = "\n".join(
    f"Day {i}: rest, drink plenty of water and take paracetamol 1 g every 6 hours if needed."
    for i in range(1, 120)
)  # about 10,000 characters: runs on over pages, and is cut into pieces

# A varied set of the bundled documents: both languages, every variant, both papers, large
# print, long notes, names and notes outside ASCII.
CASES = {
    "hsg-en": ["--procedure", "hsg", "--patient", "Jane Smith"],
    "hsg-es-letter": ["--procedure", "hsg", "--language", "es", "--paper", "letter"],
    "hsg-sterilisation-large": ["--procedure", "hsg", "--variant", "sterilisation-check",
                                "--large-print", "--patient", "Søren O'Brien-Łukasz"],
    "miscarriage-medical-notes": ["--procedure", "miscarriage", "--variant", "medical",
                                  "--notes", _NOTES, "--clinician", "Dr Ng"],
    "miscarriage-expectant-es-large": ["--procedure", "miscarriage", "--variant", "expectant",
                                       "--language", "es", "--large-print", "--paper", "letter",
                                       "--notes", "Ibuprofeno 400 mg — cada 8 h.\n\n  ≥ 38 °C: llame"],
    "miscarriage-surgical-cyrillic": ["--procedure", "miscarriage", "--variant", "surgical",
                                      "--patient", "Иван Петров", "--time", "09:30"],
}  # fmt: skip

_ENCODING = frozenset(
    {"/Filter", "/Length", "/DecodeParms"}
)  # what a trick may change: how streams are encoded


def _canonical(obj: Any) -> Any:
    """A PDF object as comparable Python data: streams by their decoded bytes and their
    dictionary without the encoding; indirect objects by their number."""
    if isinstance(obj, pikepdf.Stream):
        return ("stream", _entries(obj, skip=_ENCODING), obj.read_bytes())
    if isinstance(obj, pikepdf.Dictionary):
        return _entries(obj)
    if isinstance(obj, pikepdf.Array):
        return [_ref_or_value(v) for v in obj]
    if isinstance(obj, pikepdf.String):
        return ("string", bytes(obj))
    return repr(obj)


def _entries(obj: Any, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    keys = obj.keys()  # a pikepdf Dictionary or Stream
    return {key: _ref_or_value(obj[key]) for key in keys if key not in skip}


def _ref_or_value(obj: Any) -> Any:
    if isinstance(obj, pikepdf.Object) and obj.is_indirect:
        return ("ref", obj.objgen)
    return _canonical(obj)


def _objects(path: Path) -> dict[tuple[int, int], Any]:
    with pikepdf.open(path) as pdf:
        return {obj.objgen: _canonical(obj) for obj in pdf.objects if obj.objgen != (0, 0)}


def _structure(path: Path) -> str:
    proc = subprocess.run([pdfinfo(), "-struct-text", str(path)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return proc.stdout


def _make(tmp_path: Path, name: str, args: list[str], speedups_on: bool) -> Path:
    out = tmp_path / f"{name}-{'on' if speedups_on else 'off'}.pdf"
    env = {} if speedups_on else {"DISCHARGE_SPEEDUPS": "0"}
    result = run_discharge("generate", *PATIENT, "--date", "2026-11-23", *args, "--output", out,
                           env=env)  # fmt: skip
    assert result.code == 0, result.stderr
    return out


@pytest.mark.parametrize("name", CASES)
def test_the_plain_path_makes_the_same_document(tmp_path: Path, name: str) -> None:
    fast = _make(tmp_path, name, CASES[name], speedups_on=True)
    plain = _make(tmp_path, name, CASES[name], speedups_on=False)
    fast_pages, plain_pages = pdf_pages(fast), pdf_pages(plain)
    assert len(fast_pages) == len(plain_pages)
    assert fast_pages == plain_pages
    assert _structure(fast) == _structure(plain)
    assert "Document" in _structure(plain)
    # Every object the same, but for how its streams are encoded (zlib level, ASCII85).
    assert _objects(fast) == _objects(plain)
    assert fast.read_bytes() != plain.read_bytes()  # the switch did turn the tricks off
    if _NOTES in CASES[name]:
        assert len(plain_pages) >= 3 and "Day 119: rest" in " ".join(plain_pages)


@pytest.mark.parametrize("trick", speedups.TRICKS)
def test_canary(trick: str) -> None:
    """Each trick's private names exist, with the shape it expects (see speedups._TRICKS)."""
    import babel
    import reportlab

    missing = speedups.missing(trick)
    assert not missing, (
        f"the speed trick {trick!r} relies on private names that reportlab "
        f"{reportlab.Version} / Babel {babel.__version__} / Python {sys.version.split()[0]} "
        f"no longer has: {', '.join(missing)}. It is off (the plain path runs, slower): "
        "change discharge/speedups.py, or raise the upper bound in pyproject.toml."
    )


def test_names_the_tagging_and_layout_rely_on() -> None:
    """Not speed tricks (tagging, the footer and the owner's mark in the document information
    need them, and reportlab has no public way to the same), but a new reportlab that renames them should fail here, by name."""
    from reportlab.pdfbase.pdfdoc import PDFDocument, PDFPage
    from reportlab.pdfgen.canvas import Canvas
    from reportlab.pdfgen.textobject import PDFTextObject
    from reportlab.platypus import Frame, KeepTogether, Table, flowables

    from discharge.speedups import _names_in

    needed = {
        Table: ["_drawBkgrnd", "_drawLines", "_drawCell", "_curcellstyle"],
        PDFTextObject: ["_textOut"],
        Canvas: ["_startPage", "_pageNumber", "_code", "_doc", "_pagesize"],
        Frame: ["_atTop"],
        PDFDocument: ["idToObjectNumberAndVersion", "Reference", "Catalog", "Pages", "info"],
        PDFPage: ["__NoDefault__"],
        KeepTogether: ["_content"],
        flowables: ["_listWrapOn"],  # pdf/render.py's _fits: whether the help boxes fit on one page
    }
    gone = [
        f"{getattr(cls, '__name__', cls)}.{name}"
        for cls, names in needed.items()
        for name in names
        if not hasattr(cls, name) and name not in _names_in(cls)
    ]
    assert not gone, f"reportlab no longer has {', '.join(gone)}: discharge/pdf/ relies on them"


def test_the_switch_turns_every_trick_off() -> None:
    code = "from discharge import speedups; print([speedups.usable(t) for t in speedups.TRICKS])"
    for value, expected in (("0", False), ("off", False), ("1", True), ("", True)):
        env = {"DISCHARGE_SPEEDUPS": value, "PATH": ""}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, check=True)  # fmt: skip
        assert proc.stdout.strip() == str([expected] * len(speedups.TRICKS)), value


# A private name gone (as in an older or newer library) while the trick is first checked; put
# back afterwards, since reportlab itself may use it. What each removal switches off.
_REMOVALS = {
    "font-cache": ("reportlab.rl_config", "unShapedFontGlob"),  # not in reportlab 4.2, 4.3
    "pdf-writing": ("reportlab.pdfbase.pdfdoc", "pdfdocEnc"),
    "keep-together": ("reportlab.platypus.flowables", "_listWrapOn"),
    "quiet-pool": ("multiprocessing.pool.Pool", "_get_sentinels"),
}

_WITHOUT = """
import importlib, sys
import multiprocessing.pool, reportlab.pdfbase.ttfonts, reportlab.platypus  # as before a removal
module_name, attr, trick, argv = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
owner_path, _, cls = module_name.rpartition(".")
try:
    owner = importlib.import_module(module_name)
except ImportError:
    owner = getattr(importlib.import_module(owner_path), cls)
saved = getattr(owner, attr)
delattr(owner, attr)
from discharge import speedups
off = [t for t in speedups.TRICKS if not speedups.usable(t)]
setattr(owner, attr, saved)
assert off == [trick], off
from discharge.cli import main
sys.exit(main(argv))
"""


@pytest.mark.parametrize("trick", _REMOVALS)
def test_a_missing_private_name_falls_back_to_the_plain_path(tmp_path: Path, trick: str) -> None:
    module, attr = _REMOVALS[trick]
    out = tmp_path / "out.pdf"
    args = ["generate", *PATIENT, "--procedure", "hsg", "--language", "es", "--date",
            "2026-11-23", "--output", str(out)]  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", _WITHOUT, module, attr, trick, *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    reference = _make(tmp_path, "reference", ["--procedure", "hsg", "--language", "es"], True)
    assert pdf_pages(out) == pdf_pages(reference)
