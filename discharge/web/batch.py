"""``/batch``: a day's schedule (CSV) made into every patient's PDF, with progress.

The work is ``discharge.batch`` itself, in its own process (see ``batch_worker``); the pages
only start it, show its progress and outcome, and hand out its PDFs. URLs carry a random job
id and row numbers, never a name or a hospital number; a job belongs to the browser session
that uploaded it.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from flask import (
    Blueprint,
    current_app,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from werkzeug.exceptions import NotFound

from discharge.web.batch_worker import DATE_ORDER_CHOICES
from discharge.web.jobs import Job, JobManager

bp = Blueprint("batch", __name__, url_prefix="/batch")


def _jobs() -> JobManager:
    manager: JobManager = current_app.extensions["discharge.jobs"]
    return manager


def _owner() -> str:
    owner = session.get("owner")
    if not isinstance(owner, str):
        owner = session["owner"] = secrets.token_urlsafe(16)
    return owner


def _job(job_id: str) -> Job:
    job = _jobs().get(job_id, _owner())
    if job is None:
        raise NotFound(
            "These PDFs are no longer here: they are deleted a while after the schedule was "
            "made. Upload the schedule again."
        )
    return job


def _page(problem: str = "", date_order: str | None = None) -> str:
    """The upload page; its hint names every column the schedule reads (batch/schedule.py)."""
    from discharge.batch import KNOWN_COLUMNS, REQUIRED_COLUMNS

    if date_order not in DATE_ORDER_CHOICES:  # the clinic's setting, else ISO dates only
        date_order = current_app.config["CLINIC"].clinic.date_order or "ymd"
    optional = [name for name in KNOWN_COLUMNS if name not in REQUIRED_COLUMNS]
    return render_template(
        "batch.html", problem=problem, date_orders=DATE_ORDER_CHOICES, date_order=date_order,
        required=REQUIRED_COLUMNS, optional=optional,
    )  # fmt: skip


@bp.get("/")
def upload_form() -> Any:
    return _page()


@bp.post("/")
def upload() -> Any:
    upload = request.files.get("schedule")
    date_order = request.form.get("date_order")
    if upload is None or not upload.filename:
        return _page("Choose the schedule file (CSV).", date_order), 422
    if _jobs().busy():
        problem = (
            "Other schedules are being made right now. Try again in a minute; "
            "the form for one patient works meanwhile."
        )
        return _page(problem, date_order), 503
    shown_as = re.sub(r"[^\w .()-]", "_", upload.filename.rsplit("/", 1)[-1])[:80] or "schedule"
    order = date_order if date_order in DATE_ORDER_CHOICES else None
    job_id = _jobs().start(upload.stream, shown_as, _owner(), order)
    return redirect(url_for("batch.job", job_id=job_id), code=303)


@bp.get("/<job_id>")
def job(job_id: str) -> Any:
    found = _job(job_id)
    status = _jobs().status(found)
    return render_template("batch_job.html", job_id=job_id, status=status)


@bp.get("/<job_id>/all.pdf")
def combined(job_id: str) -> Any:
    return _send(_jobs().pdf(_job(job_id), None), "discharge-all.pdf")


@bp.get("/<job_id>/row-<int:row>.pdf")
def row_pdf(job_id: str, row: int) -> Any:
    return _send(_jobs().pdf(_job(job_id), row), f"discharge-row-{row}.pdf")


@bp.post("/<job_id>/delete")
def delete(job_id: str) -> Any:
    _job(job_id)
    _jobs().delete(job_id)
    return redirect(url_for("batch.upload_form"), code=303)


def _send(path: Any, name: str) -> Any:
    if path is None:
        raise NotFound("That PDF was not made. See the list of rows for the reason.")
    response = send_file(path, mimetype="application/pdf", download_name=name, max_age=0)
    response.headers["Content-Disposition"] = f'inline; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response
