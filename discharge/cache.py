"""Work done once per installation instead of on every start, kept in the user's cache folder.

Every command repeated the same work before it could draw a page: parsing the TrueType fonts,
checking and compiling the procedure templates, loading Babel's locale data. Its results are
kept here, in ``platformdirs.user_cache_dir("discharge")`` (``~/.cache/discharge`` on Linux)
or ``$DISCHARGE_CACHE_DIR`` (empty: no cache at all).

An entry is found by a key made of everything its value was made from: the content (SHA-256)
of the input files, this package's version and the source of the module that made it, Python's
version and those of the libraries involved. So a changed template, font, library or program
finds no entry and does the work again; nothing is ever invalidated by hand. An entry that
cannot be read, is cut short or altered (each carries the SHA-256 of its content) is a miss
too, and is rewritten. The cache only ever saves time: when it is missing, damaged or not
writable, every command works as before, just slower to start.

Entries are pickles, so the folder must be the user's own: it is created private (0700), and
one that other users can write is not used.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from discharge import __version__

CACHE_ENV = "DISCHARGE_CACHE_DIR"
_MAGIC = b"dcache1\n"
_DIGEST = 32  # bytes of SHA-256


def cache_dir() -> Path | None:
    """The cache folder, or None when ``$DISCHARGE_CACHE_DIR`` is set empty (no cache)."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None:
        # Absolute: as meant where it was read, whatever folder the process is in later.
        return Path(configured).expanduser().absolute() if configured.strip() else None
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("discharge", appauthor=False))


@cache
def source_digest(*files: str) -> str:
    """SHA-256 of source files (the modules that make an entry): a changed program, even one
    installed in development mode without a new version number, finds no old entries."""
    digest = hashlib.sha256()
    for name in files:
        with contextlib.suppress(OSError):
            digest.update(Path(name).read_bytes())
    return digest.hexdigest()


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entry_path(folder: Path, kind: str, key: Iterable[str]) -> Path:
    digest = hashlib.sha256()
    for part in (kind, __version__, sys.version, *key):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return folder / f"{kind}-{digest.hexdigest()[:40]}.pickle"


def _usable(folder: Path) -> bool:
    """The folder is ours alone: another user who could write it could plant an entry."""
    if os.name != "posix":
        return True
    try:
        info = folder.stat()
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def fetch(kind: str, key: Iterable[str]) -> Any | None:
    """The value stored under ``key``, or None (not there, unreadable, damaged, or no cache)."""
    folder = cache_dir()
    if folder is None or not _usable(folder):
        return None
    path = _entry_path(folder, kind, key)
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    head, digest = blob[: len(_MAGIC)], blob[len(_MAGIC) : len(_MAGIC) + _DIGEST]
    payload = blob[len(_MAGIC) + _DIGEST :]
    if head != _MAGIC or hashlib.sha256(payload).digest() != digest:
        _remove(path)
        return None
    try:
        return pickle.loads(payload)
    except Exception:  # noqa: BLE001 - an entry from another version of a class: a miss
        _remove(path)
        return None


def store(kind: str, key: Iterable[str], value: Any) -> None:
    """Keep ``value`` under ``key`` (best effort: a cache that cannot be written is no cache)."""
    folder = cache_dir()
    if folder is None:
        return
    try:
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _usable(folder):
            return
        path = _entry_path(folder, kind, key)
        # Whole or not at all: a private temporary file, renamed over the entry.
        tmp = folder / f".{path.name}.{os.urandom(6).hex()}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
            os.replace(tmp, path)
        finally:
            _remove(tmp)
    except Exception:  # noqa: BLE001, S110 - a full disk or a read-only home: work uncached
        return


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
