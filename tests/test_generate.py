"""`discharge generate` end to end: the real command, real files, the PDF's extracted text."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from discharge.options import DEMO_WARNING
from tests.helpers import PATIENT, pdf_pages, pdf_text, run_discharge

DRAFT_WARNING = (
    "warning: hsg.toml is a draft: no clinician has approved its wording (reviewed_by is empty); "
    'every page it prints says "Draft: not yet approved"'
)


def test_hsg_pdf_has_dates_patient_and_help(generate) -> None:
    result, out = generate("--procedure", "hsg", "--date", "2026-11-21", "--time", "10:30",
                           "--clinician", "Dr Amara Okafor",
                           "--notes", "Tubes open on both sides. Call if any fever.")  # fmt: skip
    assert result.code == 0, result.stderr
    # The demo clinic's sheet is made, and the nurse is told its numbers are fictional and
    # that the bundled wording awaits a clinician's approval (issue 19).
    assert result.stderr.splitlines() == [DRAFT_WARNING, DEMO_WARNING]
    text = pdf_text(out)
    for expected in [
        "Zoë Nguyễn", "RX-104233", "1 Feb 1990", "Dr Amara Okafor",
        "Saturday 21 November 2026 at 10:30",
        "Sunday 22 November 2026 at 10:30", "Monday 23 November 2026 at 10:30",
        "Friday 21 May 2027",  # the flushing row: from the test to about 6 months after
        "When to get help", "38 °C (100.4 °F)", "01632 960 123", "call 999",
        "Tubes open on both sides. Call if any fever.",
        "Cleveland Clinic",  # the sources are named
    ]:  # fmt: skip
        assert expected in text, expected


def test_footer_on_every_page_of_a_long_document(generate, tmp_path: Path) -> None:
    url = "https://example.org/" + "a" * 3000
    # Close to the notes limit (20,000 characters).
    notes = "\n".join(f"Line {i}: keep the wound dry and rest." for i in range(400)) + "\n" + url
    notes_file = tmp_path / "notes.txt"
    notes_file.write_text(notes, encoding="utf-8")
    result, out = generate("--procedure", "miscarriage", "--date", "2026-11-21",
                           "--notes-file", str(notes_file))  # fmt: skip
    assert result.code == 0, result.stderr
    pages = pdf_pages(out)
    assert len(pages) > 5
    for number, page in enumerate(pages, 1):
        assert f"Page {number} of {len(pages)}" in page
        assert "Zoë Nguyễn" in page and "Hospital number RX-104233" in page
        assert "miscarriage v2.0 (surgical)" in page
    text = "".join("".join(p.split()) for p in pages)
    assert "Line399:keepthewounddryandrest." in text
    # The unbroken URL is printed whole, across lines (and maybe a page break with its footer).
    assert "https://example.org/" + "a" * 40 in text
    assert sum(map(len, re.findall("a{40,}", text))) == 3000


def test_notes_are_printed_literally(generate) -> None:
    notes = "Dose {{ 7*7 }} & <b>not bold</b> <font size=80>big</font>\nSecond line"
    result, out = generate("--procedure", "hsg", "--date", "2026-11-21", "--notes", notes)
    assert result.code == 0, result.stderr
    text = pdf_text(out)
    assert "Dose {{ 7*7 }} & <b>not bold</b> <font size=80>big</font>" in text
    assert "49" not in text


def test_notes_keep_line_breaks(generate) -> None:
    result, out = generate("--procedure", "hsg", "--date", "2026-11-21",
                           "--notes", "First line\nSecond line")  # fmt: skip
    assert result.code == 0
    raw = "\n".join(page.extract_text() for page in PdfReader(out).pages)
    assert re.search(r"First line\s*\n\s*Second line", raw)


def test_notes_from_stdin(generate) -> None:
    result, out = generate("--procedure", "hsg", "--date", "2026-11-21", "--notes-file", "-",
                           stdin="From standard input")  # fmt: skip
    assert result.code == 0, result.stderr
    assert "From standard input" in pdf_text(out)


@pytest.mark.parametrize("name", ["Zoë Nguyễn", "Łucja Wróbel-Şahin", "Παναγιώτης Χατζής",
                                  "Ёлка Щукина", "Ngô Bảo Châu", "Ǆemal Ǉubić ☺"])  # fmt: skip
def test_unicode_names_print_correctly(name: str, tmp_path: Path) -> None:
    out = tmp_path / "u.pdf"
    result = run_discharge("generate", "--procedure", "hsg", "--date", "2026-11-21",
                           "--patient", name, "-o", out)  # fmt: skip
    assert result.code == 0, result.stderr
    for page in pdf_pages(out):
        assert name in page


@pytest.mark.parametrize(("name", "character"), [("王小明", "U+738B"), ("سارة", "U+0633")])
def test_unprintable_characters_stop_with_a_clear_error(name: str, character: str,
                                                        tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "x.pdf"
    result = run_discharge("generate", "--procedure", "hsg", "--date", "2026-11-21",
                           "--patient", name, "-o", out)  # fmt: skip
    assert result.code == 2
    assert character in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(("paper", "size"), [("a4", (595, 842)), ("letter", (612, 792))])
def test_paper_size(generate, paper: str, size: tuple[int, int]) -> None:
    result, out = generate("--procedure", "hsg", "--date", "2026-11-21", "--paper", paper)
    assert result.code == 0
    reader = PdfReader(out)
    box = reader.pages[0].mediabox
    assert (round(box.width), round(box.height)) == size
    assert len(reader.pages) <= 3  # a typical document fits two sheets of paper


def test_same_input_same_bytes(generate, tmp_path: Path) -> None:
    args = ("--procedure", "miscarriage", "--date", "2026-11-21", "--notes", "Rest.")
    _, first = generate(*args, output=tmp_path / "a.pdf")
    _, second = generate(*args, output=tmp_path / "b.pdf")
    assert first.read_bytes() == second.read_bytes()


def test_no_patient_data_in_pdf_metadata(generate) -> None:
    _, out = generate("--procedure", "hsg", "--date", "2026-11-21")
    meta = PdfReader(out).metadata
    assert "Zoë" not in str(dict(meta)) and "RX-104233" not in str(dict(meta))


def test_procedures_lists_ids_and_titles() -> None:
    result = run_discharge("procedures")
    assert result.code == 0
    assert re.search(r"^hsg\s+After your HSG", result.stdout, re.M)
    assert re.search(r"^miscarriage\s+After your miscarriage", result.stdout, re.M)


def test_default_output_name(tmp_path: Path) -> None:
    result = run_discharge("generate", "--procedure", "hsg", "--date", "2026-11-21",
                           "--patient", "Ada", cwd=tmp_path)  # fmt: skip
    assert result.code == 0
    assert (tmp_path / "discharge-hsg-2026-11-21.pdf").is_file()


# --- bad input: one line, exit 2, no traceback, no file -----------------------------------


def _fails_cleanly(result, out: Path, *fragments: str) -> None:
    assert result.code == 2, (result.code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert not out.exists()
    assert not list(out.parent.glob("*.part"))


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--procedure", "hgs", "--date", "2026-11-21"], ["unknown procedure", "did you mean 'hsg'"]),
        # Each value's own rule is tested on the request layer (test_document.py); here, that a
        # bad value reaches the user as one line and exit 2 through the command.
        (["--procedure", "hsg", "--date", "2026-02-30"], ["date is not a real calendar date"]),
        (["--procedure", "hsg", "--date", "2026-11-21", "--notes-file", "/nonexistent/n.txt"],
         ["notes file", "does not exist"]),
        (["--procedure", "hsg", "--date", "2026-11-21", "--notes", "a", "--notes-file", "-"],
         ["not both"]),
        (["--procedure", "hsg", "--date", "2026-11-21", "--paper", "a5"], ["a5", "a4", "letter"]),
    ],
)  # fmt: skip
def test_bad_input(generate, args: list[str], fragments: list[str]) -> None:
    result, out = generate(*args)
    _fails_cleanly(result, out, *fragments)


def test_missing_required_option(tmp_path: Path) -> None:
    out = tmp_path / "x.pdf"
    result = run_discharge("generate", "--procedure", "hsg", "--patient", "A", "-o", out)
    assert result.code == 2 and "--date" in result.stderr and not out.exists()


def test_notes_file_not_utf8(generate, tmp_path: Path) -> None:
    notes = tmp_path / "n.txt"
    notes.write_bytes("caf\xe9".encode("latin-1"))
    result, out = generate("--procedure", "hsg", "--date", "2026-11-21", "--notes-file", str(notes))
    _fails_cleanly(result, out, "not UTF-8")


def test_unwritable_output(tmp_path: Path) -> None:
    out = tmp_path / "missing-folder" / "x.pdf"
    result = run_discharge("generate", "--procedure", "hsg", "--date", "2026-11-21",
                           "--patient", "A", "-o", out)  # fmt: skip
    _fails_cleanly(result, out, "does not exist")
    result = run_discharge("generate", "--procedure", "hsg", "--date", "2026-11-21",
                           "--patient", "A", "-o", tmp_path)  # fmt: skip
    assert result.code == 2 and "is a folder" in result.stderr


def test_failed_run_keeps_the_previous_file(generate, tmp_path: Path) -> None:
    out = tmp_path / "out.pdf"
    out.write_bytes(b"the earlier PDF")
    result, _ = generate("--procedure", "hsg", "--date", "2026-13-01")
    assert result.code == 2
    assert out.read_bytes() == b"the earlier PDF"


def test_broken_config(generate, tmp_path: Path) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text('[clinic]\nname = "X"\npaper = "a5"\ntimezone = "Mars/Olympus"\n')
    result, out = generate("--procedure", "hsg", "--date", "2026-11-21", "--config", str(config))
    # A settings file's problems: every one at once, a line each, in file order.
    assert result.code == 2 and not out.exists() and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line.removeprefix(f"discharge: error: {config}: ").split(":")[0] for line in lines] == [
        "[clinic] paper",
        "[clinic] timezone",
        "[clinic] phone",
        "[clinic] emergency_number",
    ], result.stderr
    assert all(line.startswith(f"discharge: error: {config}: ") for line in lines)
    config.write_text("[clinic\nname=")
    result, out = generate("--procedure", "hsg", "--date", "2026-11-21", "--config", str(config))
    _fails_cleanly(result, out, "not valid TOML")


def test_config_from_environment(generate, tmp_path: Path) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text('[clinic]\nname = "Harbour Test Clinic"\nphone = "0100 000 000"\n'
                      'emergency_number = "911"\nlocale = "en_US"\n'
                      'timezone = "America/New_York"\npaper = "letter"\n')  # fmt: skip
    result, out = generate("--procedure", "hsg", "--date", "2026-11-21",
                           env={"DISCHARGE_CONFIG": str(config)})  # fmt: skip
    assert result.code == 0, result.stderr
    text = pdf_text(out)
    assert "Harbour Test Clinic" in text and "0100 000 000" in text
    assert "Sunday, November 22, 2026" in text
    assert round(PdfReader(out).pages[0].mediabox.height) == 792


def test_broken_template(generate, tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "hsg.toml").write_text('id = "hsg"\nversion = "2"\ntitle = "T"\n')
    config = tmp_path / "clinic.toml"
    config.write_text(f'[clinic]\nname = "N"\nphone = "0100"\nemergency_number = "999"\n'
                      f'templates_dir = "{folder}"\n')  # fmt: skip
    result, out = generate("--procedure", "hsg", "--date", "2026-11-21", "--config", str(config))
    _fails_cleanly(result, out, "hsg.toml", "sources", "milestones", "help")


def test_logo(generate, tmp_path: Path) -> None:
    from PIL import Image

    config = tmp_path / "clinic.toml"
    config.write_text('[clinic]\nname = "N"\nphone = "0100"\nemergency_number = "999"\n'
                      'logo = "logo.png"\n')  # fmt: skip
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"not an image")
    result, out = generate("--procedure", "hsg", "--date", "2026-11-21", "--config", str(config))
    _fails_cleanly(result, out, "[clinic] logo:", "is not a PNG or JPEG image")

    Image.new("RGB", (300, 100), (11, 85, 99)).save(logo)
    result, out = generate("--procedure", "hsg", "--date", "2026-11-21", "--config", str(config))
    assert result.code == 0, result.stderr
    assert PdfReader(out).pages[0].images  # the logo is drawn on page 1


def test_very_long_name_keeps_identifiers_in_every_footer(tmp_path: Path) -> None:
    name = "Łucja " + "Wróbel-Şahin-" * 23  # about 300 characters
    out = tmp_path / "long-name.pdf"
    result = run_discharge("generate", "--procedure", "hsg", "--date", "2026-11-21",
                           "--patient", name, "--dob", "1985-12-31", "--mrn", "4410293",
                           "-o", out)  # fmt: skip
    assert result.code == 0, result.stderr
    pages = pdf_pages(out)
    for number, page in enumerate(pages, 1):
        assert "Born 31 Dec 1985 · Hospital number 4410293" in page
        assert f"Page {number} of {len(pages)}" in page


def test_output_file_follows_the_umask(tmp_path: Path) -> None:
    import os
    import stat

    out = tmp_path / "perm.pdf"
    old = os.umask(0o027)
    try:
        result = run_discharge("generate", "--procedure", "hsg", "--date", "2026-11-21",
                               "--patient", "A", "-o", out)  # fmt: skip
    finally:
        os.umask(old)
    assert result.code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_a_clinic_file_never_borrows_the_demo_phone_numbers(generate, tmp_path: Path) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text('[clinic]\nname = "Harbour Test Clinic"\n')
    result, out = generate("--procedure", "hsg", "--date", "2026-11-21", "--config", str(config))
    assert result.code == 2 and not out.exists()
    assert result.stderr.splitlines() == [
        f"discharge: error: {config}: [clinic] phone: is required",
        f"discharge: error: {config}: [clinic] emergency_number: is required",
    ]
    config.write_text('[clinic]\nname = "Harbour Test Clinic"\nphone = "0100 000 000"\n'
                      'emergency_number = "112"\n')  # fmt: skip
    result, out = generate("--procedure", "hsg", "--date", "2026-11-21", "--config", str(config))
    assert result.code == 0, result.stderr
    text = pdf_text(out)
    assert "01632" not in text and "Example Lane" not in text  # nothing of the demo clinic
    assert "call 112" in text and "Out of hours" not in text


def test_a_clinic_settings_file_means_no_demo_warning(generate, tmp_path: Path) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text('[clinic]\nname = "Northgate"\nphone = "0113 496 0000"\n'
                      'emergency_number = "999"\n', encoding="utf-8")  # fmt: skip
    result, out = generate("--procedure", "hsg", "--date", "2026-11-21", "--config", str(config))
    assert result.code == 0 and out.exists()
    assert "demo clinic" not in result.stderr


def test_notes_that_run_on_get_a_continued_heading(generate, tmp_path: Path) -> None:
    notes = "\n".join(f"Line {i}: keep the wound dry and rest." for i in range(150))
    result, out = generate("--procedure", "hsg", "--date", "2026-11-21", "--notes", notes)
    assert result.code == 0, result.stderr
    pages = pdf_pages(out)
    first = next(i for i, page in enumerate(pages) if "Notes from your care team" in page)
    last = next(i for i, page in enumerate(pages) if "Line 149:" in page)
    assert last > first
    for page in pages[first + 1 : last + 1]:
        body = page.split("Notes from your care team (continued)", 1)
        assert len(body) == 2 and "Line " not in body[0]  # the heading comes before the notes
    assert "(continued)" not in pages[first]
    # A screen reader reads the heading once: the repeats are page furniture.
    structure = subprocess.run(["pdfinfo", "-struct-text", str(out)], capture_output=True,
                               text=True, check=True).stdout  # fmt: skip
    assert structure.count("Notes from your care team") == 1


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_the_pdf_gets_the_permissions_the_umask_gives_a_new_file(
    tmp_path: Path, umask: int, mode: int
) -> None:
    out = tmp_path / "pdfs" / "out.pdf"
    out.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISCHARGE_") or k in (
        "DISCHARGE_AUDIT_DB", "DISCHARGE_CACHE_DIR", "DISCHARGE_DATA_DIR")}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "discharge", "generate", *PATIENT, "--procedure", "hsg",
         "--date", "2026-11-21", "--output", str(out)],
        preexec_fn=lambda: os.umask(umask), env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert [p.name for p in out.parent.iterdir()] == ["out.pdf"]  # no temporary file left
