"""Shared helpers: run the real `discharge` command and read the PDFs it makes."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from pypdf import PdfReader

DATA_DIR_ENV = "DISCHARGE_DATA_DIR"  # discharge.clinic_data.DATA_DIR_ENV (not imported: tests
# of the installed command should not depend on importing the package in the test process)
AUDIT_ENV = "DISCHARGE_AUDIT_DB"
CACHE_ENV = "DISCHARGE_CACHE_DIR"  # discharge.cache.CACHE_ENV


@pytest.fixture(autouse=True)
def audit_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's audit log is its own, in its tmp_path (for commands run in-process too)."""
    path = tmp_path / "audit" / "audit.sqlite3"
    monkeypatch.setenv(AUDIT_ENV, str(path))
    # And should a command lose that variable, the default folder is here too, not ~/.local.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    return path


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("install-cache")


@pytest.fixture(autouse=True)
def install_cache(_session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The installation's cache (fonts, templates, locale data) is the test session's own, in
    tmp, never the user's real one; shared by the session, since its entries are keyed by
    content (tests/test_cache.py gives each of its tests a fresh one)."""
    monkeypatch.setenv(CACHE_ENV, str(_session_cache))
    # And a command run without that variable keeps its cache here too, not in ~/.cache.
    monkeypatch.setenv("XDG_CACHE_HOME", str(_session_cache / "xdg"))
    return _session_cache


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


@pytest.fixture(autouse=True)
def clinic_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own clinic data folder (the secret behind calendar UIDs), never the
    user's real one; commands run by ``run_discharge`` in the same test share it."""
    folder = tmp_path_factory.mktemp("clinic-data")
    monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    return folder


PATIENT = ["--patient", "Zoë Nguyễn", "--dob", "1990-02-01", "--mrn", "RX-104233"]


@pytest.fixture
def generate(tmp_path: Path):
    """Run `discharge generate` with a patient and an output path; extra args may override."""

    def _generate(*args: str, output: Path | None = None, **kw) -> tuple[Result, Path]:
        out = output or tmp_path / "out.pdf"
        return run_discharge("generate", *PATIENT, *args, "--output", out, **kw), out

    return _generate
