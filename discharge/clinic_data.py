"""The clinic's data folder, and the random secret kept in it.

The secret keys the HMACs that make identifiers from patient data (the .ics UIDs): a plain hash
of a hospital number, procedure and date can be reversed by trying every likely value in well
under a second, an HMAC under a secret nobody outside the clinic has cannot.

The folder is ``platformdirs.user_data_dir("discharge")`` (for example
``~/.local/share/discharge`` on Linux), or ``$DISCHARGE_DATA_DIR``. The secret is made on first
use, readable by its owner only (0600), and must be kept (and backed up) with the folder: with a
new secret, re-sent calendar events get new UIDs and a patient's calendar shows them twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import stat
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from discharge.errors import ConfigError, DischargeError

if TYPE_CHECKING:
    import sqlite3

DATA_DIR_ENV = "DISCHARGE_DATA_DIR"
SECRET_NAME = "identifier-secret"
_SECRET = re.compile(r"^[0-9a-f]{64}$")


def data_dir() -> Path:
    """The clinic's data folder (not created here)."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser().absolute()  # as meant where it was read
    from platformdirs import user_data_dir

    return Path(user_data_dir("discharge", appauthor=False))


def keyed_digest(*parts: str, length: int = 32) -> str:
    """A stable identifier for ``parts`` (a hospital number, a procedure, a date...) that no one
    without the clinic's secret can compute or reverse: hex HMAC-SHA256, cut to ``length``."""
    message = "\x1f".join(parts).encode("utf-8")
    return hmac.new(clinic_secret(), message, hashlib.sha256).hexdigest()[:length]


def clinic_secret() -> bytes:
    """The clinic's random 256-bit secret, made the first time it is needed."""
    return _secret(data_dir())


@cache
def _secret(folder: Path) -> bytes:
    path = folder / SECRET_NAME
    try:
        text = _read(path)
        if text is None:
            _create(folder, path)
            text = _read(path)
    except OSError as exc:
        raise ConfigError(
            f"cannot keep the clinic's secret in {folder}: {exc.strerror or exc} "
            f"(set {DATA_DIR_ENV} to a folder this user can write)"
        ) from None
    if text is None or not _SECRET.match(text):
        raise ConfigError(
            f"the clinic's secret {path} is damaged (expected 64 hexadecimal digits); "
            "restore it from a backup"
        )
    return bytes.fromhex(text)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return ""


def _create(folder: Path, path: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Written whole to a private temporary file, then linked into place: link never replaces
    # an existing file, so two processes starting at once agree on the first secret made.
    tmp = folder / f".{SECRET_NAME}.{secrets.token_hex(8)}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@contextlib.contextmanager
def immediate_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on one of the clinic's SQLite files (the audit log, the records
    of emails sent and sheets filed). IMMEDIATE takes the write lock at the start (waiting up
    to the busy timeout for another writer), so a check and what follows from it are one step;
    anything raised inside rolls it back."""
    import sqlite3

    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def create_private(path: Path) -> None:
    """Create the file (0600), and any folders missing above it (0700), unless it exists: one of
    the clinic's SQLite files is made by us before SQLite opens it, so it is never readable by
    others, not even for a moment. OSError if it cannot be."""
    missing = []
    folder = path.parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=0o700)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        if hasattr(os, "fchmod"):  # not on Windows; a umask may have taken the owner's bits
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def open_record(path: Path, schema: str, *, busy_timeout: float = 30.0) -> sqlite3.Connection:
    """One of the clinic's once-only records (emails sent, sheets filed): created private,
    opened in autocommit mode (``immediate_transaction`` makes each change one step), each
    commit on disk before what follows it (an intent is kept before anything is sent), its
    table made. OSError or sqlite3.Error if it cannot be."""
    import sqlite3

    create_private(path)
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(schema)
    except BaseException:
        conn.close()
        raise
    return conn


def keep_private(path: Path, *, what: str, error: type[DischargeError]) -> None:
    """An existing SQLite file (and its -wal and -shm files) that others can read is made 0600;
    if it cannot be (another user owns it), ``error`` says so, naming it as ``what`` (e.g.
    "the audit log"), and nothing is read from it."""
    if not hasattr(os, "fchmod"):  # Windows: no such modes
        return
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = file.stat().st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(mode) or not mode & 0o077:
            continue
        try:
            os.chmod(file, 0o600)
        except OSError as exc:
            raise error(
                f"{what} {file} can be read by other users (mode {stat.S_IMODE(mode):04o}) and "
                f"cannot be made private ({exc.strerror}); its owner should run: chmod 600 {file}"
            ) from None
