"""Making PDFs for the form from many waitress threads at once.

The renderer keeps process-wide caches (parsed paragraphs, broken lines, registered fonts) in
plain dicts that are not safe to change from two threads at once, and rendering is CPU-bound
Python that holds the GIL. So:

- ``processes=0`` (tests, one nurse): render in this process, one document at a time (a lock).
- ``processes=N`` (``discharge serve``): a pool of N worker processes, each with its own
  caches, so N documents are drawn at once on N cores and each request gets its own patient's
  PDF. Workers start fresh (forkserver or spawn, never a fork of a threaded server) and warm
  up before the first nurse arrives. See benchmarks/bench_serve.py for the figures.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from discharge.audit import AuditLog, AuditRecord, describe_pdf
from discharge.config import Config
from discharge.errors import DischargeError
from discharge.generate import make_pdf
from discharge.request import DischargeRequest, parse_request

_T = TypeVar("_T")
_worker_config: list[Config] = []


def _init_worker(config: Config) -> None:
    # Ctrl-C reaches the whole process group: the server decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from discharge.batch.lifeline import die_with_parent

    die_with_parent()  # the server killed outright (kill -9): no worker is left running
    _worker_config[:] = [config]
    _warm(config, lambda request: make_pdf(request, config)[1])


def _make(request: DischargeRequest, config: Config) -> tuple[bytes, AuditRecord]:
    document, pdf = make_pdf(request, config)
    return pdf, describe_pdf(request, document, pdf, channel="web")


def _render_in_worker(request: DischargeRequest) -> tuple[bytes, AuditRecord]:
    return _make(request, _worker_config[0])


# The fork server listens on a Unix socket in multiprocessing's temporary folder (made once,
# in TMPDIR, when the first worker starts: ``{TMPDIR}/pymp-XXXXXXXX/listener-XXXXXXXX``). A
# socket's path may be at most 107 bytes; under a deeper TMPDIR that folder is made in /tmp.
_TMPDIR_ROOM = 107 - len("/pymp-XXXXXXXX/listener-XXXXXXXX")


@contextlib.contextmanager
def _room_for_a_socket() -> Iterator[None]:
    import os
    import tempfile

    if len(os.fsencode(tempfile.gettempdir())) <= _TMPDIR_ROOM or not os.path.isdir("/tmp"):
        yield
        return
    kept, tempfile.tempdir = tempfile.tempdir, "/tmp"
    try:
        yield
    finally:
        tempfile.tempdir = kept


def _ping(seconds: float) -> None:
    import time

    time.sleep(seconds)


def _warm(config: Config, render: object) -> None:
    """Load fonts, templates and reportlab now, not on the first nurse's request."""
    from discharge.guidance.loading import available_procedures

    assert callable(render)
    for procedure in available_procedures(config.templates_dir):
        # A broken template is reported to the nurse who chooses it, not here: the server
        # (and the other procedures) must still start.
        with contextlib.suppress(DischargeError):
            render(parse_request(procedure=procedure, date="2026-01-05", patient="Warm Up"))


class Renderer:
    def __init__(self, config: Config, *, processes: int = 0) -> None:
        self.config = config
        self.processes = processes
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start (and warm up) the worker processes, or this process's renderer."""
        from discharge.pdf.fonts import main_coverage

        main_coverage()  # the form checks characters against the fonts here, in every thread
        if self.processes <= 0:
            # Drawn, not recorded: the warm-up's "patients" have no place in the audit log.
            _warm(self.config, lambda request: _make(request, self.config))
            return
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if context.get_start_method() == "forkserver":
            # The fork server ends with this process, even killed with kill -9 (its workers
            # end with it); set before it starts, as it starts once per process.
            context.set_forkserver_preload(["__main__", "discharge.web.forkserver_lifeline"])
        pool = ProcessPoolExecutor(
            self.processes, mp_context=context, initializer=_init_worker, initargs=(self.config,)
        )
        # Workers start on demand: keep each one busy for a moment so that all of them start
        # (and warm up in their initializer) now.
        with _room_for_a_socket():
            wait([pool.submit(_ping, 0.5) for _ in range(self.processes)])
        return pool

    def render(self, request: DischargeRequest) -> bytes:
        """The patient's PDF, recorded in the audit log before it is handed out."""
        pdf, record = self._make(request)
        with AuditLog.open(self.config) as audit:  # a connection of this thread's own
            audit.record(record)
        return pdf

    def render_page(self, request: DischargeRequest) -> bytes:
        """The patient's instructions as a web page (HTML), recorded in the audit log too.

        Made in this thread: no reportlab, a few milliseconds."""
        from discharge.document import build_document
        from discharge.render_html import render_html

        document = build_document(request, self.config)
        page = render_html(document)
        with AuditLog.open(self.config) as audit:
            audit.record(describe_pdf(request, document, page, channel="web"))
        return page

    def render_recorded(self, request: DischargeRequest) -> tuple[bytes, AuditRecord]:
        """``render``, with the record of the PDF made (to record what is done with it)."""
        pdf, record = self._make(request)
        with AuditLog.open(self.config) as audit:
            audit.record(record)
        return pdf, record

    def _make(self, request: DischargeRequest) -> tuple[bytes, AuditRecord]:
        pool = self._pool
        if pool is None:
            with self._lock:
                return _make(request, self.config)
        try:
            future: Future[tuple[bytes, AuditRecord]] = pool.submit(_render_in_worker, request)
            return future.result()
        except BrokenProcessPool:
            # A worker died (killed, out of memory): start a new pool once, then try again.
            with self._lock:
                if self._pool is pool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._new_pool()
                pool = self._pool
            assert pool is not None
            return pool.submit(_render_in_worker, request).result()

    def in_this_process(self, work: Callable[[], _T]) -> _T:
        """Run reportlab work here (e.g. an email's PDF), one at a time with other such work."""
        with self._lock:
            return work()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
