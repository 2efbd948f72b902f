"""Issue 18, finding 7: `discharge serve` killed outright (kill -9) while a schedule is being
made leaves no worker running, and the next server to start removes the uploaded schedule
and PDFs it left on disk. A real server, a real upload over HTTP, a real SIGKILL."""

from __future__ import annotations

import http.cookiejar
import os
import secrets
import signal
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.test_web import Server, start_server, token


def start(tmp: Path) -> Server:
    # TMPDIR: the server's job folders, where this test can see them.
    return start_server("--workers", "1", extra_env={"TMPDIR": str(tmp)})


def upload(url: str, data: bytes) -> None:
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    page = opener.open(url + "batch/", timeout=30).read().decode()
    boundary = secrets.token_hex(8)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
            f'{token(page)}\r\n--{boundary}\r\nContent-Disposition: form-data; name="schedule"; '
            f'filename="tomorrow.csv"\r\nContent-Type: text/csv\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(url + "batch/", data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
    opener.open(request, timeout=30).read()


def descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_9_of_serve_ends_its_workers_and_the_next_start_removes_its_files(
    tmp_path: Path,
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    server = start(tmp)
    rows = "".join(f"Patient {n},hsg,2026-11-23,RX-{n}\n" for n in range(3000))
    try:
        upload(server.url, ("patient_name,procedure,date,mrn\n" + rows).encode())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the schedule's workers are making PDFs
            workers = descendants(server.process.pid)
            if list(tmp.glob("discharge-serve-*/*/out/*.pdf")) and len(workers) >= 3:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the schedule did not start")
    finally:
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(30)  # not its output: the workers hold the pipes open until they end
    workers = descendants(server.process.pid) | workers
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.2)
    left = [pid for pid in workers if alive(pid)]
    for pid in left:  # not leave them running after a failed test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} of {len(workers)} workers outlived the server"

    folders = list(tmp.glob("discharge-serve-*"))
    assert len(folders) == 1 and list(folders[0].glob("*/schedule.csv"))  # what kill -9 left
    again = start(tmp)
    try:
        assert not list(tmp.glob("discharge-serve-*")), "the next start left the old uploads"
    finally:
        code, output = again.stop()
    assert code == 0, output


def test_the_next_start_leaves_a_running_servers_folders_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live server's job folders survive another server's start, even when its process does
    not look like `discharge serve` (a test runner, a service wrapper): it holds their lock."""
    from discharge.config import load_config
    from discharge.web.jobs import JobManager, remove_leftovers

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    jobs = JobManager(load_config(None))
    alive = jobs.root
    (alive / "job").mkdir()
    stale = tmp_path / f"discharge-serve-{os.getpid()}-stale"  # this pid, nobody's lock
    (stale / "job").mkdir(parents=True)
    assert remove_leftovers() == 1
    assert (alive / "job").is_dir() and not stale.exists()
    jobs.close()
    assert not alive.exists()


def test_serve_with_workers_starts_under_a_deep_temporary_folder(tmp_path: Path) -> None:
    """The worker processes' fork server listens on a Unix socket in a temporary folder, and a
    socket's path may be at most 107 bytes: a deep TMPDIR must not stop `serve` starting."""
    deep = tmp_path / ("a-clinic-s-own-temporary-folder-" * 3)
    deep.mkdir()
    running = start(deep)
    try:
        with urllib.request.urlopen(running.url, timeout=30) as page:
            assert page.status == 200
    finally:
        code, output = running.stop()
    assert code == 0, output
    assert "AF_UNIX" not in output
