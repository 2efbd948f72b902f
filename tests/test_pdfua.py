"""Tagged PDF/UA-1 output: checked by an independent checker, by walking every page's content
stream, and by reading the structure back with poppler, as a screen reader would get it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pikepdf
import pytest

from tests.helpers import PATIENT, run_discharge

NAME = "Zoë Nguyễn"
SHORT_NOTES = "Tubes open on both sides. Call if any fever."
# Long notes: many lines, then one line long enough to be split over a page break.
LONG_NOTES = "\n".join(f"Line {i}: keep the wound dry and rest." for i in range(45)) + (
    "\n" + " ".join(f"word{i}" for i in range(700)) + "\nLast line of the notes."
)

TEXT_OPERATORS = {"Tj", "TJ", "'", '"'}
PAINT_OPERATORS = {"S", "s", "f", "F", "f*", "B", "B*", "b", "b*", "sh", "Do", "INLINE IMAGE"}


def pdfinfo() -> str:
    path = shutil.which("pdfinfo")
    if path is None:
        pytest.fail("poppler-utils' pdfinfo is needed (apt-get install poppler-utils)")
    return path


def pdfua_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pdfua", "check", str(path)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def struct_text(path: Path) -> str:
    proc = subprocess.run([pdfinfo(), "-struct-text", str(path)],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return proc.stdout.replace(' "\n', '"\n')  # every line of text ends with its space


def make(tmp_path: Path, procedure: str, paper: str, notes: str, *extra: str) -> Path:
    notes_file = tmp_path / "notes.txt"
    notes_file.write_text(notes, encoding="utf-8")
    out = tmp_path / f"{procedure}-{paper}.pdf"
    result = run_discharge("generate", *PATIENT, "--procedure", procedure, "--date", "2026-11-21",
                           "--time", "10:30", "--paper", paper, "--notes-file", notes_file,
                           *extra, "-o", out)  # fmt: skip
    assert result.code == 0, result.stderr
    return out


def assert_all_content_marked(path: Path) -> None:
    """No text is shown and nothing is painted outside a marked-content sequence; every MCID
    on a page is unique and owned by a structure element in the ParentTree."""
    with pikepdf.open(path) as pdf:
        nums = pdf.Root.StructTreeRoot.ParentTree.Nums
        owners = {int(nums[i]): nums[i + 1] for i in range(0, len(nums), 2)}
        for number, page in enumerate(pdf.pages, 1):
            assert page.obj.Tabs == pikepdf.Name.S
            depth, mcids = 0, []
            for operands, operator in pikepdf.parse_content_stream(page):
                op = str(operator)
                if op in ("BMC", "BDC"):
                    depth += 1
                    props = operands[1] if op == "BDC" else None
                    if isinstance(props, pikepdf.Dictionary) and "/MCID" in props:
                        mcids.append(int(props.MCID))
                elif op == "EMC":
                    depth -= 1
                    assert depth >= 0, f"page {number}: EMC without BMC/BDC"
                elif op in TEXT_OPERATORS or op in PAINT_OPERATORS:
                    assert depth > 0, f"page {number}: {op} outside marked content"
            assert depth == 0, f"page {number}: marked content left open"
            assert mcids == list(range(len(mcids))), f"page {number}: MCIDs not 0..n-1"
            parents = owners[int(page.obj.StructParents)]
            assert len(parents) == len(mcids)
            assert all(isinstance(p, pikepdf.Dictionary) and "/S" in p for p in parents)


def assert_in_order(text: str, *phrases: str) -> None:
    positions = []
    for phrase in phrases:
        assert phrase in text, phrase
        positions.append(text.index(phrase))
    assert positions == sorted(positions), list(zip(phrases, positions, strict=True))


@pytest.mark.parametrize("procedure", ["hsg", "miscarriage"])
@pytest.mark.parametrize("paper", ["a4", "letter"])
@pytest.mark.parametrize("notes", ["short", "long"])
def test_every_document_is_tagged_pdf_ua(tmp_path: Path, procedure: str, paper: str,
                                         notes: str) -> None:  # fmt: skip
    out = make(tmp_path, procedure, paper, SHORT_NOTES if notes == "short" else LONG_NOTES)

    check = pdfua_check(out)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "PASS (no findings)" in check.stdout

    assert_all_content_marked(out)

    with pikepdf.open(out) as pdf:
        pages = len(pdf.pages)
        # Miscarriage v2 (issue 19) says more for each kind of care: four pages with short notes.
        limit = 4 if procedure == "miscarriage" else 3
        assert pages <= limit if notes == "short" else pages >= 4
    if notes == "short":
        # Tagging keeps a typical document small: under 17.5 KB a page, fonts, the structure
        # tree and the support box's QR code included (about 50 KB for three pages).
        assert out.stat().st_size <= 17.5 * 1024 * pages

    text = struct_text(out)
    heading = {"hsg": "What is normal", "miscarriage": "Looking after yourself"}[procedure]
    notes_text = SHORT_NOTES if notes == "short" else "Last line of the notes."
    # The help box stays whole on page 1: before the timeline when they do not fit together.
    assert_in_order(text, "After your", "When to get help", "Your recovery timeline", heading,
                    "Notes from your care team", notes_text, "Before you go home")  # fmt: skip
    # The footer is an artifact: not read out (the name is read once, in the patient block).
    assert "Page 1 of" not in text
    assert text.count(NAME) == 1
    assert "\x7f" not in text


def test_structure_elements(tmp_path: Path) -> None:
    out = make(tmp_path, "hsg", "a4", SHORT_NOTES)
    text = struct_text(out)
    # The outline a screen reader's heading list shows.
    headings = re.findall(r"^\s*(H[12]) \(block\)\n\s*\"([^\"]*)\"", text, re.M)
    assert headings[0] == ("H1", "After your HSG")
    assert ("H2", "Your recovery timeline") in headings
    assert ("H2", "When to get help") in headings
    # Patient block: row headers; timeline: column headers; lists: label and body.
    assert re.search(r'TH:\n\s+/Scope /Row\n\s+"Hospital number"\n\s+TD\n\s+"RX-104233"', text)
    assert re.search(r'TH:\n\s+/Scope /Column\n\s+"When"', text)
    assert re.search(
        r'LI \(block\)\n\s+Lbl \(block\)\n\s+"•"\n\s+LBody \(block\)\n\s+"A fever', text
    )


def test_a_paragraph_split_over_a_page_break_is_one_element(tmp_path: Path) -> None:
    out = make(tmp_path, "hsg", "a4", LONG_NOTES)
    with pikepdf.open(out) as pdf:
        pages = {page.obj.objgen: n for n, page in enumerate(pdf.pages)}
        split = []
        for obj in pdf.objects:
            # (a P holding only a Link element has no content, so no page, of its own)
            if isinstance(obj, pikepdf.Dictionary) and obj.get("/S") == "/P" and "/Pg" in obj:
                kids = obj.K if isinstance(obj.K, pikepdf.Array) else [obj.K]
                on = {pages[obj.Pg.objgen]} | {
                    pages[k.Pg.objgen] for k in kids if isinstance(k, pikepdf.Dictionary)
                }
                if len(on) > 1:
                    split.append(sorted(on))
        assert len(split) == 1  # the 700-word line, on two consecutive pages
        assert split[0][1] == split[0][0] + 1
    # Its two halves read as one text, and no words are glued where lines wrap.
    text = re.sub(r'"\n\s+"', " ", struct_text(out))
    assert '"' + " ".join(f"word{i}" for i in range(700)) + '"' in text


def test_catalog_language_title_and_metadata(tmp_path: Path) -> None:
    out = make(tmp_path, "hsg", "a4", SHORT_NOTES)
    with pikepdf.open(out) as pdf:
        root = pdf.Root
        assert str(root.Lang) == "en-GB"
        assert root.MarkInfo.Marked is True
        assert root.ViewerPreferences.DisplayDocTitle is True
        assert "/StructTreeRoot" in root
        xmp = root.Metadata.read_bytes().decode()
        meta = pdf.open_metadata()
        # The sheet's own title (title bar, screen reader); the subject says what it is.
        title = "After your HSG – Riverside Demo Clinic (fictional)"
        assert meta["dc:title"] == title
        assert meta["pdfuaid:part"] == "1"
        assert str(pdf.docinfo.Title) == title
        assert str(pdf.docinfo.Subject) == "Discharge instructions"
        for private in (NAME, "Nguy", "RX-104233", "1990"):
            assert private not in xmp
            assert private not in str(pdf.docinfo)


def test_language_follows_the_clinic_locale(tmp_path: Path) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text('[clinic]\nname = "N"\nphone = "0100"\nemergency_number = "911"\n'
                      'locale = "en_US"\n')  # fmt: skip
    out = make(tmp_path, "hsg", "letter", SHORT_NOTES, "--config", str(config))
    with pikepdf.open(out) as pdf:
        assert str(pdf.Root.Lang) == "en-US"
        assert "<rdf:li>en-US</rdf:li>" in pdf.Root.Metadata.read_bytes().decode()


def test_every_font_is_embedded_with_tounicode(tmp_path: Path) -> None:
    out = make(tmp_path, "miscarriage", "a4", SHORT_NOTES)
    with pikepdf.open(out) as pdf:
        for page in pdf.pages:
            fonts = page.Resources.Font
            assert len(fonts) >= 1
            for _, font in fonts.items():
                assert "/ToUnicode" in font
                assert "/FontFile2" in font.FontDescriptor, font.BaseFont
    # the bullets extract as bullets, not as "\x7f"
    assert struct_text(out).count('"•"') >= 3


def test_logo_is_a_figure_with_alternative_text(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (300, 100), (11, 85, 99)).save(tmp_path / "logo.png")
    config = tmp_path / "clinic.toml"
    config.write_text('[clinic]\nname = "Northgate Clinic"\nphone = "0100"\n'
                      'emergency_number = "999"\nlogo = "logo.png"\n')  # fmt: skip
    out = make(tmp_path, "hsg", "a4", SHORT_NOTES, "--config", str(config))
    assert pdfua_check(out).returncode == 0
    assert_all_content_marked(out)
    with pikepdf.open(out) as pdf:
        figures = [o for o in pdf.objects
                   if isinstance(o, pikepdf.Dictionary) and o.get("/S") == "/Figure"]  # fmt: skip
        assert [str(f.Alt) for f in figures] == ["Northgate Clinic logo"]


def test_batch_pdfs_are_tagged(tmp_path: Path) -> None:
    schedule = tmp_path / "s.csv"
    schedule.write_text("patient_name,procedure,date,notes\nAnn Example,hsg,2026-11-21,Rest.\n"
                        "Bea Example,miscarriage,2026-11-21,Call us.\n", encoding="utf-8")  # fmt: skip
    out = tmp_path / "out"
    result = run_discharge("batch", schedule, "--out-dir", out)
    assert result.code == 0, result.stderr
    pdfs = sorted(out.glob("*.pdf"))
    assert len(pdfs) == 2
    for pdf in pdfs:
        check = pdfua_check(pdf)
        assert check.returncode == 0, check.stdout
        assert_all_content_marked(pdf)


def test_tagged_output_is_deterministic(tmp_path: Path) -> None:
    first = make(tmp_path, "hsg", "a4", LONG_NOTES).read_bytes()
    second = make(tmp_path, "hsg", "a4", LONG_NOTES).read_bytes()
    assert first == second


def test_a_table_split_over_pages_repeats_its_header_as_an_artifact(tmp_path: Path) -> None:
    """pdf/tagging.py on its own: a long table with a repeated header row, drawn by reportlab."""
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    from discharge.pdf.fonts import BODY, main_coverage
    from discharge.pdf.tagging import TableTags, Tag, TaggedCanvas, TaggedFlowable, TaggedTable

    class Para(TaggedFlowable, Paragraph):
        pass

    def para(text: str, tag: Tag) -> Para:
        p = Para(text, ParagraphStyle("s", fontName=BODY))
        p.tag = tag
        return p

    main_coverage()
    tags = TableTags(header_rows=1)
    rows = [[para("When", tags.cell(0, 0)), para("What", tags.cell(0, 1))]]
    rows += [[para(f"Day {r}", tags.cell(r, 0)), para(f"Rest {r}", tags.cell(r, 1))]
             for r in range(1, 120)]  # fmt: skip
    out = tmp_path / "table.pdf"
    doc = SimpleDocTemplate(str(out), title="Table", invariant=1, initialFontName=BODY)
    doc.build([para("Title", Tag("H1")), TaggedTable(rows, repeatRows=1)],
              canvasmaker=TaggedCanvas)  # fmt: skip

    assert pdfua_check(out).returncode == 0
    assert_all_content_marked(out)
    text = struct_text(out)
    assert text.count('"When"') == 1  # read once, though drawn on every page
    assert text.count("TR\n") == 120  # one Table, every row once
    assert text.count("Table") == 1
    with pikepdf.open(out) as pdf:
        assert len(pdf.pages) >= 3
        page2 = pikepdf.unparse_content_stream(pikepdf.parse_content_stream(pdf.pages[1]))
        assert page2.index(b"/Artifact BMC") < page2.index(b"(When")


def test_web_addresses_are_tagged_link_annotations(tmp_path: Path) -> None:
    out = make(tmp_path, "hsg", "a4", SHORT_NOTES)
    with pikepdf.open(out) as pdf:
        annotations = [a for page in pdf.pages for a in page.obj.get("/Annots", [])]
        assert len(annotations) == 1
        link = annotations[0]
        assert (
            link.Subtype == "/Link" and str(link.A.URI) == "https://fertility.example.org/hsg-video"
        )
        assert str(link.Contents).startswith("Example Fertility Network")
        # its /StructParent leads, through the ParentTree, to a Link element that holds it
        nums = pdf.Root.StructTreeRoot.ParentTree.Nums
        owners = {int(nums[i]): nums[i + 1] for i in range(0, len(nums), 2)}
        element = owners[int(link.StructParent)]
        assert element.S == "/Link"
        objr = [k for k in element.K if isinstance(k, pikepdf.Dictionary)]
        assert objr[0].Type == "/OBJR" and objr[0].Obj.objgen == link.objgen
        assert int(pdf.Root.StructTreeRoot.ParentTreeNextKey) == len(pdf.pages) + 1
    # read as a link, with the address as its text
    assert re.search(
        r'Link \(inline\)\n\s+"https://fertility\.example\.org/hsg-video"', struct_text(out)
    )


def test_help_box_is_one_element_that_ends_with_the_box(tmp_path: Path) -> None:
    out = make(tmp_path, "hsg", "a4", SHORT_NOTES)
    text = struct_text(out)
    box = re.search(r"^  Div\n((?:    .*\n)+)", text, re.M)
    assert box is not None
    inside = box.group(1)
    assert (
        '"When to get help"' in inside and "Call 999 now" in inside and "Call us straight" in inside
    )
    assert "Out of hours" in inside and "01632 960 999" in inside
    # the introduction after the box is not inside it
    assert "You had an HSG" not in inside and "You had an HSG" in text


def test_spanish_qr_alternative_text_and_an_english_resource_name(tmp_path: Path) -> None:
    out = make(tmp_path, "hsg", "a4", SHORT_NOTES, "--language", "es")
    assert pdfua_check(out).returncode == 0
    with pikepdf.open(out) as pdf:
        figures = [
            o for o in pdf.objects if isinstance(o, pikepdf.Dictionary) and o.get("/S") == "/Figure"
        ]
        assert [str(f.Alt) for f in figures] == [
            "Código QR: https://fertility.example.org/hsg-video"
        ]
        marked = [
            o
            for o in pdf.objects
            if isinstance(o, pikepdf.Dictionary) and "/S" in o and "/Lang" in o
        ]
        assert [str(o.Lang) for o in marked] == ["en"]
        assert str(pdf.Root.Lang) == "es-ES"
    english = make(tmp_path, "hsg", "a4", SHORT_NOTES)
    with pikepdf.open(english) as pdf:
        assert not [
            o
            for o in pdf.objects
            if isinstance(o, pikepdf.Dictionary) and "/S" in o and "/Lang" in o
        ]


@pytest.mark.parametrize("extra", [("a4",), ("letter", "--language", "es", "--large-print")],
                         ids=["a4", "letter-es-large"])  # fmt: skip
def test_follow_up_and_medicines_are_tagged(tmp_path: Path, extra: tuple[str, ...]) -> None:
    """The next appointment reads as row headers and values, the medicines as a table with
    column headers; the document stays PDF/UA, in Spanish and large print too."""
    out = make(tmp_path, "miscarriage", extra[0], SHORT_NOTES, *extra[1:],
               "--follow-up", "2026-11-28 10:00", "--follow-up-place", "Ward 5",
               "--medicine", "Ibuprofen 400 mg | 3 times a day | for 3 days")  # fmt: skip
    check = pdfua_check(out)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "PASS (no findings)" in check.stdout
    assert_all_content_marked(out)
    text = struct_text(out)
    spanish = "--language" in extra
    appointment, where, medicines, medicine = (
        ("Su próxima cita", "Dónde", "Sus medicamentos", "Medicamento")
        if spanish
        else ("Your next appointment", "Where", "Your medicines", "Medicine")
    )
    assert re.search(rf'H2 \(block\)\n\s+"{appointment}"', text)
    assert re.search(rf'TH:\n\s+/Scope /Row\n\s+"{where}"\n\s+TD\n\s+"Ward 5"', text)
    assert re.search(rf'H2 \(block\)\n\s+"{medicines}"', text)
    assert re.search(rf'TH:\n\s+/Scope /Column\n\s+"{medicine}"', text)
    assert re.search(r'TD\n\s+"Ibuprofen 400 mg"\n\s+TD\n\s+"3 times a day"', text)
    assert_in_order(text, appointment, medicines, "Ibuprofen 400 mg")
