"""Fixtures for every test: private folders for each test's data, audit log and cache, and a
`generate` runner. Plain helpers are in ``tests/helpers.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import AUDIT_ENV, CACHE_ENV, DATA_DIR_ENV, PATIENT, Result, run_discharge


@pytest.fixture(scope="session", autouse=True)
def _no_real_folders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The fixtures below are per test; a module's fixture (a server started once, documents
    made once) runs before them. It too writes its audit log, data and cache in tmp, never in
    the user's real folders (where another version's audit log stops every command)."""
    root = tmp_path_factory.mktemp("session-folders")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(root / "xdg-data"))
        patch.setenv("XDG_CACHE_HOME", str(root / "xdg-cache"))
        yield


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
