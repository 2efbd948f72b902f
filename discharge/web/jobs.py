"""Uploaded schedules being made into PDFs: one private folder and one process each.

All jobs live under one private temporary folder (mode 0700) made when the server starts and
removed when it stops. A job's folder is deleted ``keep_minutes`` after it finished, or a few
minutes after its combined PDF was downloaded, whichever comes first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from discharge.config import Config
from discharge.web.batch_worker import COMBINED, OUT, PROGRESS, RESULT, SCHEDULE

ROOT_PREFIX = "discharge-serve-"
_OWNER = re.compile(re.escape(ROOT_PREFIX) + r"(\d+)-")
AFTER_DOWNLOAD_MINUTES = 5.0
MAX_RUNNING = 2  # schedules made at once; more would starve the form of CPU
MAX_RUN_MINUTES = 60.0


@dataclass
class Job:
    id: str
    folder: Path
    owner: str
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    expires: float | None = None  # set when it finishes (or is downloaded)


class JobManager:
    def __init__(self, config: Config, *, keep_minutes: float = 30.0) -> None:
        self.config = config
        self.keep = keep_minutes * 60
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self._root: Path | None = None
        self._alive: int | None = None  # the root, locked while this process lives
        self._janitor: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def root(self) -> Path:
        if self._root is None:
            # Named with whose folder it is: a server killed outright (kill -9) cannot remove
            # it, so the next one to start does, once this process is gone (remove_leftovers).
            prefix = f"{ROOT_PREFIX}{os.getpid()}-"
            root = Path(tempfile.mkdtemp(prefix=prefix))  # 0700
            # A lock on the folder, held for as long as this process lives (the kernel lets go
            # when it dies, however it dies): the next server's sign that it is still in use.
            self._alive = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            fcntl.flock(self._alive, fcntl.LOCK_EX)
            self._root = root
            self._janitor = threading.Thread(target=self._sweep_loop, daemon=True)
            self._janitor.start()
        return self._root

    def busy(self) -> bool:
        with self.lock:
            running = [job for job in self.jobs.values() if job.process.poll() is None]
        return len(running) >= MAX_RUNNING

    def start(
        self, upload: IO[bytes], shown_as: str, owner: str, date_order: str | None = None
    ) -> str:
        """Start making a schedule; ``date_order``: ymd, dmy or mdy (the page's choice), or
        None for the clinic's setting."""
        job_id = secrets.token_urlsafe(16)
        folder = self.root / job_id
        folder.mkdir(mode=0o700)
        with (folder / SCHEDULE).open("wb") as handle:
            shutil.copyfileobj(upload, handle)
        from discharge.audit import acting_user

        config_path = str(self.config.source) if self.config.source else ""
        process = subprocess.Popen(
            [sys.executable, "-m", "discharge.web.batch_worker", str(folder), config_path,
             shown_as, date_order or "", acting_user()],  # its records name the nurse
            cwd=folder,
            env=worker_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # nothing it says may reach a log
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        with self.lock:
            self.jobs[job_id] = Job(job_id, folder, owner, process)
        return job_id

    def get(self, job_id: str, owner: str) -> Job | None:
        with self.lock:
            job = self.jobs.get(job_id)
        return job if job is not None and secrets.compare_digest(job.owner, owner) else None

    def status(self, job: Job) -> dict[str, Any]:
        ended = job.process.poll() is not None  # before reading: a worker that ends between
        result = _read_json(job.folder / RESULT)  # the two has written its result by now
        if result is not None:
            if job.expires is None:
                job.expires = time.monotonic() + self.keep
            return dict(result)
        if ended:
            return {"state": "failed", "message": "the schedule could not be processed"}
        progress = _read_json(job.folder / PROGRESS) or {"done": 0, "total": 0}
        return {"state": "running", **progress}

    def pdf(self, job: Job, row: int | None) -> Path | None:
        """The combined PDF (row None) or one row's PDF, if the job made it."""
        result = _read_json(job.folder / RESULT)
        if result is None or result.get("state") != "done":
            return None
        if row is None:
            path = job.folder / COMBINED
            soon = time.monotonic() + AFTER_DOWNLOAD_MINUTES * 60
            job.expires = min(job.expires or soon, soon)
            return path if path.is_file() else None
        for entry in result["rows"]:
            if entry["row"] == row and entry["file"]:
                path = job.folder / OUT / entry["file"]
                return path if path.is_file() else None
        return None

    def delete(self, job_id: str) -> None:
        with self.lock:
            job = self.jobs.pop(job_id, None)
        if job is not None:
            _stop(job.process)
            shutil.rmtree(job.folder, ignore_errors=True)

    def sweep(self) -> None:
        now = time.monotonic()
        with self.lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            if job.expires is None and job.process.poll() is not None:
                job.expires = now + self.keep  # finished, maybe never looked at
            overdue = now - job.started > MAX_RUN_MINUTES * 60
            if (job.expires is not None and now >= job.expires) or overdue:
                self.delete(job.id)

    def _sweep_loop(self) -> None:
        while not self._stopping.wait(10):
            self.sweep()

    def close(self) -> None:
        """Stop every job and remove every file (the server is stopping)."""
        self._stopping.set()
        with self.lock:
            ids = list(self.jobs)
        for job_id in ids:
            self.delete(job_id)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
        if self._alive is not None:
            os.close(self._alive)
            self._alive = None


def remove_leftovers() -> int:
    """Remove the job folders of servers that were killed before they could (uploaded
    schedules and their PDFs); the number removed. Only folders whose server is gone:
    another server may be running on this computer."""
    removed = 0
    for folder in Path(tempfile.gettempdir()).glob(ROOT_PREFIX + "*"):
        owner = _OWNER.match(folder.name)
        try:
            if not owner or folder.is_symlink() or folder.stat().st_uid != os.getuid():
                continue  # not a folder of ours (or one of an earlier version's servers)
        except OSError:
            continue
        if not _in_use(folder, int(owner.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _in_use(folder: Path, pid: int) -> bool:
    """Whether the server that made ``folder`` still runs: it holds a lock on the folder for as
    long as it lives, whatever process it runs in (a test runner, a service wrapper). A folder
    nobody locks is an earlier version's, or one being made: its pid tells."""
    try:
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return True  # not ours to judge
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(handle)
    return _running(pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to judge
    # A reused pid: on Linux, check it is still a discharge server.
    with contextlib.suppress(OSError):
        return b"discharge" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return True


def worker_environment() -> dict[str, str]:
    """This process's environment, with every path in it made absolute: the worker runs in
    the job's folder, where a relative ``DISCHARGE_AUDIT_DB=audit.sqlite3`` would mean
    another file."""
    from discharge.audit import AUDIT_ENV
    from discharge.cache import CACHE_ENV
    from discharge.clinic_data import DATA_DIR_ENV
    from discharge.config import CONFIG_ENV

    env = dict(os.environ)
    for name in (CONFIG_ENV, AUDIT_ENV, DATA_DIR_ENV, CACHE_ENV):
        if env.get(name, "").strip():  # empty keeps its meaning (no cache, no file)
            env[name] = str(Path(env[name]).expanduser().absolute())
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _read_json(path: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    return None
