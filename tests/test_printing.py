"""Printing at the desk, against a real CUPS scheduler with a virtual PDF printer
(tests/cups_server.py): the sheet that comes out carries the right patient, a stopped, refusing
or unknown printer and a job that never starts are clear errors (exit 3), and every outcome is
in the audit log. The names are plain ASCII: cups-pdf re-draws the pages through PostScript and
Ghostscript, and the text extracted from its PDF drops accented letters (the printed glyphs
are fine)."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

from tests.cups_server import (
    DUPLEX_PRINTER,
    PDF_PRINTER,
    SLOW_PRINTER,
    CupsServer,
    cups_server,
)
from tests.helpers import pdf_text, run_discharge

PATIENT = ["--procedure", "hsg", "--date", "2026-11-21", "--patient", "Mary Jones",
           "--dob", "1980-03-04", "--mrn", "RX-104233"]  # fmt: skip


@pytest.fixture(scope="module")
def cups() -> CupsServer:
    with cups_server() as server, pytest.MonkeyPatch.context() as patch:
        patch.setenv("CUPS_SERVER", server.env["CUPS_SERVER"])
        yield server


def clinic(tmp_path: Path, printer: str | list[str] = PDF_PRINTER, timeout: float = 30) -> Path:
    path = tmp_path / "clinic.toml"
    path.write_text(
        '[clinic]\nname = "Northgate Clinic"\nphone = "0113 496 0000"\n'
        'emergency_number = "999"\n'
        f"[print]\nprinter = {json.dumps(printer)}\ntimeout = {timeout}\n"
    )
    return path


def audit_records(*args: str) -> list[dict[str, object]]:
    result = run_discharge("log", "--format", "json", *args)
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def page_log_line(cups: CupsServer, printer: str, job: int) -> str:
    lines = [line for line in cups.page_log_lines() if line.startswith(f"{printer} {job} ")]
    assert lines, cups.page_log_lines()
    return lines[-1]


def test_generate_print_comes_out_of_the_printer_with_the_right_patient(
    cups: CupsServer, tmp_path: Path
) -> None:
    out = tmp_path / "mary.pdf"
    result = run_discharge("generate", *PATIENT, "--config", clinic(tmp_path), "-o", out, "--print")
    assert result.code == 0, result.stderr
    found = re.search(
        rf"Printed on {PDF_PRINTER} \(job {PDF_PRINTER}-(\d+), 3 pages\)", result.stdout
    )
    assert found, result.stdout
    job = int(found[1])
    printed = pdf_text(cups.printed(job))
    assert "Mary Jones" in printed and "RX-104233" in printed and "HSG" in printed
    # The queue shows the hospital number, never the name.
    line = page_log_line(cups, PDF_PRINTER, job)
    assert (
        "{discharge \N{EN DASH} RX-104233}" in line and "Mary" not in line and "Jones" not in line
    )
    records = audit_records("--mrn", "RX-104233")
    assert [r["action"] for r in records] == ["made", "printed"]
    made, done = records
    assert done["pdf_sha256"] == made["pdf_sha256"] and done["pages"] == 3
    assert done["patient_name"] == "Mary Jones"
    detail = json.loads(str(done["detail"]))
    assert detail["printer"] == PDF_PRINTER and detail["job"] == f"{PDF_PRINTER}-{job}"
    assert detail["copies"] == 1 and detail["file"] == "mary.pdf"
    # `discharge log` answers "printed, where and when".
    table = run_discharge("log", "--mrn", "RX-104233").stdout
    assert re.search(rf"printed .*Mary Jones .*{PDF_PRINTER} job {job}\b", table), table


def test_stopped_printer_is_a_clear_error_and_recorded(cups: CupsServer, tmp_path: Path) -> None:
    out = tmp_path / "mary.pdf"
    before = set(cups.out.iterdir())
    cups.run("cupsdisable", "-r", "Out of paper in tray 2", PDF_PRINTER)
    try:
        result = run_discharge("generate", *PATIENT, "--config", clinic(tmp_path), "-o", out,
                               "--print")  # fmt: skip
    finally:
        cups.run("cupsenable", PDF_PRINTER)
    assert result.code == 3
    assert result.stderr.strip().splitlines()[-1] == (
        f"discharge: error: printer '{PDF_PRINTER}' is stopped (stopped by an administrator; "
        "Out of paper in tray 2): nothing was printed"
    )
    assert "Traceback" not in result.stderr and "Printed" not in result.stdout
    assert out.is_file()  # the PDF is kept
    assert set(cups.out.iterdir()) == before  # and nothing came out of the printer
    records = audit_records("--mrn", "RX-104233")
    assert [r["action"] for r in records] == ["made", "print-failed"]
    detail = json.loads(str(records[-1]["detail"]))
    assert detail["printer"] == PDF_PRINTER and "Out of paper" in detail["reason"]


def test_refusing_and_unknown_printers(cups: CupsServer, tmp_path: Path) -> None:
    config = clinic(tmp_path)
    out = tmp_path / "mary.pdf"
    cups.run("cupsreject", "-r", "Being serviced", PDF_PRINTER)
    try:
        refused = run_discharge("generate", *PATIENT, "--config", config, "-o", out, "--print")
    finally:
        cups.run("cupsaccept", PDF_PRINTER)
    assert refused.code == 3
    assert f"printer '{PDF_PRINTER}' is not accepting jobs (Being serviced)" in refused.stderr

    unknown = run_discharge("generate", *PATIENT, "--config", config, "-o", out, "--print",
                            "--printer", "Ward9-Laser")  # fmt: skip
    assert unknown.code == 3
    assert unknown.stderr.strip().splitlines()[-1] == (
        "discharge: error: printer 'Ward9-Laser' is not known to the print system (it has: "
        f"{DUPLEX_PRINTER}, {PDF_PRINTER}, {SLOW_PRINTER}): nothing was printed"
    )
    actions = [(r["action"], json.loads(str(r["detail"] or "{}")).get("printer"))
               for r in audit_records("--mrn", "RX-104233")]  # fmt: skip
    assert actions == [("made", None), ("print-failed", PDF_PRINTER), ("made", None),
                       ("print-failed", "Ward9-Laser")]  # fmt: skip


def test_batch_prints_the_combined_file_two_sided(cups: CupsServer, tmp_path: Path) -> None:
    schedule = tmp_path / "tomorrow.csv"
    schedule.write_text(
        "patient_name,procedure,date,mrn\n"
        "Mary Jones,hsg,2026-11-23,RX-1001\n"
        "Ann Lee,miscarriage,2026-11-23,RX-1002\n"
    )
    config = clinic(tmp_path, [DUPLEX_PRINTER, PDF_PRINTER])
    result = run_discharge("batch", schedule, "--out-dir", tmp_path / "out", "--config", config,
                           "--print")  # fmt: skip
    assert result.code == 0, result.stderr
    found = re.search(rf"Printed on {DUPLEX_PRINTER} \(job {DUPLEX_PRINTER}-(\d+), (\d+) pages, "
                      r"two-sided\)", result.stdout)  # fmt: skip
    assert found, result.stdout
    job, pages = int(found[1]), int(found[2])
    assert (tmp_path / "out" / "print-all.pdf").is_file() and pages % 2 == 0
    line = page_log_line(cups, DUPLEX_PRINTER, job)
    assert "{two-sided-long-edge}" in line and "{discharge \N{EN DASH} batch of 2}" in line
    printed = pdf_text(cups.printed(job))
    assert printed.index("Mary Jones") < printed.index("Ann Lee")
    printed_records = [r for r in audit_records() if r["action"] == "printed"]
    assert [(r["mrn"], r["batch_row"], r["channel"]) for r in printed_records] == [
        ("RX-1001", 2, "batch"), ("RX-1002", 3, "batch"),
    ]  # fmt: skip
    # A rerun prints only what it made again (here nothing), --combined-all every row; a
    # printer that cannot print two-sided prints one-sided, and says so.
    rerun = run_discharge("batch", schedule, "--out-dir", tmp_path / "out", "--config", config,
                          "--print")  # fmt: skip
    assert rerun.code == 0 and "Printed" not in rerun.stdout, rerun.stdout
    again = run_discharge("batch", schedule, "--out-dir", tmp_path / "out", "--config", config,
                          "--print", "--combined-all", "--printer", PDF_PRINTER)  # fmt: skip
    assert again.code == 0, again.stderr
    assert f"printer '{PDF_PRINTER}' cannot print two-sided: printed on one side" in again.stderr
    job = int(re.search(rf"job {PDF_PRINTER}-(\d+)", again.stdout)[1])  # type: ignore[index]
    assert "{one-sided}" in page_log_line(cups, PDF_PRINTER, job)


def test_print_a_file_made_earlier(cups: CupsServer, tmp_path: Path) -> None:
    config = clinic(tmp_path)
    out = tmp_path / "made-yesterday.pdf"
    assert run_discharge("generate", *PATIENT, "--config", config, "-o", out).code == 0
    not_pdf = tmp_path / "notes.txt"
    not_pdf.write_text("not a pdf")
    bad = run_discharge("print", out, not_pdf, "--config", config)
    assert bad.code == 2 and f"{not_pdf} is not a PDF file" in bad.stderr
    assert [r["action"] for r in audit_records()] == ["made"]  # nothing printed at all

    result = run_discharge("print", out, "--config", config, "--copies", "2")
    assert result.code == 0, result.stderr
    job = int(re.search(rf"Printed on {PDF_PRINTER} \(job {PDF_PRINTER}-(\d+), 3 pages, 2 copies\)",
                        result.stdout)[1])  # type: ignore[index]  # fmt: skip
    line = page_log_line(cups, PDF_PRINTER, job)
    assert "{discharge \N{EN DASH} RX-104233}" in line and line.endswith("{2}")
    made, printed = audit_records("--mrn", "RX-104233")
    assert printed["action"] == "printed" and printed["pdf_sha256"] == made["pdf_sha256"]
    assert printed["patient_name"] == "Mary Jones"
    assert json.loads(str(printed["detail"]))["copies"] == 2


def test_a_job_that_never_starts_is_cancelled_and_one_stuck_printing_is_unknown(
    cups: CupsServer, tmp_path: Path
) -> None:
    from discharge.audit import AuditRecord
    from discharge.channels.print import print_recorded
    from discharge.config import load_config
    from discharge.printing.cups import job_state
    from discharge.printing.jobs import PrinterStopped, PrintJobFailed, PrintTimeout, print_pdf

    pdf = b"%PDF-1.4\n% a raw queue sends these bytes as they are\n%%EOF\n"
    blocker = tmp_path / "blocker.pdf"
    blocker.write_bytes(pdf)
    submitted = cups.run("lp", "-d", SLOW_PRINTER, "-t", "blocker", str(blocker)).stdout
    first = int(re.search(r"-(\d+) \(", submitted)[1])  # type: ignore[index]
    try:
        deadline = time.monotonic() + 10
        while job_state(first).state != "processing":  # the silent printer took it
            assert time.monotonic() < deadline
            time.sleep(0.1)
        began = time.monotonic()
        with pytest.raises(PrintTimeout) as waited:
            print_pdf(pdf, printer=SLOW_PRINTER, title="discharge \N{EN DASH} RX-7", timeout=1.0)
        assert time.monotonic() - began < 5
        error = waited.value
        assert not error.unknown and "had not started after 1 s" in str(error)
        assert str(error).endswith("cancelled, nothing printed")
        second = int(error.job.rsplit("-", 1)[1])
        assert job_state(second).state == "canceled"
        assert not list(cups.spool.glob(f"d{second:05d}-*"))  # its spooled copy is purged

        # The printer stops while the job waits: said at once, the job cancelled.
        stopper = threading.Timer(0.5, cups.run, ("cupsdisable", SLOW_PRINTER))
        stopper.start()
        try:
            began = time.monotonic()
            with pytest.raises(PrinterStopped) as stopped:
                print_pdf(pdf, printer=SLOW_PRINTER, timeout=20)
            assert time.monotonic() - began < 5
        finally:
            stopper.join()
            cups.run("cupsenable", SLOW_PRINTER)
        assert str(stopped.value).startswith(f"printer '{SLOW_PRINTER}' is stopped")
        assert not stopped.value.unknown
        assert job_state(int(stopped.value.job.rsplit("-", 1)[1])).state == "canceled"

        # Someone cancels it at the printer (here: every job on it): never reported printed.
        canceller = threading.Timer(0.5, cups.run, ("cancel", "-a", SLOW_PRINTER))
        canceller.start()
        try:
            with pytest.raises(PrintJobFailed) as cancelled:
                print_pdf(pdf, printer=SLOW_PRINTER, timeout=20)
        finally:
            canceller.join()
        assert str(cancelled.value).endswith("was cancelled: not printed")
        assert job_state(first).state == "canceled"

        config = load_config(clinic(tmp_path, SLOW_PRINTER))
        sheet = AuditRecord(action="made", mrn="RX-7", patient_name="Test Patient", pages=1)
        with pytest.raises(PrintTimeout) as stuck:
            print_recorded(pdf, config, [sheet], printer=SLOW_PRINTER, timeout=1.5)
        assert stuck.value.unknown and "may still print" in str(stuck.value)
        assert job_state(int(stuck.value.job.rsplit("-", 1)[1])).state == "processing"
        records = audit_records()
        assert [r["action"] for r in records] == ["print-unknown"]
        assert records[0]["mrn"] == "RX-7"
    finally:
        cups.run("cancel", "-a", "-x", SLOW_PRINTER, check=False)


def test_print_settings_and_options_are_checked_first(tmp_path: Path) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text(
        '[clinic]\nname = "N"\nphone = "1"\nemergency_number = "999"\n'
        '[print]\nprinter = "Ward 3 Laser"\ntimeout = -1\ncopies = 0\ntray = 2\n'
    )
    result = run_discharge("generate", *PATIENT, "--config", config, "-o", tmp_path / "a.pdf",
                           "--print")  # fmt: skip
    assert result.code == 2 and not (tmp_path / "a.pdf").exists()
    message = result.stderr.strip()
    for problem in ("[print] tray: is not a known setting", "[print] printer: must be a printer's",
                    "[print] timeout: must be more than 0", "[print] copies: must be a whole"):  # fmt: skip
        assert problem in message, message
    no_printer = tmp_path / "none.toml"
    no_printer.write_text('[clinic]\nname = "N"\nphone = "1"\nemergency_number = "999"\n')
    result = run_discharge("generate", *PATIENT, "--config", no_printer, "-o", tmp_path / "a.pdf",
                           "--print")  # fmt: skip
    assert result.code == 2 and "say which printer with --printer NAME" in result.stderr
    assert not (tmp_path / "a.pdf").exists()
    result = run_discharge("generate", *PATIENT, "-o", tmp_path / "a.pdf", "--printer", "X")
    assert result.code == 2 and "--printer and --copies go with --print" in result.stderr
    result = run_discharge("print", tmp_path / "missing.pdf", "--printer", "Ward3/Laser")
    assert result.code == 2 and "--printer must be a printer's name" in result.stderr


# --- the web form's Print button ------------------------------------------------------------


def _token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found[1]


def test_web_form_print_button(cups: CupsServer, tmp_path: Path) -> None:
    from discharge.config import load_config
    from discharge.web import create_app

    app = create_app(load_config(clinic(tmp_path, [PDF_PRINTER, DUPLEX_PRINTER])),
                     overrides={"TESTING": True})  # fmt: skip
    client = app.test_client()
    form = {"procedure": "hsg", "date": "2026-11-21", "patient": "Mary Jones",
            "mrn": "RX-104233", "paper": "a4", "notes": "<b>Call</b> if any fever."}  # fmt: skip
    try:
        page = client.get("/").get_data(as_text=True)
        assert '<button type="submit" name="action" value="print"' in page
        assert f'<option value="{DUPLEX_PRINTER}"' in page  # the nurse chooses from the list

        answer = client.post("/", data={**form, "action": "print", "printer": PDF_PRINTER,
                                         "csrf_token": _token(page)})  # fmt: skip
        html = answer.get_data(as_text=True)
        assert answer.status_code == 200, html
        found = re.search(rf"Printed on {PDF_PRINTER} \(job {PDF_PRINTER}-(\d+), 3 pages\)", html)
        assert found, html
        printed = pdf_text(cups.printed(int(found[1])))
        assert "Mary Jones" in printed and "<b>Call</b> if any fever." in printed
        assert [(r["action"], r["channel"]) for r in audit_records()] == [
            ("made", "web"), ("printed", "web"),
        ]  # fmt: skip

        # Stopped: said on the page, the form kept, nothing reported printed.
        cups.run("cupsdisable", "-r", "Out of paper", PDF_PRINTER)
        try:
            answer = client.post("/", data={**form, "action": "print", "printer": PDF_PRINTER,
                                             "csrf_token": _token(html)})  # fmt: skip
        finally:
            cups.run("cupsenable", PDF_PRINTER)
        html = answer.get_data(as_text=True)
        assert answer.status_code == 502
        assert (
            f"Not printed: printer &#39;{PDF_PRINTER}&#39; is stopped (stopped by an "
            "administrator; Out of paper): nothing was printed. Press Make PDF"
        ) in html
        assert 'value="Mary Jones"' in html and "Printed on" not in html
        assert [r["action"] for r in audit_records()][-1] == "print-failed"

        # A printer the settings do not name is never used.
        answer = client.post("/", data={**form, "action": "print", "printer": SLOW_PRINTER,
                                         "csrf_token": _token(html)})  # fmt: skip
        assert answer.status_code == 422
        assert "Choose one of the printers in the list." in answer.get_data(as_text=True)
        assert [r["action"] for r in audit_records()][-1] == "print-failed"
    finally:
        app.extensions["discharge.jobs"].close()
