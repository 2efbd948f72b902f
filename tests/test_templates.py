"""The bundled templates: valid, sourced, and written in plain words, section by section."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from pathlib import Path

import pyphen
import pytest

from discharge.config import Config, load_config
from discharge.document import build_document
from discharge.errors import TemplateError
from discharge.guidance import filling
from discharge.guidance.filling import Text
from discharge.guidance.loading import available_procedures, load_all, load_procedure
from discharge.guidance.model import items_for
from discharge.readability import (
    GRADE_LIMIT,
    flesch_kincaid_grade,
    over_limit,
    parts,
    syllables,
    words,
)
from discharge.request import parse_request

PROCEDURES = sorted(available_procedures())
VARIANTS = [(p.id, v.name) for p in load_all() for v in p.variants]
_HYPHENATOR = pyphen.Pyphen(lang="en_US")


def test_the_documented_procedures_exist() -> None:
    assert {"hsg", "miscarriage"} <= set(PROCEDURES)
    assert ("hsg", "sterilisation-check") in VARIANTS
    assert {("miscarriage", v) for v in ("expectant", "medical", "surgical")} <= set(VARIANTS)


@pytest.mark.parametrize("procedure", load_all(), ids=lambda p: p.id)
def test_template_declares_id_version_sources(procedure) -> None:
    assert procedure.id == procedure.path.stem
    assert re.match(r"^\d+(\.\d+)*$", procedure.version)
    assert procedure.sources and all(len(s.title) > 10 for s in procedure.sources)
    assert all(s.url.startswith("https://") for s in procedure.sources if s.url)
    assert procedure.milestones and procedure.help_urgent.signs and procedure.help_clinic.signs
    assert procedure.teach_back
    for variant in [v.name for v in procedure.variants] or [None]:
        assert 3 <= len(items_for(procedure.teach_back.questions, variant)) <= 6


def test_template_versions_were_raised_for_issue_19() -> None:
    assert load_procedure("hsg").version == "1.3"
    assert load_procedure("miscarriage").version == "2.0"


# --- reading level ----------------------------------------------------------------------


def _pyphen_syllables(word: str) -> int:
    return max(1, len(_HYPHENATOR.positions(word)) + 1)


def test_syllable_counter_knows_common_words() -> None:
    counts = {
        "very": 2, "body": 2, "about": 2, "ibuprofen": 4, "miscarriage": 3, "rarely": 2,
        "trying": 2, "studies": 2, "worried": 2, "couples": 2, "stopped": 1, "waited": 2,
        "takes": 1, "changes": 2, "table": 2, "infection": 3, "contraception": 4,
        "uncomfortable": 5, "emergency": 4, "recovery": 4, "vagina": 3, "fever": 2,
        "questions": 2, "the": 1, "smells": 1, "tired": 1, "immediately": 5, "bleeding": 2,
        "X-ray": 2, "day-to-day": 3,
    }  # fmt: skip
    assert {w: syllables(w) for w in counts} == counts


def test_syllable_counter_is_never_more_lenient_than_pyphen_on_our_words() -> None:
    # pyphen (dictionary hyphenation, a test extra) never splits off one letter, so it
    # undercounts ("ve-ry" is one hyphenation point short). Our counter runs without it; on
    # every word the templates use it must count at least as many syllables, less a few
    # pyphen splits we know are wrong, so the check is at least as strict as the old one.
    pyphen_wrong = {"hysterosalpingogram", "diarrhoea", "sterilisation"}
    texts = [p.text for proc, variant in VARIANTS for p in parts(_document(proc, variant))]
    found = {w.lower() for text in texts for w in words(text)}
    lenient = sorted(
        w for w in found - pyphen_wrong if syllables(w) < _pyphen_syllables(w) and "-" not in w
    )
    assert lenient == []


def test_reading_level_check_tells_plain_from_dense() -> None:
    plain = "Use pads, not tampons. Rest today. Call us if you feel unwell."
    dense = ("Hysterosalpingography necessitates intrauterine instrumentation, "
             "consequently predisposing susceptible individuals to ascending pelvic infection.")  # fmt: skip
    assert flesch_kincaid_grade(plain) < 4 < 14 < flesch_kincaid_grade(dense)


def test_dates_do_not_count_as_hard_words() -> None:
    assert flesch_kincaid_grade("Rest until Wednesday 25 November 2026 at 14:30.") == (
        flesch_kincaid_grade("Rest until that day.")
    )


def _document(procedure: str, variant: str, config: Config | None = None):
    request = parse_request(
        procedure=procedure, date=date(2026, 11, 21).isoformat(), patient="A", variant=variant
    )
    return build_document(request, config or load_config())


@pytest.mark.parametrize(("procedure", "variant"), VARIANTS)
def test_every_section_reads_at_sixth_grade_or_below(procedure: str, variant: str) -> None:
    doc = _document(procedure, variant)
    names = [part.name for part in parts(doc)]
    assert "help: urgent" in names and "teach-back" in names
    assert any(n.startswith("timeline row") for n in names)
    assert over_limit(doc) == []


def test_an_over_hard_section_is_named_with_its_grade(tmp_path: Path) -> None:
    dense = (
        "Anti-inflammatory medication necessitates consideration of gastrointestinal "
        "contraindications."
    )
    old = "Your doctor will talk with you about what the X-ray pictures showed. If something"
    config = _custom(tmp_path, f"{dense} If something", old=old, once=True)
    problems = over_limit(_document("hsg", "fertility", config))
    assert len(problems) == 1
    assert re.fullmatch(
        r"hsg \(fertility\): section 'Your results' reads at grade \d+\.\d \(at most 6\)",
        problems[0],
    )
    assert GRADE_LIMIT == 6


# --- schema errors name the file and the field -------------------------------------------


def _custom(tmp_path: Path, body: str, *, once: bool = False, old: str = "") -> Config:
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    source = (Path(__file__).parents[1] / "templates" / "hsg.toml").read_text()
    old = old or 'heading = "Your results"\nvariants = ["fertility"]\nbody = """'
    assert old in source
    (folder / "hsg.toml").write_text(source.replace(old, body, 1 if once else -1))
    config = load_config()
    return replace(config, clinic=replace(config.clinic, templates_dir=folder))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('[help.urgent]', '[help.later]', r"help: expected two tables, \[help.urgent\]"),
        ('variants = ["fertility"]\nstart = "0d"', 'variants = ["fertilty"]\nstart = "0d"',
         r"milestones\[5\].variants: 'fertilty' is not a variant"),
        ('default_variant = "fertility"', 'default_variant = "ivf"',
         "default_variant: 'ivf' is not a variant"),
        ('[teach_back]\nheading', '[teach_back]\nquestion = 1\nheading',
         r"teach_back.question: not a known field"),
        ('questions = [', 'questions = [ { text = "Hi?", variants = ["nope"] },',
         r"teach_back.questions\[0\].variants: 'nope' is not a variant"),
        ('publisher = "Cleveland Clinic"', 'publisher = "Cleveland Clinic"\nurl = "http://x"',
         r"sources\[0\].url: expected an address starting https://"),
        ('heading = "Call us straight away if you have any of these:"',
         'heading = "Call {{ clinic.fax }}"', r"hsg.toml, field help.clinic.heading"),
    ],
)  # fmt: skip
def test_schema_mistakes_name_file_and_field(tmp_path: Path, old: str, new: str, message: str):
    config = _custom(tmp_path, new, old=old)
    with pytest.raises(TemplateError, match=message) as caught:
        _document("hsg", "fertility", config)
    assert "hsg.toml" in str(caught.value)


MINIMAL = """
id = "hsg"
version = "1"
title = "After your test"
default_variant = "a"
[variants.a]
label = "A"
[variants.b]
label = "B"
[[sources]]
title = "A named source"
[[milestones]]
key = "rest"
start = "0d"
label = "Rest."
[[sections]]
heading = "Rest"
body = "Rest."
[help.urgent]
heading = "Call {{ clinic.emergency_number }} now if:"
signs = [{ text = "You faint.", variants = ["a"] }]
[help.clinic]
heading = "Call us if:"
signs = ["You feel unwell."]
"""


def test_a_variant_left_without_urgent_signs_is_an_error(tmp_path: Path) -> None:
    config = _custom(
        tmp_path, MINIMAL, old=(Path(__file__).parents[1] / "templates" / "hsg.toml").read_text()
    )
    with pytest.raises(TemplateError, match="help.urgent.signs: none is left for variant b"):
        _document("hsg", "a", config)
    fixed = MINIMAL.replace('variants = ["a"]', 'variants = ["a", "b"]')
    config = _custom(
        tmp_path, fixed, old=(Path(__file__).parents[1] / "templates" / "hsg.toml").read_text()
    )
    doc = _document("hsg", "b", config)
    assert doc.help_urgent.signs == ("You faint.",) and doc.teach_back is None


def test_the_example_in_the_templates_readme_is_a_valid_template(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[1] / "templates" / "README.md").read_text()
    example = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert example is not None
    config = _custom(
        tmp_path,
        example.group(1),
        old=(Path(__file__).parents[1] / "templates" / "hsg.toml").read_text(),
    )
    doc = _document("hsg", "sterilisation-check", config)
    assert doc.sections == ()  # its one section is for the fertility variant only
    assert doc.help_clinic.signs == ("A fever of 38 °C (100.4 °F) or higher.",)
    assert _document("hsg", "fertility", config).date_label == "Date of your test"


def _all_texts(value: object, seen: set[int] | None = None) -> list[Text]:
    """Every Text inside a procedure (its sections, help levels, items, variants...)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return []
    seen.add(id(value))
    if isinstance(value, Text):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in _all_texts(v, seen)]
    if hasattr(value, "__dataclass_fields__"):
        return [
            t for name in value.__dataclass_fields__ for t in _all_texts(getattr(value, name), seen)
        ]
    return []


@pytest.mark.parametrize("locale", ["en_GB", "en_US", "es_ES"])
def test_simple_placeholders_are_filled_exactly_as_jinja_fills_them(locale: str) -> None:
    from discharge.guidance.context import template_context
    from discharge.guidance.sandbox import render

    clinic = load_config().clinic
    checked = 0
    for pid in available_procedures():
        for language in ("", "es"):
            procedure = load_procedure(pid, None, language or None)
            for variant in [v.name for v in procedure.variants] or [None]:
                context = template_context(
                    procedure, date(2026, 11, 21), None, clinic, variant, locale
                ).values
                for text in _all_texts(procedure):
                    if text.plan is None:
                        continue
                    filled = filling._fill_plan(text.plan, context)
                    assert filled is not None, text.field
                    assert filled == render(text.template, context), text.field
                    checked += 1
    assert checked >= 20  # the bundled templates' emergency numbers, dates and temperatures


def test_anything_but_a_plain_value_is_left_to_jinja() -> None:
    assert filling.plan("Call {{ clinic.phone }} now.") == (
        "Call ",
        (("clinic", "phone"),),
        " now.",
    )
    assert filling.plan("Over {{ 38 | temp }}.") == ("Over ", (38,), ".")
    for source in ["{% if x %}a{% endif %}", "{{ x | upper }}", "{# note #}", "{{- x }}",
                   "a { b", "{{ x }}\r\n"]:  # fmt: skip
        assert filling.plan(source) is None, source
    plan = filling.plan("{{ a.b }}")
    assert plan is not None
    assert filling._fill_plan(plan, {"a": {"b": "text"}}) == "text"
    assert filling._fill_plan(plan, {"a": {}}) is None  # missing: Jinja's StrictUndefined explains
    assert filling._fill_plan(plan, {"a": {"b": 3}}) is None  # not text: Jinja writes it its way
    items = filling.plan("{{ a.items }}")
    assert (
        items is not None and filling._fill_plan(items, {"a": {"items": "x"}}) is None
    )  # a dict method


def test_a_choice_on_a_value_is_filled_without_jinja_and_anything_deeper_is_not() -> None:
    plan = filling.plan('From {{ d }}{% if variant == "surgical" %}, your operation{% else %}, your '
                 'bleeding{% endif %}.')  # fmt: skip
    assert plan is not None
    assert (
        filling._fill_plan(plan, {"d": "Monday", "variant": "surgical"})
        == "From Monday, your operation."
    )
    assert filling._fill_plan(plan, {"d": "Monday", "variant": ""}) == "From Monday, your bleeding."
    assert (
        filling._fill_plan(plan, {"d": "Monday"}) is None
    )  # no such value: Jinja's error explains
    for source in ['{% if a == "b" %}{% if c == "d" %}x{% endif %}{% endif %}',
                   '{% if a == "b" %}{{ x | upper }}{% endif %}',
                   "{% if a %}x{% endif %}", "{% for x in y %}{{ x }}{% endfor %}",
                   '{%- if a == "b" %}x{% endif %}']:  # fmt: skip
        assert filling.plan(source) is None, source


def test_every_bundled_text_is_filled_without_jinja() -> None:
    # A cold `discharge generate` then never imports Jinja2 (an eighth of its start-up).
    for pid in available_procedures():
        for language in ("", "es"):
            procedure = load_procedure(pid, None, language or None)
            needs_jinja = [text.field for text in _all_texts(procedure)
                           if text.static is None and text.plan is None]  # fmt: skip
            assert needs_jinja == [], (pid, language)
