"""Shared helpers of the test suite: run the real `discharge` command, read the PDFs it makes.

Plain functions, imported by the tests (``from tests.helpers import ...``); the fixtures that
use them are in ``conftest.py``, which is never imported as a module.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pypdf import PdfReader

T = TypeVar("T")

DATA_DIR_ENV = "DISCHARGE_DATA_DIR"  # discharge.clinic_data.DATA_DIR_ENV (not imported: tests
# of the installed command should not depend on importing the package in the test process)
AUDIT_ENV = "DISCHARGE_AUDIT_DB"
CACHE_ENV = "DISCHARGE_CACHE_DIR"  # discharge.cache.CACHE_ENV


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def run_discharge(*args: str | os.PathLike[str], stdin: str | None = None,
                  env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:  # fmt: skip
    """Run the installed command, as a nurse's terminal or a script would."""
    # The test's own data folder, audit log and cache (the autouse fixtures point them at tmp)
    # are the DISCHARGE_ variables kept: no test ever writes to the user's real folders.
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DISCHARGE_") or k in (DATA_DIR_ENV, AUDIT_ENV, CACHE_ENV)
    }
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "discharge", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def pdf_pages(path: Path) -> list[str]:
    """The extracted text of each page, whitespace folded so wrapped lines still match."""
    return [" ".join(page.extract_text().split()) for page in PdfReader(path).pages]


def pdf_text(path: Path) -> str:
    return " ".join(pdf_pages(path))


def audit_rows(db: Path) -> list[dict[str, object]]:
    """The audit log's records, straight from the database, as anyone with sqlite3 would read it."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM records ORDER BY id")]


def free_port() -> int:
    """A loopback port nothing listens on now (another process may take it before we bind it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PATIENT = ["--patient", "Zoë Nguyễn", "--dob", "1990-02-01", "--mrn", "RX-104233"]


# --- accessibility: axe-core in a real browser ----------------------------------------------

CHROMIUM = Path(os.environ.get("DISCHARGE_TEST_CHROMIUM", "/usr/bin/chromium"))
# axe-core from the npm registry (tests/axe/package.json and its lock file; .ci/run installs it).
AXE_JS = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def ensure_axe() -> Path:
    """axe-core's script, installed from the lock file on first use (`npm ci`), so the README's
    test command is enough on a fresh checkout. No npm, or a failed install, is a failure."""
    if not AXE_JS.is_file():
        npm = shutil.which("npm")
        assert npm, "npm is missing: the accessibility tests install axe-core with it"
        folder = AXE_JS.parents[2]
        subprocess.run([npm, "ci", "--prefix", str(folder), "--no-audit", "--no-fund"],
                       check=True, capture_output=True, timeout=600)  # fmt: skip
    assert AXE_JS.is_file(), f"{AXE_JS} is missing: run `npm ci --prefix tests/axe`"
    return AXE_JS


def axe_violations(page, tags: list[str] = WCAG_21_AA) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    """Run axe-core on the page open in a Playwright ``page``: its WCAG 2.1 AA violations,
    each with its rule, impact and the elements found. A missing axe is a failure."""
    ensure_axe()
    # Evaluated through the DevTools protocol, so a page's CSP (no script) does not stop it.
    page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;0")
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", tags
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in result["violations"]
    ]


def in_a_thread(work: Callable[[], T]) -> T:
    """``work()`` in a thread of its own. For code that runs an event loop of its own
    (``asyncio.run``: HL7 filing, an MLLP client), as the program runs it in its own threads:
    the test's main thread has a loop running already once a Playwright browser test has run in
    this session, and ``asyncio.run`` refuses to start a second."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()
