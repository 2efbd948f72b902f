"""The web batch with the clinic's own settings: relative paths, and the page's "Date order".

Each test runs a real batch worker process (``discharge.web.batch_worker``) from the app's
test client, in the server's private job folder, as ``discharge serve`` does.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from discharge.config import load_config
from discharge.web import create_app
from tests.test_web import upload, wait_for_batch

CLINIC = """
[clinic]
name = "Northfield Test Clinic"
phone = "0113 496 0000"
emergency_number = "999"
templates_dir = "own-templates"
"""
SCHEDULE = "patient_name,procedure,date,mrn\nAda Example,hsg,2026-11-23,N-1\n"


@pytest.fixture
def clinic_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clinic's settings and templates folder, given by relative paths from this folder."""
    folder = tmp_path / "clinic"
    (folder / "own-templates").mkdir(parents=True)
    (folder / "clinic.toml").write_text(CLINIC, encoding="utf-8")
    monkeypatch.chdir(folder)
    return folder


def _run(config_path: str | None) -> str:
    app = create_app(load_config(config_path), overrides={"TESTING": True})
    try:
        client = app.test_client()
        return wait_for_batch(client, upload(client, SCHEDULE.encode()).headers["Location"])
    finally:
        app.extensions["discharge.jobs"].close()


def _made_by_the_clinic(html: str) -> None:
    assert "1 PDF made" in html, html
    assert "does not exist" not in html


def test_relative_config_option_works_in_the_batch_worker(clinic_folder: Path) -> None:
    # `discharge serve --config clinic.toml`: the path as typed, relative to where it was typed.
    html = _run("clinic.toml")
    _made_by_the_clinic(html)


def test_relative_config_and_audit_variables_work_in_the_batch_worker(
    clinic_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCHARGE_CONFIG", "clinic.toml")
    monkeypatch.setenv("DISCHARGE_AUDIT_DB", "logs/audit.sqlite3")
    (clinic_folder / "logs").mkdir()
    html = _run(None)
    _made_by_the_clinic(html)
    # The worker recorded the PDF in the log the variable meant, not one in its own folder.
    with sqlite3.connect(clinic_folder / "logs" / "audit.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM records WHERE channel = 'batch'").fetchone()[0]


def test_paths_in_settings_are_absolute_once_read(clinic_folder: Path) -> None:
    config = load_config("clinic.toml")
    assert config.source == clinic_folder / "clinic.toml"
    assert config.templates_dir == clinic_folder / "own-templates"
