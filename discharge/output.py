"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from discharge.errors import OutputError


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename.

    An interrupted or failed write leaves the old file (or no file), never a partial one.
    ``durable=False`` leaves flushing to the disk to the caller (a batch flushes many files
    at once, before it records them: see ``batch/run.py``).
    """
    with open_atomic(path, durable=durable) as handle:
        handle.write(data)


@contextlib.contextmanager
def open_atomic(path: Path, *, durable: bool = True) -> Iterator[BinaryIO]:
    """Stream into ``path`` (binary) atomically: the file appears whole when the block ends.

    For files too big to hold in memory at once (a batch manifest, a combined PDF). The
    temporary file is named ``.NAME.XXXX.part`` in the same folder, so the rename stays on one
    file system; if the block raises, it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise OutputError(f"output {path} is a folder, expected a file name such as {path}/out.pdf")
    _refuse_special(path)
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = _new_part_file(folder, path.name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {path}: {exc.strerror}") from None
        raise


_PART_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _new_part_file(folder: Path, name: str) -> tuple[int, Path]:
    """A new, empty ``.NAME.XXXXXXXX.part`` file in ``folder`` (8 random hex digits), open for
    writing, with the permissions any new file gets there (0666 less the umask), so the
    clinic's umask and folder settings decide who may read (or print) it. Like mkstemp, it
    never opens a file that already exists, but makes the file in one step."""
    for _ in range(100):
        tmp = folder / f".{name[:40]}.{os.urandom(4).hex()}.part"
        try:
            return os.open(tmp, _PART_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"cannot write in folder {folder}: {exc.strerror}") from None
    raise OutputError(f"cannot write in folder {folder}: no free temporary file name")


def _refuse_special(path: Path) -> None:
    """Only a regular file (or no file) is replaced: the rename would otherwise swap a symbolic
    link (which may point at anything) or a named pipe (which another program reads) for a
    PDF, and a device is never an output."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    if stat.S_ISREG(mode):
        return
    if stat.S_ISLNK(mode):
        kind = "a symbolic link"
    elif stat.S_ISFIFO(mode):
        kind = "a named pipe (FIFO)"
    else:
        kind = "a device or socket"
    raise OutputError(
        f"output {path} is {kind}, not a regular file: it is not replaced "
        "(give the name of a new or ordinary file)"
    )
