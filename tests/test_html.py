"""The web page and plain-text renderings of the Document model: the real command's files,
axe-core in a real Chromium (zero WCAG 2.1 AA violations), and the same dates and warning
signs in the HTML, the text and the PDF of one request."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from discharge.config import load_config
from discharge.document import Document, build_document
from discharge.guidance.loading import available_procedures, load_procedure, procedure_languages
from discharge.i18n import language_of
from discharge.render_html import render_html
from discharge.render_text import render_text
from discharge.request import parse_request
from tests.helpers import (
    CHROMIUM,
    PATIENT,
    WCAG_21_AA,
    axe_violations,
    ensure_axe,
    pdf_text,
    run_discharge,
)

MEDICINES = (
    "Ibuprofen 400 mg | 3 times a day with food | 3 days\nParacetamol <i>500</i> | when needed | "
)
NOTES = 'Dose {{ 7*7 }} & <b>not bold</b> <script>alert(1)</script> <a href="x">"q"</a>\nLine two'


def _document(**changes: object) -> Document:
    values: dict[str, object] = {"procedure": "hsg", "date": "2026-11-21", "patient": "Zoë Nguyễn"}
    values.update(changes)
    return build_document(parse_request(**values), load_config(None))  # type: ignore[arg-type]


def _combinations() -> Iterator[tuple[str, str, str]]:
    clinic_language = language_of(load_config(None).clinic.locale)
    for procedure_id in sorted(available_procedures()):
        for language in procedure_languages(procedure_id, None, clinic_language):
            procedure = load_procedure(procedure_id, None, language)
            for variant in procedure.variants or (None,):
                yield procedure_id, language, variant.name if variant else ""


COMBINATIONS = list(_combinations())


class _Outline(HTMLParser):
    """The elements of a page, in order, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

        self._hidden = 0  # inside <head>: the title and the style are not the page's text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._hidden += tag == "head"

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag == "head"

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


def outline(page: bytes) -> _Outline:
    parser = _Outline()
    parser.feed(page.decode("utf-8"))
    return parser


# --- the model, laid out --------------------------------------------------------------------


def test_every_bundled_combination_is_covered() -> None:
    assert {p for p, _, _ in COMBINATIONS} >= {"hsg", "miscarriage"}
    assert {lang for _, lang, _ in COMBINATIONS} >= {"en", "es"}
    assert any(v for _, _, v in COMBINATIONS)


def test_page_is_semantic_html5() -> None:
    doc = _document(mrn="RX-1", notes="A note")
    page = outline(render_html(doc))
    tags = [t for t, _ in page.tags]
    assert tags[0] == "html" and page.tags[0][1]["lang"] == "en-GB"
    assert tags.count("h1") == 1 and "main" in tags
    ths = [a for t, a in page.tags if t == "th"]
    assert [a["scope"] for a in ths[:2]] == ["col", "col"]
    assert len([a for a in ths if a.get("scope") == "row"]) == len(doc.timeline)
    help_section = next(a for t, a in page.tags if t == "section" and a.get("class") == "help")
    assert help_section["aria-labelledby"] == "help"
    assert ("h2", {"id": "help"}) in page.tags
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    csp = next(
        a["content"] for t, a in page.tags if a.get("http-equiv") == "Content-Security-Policy"
    )
    assert "default-src 'none'" in str(csp) and "script" not in str(csp)
    # every address is a real link; every phone number can be dialled
    hrefs = [a["href"] for t, a in page.tags if t == "a"]
    assert "https://fertility.example.org/hsg-video" in hrefs
    assert "tel:01632960123" in hrefs and "tel:999" in hrefs
    # no outside request: no src but data:, no stylesheet
    assert all(str(a.get("src", "data:")).startswith("data:") for _, a in page.tags)
    title = re.search(r"<title>(.*)</title>", render_html(doc).decode()).group(1)  # type: ignore[union-attr]
    assert html.unescape(title) == "After your HSG – Riverside Demo Clinic (fictional)"


def test_qr_code_is_inline_svg_with_alternative_text_in_the_documents_language() -> None:
    for language, alt in (("en", "QR code: "), ("es", "Código QR: ")):
        page = render_html(_document(language=language)).decode()
        svg = re.search(r"<svg [^>]*>.*?</svg>", page, re.S).group(0)  # type: ignore[union-attr]
        assert 'role="img"' in svg
        label = re.search(r'aria-labelledby="([^"]+)"', svg).group(1)  # type: ignore[union-attr]
        assert f'<title id="{label}">{alt}https://fertility.example.org/hsg-video</title>' in svg
    # The demo clinic's resource names are English: marked so in a Spanish page.
    page = render_html(_document(language="es")).decode()
    assert '<p class="name"><span lang="en">Example Fertility Network' in page
    assert "(fictional)</span> (en inglés)</p>" in page  # the note is in the page's language
    assert 'lang="en"' not in render_html(_document()).decode()


def test_large_print_is_the_same_page_with_a_larger_base_size() -> None:
    normal = render_html(_document(large_print=False)).decode()
    large = render_html(_document(large_print=True)).decode()
    assert large.replace('<html lang="en-GB" class=large>', '<html lang="en-GB">') == normal


@pytest.mark.parametrize("render", [render_html, render_text], ids=["html", "text"])
def test_patient_text_stays_text(render) -> None:  # type: ignore[no-untyped-def]
    doc = _document(notes=NOTES, clinician="{{ clinic.phone }} <i>Dr</i>", patient="Zoë <b>N</b>")
    out = render(doc).decode()
    if render is render_html:
        page = outline(out.encode())
        assert [t for t, _ in page.tags].count("b") == 0
        assert "script" not in [t for t, _ in page.tags] and "i" not in [t for t, _ in page.tags]
        assert not any(a.get("href") == "x" for _, a in page.tags)
        text = "".join(page.text)
    else:
        text = out
    assert NOTES.split("\n")[0] in text and "Line two" in text
    assert "{{ clinic.phone }} <i>Dr</i>" in text and "Zoë <b>N</b>" in text
    assert "49" not in text


def test_every_string_of_the_sheet_is_in_the_page_and_the_text() -> None:
    """Whatever the Document holds is laid out by both renderers (a part added to the model
    and forgotten here fails this test)."""
    doc = _document(mrn="RX-1", dob="1990-02-01", clinician="Dr Ada", notes="Rest.\n\nDrink.",
                    follow_up="2026-12-14 10:00", follow_up_place="Ward 3 <b>", medicines=MEDICINES)  # fmt: skip
    assert doc.follow_up is not None and len(doc.medicines) == 2
    page_text = " ".join(" ".join(outline(render_html(doc)).text).split())
    plain = " ".join(render_text(doc).decode().split())
    skip = {"labels", "clinic", "start", "end", "key", "when", "language", "locale", "paper",
            "procedure_id", "procedure_version", "variant", "variant_label", "date_label", "notes", "kind", "owner"}  # fmt: skip
    for text in set(_strings(doc, skip)):
        folded = " ".join(text.split())
        assert folded in page_text, folded
        assert folded in plain, folded
    for paragraph in ("Rest.", "Drink."):
        assert paragraph in page_text and paragraph in plain


def _strings(value: object, skip: set[str]) -> Iterator[str]:
    import dataclasses

    if isinstance(value, str):
        if value.strip():
            yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _strings(item, skip)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            if field.name not in skip:
                yield from _strings(getattr(value, field.name), skip)


# --- the real command: three readers, one request --------------------------------------------


def test_generate_writes_html_and_text_with_the_same_dates_and_signs_as_the_pdf(
    tmp_path: Path,
) -> None:
    args = ["--procedure", "miscarriage", "--variant", "surgical", "--date", "2026-11-21",
            *PATIENT, "--notes", NOTES]  # fmt: skip
    files = {}
    for fmt, name in (("pdf", "out.pdf"), ("html", "out.html"), ("text", "out.txt")):
        result = run_discharge("generate", *args, "--format", fmt, "--output", tmp_path / name)
        assert result.code == 0, result.stderr
        files[fmt] = tmp_path / name
    pdf = " ".join(pdf_text(files["pdf"]).split())
    page = " ".join(" ".join(outline(files["html"].read_bytes()).text).split())
    text = " ".join(files["text"].read_text(encoding="utf-8").split())
    doc = _document(procedure="miscarriage", variant="surgical")
    dates = {line for row in doc.timeline for line in row.when}
    signs = {s for level in (doc.help_urgent, doc.help_clinic) for s in level.signs}
    assert len(dates) >= 3 and len(signs) >= 4
    found = {}
    for name, body in (("pdf", pdf), ("html", page), ("text", text)):
        found[name] = (
            sorted(set(re.findall(r"\b\w+day \d{1,2} \w+ \d{4}", body))),
            sorted(s for s in signs if " ".join(s.split()) in body),
        )
    assert found["html"] == found["text"] == found["pdf"]
    assert set(found["pdf"][0]) >= {d.removeprefix("to ") for d in dates}
    assert found["pdf"][1] == sorted(signs)
    assert NOTES.split("\n")[0] in page and NOTES.split("\n")[0] in text
    assert "<script>" not in files["html"].read_text(encoding="utf-8")


def test_generate_names_the_file_by_its_format(tmp_path: Path) -> None:
    result = run_discharge("generate", "--procedure", "hsg", "--date", "2026-11-21", *PATIENT,
                           "--format", "text", cwd=tmp_path)  # fmt: skip
    assert result.code == 0, result.stderr
    assert (tmp_path / "discharge-hsg-2026-11-21-rx-104233.txt").read_text(encoding="utf-8")
    # Made again: this patient's own file is replaced; another patient's is not (--force does).
    for fmt, name in (("text", "same.txt"), ("html", "same.html")):
        base = ["generate", "--procedure", "hsg", "--date", "2026-11-21", "--format", fmt,
                "-o", tmp_path / name]  # fmt: skip
        assert run_discharge(*base, *PATIENT).code == 0
        assert run_discharge(*base, *PATIENT).code == 0
        other = run_discharge(*base, "--patient", "Ann Other", "--mrn", "X-1")
        assert other.code == 2 and "not replaced" in other.stderr, other.stderr
        assert "Zoë" in (tmp_path / name).read_text(encoding="utf-8")
        assert run_discharge(*base, "--patient", "Ann Other", "--mrn", "X-1", "--force").code == 0
        assert "Ann Other" in (tmp_path / name).read_text(encoding="utf-8")
    bad = run_discharge("generate", "--procedure", "hsg", "--date", "2026-11-21", *PATIENT,
                        "--format", "docx", cwd=tmp_path)  # fmt: skip
    assert bad.code == 2 and "docx" in bad.stderr and "Traceback" not in bad.stderr
    printed = run_discharge("generate", "--procedure", "hsg", "--date", "2026-11-21", *PATIENT,
                            "--format", "html", "--print", "-o", tmp_path / "p.html")  # fmt: skip
    assert printed.code == 2 and "--print prints the PDF" in printed.stderr
    assert not (tmp_path / "p.html").exists()


# --- email: the page as the HTML part, the text as the plain part ----------------------------


def _eml(tmp_path: Path, email: str, *patient: str) -> object:
    from email import policy
    from email.parser import BytesParser

    from tests.test_email import SENDER, write_config

    config = write_config(tmp_path, {"sender": SENDER}, email)
    eml = tmp_path / "message.eml"
    result = run_discharge("email", "--procedure", "hsg", "--date", "2026-11-21", *patient,
                           "--notes", NOTES, "--config", config, "--eml", eml)  # fmt: skip
    assert result.code == 0, result.stderr
    return BytesParser(policy=policy.default).parsebytes(eml.read_bytes())


def test_email_formats_carry_the_page_and_the_text_with_the_pdf(tmp_path: Path) -> None:
    message = _eml(tmp_path, '[email]\nformats = ["pdf", "html", "text"]\n', *PATIENT)
    body_html = message.get_body(("html",)).get_content()  # type: ignore[attr-defined]
    plain = message.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
    doc = _document(dob="1990-02-01", mrn="RX-104233")
    page = " ".join(" ".join(outline(body_html.encode()).text).split())
    for when in (line for row in doc.timeline for line in row.when):
        assert when in page and when in plain
    for sign in doc.help_urgent.signs + doc.help_clinic.signs:
        assert " ".join(sign.split()) in page and " ".join(sign.split()) in " ".join(plain.split())
    assert body_html.index("preface") < body_html.index("<h1>After your HSG</h1>")
    assert "<script>" not in body_html and NOTES.split("\n")[0] in page
    # the clinic's note still comes first: it is what a lock screen's preview shows
    assert plain.index("Riverside") < plain.index("After your HSG\n=====")
    kinds = [part.get_content_type() for part in message.iter_attachments()]  # type: ignore[attr-defined]
    assert "application/pdf" in kinds and "text/calendar" in kinds


def test_email_by_default_is_the_note_and_the_pdf(tmp_path: Path) -> None:
    message = _eml(tmp_path, "", *PATIENT)
    body_html = message.get_body(("html",)).get_content()  # type: ignore[attr-defined]
    assert "<h1>" not in body_html and "Saturday 21 November 2026" not in body_html


def test_email_formats_in_the_body_cannot_be_password_protected(tmp_path: Path) -> None:
    from tests.test_email import SENDER, write_config

    config = write_config(tmp_path, {"sender": SENDER},
                          '[email]\nformats = ["pdf", "html"]\npdf_password = "dob:DDMMYYYY"\n')  # fmt: skip
    result = run_discharge("email", "--procedure", "hsg", "--date", "2026-11-21", *PATIENT,
                           "--config", config, "--eml", tmp_path / "m.eml")  # fmt: skip
    assert (
        result.code == 2 and "[email] formats:" in result.stderr and "pdf_password" in result.stderr
    )
    assert not (tmp_path / "m.eml").exists()
    bad = write_config(tmp_path, {"sender": SENDER}, '[email]\nformats = ["pdf", "docx"]\n')
    result = run_discharge("email", "--procedure", "hsg", "--date", "2026-11-21", *PATIENT,
                           "--config", bad, "--eml", tmp_path / "m.eml")  # fmt: skip
    assert result.code == 2 and "'docx' is not a format" in result.stderr
    assert "Traceback" not in result.stderr
    no_pdf = write_config(tmp_path, {"sender": SENDER}, '[email]\nformats = ["html"]\n')
    result = run_discharge("email", "--procedure", "hsg", "--date", "2026-11-21", *PATIENT,
                           "--config", no_pdf, "--eml", tmp_path / "m.eml")  # fmt: skip
    assert result.code == 2 and 'must include "pdf"' in result.stderr


# --- axe-core in a real Chromium ------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, object]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: install it with `apt-get install chromium`"
    return {
        "executable_path": str(CHROMIUM),
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    }


@pytest.fixture(scope="module")
def axe_page(browser):  # type: ignore[no-untyped-def]
    ensure_axe()
    page = browser.new_page()
    yield page
    page.close()


@pytest.mark.parametrize("large", [False, True], ids=["normal", "large"])
@pytest.mark.parametrize(("procedure", "language", "variant"), COMBINATIONS)
def test_axe_finds_no_violations(axe_page, procedure: str, language: str, variant: str,  # type: ignore[no-untyped-def]
                                 large: bool) -> None:  # fmt: skip
    doc = _document(procedure=procedure, language=language, variant=variant or None,
                    large_print=large, mrn="RX-1", dob="1990-02-01", clinician="Dr Ada",
                    notes=NOTES, follow_up="2026-12-14 10:00", follow_up_place="Ward 3",
                    medicines=MEDICINES)  # fmt: skip
    axe_page.set_content(render_html(doc).decode("utf-8"))
    # WCAG 2.1 AA, and axe's best practices too (landmarks, one main, heading order)
    assert axe_violations(axe_page, [*WCAG_21_AA, "best-practice"]) == []


def test_axe_catches_a_violation(axe_page) -> None:  # type: ignore[no-untyped-def]
    # The check can fail: an image with no alternative text is found.
    axe_page.set_content('<!DOCTYPE html><html lang="en"><title>t</title><main>'
                         '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="></main></html>')  # fmt: skip
    assert [v["id"] for v in axe_violations(axe_page)] == ["image-alt"]


# --- batch: the page and the text beside each PDF ---------------------------------------------


def test_batch_formats_write_the_page_and_the_text_beside_each_pdf(tmp_path: Path) -> None:
    from tests.test_batch import batch, pdf_files, write_schedule

    schedule = write_schedule(tmp_path / "s.csv", [
        "patient_name,procedure,date,notes",
        "Ann Example,hsg,2026-11-21,<b>Rest</b>",
        "Bea Example,miscarriage,2026-11-22,",
    ])  # fmt: skip
    out = tmp_path / "out"
    for jobs in ("1", "2"):
        run = batch(schedule, "--out-dir", out, "--jobs", jobs, "--formats", "pdf,html,text",
                    "--force")  # fmt: skip
        assert run.code == 0, run.stderr
        pdfs = pdf_files(out)
        assert sorted(pdfs) == [2, 3]
        for row, name in ((2, "Ann Example"), (3, "Bea Example")):
            page = pdfs[row].with_suffix(".html").read_text(encoding="utf-8")
            text = pdfs[row].with_suffix(".txt").read_text(encoding="utf-8")
            dates = set(re.findall(r"\b\w+day \d{1,2} \w+ \d{4}", pdf_text(pdfs[row])))
            assert len(dates) >= 2
            for when in dates:
                assert when in page and when in text
            assert name in page and name in text
        assert "&lt;b&gt;Rest&lt;/b&gt;" in pdfs[2].with_suffix(".html").read_text(encoding="utf-8")
    bad = batch(schedule, "--out-dir", tmp_path / "o2", "--formats", "html")
    assert bad.code == 2 and "add pdf" in bad.stderr and not (tmp_path / "o2").exists()
    bad = batch(schedule, "--out-dir", tmp_path / "o2", "--formats", "pdf,docx")
    assert bad.code == 2 and "'docx' is not a format" in bad.stderr
