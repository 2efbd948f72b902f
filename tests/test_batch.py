"""`discharge batch`: real schedule files in a temporary folder, the real installed command.

The small pure functions (column names, dates, file names, the manifest's cells) are tested
in-process first; everything else runs `python -m discharge batch` and reads what it wrote.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from pypdf import PdfReader

from discharge.batch import neutralise, normalise_column, read_date
from discharge.batch.run import slug
from discharge.batch.schedule import sniff_delimiter
from discharge.cli import cli
from discharge.commands.batch import TerminalReporter
from discharge.commands.batch import batch as batch_command
from discharge.errors import InputError
from discharge.request import check_email
from tests.helpers import AUDIT_ENV, CACHE_ENV, DATA_DIR_ENV, Result, run_discharge

SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]+\.pdf$")
HEADER = "patient_name,procedure,date,mrn,notes,email"


def _env() -> dict[str, str]:
    """The environment the shared runner uses (for the tests that start the command themselves,
    to interrupt it): the test's own audit log, data folder and cache, no other settings."""
    keep = (AUDIT_ENV, CACHE_ENV, DATA_DIR_ENV)
    return {k: v for k, v in os.environ.items() if not k.startswith("DISCHARGE_") or k in keep}


def batch(*args: str | os.PathLike[str], cwd: Path | None = None) -> Result:
    return run_discharge("batch", *args, cwd=cwd)


def write_schedule(path: Path, lines: list[str], *, newline: str = "\n") -> Path:
    path.write_text(newline.join(lines) + newline, encoding="utf-8", newline="")
    return path


def manifest(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def statuses(out: Path) -> dict[int, str]:
    return {int(entry["row"]): entry["status"] for entry in manifest(out)}


def pdf_text(path: Path) -> str:
    return " ".join(" ".join(page.extract_text().split()) for page in PdfReader(path).pages)


def pdf_files(out: Path) -> dict[int, Path]:
    """Each row's PDF, as the manifest names it; every PDF in the folder must be named there."""
    return {int(e["row"]): out / e["file"] for e in manifest(out) if e["file"]}


def long_notes(lines: int = 20) -> str:
    """Enough notes to push a two-page document to three pages."""
    return "\n".join(f"Note {i}: keep the dressing dry and clean." for i in range(lines))


def quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


# --- the small pieces, in-process -------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Patient Name", "patient_name"),
        ("\ufeffpatient-name", "patient_name"),
        ("  PATIENT__NAME ", "patient_name"),
        ("DOB", "dob"),
    ],
)
def test_column_names_are_normalised(raw: str, expected: str) -> None:
    assert normalise_column(raw) == expected


def test_delimiter_comes_from_the_header_line() -> None:
    assert sniff_delimiter("patient_name;procedure;date\r\n") == ";"
    assert sniff_delimiter("patient_name,procedure,date\n") == ","
    assert sniff_delimiter("patient_name\tprocedure\tdate\n") == "\t"


def test_slash_dates_need_a_configured_order() -> None:
    with pytest.raises(InputError, match="could be day/month or month/day"):
        read_date("03/04/2026", None, "date")
    assert read_date("03/04/2026", "dmy", "date") == "2026-04-03"
    assert read_date("03/04/2026", "mdy", "date") == "2026-03-04"
    assert read_date("2026-04-03", None, "date") == "2026-04-03"
    with pytest.raises(InputError, match="not a real calendar date"):
        read_date("11/21/2026", "dmy", "date")


@pytest.mark.parametrize("bad", ["jane", "jane@example", "a@b@example.org", "jane @example.org"])
def test_bad_email_addresses_are_refused(bad: str) -> None:
    with pytest.raises(InputError, match="not an email address"):
        check_email(bad)


def test_good_email_addresses_pass() -> None:
    assert check_email("  jane.o'neil+clinic@example.co.uk ") == "jane.o'neil+clinic@example.co.uk"
    assert check_email("") == ""


def test_slug_keeps_only_safe_characters() -> None:
    assert slug("../../etc/passwd") == "etc-passwd"
    assert slug("Zoë Nguyễn") == "zoe-nguyen"
    assert slug("\x1b[31m\x00") == "31m"
    assert len(slug("x" * 300)) == 40


@pytest.mark.parametrize("cell", ["=1+2", "+44", "-3", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_are_neutralised(cell: str) -> None:
    assert neutralise(cell) == "'" + cell
    assert neutralise("row 3 " + cell) == "row 3 " + cell


def test_batch_is_a_discharge_command() -> None:
    assert cli.get_command(click.Context(cli), "batch") is batch_command


def test_progress_line_only_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    for progress in (True, False):
        reporter = TerminalReporter(progress=progress)
        reporter.started(2)
        reporter.row_done({"row": "2", "status": "ok"})
        reporter.row_error(3, "date '2026-13-01' is not a real calendar date")
        reporter.row_done({"row": "3", "status": "error"})
        reporter.clear()
        err = capsys.readouterr().err
        assert "row 3: date '2026-13-01' is not a real calendar date\n" in err
        assert ("2/2 rows" in err and "left" in err) is progress
        assert ("\r" in err) is progress


# --- real exports -----------------------------------------------------------------------


def test_excel_export_with_bom_crlf_semicolons_and_multiline_notes(tmp_path: Path) -> None:
    notes = "Stitches out on Friday.\r\nCall if the wound; is red"
    rows = [
        "Patient Name;Procedure;DATE;Notes;Ward",
        f"Ann Example;hsg;2026-11-21;{quoted(notes)};B2",
        "Bea Example;miscarriage;2026-11-22;;B3",
        "Cy Example;hsgg;2026-11-23;;B4",
        ";;;;",
        ";;;;",
        "",
    ]
    schedule = tmp_path / "export.csv"
    schedule.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode("utf-8"))
    out = tmp_path / "out"

    run = batch(schedule, "--out-dir", out, "--jobs", "2")

    assert run.code == 1, run.stderr
    assert "warning: column 'ward' is not used" in run.stderr
    # The three-line note is one row, so the bad row is row 4 (it starts on line 6).
    assert "row 4: unknown procedure: did you mean 'hsg'?" in run.stderr
    assert statuses(out) == {2: "ok", 3: "ok", 4: "error"}  # no rows for the empty lines
    files = pdf_files(out)
    first, second = pdf_text(files[2]), pdf_text(files[3])
    assert "Ann Example" in first and "Saturday 21 November 2026" in first
    assert "Stitches out on Friday." in first and "Call if the wound; is red" in first
    assert "Bea Example" in second and "Sunday 22 November 2026" in second
    assert "batch: 2 ok / 1 error / 0 skipped" in run.stdout


def test_bad_rows_are_reported_and_the_good_rows_still_made(tmp_path: Path) -> None:
    schedule = write_schedule(
        tmp_path / "s.csv",
        [
            HEADER,
            "Ann Example,hsg,2026-11-21,,,",
            ",hsg,2026-11-21,,SECRET-NOTE-1,",
            "Cy Example,hsg,2026-02-30,,SECRET-NOTE-2,",
            "Di Example,hsg,2026-11-21,,,not-an-address",
            "Ed Example,appendix,2026-11-21,,,",
            "Flo Example,miscarriage,2026-11-21,,,flo@example.org",
        ],
    )
    out = tmp_path / "out"

    run = batch(schedule, "--out-dir", out, "--jobs", "2")

    assert run.code == 1
    errors = [line for line in run.stderr.splitlines() if line.startswith("row ")]
    assert [line.split(":")[0] for line in errors] == ["row 3", "row 4", "row 5", "row 6"]
    assert "row 3: patient name is empty" in run.stderr
    assert "row 4: date is not a real calendar date" in run.stderr
    assert "row 5: email is not an email address" in run.stderr  # the value is not echoed
    assert "row 6: unknown procedure: expected one of: hsg, miscarriage" in run.stderr
    assert "appendix" not in run.stderr  # a value in the wrong column is never repeated
    assert "SECRET-NOTE" not in run.stderr + run.stdout
    assert statuses(out) == {2: "ok", 3: "error", 4: "error", 5: "error", 6: "error", 7: "ok"}
    assert sorted(pdf_files(out)) == [2, 7]
    text = (out / "manifest.csv").read_text(encoding="utf-8-sig")
    assert "SECRET-NOTE" not in text and "Example" not in text  # no notes, no names
    entries = {int(e["row"]): e for e in manifest(out)}
    assert entries[7]["email"] == "flo@example.org"
    assert entries[7]["sha256"] and entries[7]["file"] == pdf_files(out)[7].name
    assert "batch: 2 ok / 4 error / 0 skipped" in run.stdout


def test_a_missing_column_stops_before_any_work(tmp_path: Path) -> None:
    schedule = write_schedule(
        tmp_path / "s.csv", ["Patient Name,Procedure,When", "Ann Example,hsg,2026-11-21"]
    )
    out = tmp_path / "out"

    run = batch(schedule, "--out-dir", out)

    assert run.code == 2
    assert "no 'date' column" in run.stderr
    assert not out.exists()


def test_an_unreadable_schedule_cannot_start(tmp_path: Path) -> None:
    missing = batch(tmp_path / "nope.csv", "--out-dir", tmp_path / "out")
    assert missing.code == 2 and "does not exist" in missing.stderr
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("patient_name,procedure,date\nZoë,hsg,2026-11-21\n".encode("latin-1"))
    run = batch(latin1, "--out-dir", tmp_path / "out")
    assert run.code == 2 and "not UTF-8" in run.stderr
    assert not (tmp_path / "out").exists()


def test_slash_dates_are_errors_unless_the_order_is_given(tmp_path: Path) -> None:
    schedule = write_schedule(
        tmp_path / "s.csv", ["patient_name,procedure,date", "Ann Example,hsg,03/11/2026"]
    )
    guessed = batch(schedule, "--out-dir", tmp_path / "a")
    assert guessed.code == 1
    assert "row 2: 1 date could be day/month or month/day: add --date-order" in guessed.stderr
    assert "03/11" not in guessed.stderr  # the value is never echoed
    assert not pdf_files(tmp_path / "a")

    told = batch(schedule, "--out-dir", tmp_path / "b", "--date-order", "dmy")
    assert told.code == 0, told.stderr
    assert "Tuesday 3 November 2026" in pdf_text(pdf_files(tmp_path / "b")[2])


def test_the_clinic_config_can_set_the_date_order(tmp_path: Path) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text(
        '[clinic]\nname = "N"\nphone = "0100"\nemergency_number = "911"\ndate_order = "mdy"\n',
        encoding="utf-8",
    )
    schedule = write_schedule(
        tmp_path / "s.csv", ["patient_name,procedure,date", "Ann Example,hsg,11/21/2026"]
    )
    run = batch(schedule, "--out-dir", tmp_path / "out", "--config", config)
    assert run.code == 0, run.stderr
    assert "Saturday 21 November 2026" in pdf_text(pdf_files(tmp_path / "out")[2])


def test_hostile_names_and_mrns_stay_inside_the_out_dir(tmp_path: Path) -> None:
    hostile = [
        ("../../x", ""),
        ("/etc/passwd", ""),
        ("N" * 300, ""),
        ("Ann\x1b\x07 Example\x7f", ""),
        ("Bo Example", "../../../tmp/evil"),
        ("Cy Example", "/etc/passwd"),
        ("Di Example", ".."),
        ("Ed Example", "a\\b\x00c"),
        ("Ζωή Ανδρέου", ""),
    ]
    lines = ["patient_name,procedure,date,mrn"]
    lines += [f"{quoted(name)},hsg,2026-11-21,{quoted(mrn)}" for name, mrn in hostile]
    schedule = write_schedule(tmp_path / "s.csv", lines)
    work = tmp_path / "work"
    out = work / "out"
    work.mkdir()

    run = batch(schedule, "--out-dir", out, "--jobs", "2", cwd=work)

    assert run.code == 0, run.stderr
    assert sorted(p.name for p in work.iterdir()) == ["out"]  # nothing beside the out dir
    made = sorted(out.iterdir())
    names = [p.name for p in made if not p.name.startswith((".", "manifest"))]
    assert len(names) == len(hostile)
    assert all(SAFE_NAME.match(name) and len(name) <= 110 for name in names), names
    assert all(p.is_file() and p.parent == out for p in made)
    assert not (tmp_path / "x").exists() and not (tmp_path / "evil").exists()
    files = pdf_files(out)
    # A file name carries the hospital number, never the name (a salted digest stands for it).
    assert re.fullmatch(r"patient-[0-9a-f]{12}-hsg-2026-11-21\.pdf", files[3].name)
    assert re.fullmatch(r"etc-passwd-[0-9a-f]{6}-hsg-2026-11-21\.pdf", files[7].name)
    assert re.fullmatch(r"patient-[0-9a-f]{12}-hsg-2026-11-21\.pdf", files[8].name)  # MRN ".."
    assert not any("example" in name or "passwd" in name for name in (files[3].name, files[6].name))
    assert "/etc/passwd" in pdf_text(files[3])  # printed as written: it is only data
    assert "Ann Example" in pdf_text(files[5])  # control characters dropped


def test_a_value_too_long_to_print_fails_its_row_alone(tmp_path: Path) -> None:
    schedule = write_schedule(
        tmp_path / "s.csv",
        [
            "patient_name,procedure,date,clinician,notes",
            "Ann Example,hsg,2026-11-21,,",
            f"Bea Example,hsg,2026-11-21,{'C' * 3000},SECRET-NOTE",  # one word, no line break
            "Cy Example,hsg,2026-11-21,,",
        ],
    )
    out = tmp_path / "out"

    run = batch(schedule, "--out-dir", out, "--jobs", "2")

    assert run.code == 1
    assert "Traceback" not in run.stderr and "SECRET-NOTE" not in run.stderr
    assert statuses(out) == {2: "ok", 3: "error", 4: "ok"}
    assert "row 3: clinician is 3000 characters long (expected at most 300)" in run.stderr
    assert "CCCC" not in run.stderr + (out / "manifest.csv").read_text("utf-8-sig")


# --- reruns and interruptions -----------------------------------------------------------


def _three_rows(tmp_path: Path, note: str = "first note") -> Path:
    return write_schedule(
        tmp_path / "s.csv",
        [
            "patient_name,procedure,date,notes",
            f"Ann Example,hsg,2026-11-21,{note}",
            "Bea Example,miscarriage,2026-11-21,",
            "Cy Example,hsg,2026-11-22,",
        ],
    )


def test_a_rerun_skips_finished_rows_and_force_rebuilds_them(tmp_path: Path) -> None:
    schedule = _three_rows(tmp_path)
    out = tmp_path / "out"
    assert batch(schedule, "--out-dir", out, "--jobs", "1").code == 0
    before = {row: p.stat().st_mtime_ns for row, p in pdf_files(out).items()}
    first = {int(e["row"]): e["sha256"] for e in manifest(out)}

    again = batch(schedule, "--out-dir", out, "--jobs", "1")

    assert again.code == 0, again.stderr
    assert "batch: 0 ok / 0 error / 3 skipped" in again.stdout
    assert statuses(out) == {2: "skipped", 3: "skipped", 4: "skipped"}
    assert {row: p.stat().st_mtime_ns for row, p in pdf_files(out).items()} == before
    assert {int(e["row"]): e["sha256"] for e in manifest(out)} == first

    forced = batch(schedule, "--out-dir", out, "--jobs", "1", "--force")

    assert forced.code == 0
    assert statuses(out) == {2: "ok", 3: "ok", 4: "ok"}
    after = {row: p.stat().st_mtime_ns for row, p in pdf_files(out).items()}
    assert all(after[row] != before[row] for row in before)
    assert {int(e["row"]): e["sha256"] for e in manifest(out)} == first  # same bytes


def test_a_rerun_rebuilds_rows_whose_pdf_or_data_changed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert batch(_three_rows(tmp_path), "--out-dir", out, "--jobs", "1").code == 0
    damaged = pdf_files(out)[3]
    damaged.write_bytes(damaged.read_bytes()[:1000])  # e.g. a copy that did not finish
    schedule = _three_rows(tmp_path, note="corrected note")

    run = batch(schedule, "--out-dir", out, "--jobs", "1")

    assert run.code == 0
    assert statuses(out) == {2: "ok", 3: "ok", 4: "skipped"}
    assert "corrected note" in pdf_text(pdf_files(out)[2])
    rebuilt = PdfReader(pdf_files(out)[3]).pages
    assert (
        len(rebuilt) >= 2 and f"Page {len(rebuilt)} of {len(rebuilt)}" in rebuilt[-1].extract_text()
    )


def test_other_commands_columns_survive_a_rerun_for_the_same_pdf(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert batch(_three_rows(tmp_path), "--out-dir", out, "--jobs", "1").code == 0
    entries = manifest(out)
    for entry in entries:  # what `discharge email` records after sending
        entry["email_status"] = "sent"
        entry["ward"] = "=Ward 7"  # a column another tool (or a person) added
    columns = [*entries[0]]
    with (out / "manifest.csv").open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(entries)

    run = batch(_three_rows(tmp_path, note="corrected note"), "--out-dir", out, "--jobs", "1")

    assert run.code == 0
    after = {int(e["row"]): e for e in manifest(out)}
    assert list(after[3]) == columns  # the columns, in their order
    assert after[3]["status"] == "skipped" and after[3]["email_status"] == "sent"
    assert after[3]["ward"] == "'=Ward 7"  # kept, and no longer a formula for a spreadsheet
    # Row 2's document changed, so "sent" no longer describes it: it is sent again.
    assert after[2]["status"] == "ok" and after[2]["email_status"] == "" and after[2]["ward"] == ""


def test_a_manifest_row_reads_back_as_it_was_written() -> None:
    from discharge.batch import EmailColumns, ManifestRow
    from discharge.batch.manifest import EMAIL_FIELDS, MANIFEST_FIELDS

    # Every column the manifest knows is a field of the row, in the file's order: a column
    # added to MANIFEST_FIELDS but not to ManifestRow would be lost on every rewrite.
    assert list(ManifestRow(0).cells()) == MANIFEST_FIELDS + EMAIL_FIELDS
    entry = ManifestRow(
        7, status="ok", key="k", file="f.pdf", sha256="s", procedure="hsg", date="2026-11-02",
        email="=a@b.example", input_sha256="i", error="",
        emailed=EmailColumns("sent", "=a@b.example", "<m@x>", ""), others={"ward": "+7"},
    )  # fmt: skip
    assert ManifestRow.from_cells(entry.cells()) == entry
    assert list(entry.cells()) == MANIFEST_FIELDS + EMAIL_FIELDS + ["ward"]  # others after
    assert entry.neutralised()["email"] == "'=a@b.example"
    assert entry.neutralised()["ward"] == "'+7"
    assert ManifestRow.from_cells({"row": "x", "status": "ok"}) is None  # a damaged line


def test_a_checkpoint_keeps_the_previous_entries_of_rows_not_reached_yet(tmp_path: Path) -> None:
    """Until a run is complete, the manifest still lists the last run's rows it has not
    recorded again, in their order, so a stopped rerun can still skip them."""
    from discharge.batch.manifest import (
        MANIFEST_FIELDS,
        ManifestRow,
        ManifestWriter,
        PreviousManifest,
    )

    out = tmp_path / "out"
    out.mkdir()
    with (out / "manifest.csv").open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, MANIFEST_FIELDS)
        writer.writeheader()
        for row, key in ((2, "aaa"), (3, "bbb"), (4, "ccc")):
            writer.writerow({"row": row, "key": key, "status": "ok", "file": f"{key}.pdf"})
    previous = PreviousManifest(out)
    writer = ManifestWriter(out, MANIFEST_FIELDS, previous)
    writer.record(ManifestRow(2, key="bbb", status="ok", file="bbb.pdf"))
    writer.record(ManifestRow(3, key="new", status="ok", file="new.pdf"))

    writer.checkpoint()
    assert [(e["row"], e["key"]) for e in manifest(out)] == [
        ("2", "bbb"), ("3", "new"), ("2", "aaa"), ("4", "ccc"),
    ]  # fmt: skip
    writer.close(complete=True)
    assert [e["key"] for e in manifest(out)] == ["bbb", "new"]
    previous.close()


ROWS = 150  # enough work that the signal always lands mid-run, even on a fast machine


def _many_rows(tmp_path: Path) -> Path:
    lines = ["patient_name,procedure,date,mrn"]
    lines += [f"Patient {i:03d},hsg,2026-11-21,MRN{i:03d}" for i in range(ROWS)]
    return write_schedule(tmp_path / "s.csv", lines)


@pytest.mark.parametrize(
    "jobs, sig", [("1", signal.SIGINT), ("2", signal.SIGTERM)], ids=["ctrl-c", "sigterm"]
)
def test_an_interrupted_run_stops_cleanly_and_a_rerun_finishes_it(
    tmp_path: Path, jobs: str, sig: signal.Signals
) -> None:
    schedule = _many_rows(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "discharge", "batch", schedule, "--out-dir", out, "--jobs", jobs],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    deadline = time.monotonic() + 30
    while len(list(out.glob("*.pdf"))) < 3 and proc.poll() is None:
        assert time.monotonic() < deadline, "no PDFs appeared"
        time.sleep(0.005)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)

    assert proc.returncode == 130, stderr
    assert "batch: interrupted:" in stdout and "Traceback" not in stderr
    done = statuses(out)
    # With workers, the last PDFs written may not be recorded yet: they are made again.
    assert 1 <= len(done) < ROWS and set(done.values()) == {"ok"}
    assert all(row in pdf_files(out) for row in done)
    assert not list(out.glob(".*part")) and not list(out.glob("*.part"))
    for file in out.glob("*.pdf"):  # only whole PDFs: rows written but not yet recorded too
        assert len(PdfReader(file).pages) >= 2

    rerun = batch(schedule, "--out-dir", out, "--jobs", jobs)

    assert rerun.code == 0, rerun.stderr
    final = statuses(out)
    assert sorted(final) == list(range(2, ROWS + 2))
    assert all(final[row] == "skipped" for row in done)
    assert all(status in ("ok", "skipped") for status in final.values())
    assert len(pdf_files(out)) == ROWS
    hidden = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert hidden == [".manifest.csv.salt"]  # the folder's own salt for the rows' keys


def test_files_left_by_a_killed_write_are_removed_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    long_name = "a" * 40 + "-0a1b2c-hsg-2026-11-21.pdf"  # write_atomic cuts it to 40
    killed = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from discharge.output import open_atomic\n"
        "with open_atomic(Path(sys.argv[1])) as handle:\n"
        "    handle.write(b'%PDF-1.4 half a document')\n"
        "    os._exit(9)  # like kill -9: no clean-up runs\n"
    )
    subprocess.run([sys.executable, "-c", killed, out / long_name], env=_env(), check=False)
    (out / ".manifest.csv.journal.part").write_text("2,ok\n", encoding="utf-8")
    (out / ".draft.part").write_text("not ours", encoding="utf-8")
    left = sorted(p.name for p in out.glob(".*.part"))
    assert len(left) == 3 and not any(".pdf" in name for name in left)  # the name was cut

    run = batch(_three_rows(tmp_path), "--out-dir", out, "--jobs", "1")

    assert run.code == 0, run.stderr
    assert sorted(p.name for p in out.glob(".*part")) == [".draft.part"]
    assert not (out / long_name).exists()


def test_a_second_batch_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        run = batch(_three_rows(tmp_path), "--out-dir", out)
    finally:
        os.close(fd)
    assert run.code == 2
    assert "another discharge batch is writing to" in run.stderr
    assert list(out.iterdir()) == []


# --- the manifest, the combined PDF, the dry run ----------------------------------------


def test_manifest_cells_cannot_run_as_formulas(tmp_path: Path) -> None:
    schedule = write_schedule(
        tmp_path / "s.csv",
        [
            "patient_name,procedure,date,email",
            "Ann Example,hsg,2026-11-21,=cmd@evil.example",
            "Bea Example,hsg,2026-11-21,+1-800@example.org",
            "Cy Example,hsg,2026-11-21,-x@example.org",
        ],
    )
    out = tmp_path / "out"
    assert batch(schedule, "--out-dir", out, "--jobs", "1").code == 0

    with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "'=cmd@evil.example" in cells and "'+1-800@example.org" in cells
    # A rerun reads them back as written (no second apostrophe) and skips the rows.
    assert batch(schedule, "--out-dir", out, "--jobs", "1").code == 0
    assert "'=cmd@evil.example" in (out / "manifest.csv").read_text("utf-8-sig")
    assert set(statuses(out).values()) == {"skipped"}


def test_combined_pdf_starts_every_patient_on_a_new_sheet(tmp_path: Path) -> None:
    schedule = write_schedule(
        tmp_path / "s.csv",
        [
            "patient_name,procedure,date,notes",
            "Ann Example,hsg,2026-11-21,",
            f"Bea Example,miscarriage,2026-11-21,{quoted(long_notes())}",
            "Nobody,hsgg,2026-11-21,",
            "Cy Example,hsg,2026-11-22,",
        ],
    )
    out, combined = tmp_path / "out", tmp_path / "print" / "today.pdf"
    combined.parent.mkdir()

    run = batch(schedule, "--out-dir", out, "--combined", combined)

    assert run.code == 1  # the bad row is left out, the others are combined
    counts = [len(PdfReader(pdf_files(out)[row]).pages) for row in (2, 3, 5)]
    odd = next(i for i, n in enumerate(counts) if n % 2)  # a document to be padded
    pages = [" ".join(page.extract_text().split()) for page in PdfReader(combined).pages]
    padded = [n + n % 2 for n in counts]  # an odd-length document is followed by a blank page
    assert len(pages) == sum(padded)
    starts = [next(i for i, text in enumerate(pages) if name in text)
              for name in ("Ann Example", "Bea Example", "Cy Example")]  # fmt: skip
    assert starts == [0, padded[0], padded[0] + padded[1]]
    assert all(start % 2 == 0 for start in starts)  # page index even: the front of a sheet
    assert pages[sum(padded[:odd]) + counts[odd]] == ""  # the blank page after it
    assert f"Wrote {combined} ({sum(padded)} pages)" in run.stdout

    # every row's PDF, also those the rerun found done (a rerun alone prints only its new rows)
    rerun = batch(schedule, "--out-dir", out, "--combined", combined, "--combined-all")
    assert rerun.code == 1 and len(PdfReader(combined).pages) == sum(padded)


def test_check_only_validates_and_writes_nothing(tmp_path: Path) -> None:
    schedule = write_schedule(
        tmp_path / "s.csv",
        [
            "patient_name,procedure,date,email",
            "Ann Example,hsg,2026-11-21,",
            "Bea Example,hsg,2026-13-01,",
        ],
    )
    out = tmp_path / "out"

    run = batch(schedule, "--out-dir", out, "--check")

    assert run.code == 1
    assert "row 3: date is not a real calendar date" in run.stderr
    assert "2026-13-01" not in run.stderr
    assert "check: 1 ok / 1 error" in run.stdout
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv"]

    good = write_schedule(
        tmp_path / "good.csv", ["patient_name,procedure,date", "A B,hsg,2026-11-21"]
    )
    assert batch(good, "--check").code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.csv", "s.csv"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_pdfs_are_flushed_to_disk_before_they_are_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, audit_db: Path, jobs: int
) -> None:
    """Workers write without a flush each; the parent flushes them all (syncfs) before the
    audit commit that records them: no row is recorded whose PDF might not be on disk."""
    import sqlite3

    from discharge.batch import open_schedule, run_batch
    from discharge.batch import run as batch_run
    from discharge.config import load_config

    lines = [HEADER] + [f"Patient {i},hsg,2026-11-{10 + i},RX-{i},," for i in range(6)]
    schedule = write_schedule(tmp_path / "s.csv", lines)
    flushed: list[tuple[list[str], int]] = []
    real = batch_run.flush_to_disk

    def flush(out_dir: Path, files: list[str]) -> None:
        recorded = 0
        if audit_db.exists():
            with sqlite3.connect(audit_db) as db:
                recorded = db.execute("SELECT count(*) FROM records").fetchone()[0]
        flushed.append((list(files), recorded))
        real(out_dir, files)

    monkeypatch.setattr(batch_run, "flush_to_disk", flush)
    out = tmp_path / "out"
    summary = run_batch(open_schedule(schedule), load_config(), out, jobs=jobs)
    assert summary.ok == 6
    assert sorted(f for files, _ in flushed for f in files) == sorted(
        entry["file"] for entry in manifest(out)
    )
    assert flushed[0][1] == 0  # flushed before the first record was written


def test_the_commands_that_keep_running_have_the_cycle_collector_on() -> None:
    # `discharge` starts with Python's cycle collector off (discharge/__main__.py): a batch of
    # 100,000 rows or the web server would otherwise never free garbage in reference cycles.
    script = (
        "import gc, click\n"
        "gc.disable()\n"
        "from discharge.cli import cli\n"
        "ctx = click.Context(cli)\n"
        "for name in ['generate', 'batch', 'serve']:\n"
        "    cli.get_command(ctx, name)\n"
        "    print(name, gc.isenabled())\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["generate", "False", "batch", "True", "serve", "True"]
