"""Issue 12: Spanish instructions, chosen per patient, with every fixed string from a catalogue.

Real commands and real PDFs (their extracted text), the message catalogue checked against the
code, the Spanish templates' reading level with a Spanish formula, and stale translations.
"""

from __future__ import annotations

import gettext
import re
import subprocess
import sys
from dataclasses import fields
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
import textstat
from babel.messages.pofile import read_po
from pypdf import PdfReader

from discharge.config import load_config
from discharge.document import LABELS, build_document, labels_for
from discharge.guidance.loading import load_procedure, procedure_languages
from discharge.guidance.translations import stale_translations
from discharge.i18n import LOCALE_DIR, locale_for
from discharge.readability import parts
from discharge.request import parse_request
from tests.helpers import pdf_pages, pdf_text, run_discharge
from tests.test_batch import batch, manifest, pdf_files, statuses, write_schedule

ROOT = Path(__file__).parents[1]
TEMPLATES = ROOT / "templates"
PO = LOCALE_DIR / "es" / "LC_MESSAGES" / "discharge.po"
MO = LOCALE_DIR / "es" / "LC_MESSAGES" / "discharge.mo"
POT = LOCALE_DIR / "discharge.pot"
PATIENT = ["--patient", "Zoë Nguyễn", "--dob", "1990-02-01", "--mrn", "RX-104233"]
VARIANTS = [
    ("hsg", "fertility"), ("hsg", "sterilisation-check"),
    ("miscarriage", "surgical"), ("miscarriage", "expectant"), ("miscarriage", "medical"),
]  # fmt: skip

# Words that would betray English left on a Spanish page: the labels' words, the templates'
# common words, weekdays and months. None of them is also a Spanish word.
ENGLISH = frozenset(
    re.findall(
        r"\w+",
        """the and you your to of at with when what call page date name phone emergency hours out
    after before signature patient nurse notes based guidance born procedure clinician hospital
    number recovery timeline help bleeding pain sex pads tampons fever days weeks if is it this
    that for in or may can have be do not our we us get go home read these instructions my
    questions been answered expect care team from monday tuesday wednesday thursday friday
    saturday sunday january february march april june july august september october november
    december""",
    )
)
# Proper names the Spanish page rightly keeps: the sources' publishers.
PUBLISHERS = (
    "Cleveland Clinic", "The Lowdown", "Tommy's", "North West Anglia NHS Foundation Trust",
    "NHS Greater Glasgow and Clyde", "BPAS", "NICE",
    "North Cumbria Integrated Care NHS Foundation Trust",
    "Yeovil District Hospital NHS Foundation Trust", "Saint Mary's Hospital, Manchester",
    "Wirral University Teaching Hospital NHS Foundation Trust", "NHS: Female sterilisation", "The Dudley Group NHS Foundation Trust",
    "ACOG", "ASRM",
)  # fmt: skip


def clinic_toml(tmp_path: Path, locale: str = "es_ES", extra: str = "") -> Path:
    """A clinic whose own data (name, address) is not English, so any English is ours."""
    path = tmp_path / "clinic.toml"
    path.write_text(
        "[clinic]\n"
        'name = "Clínica Ribera"\n'
        'address = ["Calle Mayor 1", "Madrid"]\n'
        'phone = "910 000 000"\n'
        'after_hours_phone = "910 000 999"\n'
        'emergency_number = "112"\n'
        f'locale = "{locale}"\n'
        'timezone = "Europe/Madrid"\n' + extra,
        encoding="utf-8",
    )
    return path


def english_words(text: str, allowed: tuple[str, ...] = ()) -> set[str]:
    for phrase in (*PUBLISHERS, *allowed):
        text = text.replace(phrase, " ")
    return {w for w in re.findall(r"[^\W\d_]+", text) if w.lower() in ENGLISH}


# --- the Spanish PDF ----------------------------------------------------------------------


@pytest.mark.parametrize(("procedure", "variant"), VARIANTS)
def test_a_spanish_pdf_has_no_english_left(tmp_path: Path, procedure: str, variant: str) -> None:
    out = tmp_path / "es.pdf"
    clinician = ["--clinician", "Dra. Amara Okafor", "--notes", "Todo bien."]
    result = run_discharge(
        "generate", "--procedure", procedure, "--variant", variant, "--date", "2026-11-23",
        "--time", "10:30", *PATIENT, *clinician, "--language", "es",
        "--config", clinic_toml(tmp_path), "-o", out,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    # The bundled translations are current, and await a qualified reviewer: a draft.
    assert result.stderr.strip() == (
        f"warning: {procedure}.es.toml is a draft: no clinician has approved its wording "
        '(reviewed_by is empty); every page it prints says "Draft: not yet approved"'
    )
    text = pdf_text(out)
    assert "Borrador: " in text  # on every page: the translation is not yet approved
    # The footer's reference names the template file and variant, a code for staff.
    reference = f"{procedure} v{load_procedure(procedure).version} ({variant})"
    assert reference in text
    assert english_words(text, (reference,)) == set()
    # Labels, help box and footer in Spanish; dates as a Spanish reader writes them.
    assert "Su calendario de recuperación" in text
    assert "Cuándo pedir ayuda" in text and "Emergencias 112" in text
    assert "Fuera de horario 910 000 999" in text
    assert "Firma del paciente" in text
    pages = pdf_pages(out)
    assert all(f"Página {n} de {len(pages)}" in page for n, page in enumerate(pages, 1))
    assert "lunes, 23 de noviembre de 2026" in text
    assert "38 °C (100,4 °F)" in text  # the decimal comma


def test_hsg_in_spanish_dates_footer_and_help(tmp_path: Path) -> None:
    out = tmp_path / "hsg.pdf"
    result = run_discharge(
        "generate", "--procedure", "hsg", "--date", "2026-11-23", "--time", "10:30", *PATIENT,
        "--language", "ES", "--config", clinic_toml(tmp_path), "-o", out,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    pages = pdf_pages(out)
    text = " ".join(pages)
    assert "Página 1 de 3" in pages[0]
    assert "Fecha lunes, 23 de noviembre de 2026 a las 10:30" in text
    # A range: the second date on its own line, "al ...".
    assert "lunes, 23 de noviembre de 2026 al miércoles, 25 de noviembre de 2026" in text
    assert "Nacimiento 1 feb 1990" in pages[0]
    assert "Llame al 112 ahora si tiene alguna de estas señales:" in text
    assert "Llámenos enseguida si tiene alguna de estas señales:" in text
    assert "Procedimiento HSG" in text
    reader = PdfReader(out)
    assert str(reader.trailer["/Root"]["/Lang"]) == "es-ES"
    assert reader.metadata.title == "Después de su HSG – Clínica Ribera"
    assert reader.metadata.subject == "Instrucciones para el alta"


def test_a_us_clinic_prints_us_spanish(tmp_path: Path) -> None:
    out = tmp_path / "us.pdf"
    config = clinic_toml(tmp_path, "en_US").read_text().replace("Europe/Madrid", "America/Chicago")
    (tmp_path / "clinic.toml").write_text(config, encoding="utf-8")
    result = run_discharge(
        "generate", "--procedure", "hsg", "--date", "2026-11-23", *PATIENT, "--language", "es",
        "--config", tmp_path / "clinic.toml", "-o", out,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    text = pdf_text(out)
    assert "lunes, 23 de noviembre de 2026" in text
    assert "100.4 °F (38 °C)" in text  # es_US: Fahrenheit first, decimal point
    assert str(PdfReader(out).trailer["/Root"]["/Lang"]) == "es-US"


def test_the_clinic_language_is_the_default_and_english_is_unchanged(generate) -> None:
    result, out = generate("--procedure", "hsg", "--date", "2026-11-23", "--time", "10:30")
    assert result.code == 0, result.stderr
    text = pdf_text(out)
    assert "Your recovery timeline" in text and "Page 1 of 3" in text
    assert "Monday 23 November 2026 at 10:30" in text
    assert "38 °C (100.4 °F)" in text
    assert str(PdfReader(out).trailer["/Root"]["/Lang"]) == "en-GB"


def test_an_unavailable_language_is_exit_2_naming_the_available_ones(generate) -> None:
    result, out = generate("--procedure", "hsg", "--date", "2026-11-23", "--language", "fr")
    assert result.code == 2
    assert result.stderr.strip().splitlines() == [
        "discharge: error: language 'fr' is not available for procedure 'hsg': "
        "expected one of: en, es"
    ]
    assert not out.exists()
    result, _ = generate("--procedure", "hsg", "--date", "2026-11-23", "--language", "Spanish!")
    assert result.code == 2
    assert "language is not a language code (expected a code such as en or es)" in result.stderr
    assert "Traceback" not in result.stderr


def test_procedures_lists_each_procedures_languages() -> None:
    result = run_discharge("procedures")
    assert result.code == 0, result.stderr
    assert result.stdout.count("--language en, es") == 2
    assert procedure_languages("hsg", None, "es") == ("es",)


def test_the_date_locale_is_spanish_in_the_clinics_territory_when_babel_knows_it() -> None:
    assert locale_for("es", "en_US") == "es_US"
    assert locale_for("es", "en_GB") == "es_ES"  # Babel has no es_GB
    assert locale_for("es", "es_MX") == "es_MX"
    assert locale_for("en", "en_GB") == "en_GB"


# --- a batch with mixed languages ----------------------------------------------------------


def test_a_batch_mixes_languages_row_by_row(tmp_path: Path) -> None:
    schedule = write_schedule(
        tmp_path / "day.csv",
        [
            "patient_name,procedure,date,language",
            "Ana Pérez,hsg,2026-11-23,es",
            "Ann Other,hsg,2026-11-23,en",
            "Ada Lovelace,miscarriage,2026-11-23,",
            "Łucja Wróbel,miscarriage,2026-11-23,es",
            "Jean Dupont,hsg,2026-11-23,fr",
        ],
    )
    out = tmp_path / "out"
    run = batch(schedule, "--out-dir", out)
    assert run.code == 1, run.stderr
    assert statuses(out) == {2: "ok", 3: "ok", 4: "ok", 5: "ok", 6: "error"}
    assert (
        "row 6: language 'fr' is not available for procedure 'hsg': expected one of: en, es"
        in run.stderr
    )
    files = pdf_files(out)
    assert "Página 1 de" in pdf_text(files[2]) and "Después de su HSG" in pdf_text(files[2])
    assert "Page 1 of" in pdf_text(files[3])
    assert "After your miscarriage" in pdf_text(files[4])
    assert "Después de su pérdida del embarazo" in pdf_text(files[5])
    assert {e["status"] for e in manifest(out)} == {"ok", "error"}


# --- the email ------------------------------------------------------------------------------


def test_a_spanish_email_subject_body_and_calendar(tmp_path: Path) -> None:
    config = clinic_toml(tmp_path, extra='\n[smtp]\nsender = "Clínica <cuidados@ribera.example>"\n')
    eml = tmp_path / "m.eml"
    result = run_discharge(
        "email", "--procedure", "hsg", "--date", "2026-11-23", *PATIENT, "--language", "es",
        "--config", config, "--eml", eml,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    message = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    assert message["Subject"] == "Sus instrucciones de cuidados de Clínica Ribera"
    body = " ".join(message.get_body(("plain",)).get_content().split())
    assert body.startswith("Hola, Zoë Nguyễn:")
    assert "Fuera de horario, llame al 910 000 999." in body
    assert "En una emergencia, llame al 112." in body
    assert english_words(body, ("Zoë Nguyễn",)) == set()
    ics = next(p for p in message.iter_attachments() if p.get_content_type() == "text/calendar")
    calendar = ics.get_content()
    calendar = calendar.decode() if isinstance(calendar, bytes) else calendar
    assert "Fecha de su recuperación — vea sus instrucciones" in calendar.replace("\r\n ", "")


# --- the message catalogue -------------------------------------------------------------------


def _catalog(path: Path):
    with path.open("rb") as handle:
        return read_po(handle)


def test_every_message_has_a_spanish_translation() -> None:
    template = _catalog(POT)
    spanish = _catalog(PO)
    ids = [m.id for m in template if m.id]
    assert len(ids) > 30
    missing = [i for i in ids if not (spanish.get(i) and spanish.get(i).string)]
    assert missing == []
    assert not [m.id for m in spanish if m.id and m.fuzzy]


def test_the_catalogue_template_matches_the_code(tmp_path: Path) -> None:
    """Every marked string is in discharge.pot (run `pybabel extract` after changing one)."""
    pot = tmp_path / "fresh.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", ROOT / "babel.cfg",
         "-k", "N_", "-o", pot, "."],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    assert {m.id for m in _catalog(pot) if m.id} == {m.id for m in _catalog(POT) if m.id}


def test_the_compiled_catalogue_is_up_to_date_with_the_po(tmp_path: Path) -> None:
    """The .mo is committed (nobody needs to compile); it must be what the .po compiles to."""
    mo = tmp_path / "discharge.mo"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "compile", "-i", PO, "-o", mo],
        check=True, capture_output=True,
    )  # fmt: skip
    # The same messages; the header names the Babel that compiled it (any version will do).
    assert _messages(mo) == _messages(MO), "run: pybabel compile -d discharge/locale -D discharge"


def _messages(mo: Path) -> dict[object, object]:
    with mo.open("rb") as file:
        catalog = dict(gettext.GNUTranslations(file)._catalog)  # type: ignore[attr-defined]
    catalog[""] = re.sub(r"Generated-By: .*\n", "", catalog[""])
    return catalog


def test_every_label_is_translated() -> None:
    spanish = labels_for("es")
    same = [
        f.name
        for f in fields(LABELS)
        if getattr(spanish, f.name) == getattr(LABELS, f.name) and f.name != "bullet"
    ]
    assert same == []
    assert spanish.page(1, 2) == "Página 1 de 2"
    assert labels_for("fr") == LABELS  # no catalogue: the English, never an error


# --- the Spanish templates ------------------------------------------------------------------

# Fernández-Huerta (1959), Flesch's formula refitted to Spanish: 206.84 - 0.60 P - 1.02 F
# (P syllables and F sentences per 100 words). Its own table reads 70-80 as "bastante fácil",
# the level of the sixth grade: the same bar as the English templates' Flesch-Kincaid <= 6.
# (INFLESZ, the other common choice, labels 65-80 "bastante fácil" without a grade.)
FERNANDEZ_HUERTA_MIN = 70
_SPANISH_DATE = re.compile(
    r"(lunes|martes|miércoles|jueves|viernes|sábado|domingo), \d{1,2} de \w+ de \d{4}"
    r"( a las \d{1,2}:\d{2})?"
)


def _reading_ease(text: str) -> float:
    textstat.set_lang("es")
    text = _SPANISH_DATE.sub("ese día", text)  # a date reads as a date, not as long words
    # A line break ends a sentence too (headings, bullet points), as in readability.py.
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    text = " ".join(ln if ln.endswith((".", "?", "!", ":")) else ln + "." for ln in lines)
    return float(textstat.fernandez_huerta(text))


@pytest.mark.parametrize(("procedure", "variant"), VARIANTS)
def test_each_spanish_part_reads_at_grade_6_or_below(procedure: str, variant: str) -> None:
    request = parse_request(
        procedure=procedure, date="2026-11-23", patient="Ana", variant=variant, language="es"
    )
    doc = build_document(request, load_config())
    assert doc.language == "es"
    scores = {part.name: _reading_ease(part.text) for part in parts(doc)}
    assert len(scores) >= 10
    hard = {name: round(score, 1) for name, score in scores.items() if score < FERNANDEZ_HUERTA_MIN}
    assert hard == {}


@pytest.mark.parametrize("procedure", ["hsg", "miscarriage"])
def test_a_translation_names_what_it_translates_and_awaits_review(procedure: str) -> None:
    english = load_procedure(procedure)
    spanish = load_procedure(procedure, None, "es")
    assert spanish.path.name == f"{procedure}.es.toml"
    assert spanish.language == "es"
    assert spanish.translates == f"{procedure} {english.version}"
    assert spanish.reviewed_by == ""  # the demo's translations await a qualified reviewer
    # The same variants, so --variant and the batch's variant column mean the same in each.
    assert [v.name for v in spanish.variants] == [v.name for v in english.variants]
    assert spanish.default_variant == english.default_variant
    assert [m.key for m in spanish.milestones] == [m.key for m in english.milestones]
    assert len(spanish.sections) == len(english.sections)


# --- stale translations ----------------------------------------------------------------------


def test_a_stale_translation_warns_on_generate(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    source = (TEMPLATES / "hsg.es.toml").read_text(encoding="utf-8")
    assert 'translates = "hsg 1.3"' in source
    stale = folder / "hsg.es.toml"
    stale.write_text(source.replace('translates = "hsg 1.3"', 'translates = "hsg 1.2"'), "utf-8")
    config = clinic_toml(tmp_path, extra=f"templates_dir = {str(folder)!r}\n".replace("'", '"'))
    warning = (
        "the Spanish hsg template translates version 1.2, but the English one is 1.3; "
        "have it translated again"
    )
    assert stale_translations(folder) == [(stale, warning)]
    out = tmp_path / "es.pdf"
    result = run_discharge(
        "generate", "--procedure", "hsg", "--date", "2026-11-23", *PATIENT, "--language", "es",
        "--config", config, "-o", out,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.stderr.splitlines()[-1] == f"warning: {warning}"
    assert out.exists()
    # The English sheet uses no translation: no warning.
    result = run_discharge(
        "generate", "--procedure", "hsg", "--date", "2026-11-23", *PATIENT,
        "--config", config, "-o", out,
    )  # fmt: skip
    assert result.code == 0 and "translates" not in result.stderr


def test_a_newer_english_template_makes_the_bundled_translation_stale(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    source = (TEMPLATES / "miscarriage.toml").read_text(encoding="utf-8")
    (folder / "miscarriage.toml").write_text(
        source.replace('version = "2.0"', 'version = "2.1"', 1), "utf-8"
    )
    [(file, message)] = stale_translations(folder)
    assert file == TEMPLATES / "miscarriage.es.toml"
    assert "translates version 2.0, but the English one is 2.1" in message
    assert stale_translations(None) == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('translates = "hsg 1.3"', 'translates = "1.3"', "translates: expected the id and version"),
        ('translates = "hsg 1.3"', 'translates = "miscarriage 1.1"', "translates: expected"),
        ('reviewed_by = ""', "", "reviewed_by: expected the name of the qualified reviewer"),
        ('language = "es"', 'language = "fr"', "language: expected 'es', the language in the file"),
    ],
)
def test_translation_provenance_is_checked_on_load(
    tmp_path: Path, old: str, new: str, problem: str
) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    source = (TEMPLATES / "hsg.es.toml").read_text(encoding="utf-8")
    assert old in source
    (folder / "hsg.es.toml").write_text(source.replace(old, new, 1), "utf-8")
    from discharge.errors import TemplateError

    with pytest.raises(TemplateError, match=re.escape(problem)):
        load_procedure("hsg", folder, "es")


# --- the web form ------------------------------------------------------------------------------


def test_the_web_form_offers_the_languages_and_makes_a_spanish_pdf() -> None:
    import io

    from discharge.config import Config
    from discharge.web import create_app
    from tests.test_web import FORM, token

    app = create_app(Config(), overrides={"TESTING": True})
    try:
        client = app.test_client()
        page = client.get("/").get_data(as_text=True)
        assert '<label for="language">Language</label>' in page
        assert '<option value="es" >Spanish (español)</option>' in page
        form = {**FORM, "notes": "Trompas abiertas.", "csrf_token": token(page)}
        response = client.post("/", data={**form, "language": "es"})
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(response.data)).pages)
        assert "Su calendario de recuperación" in text
        page = client.get("/").get_data(as_text=True)
        form["csrf_token"] = token(page)
        response = client.post("/", data={**form, "language": "fr"})
        assert response.status_code == 422
        assert "expected one of: en, es" in response.get_data(as_text=True)
    finally:
        app.extensions["discharge.jobs"].close()
