"""Large print (issue 12): every character a patient reads is at least 18 pt, on every page,
and nothing runs off the page, out of the margins or over other text.

Measured with pdfplumber on PDFs made by the real command. The rule, precisely: every printed
character whose box lies inside the body frame (above the bottom margin) is at least 18 pt;
characters below it are the footer (page furniture: the name, ids, page number, clinic line),
which may be smaller but grows too (at least 11 pt, against 7.5 pt in the normal layout).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pdfplumber
import pytest

from discharge.pdf.styles import LARGE, LARGE_PRINT_MIN, MARGIN_TOP, MARGIN_X, NORMAL
from tests.helpers import pdf_text, run_discharge
from tests.test_pdfua import assert_all_content_marked

NAME = "Maximiliana Gonzalez-Oyelaran de la Fuente"
# A Wednesday, with a time: the longest English dates ("Wednesday 25 November 2026 at 14:30").
PATIENT = ["--patient", NAME, "--dob", "1988-09-30", "--mrn", "MRN-0012345678",
           "--clinician", "Dr Alexandra Smith-Jones", "--date", "2026-11-25", "--time", "14:30"]  # fmt: skip
NOTES = (
    "Both tubes open. Continue folic acid.\n\n"
    "Follow-up appointment: Wednesday 9 December 2026 at 14:30 in the Outpatients Department.\n"
    + " ".join(["Supercalifragilisticexpialidocious-recoverytimeline"] * 6)
)
VARIANTS = [
    ("hsg", "fertility"),
    ("hsg", "sterilisation-check"),
    ("miscarriage", "surgical"),
    ("miscarriage", "expectant"),
    ("miscarriage", "medical"),
]
EPS = 0.01  # pdfplumber's sizes are floats from the text matrix


def make(tmp_path: Path, procedure: str, variant: str, paper: str, *extra: str) -> Path:
    notes = tmp_path / "notes.txt"
    notes.write_text(NOTES, encoding="utf-8")
    out = tmp_path / f"{procedure}-{variant}-{paper}.pdf"
    result = run_discharge("generate", *PATIENT, "--procedure", procedure, "--variant", variant,
                           "--paper", paper, "--notes-file", notes, *extra, "-o", out)  # fmt: skip
    assert result.code == 0, result.stderr
    return out


def printed(page: Any) -> list[dict[str, Any]]:
    return [c for c in page.chars if c["text"].strip()]


def is_footer(char: dict[str, Any], page: Any, margin_bottom: float) -> bool:
    return bool(char["top"] >= page.height - margin_bottom)


def assert_inside_the_page(path: Path, margin_bottom: float) -> None:
    """Every character inside the page's side margins; body text inside the body frame; no
    two characters overlapping (text run out of a table cell lands on its neighbour)."""
    with pdfplumber.open(path) as pdf:
        for number, page in enumerate(pdf.pages, 1):
            chars = printed(page)
            assert chars, f"page {number} is empty"
            # Above the top margin only the "Draft: not yet approved" line of unapproved wording.
            draft = [c for c in chars if c["top"] < MARGIN_TOP - 1]
            assert "".join(c["text"] for c in draft).startswith("Draft:" if draft else "")
            for c in chars:
                if c in draft:
                    assert c["x0"] >= MARGIN_X - 1 and c["x1"] <= page.width - MARGIN_X + 1
                    continue
                where = f"page {number}: {c['text']!r} at ({c['x0']:.0f}, {c['top']:.0f})"
                assert c["x0"] >= MARGIN_X - 1 and c["x1"] <= page.width - MARGIN_X + 1, where
                assert c["top"] >= MARGIN_TOP - 1 and c["bottom"] <= page.height - 5, where
                if not is_footer(c, page, margin_bottom):
                    assert c["bottom"] <= page.height - margin_bottom + 1, where
            assert_no_overlap(chars, number)


def assert_no_overlap(chars: list[dict[str, Any]], number: int) -> None:
    ordered = sorted(chars, key=lambda c: c["x0"])
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            if b["x0"] >= a["x1"] - 0.5:
                break
            # Boxes of one line touch; overlapping by a third of the smaller one is a collision.
            dx = min(a["x1"], b["x1"]) - max(a["x0"], b["x0"])
            dy = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
            smaller = min(a["x1"] - a["x0"], b["x1"] - b["x0"]) * min(a["size"], b["size"])
            if dx > 0 and dy > 0:
                assert dx * dy < smaller / 3, (
                    f"page {number}: {a['text']!r} and {b['text']!r} overlap "
                    f"at ({a['x0']:.0f}, {a['top']:.0f})"
                )


@pytest.mark.parametrize("paper", ["a4", "letter"])
@pytest.mark.parametrize("procedure, variant", VARIANTS)
def test_every_body_character_is_at_least_18_pt(
    tmp_path: Path, procedure: str, variant: str, paper: str
) -> None:
    path = make(tmp_path, procedure, variant, paper, "--large-print")

    with pdfplumber.open(path) as pdf:
        assert len(pdf.pages) >= 2
        size = (595.3, 841.9) if paper == "a4" else (612, 792)
        for number, page in enumerate(pdf.pages, 1):
            assert (round(page.width, 1), round(page.height, 1)) == size
            chars = printed(page)
            body = [c for c in chars if not is_footer(c, page, LARGE.margin_bottom)]
            footer = [c for c in chars if is_footer(c, page, LARGE.margin_bottom)]
            assert body, f"page {number} has no body text"
            small = sorted({round(c["size"], 1) for c in body if c["size"] < LARGE_PRINT_MIN - EPS})
            assert not small, f"page {number}: body text at {small} pt (at least 18)"
            assert footer and min(c["size"] for c in footer) >= 11 - EPS
            last = max(body, key=lambda c: c["bottom"])
            assert last["size"] < LARGE.heading.fontSize - EPS, f"page {number} ends in a heading"
            text = "".join(c["text"] for c in footer)
            assert f"Page{number}of{len(pdf.pages)}" in text.replace(" ", "")
    assert_inside_the_page(path, LARGE.margin_bottom)
    # The same content: every word and date is still there, the ids whole in the footer.
    text = pdf_text(path)
    for words in (NAME, "Wednesday 25 November 2026 at 14:30", "MRN-0012345678",
                  "Hospital number MRN-0012345678", "Before you go home", "Check you understand"):  # fmt: skip
        assert words in text


@pytest.mark.parametrize("paper", ["a4", "letter"])
def test_the_normal_layout_is_unchanged_and_smaller(tmp_path: Path, paper: str) -> None:
    path = make(tmp_path, "hsg", "fertility", paper)
    with pdfplumber.open(path) as pdf:
        sizes = {round(c["size"], 1) for page in pdf.pages for c in printed(page)}
        pages = len(pdf.pages)
    assert min(sizes) < 12 and max(sizes) == 20  # the normal title
    assert_inside_the_page(path, NORMAL.margin_bottom)
    large = make(tmp_path, "hsg", "fertility", paper, "--large-print")
    with pdfplumber.open(large) as pdf:
        assert len(pdf.pages) > pages  # same content, bigger type: more pages
    assert set(pdf_text(path).split()) <= set(pdf_text(large).split()) | {"·"}


def test_large_print_passes_the_pdfua_checker(tmp_path: Path) -> None:
    path = make(tmp_path, "miscarriage", "medical", "letter", "--large-print")
    check = subprocess.run([sys.executable, "-m", "pdfua", "check", str(path)],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert_all_content_marked(path)  # nothing drawn outside tagged or artifact content


def test_the_clinic_default_and_the_flag_that_overrides_it(tmp_path: Path) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text(
        '[clinic]\nname = "Test Clinic"\nphone = "0100"\nemergency_number = "999"\n'
        "large_print = true\n",
        encoding="utf-8",
    )
    by_default = make(tmp_path, "hsg", "fertility", "a4", "--config", str(config))
    with pdfplumber.open(by_default) as pdf:
        page = pdf.pages[0]
        body = [c for c in printed(page) if not is_footer(c, page, LARGE.margin_bottom)]
        assert min(c["size"] for c in body) >= LARGE_PRINT_MIN - EPS
    (tmp_path / "n").mkdir()
    normal = make(tmp_path / "n", "hsg", "fertility", "a4", "--config", str(config),
                  "--no-large-print")  # fmt: skip
    with pdfplumber.open(normal) as pdf:
        assert min(c["size"] for c in printed(pdf.pages[0])) < 12


def test_a_bad_clinic_default_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text(
        '[clinic]\nname = "T"\nphone = "0100"\nemergency_number = "999"\nlarge_print = "yes"\n',
        encoding="utf-8",
    )
    result = run_discharge("generate", "--config", config, "--procedure", "hsg",
                           "--date", "2026-11-25", "--patient", "A B", "-o", tmp_path / "x.pdf")  # fmt: skip
    assert result.code == 2
    assert "[clinic] large_print: must be true or false" in result.stderr
    assert not (tmp_path / "x.pdf").exists()


def test_a_batch_with_a_large_print_column(tmp_path: Path) -> None:
    schedule = tmp_path / "s.csv"
    schedule.write_text(
        "patient_name,procedure,date,large_print\n"
        "Ann Example,hsg,2026-11-25,yes\n"
        "Bo Example,hsg,2026-11-25,No\n"
        "Cy Example,miscarriage,2026-11-25,\n"
        "Di Example,miscarriage,2026-11-25,TRUE\n"
        "Ed Example,hsg,2026-11-25,perhaps\n"
        "Flo Example,hsg,2026-11-25,0\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    run = run_discharge("batch", schedule, "--out-dir", out)

    assert run.code == 1
    errors = [line for line in run.stderr.splitlines() if line.startswith("row ")]
    assert errors == [
        "row 6: large_print is not yes or no (expected yes/no, true/false, 1/0, or empty)"
    ]
    import csv

    with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as handle:
        files = {int(e["row"]): out / e["file"] for e in csv.DictReader(handle) if e["file"]}
    assert sorted(files) == [2, 3, 4, 5, 7]
    expected = {2: True, 3: False, 4: False, 5: True, 7: False}
    for row, large in expected.items():
        with pdfplumber.open(files[row]) as pdf:
            page = pdf.pages[0]
            body = [c for c in printed(page) if not is_footer(c, page, LARGE.margin_bottom)]
            assert (min(c["size"] for c in body) >= LARGE_PRINT_MIN - EPS) is large, row


def test_large_and_normal_styles_never_share_a_cache_entry() -> None:
    from dataclasses import fields

    from reportlab.lib.styles import ParagraphStyle

    normal = [getattr(NORMAL, f.name) for f in fields(NORMAL)]
    large = [getattr(LARGE, f.name) for f in fields(LARGE)]
    normal_names = {s.name for s in normal if isinstance(s, ParagraphStyle)}
    large_styles = [s for s in large if isinstance(s, ParagraphStyle)]
    assert not normal_names & {s.name for s in large_styles}
    assert all(s.fontSize >= LARGE_PRINT_MIN for s in large_styles)


def test_the_web_form_has_a_large_print_checkbox(tmp_path: Path) -> None:
    import io

    from discharge.config import Config
    from discharge.web import create_app
    from tests.test_web import FORM, token

    app = create_app(Config(), overrides={"TESTING": True})
    try:
        client = app.test_client()
        page = client.get("/").get_data(as_text=True)
        assert 'type="checkbox" id="large_print" name="large_print"' in page
        sizes = {}
        for ticked in (True, False):
            data = {**FORM, "csrf_token": token(client.get("/").get_data(as_text=True))}
            if ticked:
                data["large_print"] = "yes"
            response = client.post("/", data=data)
            assert response.mimetype == "application/pdf"
            with pdfplumber.open(io.BytesIO(response.data)) as pdf:
                page = pdf.pages[0]
                body = [c for c in printed(page) if not is_footer(c, page, LARGE.margin_bottom)]
                sizes[ticked] = min(c["size"] for c in body)
        assert sizes[True] >= LARGE_PRINT_MIN - EPS and sizes[False] < 12
    finally:
        app.extensions["discharge.jobs"].close()


LONG_WORDS = (
    "Electroencefalográficamente, desoxirribonucleico, anticonstitucionalmente y "
    "otorrinolaringológicamente: esterilización tubárica histerosalpingográfica."
)


@pytest.mark.parametrize("paper", ["a4", "letter"])
def test_long_words_stay_inside_the_timeline_and_help_box(tmp_path: Path, paper: str) -> None:
    from discharge.resources import bundled_dir

    folder = tmp_path / "templates"
    folder.mkdir()
    source = (bundled_dir("templates") / "hsg.toml").read_text(encoding="utf-8")
    label = 'label = "You can go back to your normal daily life as soon as you feel able."'
    sign = '"Very bad pain in your tummy'
    assert label in source and sign in source
    source = source.replace(label, f'label = "{LONG_WORDS}"').replace(
        sign, f'"{LONG_WORDS} {sign[1:]}'
    )
    (folder / "hsg.toml").write_text(source, encoding="utf-8")
    config = tmp_path / "clinic.toml"
    config.write_text(
        '[clinic]\nname = "Clínica de Otorrinolaringología y Ginecología Reproductiva"\n'
        'phone = "+1 (212) 555-0100 extensión 12345"\nemergency_number = "911"\n'
        f'templates_dir = "{folder}"\nlarge_print = true\n',
        encoding="utf-8",
    )
    path = make(tmp_path, "hsg", "fertility", paper, "--config", str(config))

    assert_inside_the_page(path, LARGE.margin_bottom)
    with pdfplumber.open(path) as pdf:  # the timeline's heading is never left alone
        for page in pdf.pages:
            body = [c for c in printed(page) if not is_footer(c, page, LARGE.margin_bottom)]
            assert max(body, key=lambda c: c["bottom"])["size"] < LARGE.heading.fontSize - EPS
    assert "Electroencefalográficamente" in pdf_text(path)


def test_the_next_appointment_and_medicines_in_large_print(tmp_path: Path) -> None:
    """The follow-up appointment's box and the medicines' table keep the large print (18 pt
    or more), inside the page (Letter in large print: tests/test_pdfua.py)."""
    paper = "a4"
    medicines = [f"--medicine=Medicine number {i} 500 mg | twice a day with a glass of water | "
                 f"for {i} days, then stop" for i in range(1, 9)]  # fmt: skip
    path = make(tmp_path, "miscarriage", "medical", paper, "--large-print",
                "--follow-up", "2026-12-02 09:15",
                "--follow-up-place", "Early pregnancy assessment unit, Ward 12, Level 3",
                *medicines)  # fmt: skip
    with pdfplumber.open(path) as pdf:
        for number, page in enumerate(pdf.pages, 1):
            body = [c for c in printed(page) if not is_footer(c, page, LARGE.margin_bottom)]
            small = sorted({round(c["size"], 1) for c in body if c["size"] < LARGE_PRINT_MIN - EPS})
            assert not small, f"page {number}: body text at {small} pt (at least 18)"
    assert_inside_the_page(path, LARGE.margin_bottom)
    text = pdf_text(path)
    assert "Your next appointment" in text and "Ward 12, Level 3" in text
    for i in range(1, 9):
        assert f"Medicine number {i} 500 mg" in text
        assert f"for {i} days, then stop" in text
