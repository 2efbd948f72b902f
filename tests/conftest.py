"""Fixtures for every test: private folders for each test's data, audit log and cache, and a
`generate` runner. Plain helpers are in ``tests/helpers.py``."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers import AUDIT_ENV, CACHE_ENV, DATA_DIR_ENV, PATIENT, Result, run_discharge

_HOME_VARIABLES = ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME")
_session_home = tempfile.mkdtemp(prefix="discharge-tests-")


def pytest_configure(config: pytest.Config) -> None:
    """Before any fixture (module- and session-scoped ones too, and the servers they start):
    the user's own data, cache and settings folders are out of reach. A server started by a
    module fixture, or a command that drops the DISCHARGE_* variables, writes here, never into
    ~/.local/share/discharge (a real clinic's audit log and secrets)."""
    for name in _HOME_VARIABLES:
        os.environ[name] = os.path.join(_session_home, name.lower())
    for name in (
        "DISCHARGE_AUDIT_DB",
        "DISCHARGE_CACHE_DIR",
        "DISCHARGE_DATA_DIR",
        "DISCHARGE_CONFIG",
    ):
        os.environ.pop(name, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_session_home, ignore_errors=True)


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


@pytest.fixture(autouse=True)
def clinic_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own clinic data folder (the secret behind calendar UIDs), never the
    user's real one; commands run by ``run_discharge`` in the same test share it."""
    folder = tmp_path_factory.mktemp("clinic-data")
    monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    return folder


@pytest.fixture
def generate(tmp_path: Path):
    """Run `discharge generate` with a patient and an output path; extra args may override."""

    def _generate(*args: str, output: Path | None = None, **kw) -> tuple[Result, Path]:
        out = output or tmp_path / "out.pdf"
        return run_discharge("generate", *PATIENT, *args, "--output", out, **kw), out

    return _generate


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that drive a real browser (Playwright's ``page``, or its ``browser``: the axe-core
    checks) are marked ``browser``: the rest is the suite's fast part, which CI also runs
    against the lowest declared versions (``pytest -m "not browser"``, see .ci/run)."""
    for item in items:
        if {"page", "browser"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)
