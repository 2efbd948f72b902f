"""QR codes as runs of dark modules: the PDF's path (``flowables.QRCode``) and the web page's
inline SVG (``qr_svg_path``, for ``render_html.py``).

The encoder is reportlab's pure-Python ``qrencoder`` (already installed, no new dependency), so
this module lives in the PDF wing, the one place that imports reportlab; nothing of reportlab's
drawing or PDF code is imported, and the web page's import of it loads nothing else of the wing.
The clinic's addresses are the same on every page, so each is encoded once per installation (the
install cache) and once per process.
"""

from __future__ import annotations

import functools

from discharge import cache as install_cache

QUIET = 4  # the blank margin a reader needs around the code, in modules

Runs = tuple[tuple[int, int, int], ...]  # (column, row, length) of each run of dark modules


@functools.lru_cache(maxsize=32)
def qr_runs(url: str) -> tuple[int, Runs]:
    """The QR code of ``url`` (error correction M): its modules a side and its dark runs."""
    import reportlab

    key = (url, reportlab.Version, install_cache.source_digest(__file__))
    entry = install_cache.fetch("qr-runs", key)
    if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], int):
        return entry
    made = _encode(url)
    install_cache.store("qr-runs", key, made)
    return made


def _encode(url: str) -> tuple[int, Runs]:
    from reportlab.graphics.barcode import qrencoder

    qr = qrencoder.QRCode(None, qrencoder.QRErrorCorrectLevel.M)  # None: the smallest that fits
    qr.addData(url)
    qr.make()
    count = qr.getModuleCount()
    runs = []
    for row in range(count):
        col = 0
        while col < count:
            if not qr.isDark(row, col):
                col += 1
                continue
            start = col
            while col < count and qr.isDark(row, col):
                col += 1
            runs.append((start, row, col - start))
    return count, tuple(runs)


def qr_svg_path(url: str) -> tuple[int, str]:
    """The side of the code with its quiet zone, in modules, and an SVG path of its dark runs."""
    count, runs = qr_runs(url)
    path = "".join(f"M{c + QUIET} {r + QUIET}h{n}v1h-{n}z" for c, r, n in runs)
    return count + 2 * QUIET, path
