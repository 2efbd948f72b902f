"""The web batch with the clinic's own settings: relative paths, and the page's "Date order".

Each test runs a real batch worker process (``discharge.web.batch_worker``) from the app's
test client, in the server's private job folder, as ``discharge serve`` does.
"""

from __future__ import annotations

import io
import re
import sqlite3
from pathlib import Path

import pytest

from discharge.config import Config, load_config, parse_config
from discharge.web import create_app
from tests.test_web import pdf_text, token, upload, wait_for_batch

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


# --- the page's "Date order" ----------------------------------------------------------------

DMY_SCHEDULE = (
    "patient_name,procedure,date\n"
    "Ann Alpha,hsg,03/04/2026\n"
    "Bea Beta,hsg,05/04/2026\n"
    "Cy Gamma,hsg,21/11/2026\n"
)


def _upload(client, data: str, date_order: str | None):  # type: ignore[no-untyped-def]
    page = client.get("/batch/").get_data(as_text=True)
    form = {"csrf_token": token(page), "schedule": (io.BytesIO(data.encode()), "today.csv")}
    if date_order is not None:
        form["date_order"] = date_order
    started = client.post("/batch/", data=form, content_type="multipart/form-data")
    assert started.status_code == 303
    return wait_for_batch(client, started.headers["Location"])


@pytest.fixture
def client():  # type: ignore[no-untyped-def]
    app = create_app(Config(), overrides={"TESTING": True})
    yield app.test_client()
    app.extensions["discharge.jobs"].close()


def test_a_day_month_schedule_is_fixed_from_the_page(client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/batch/").get_data(as_text=True)
    assert '<label for="date_order">Date order</label>' in page
    options = re.findall(r'<option value="(\w+)" ?(selected)?>([^<]+)</option>', page)
    assert [(value, label) for value, _, label in options] == [
        ("ymd", "Year-month-day"), ("dmy", "Day/month/year"), ("mdy", "Month/day/year")
    ]  # fmt: skip
    assert [value for value, chosen, _ in options if chosen] == ["ymd"]

    html = _upload(client, DMY_SCHEDULE, None)
    assert "1 PDF made" in html and "2 rows with a problem" in html
    notes = re.findall(r"Dates: ([^<]*)", html)
    assert notes == [
        "all 3 dates look like DD/MM/YYYY: choose &#34;Day/month/year&#34; as the Date order "
        "and upload the schedule again."
    ]
    assert "--date-order" not in html and "03/04" not in html

    html = _upload(client, DMY_SCHEDULE, "dmy")
    assert "3 PDFs made" in html and "Dates:" not in html
    rows = dict((row, url) for url, row in re.findall(r'href="([^"]+/row-(\d+)\.pdf)"', html))
    assert "Friday 3 April 2026" in pdf_text(client.get(rows["2"]).data)
    assert "Sunday 5 April 2026" in pdf_text(client.get(rows["3"]).data)


def test_the_clinics_date_order_is_the_pages_default(tmp_path: Path) -> None:
    config = parse_config(
        {"clinic": {"name": "N", "phone": "1", "emergency_number": "911", "date_order": "mdy"}}
    )
    app = create_app(config, overrides={"TESTING": True})
    try:
        page = app.test_client().get("/batch/").get_data(as_text=True)
        assert '<option value="mdy" selected>Month/day/year</option>' in page
    finally:
        app.extensions["discharge.jobs"].close()
