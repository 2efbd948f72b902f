"""Worker processes that end when the process that started them ends, even by ``kill -9``.

A parent stopped normally stops its workers itself. A parent killed outright cannot: on Linux
the kernel sends the worker a signal when its parent dies (``PR_SET_PDEATHSIG``); elsewhere a
small thread in the worker checks every second that its parent is still there.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int | None = None) -> None:
    """End this process (SIGTERM) when its parent process ends.

    ``parent``: the pid the parent had when it started this process, if known, so a parent
    that died before this was set up is noticed too.
    """
    expected = parent or os.getppid()
    if not _ask_the_kernel():
        threading.Thread(target=_watch, args=(expected,), daemon=True).start()
    if os.getppid() != expected:  # it died before the kernel was asked
        os.kill(os.getpid(), signal.SIGTERM)


def _ask_the_kernel() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0)
    return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)
