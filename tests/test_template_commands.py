"""`discharge templates check` and `discharge templates show` (issue 12, template governance),
through the real command on real template files."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from discharge.resources import bundled_dir
from tests.helpers import run_discharge

HARD = (
    "Notwithstanding considerable interindividual physiological variability, postprocedural "
    "inflammatory manifestations characteristically necessitate multidisciplinary "
    "pharmacological intervention accompanied by comprehensive epidemiological documentation."
)


def bundled(name: str) -> str:
    """A bundled template; an English one as a clinician has approved it (issue 19), so the
    tests below see only the findings they are about, not the bundled draft's warnings."""
    text = (bundled_dir("templates") / name).read_text(encoding="utf-8")
    if name.count(".") == 1:
        text = re.sub(r"(?m)^reviewed_version = .*$", "", text)
        text = re.sub(r'(?m)^reviewed_by = "".*$', 'reviewed_by = "Dr Test Reviewer"', text)
    return text


def folder_with(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    for name, text in files.items():
        (folder / name.replace("__", ".")).write_text(text, encoding="utf-8")
    return folder


def check(*args: str | Path) -> tuple[int, list[str], str]:
    result = run_discharge("templates", "check", *args)
    return result.code, result.stdout.splitlines(), result.stderr


def test_the_bundled_templates_pass() -> None:
    code, lines, stderr = check()
    assert code == 0, lines
    # The demo's templates await review (the Spanish by a qualified translator, the English
    # v2 wording by a clinician; README): warnings, and nothing else.
    assert lines and all(": warning: " in line for line in lines), lines
    assert (
        "hsg.toml: reviewed: warning: 2026-11-21 approved version 1.2, but the wording is "
        "now version 1.3" in "\n".join(lines)
    )
    assert "0 problem(s)" in stderr


def test_a_copy_of_the_bundled_templates_passes(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, hsg__toml=bundled("hsg.toml"),
                         miscarriage__toml=bundled("miscarriage.toml"))  # fmt: skip
    code, lines, _ = check(folder)
    assert (code, lines) == (0, [])


def test_a_bad_placeholder_is_named_by_file_and_field(tmp_path: Path) -> None:
    text = bundled("hsg.toml").replace("{{ procedure_date }}", "{{ procedure_dte }}", 1)
    code, lines, _ = check(folder_with(tmp_path, hsg__toml=text))
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith("hsg.toml: intro: bad placeholder")
    assert "procedure_dte" in lines[0]


def test_a_section_that_reads_too_hard_fails_naming_its_field(tmp_path: Path) -> None:
    source = bundled("hsg.toml")
    data = tomllib.loads(source)
    body = data["sections"][2]["body"]
    text = source.replace(body, HARD + "\n\n" + body, 1)
    code, lines, _ = check(folder_with(tmp_path, hsg__toml=text))
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith("hsg.toml: sections[2].body: reads at grade ")
    assert lines[0].endswith("(at most 6)")


def test_a_bad_variant_fails_naming_its_field(tmp_path: Path) -> None:
    text = bundled("hsg.toml").replace(
        'variants = ["sterilisation-check"]', 'variants = ["sterilisation-chek"]', 1
    )
    code, lines, _ = check(folder_with(tmp_path, hsg__toml=text))
    assert code == 1
    assert lines == [
        "hsg.toml: milestones[4].variants: 'sterilisation-chek' is not a variant "
        "(fertility, sterilisation-check)"
    ]


def test_broken_toml_and_unknown_fields_are_reported(tmp_path: Path) -> None:
    folder = folder_with(
        tmp_path,
        hsg__toml=bundled("hsg.toml").replace('title = "After your HSG"', 'titel = "x"', 1),
        broken__toml='id = "broken"\ntitle = "unclosed\n',
    )
    code, lines, _ = check(folder)
    assert code == 1
    assert any(line.startswith("broken.toml: (file): is not valid TOML") for line in lines)
    assert "hsg.toml: titel: not a known field" in lines
    assert any(line.startswith("hsg.toml: title:") for line in lines)


def test_an_old_review_date_is_a_warning_only(tmp_path: Path) -> None:
    text = bundled("hsg.toml").replace('reviewed = "2026-11-21"', 'reviewed = "2020-03-01"', 1)
    assert 'reviewed = "2020-03-01"' in text
    code, lines, stderr = check(folder_with(tmp_path, hsg__toml=text))
    assert code == 0
    assert len(lines) == 1
    assert lines[0].startswith(
        "hsg.toml: reviewed: warning: last reviewed 2020-03-01, more than 12"
    )
    assert "1 warning(s)" in stderr


def test_the_review_interval_comes_from_the_clinic(tmp_path: Path) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text(
        '[clinic]\nname = "T"\nphone = "0100"\nemergency_number = "999"\n'
        "review_interval_months = 1200\n",
        encoding="utf-8",
    )
    code, _, stderr = check("--config", config)
    assert code == 2 and "review_interval_months: must be a whole number" in stderr
    config.write_text(config.read_text().replace("1200", "120"), encoding="utf-8")
    text = bundled("hsg.toml").replace('reviewed = "2026-11-21"', 'reviewed = "2020-03-01"', 1)
    code, lines, _ = check(folder_with(tmp_path, hsg__toml=text), "--config", config)
    assert (code, lines) == (0, [])


def translation(version: str, reviewed_by: str = "") -> str:
    """A translation of the miscarriage template (the wording here is the English: the check
    is about provenance, not the words)."""
    text = re.sub(r"(?m)^reviewed_by = .*\n", "", bundled("miscarriage.toml"))
    current = tomllib.loads(text)["version"]
    header = (
        f'language = "es"\ntranslates = "miscarriage {version}"\nreviewed_by = "{reviewed_by}"\n'
    )
    return text.replace(f'version = "{current}"\n', f'version = "{current}"\n{header}', 1)


def test_a_stale_translation_fails(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, miscarriage__toml=bundled("miscarriage.toml"),
                         miscarriage__es__toml=translation("0.9", "Dr Ana Ruiz"))  # fmt: skip
    code, lines, _ = check(folder)
    assert code == 1
    current = tomllib.loads(bundled("miscarriage.toml"))["version"]
    assert lines == [
        f"miscarriage.es.toml: translates: the Spanish miscarriage template translates version "
        f"0.9, but the English one is {current}; have it translated again"
    ]


def test_a_current_translation_not_reviewed_is_a_warning(tmp_path: Path) -> None:
    current = tomllib.loads(bundled("miscarriage.toml"))["version"]
    folder = folder_with(tmp_path, miscarriage__toml=bundled("miscarriage.toml"),
                         miscarriage__es__toml=translation(current))  # fmt: skip
    code, lines, _ = check(folder)
    assert code == 0
    assert lines == [
        "miscarriage.es.toml: reviewed_by: warning: not reviewed by a qualified translator"
    ]
    reviewed = folder / "miscarriage.es.toml"
    reviewed.write_text(translation(current, "Dr Ana Ruiz"), encoding="utf-8")
    assert check(folder)[:2] == (0, [])


def test_a_folder_that_does_not_exist_is_exit_2(tmp_path: Path) -> None:
    code, lines, stderr = check(tmp_path / "nowhere")
    assert code == 2 and lines == []
    assert "nowhere does not exist" in stderr


def test_check_uses_the_clinics_templates_dir(tmp_path: Path) -> None:
    text = bundled("hsg.toml").replace("{{ procedure_date }}", "{{ oops }}", 1)
    folder = folder_with(tmp_path, hsg__toml=text)
    config = tmp_path / "clinic.toml"
    config.write_text(
        f'[clinic]\nname = "T"\nphone = "0100"\nemergency_number = "999"\n'
        f'templates_dir = "{folder}"\n',
        encoding="utf-8",
    )
    code, lines, _ = check("--config", config)
    assert code == 1 and lines[0].startswith("hsg.toml: intro: bad placeholder")


@pytest.mark.parametrize("procedure", ["hsg", "miscarriage"])
def test_show_prints_the_source(procedure: str) -> None:
    result = run_discharge("templates", "show", procedure)
    assert result.code == 0
    assert result.stdout == (bundled_dir("templates") / f"{procedure}.toml").read_text("utf-8")


def test_show_a_copy_is_a_working_template(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    shown = run_discharge("templates", "show", "hsg").stdout
    (folder / "hsg.toml").write_text(shown, encoding="utf-8")
    code, lines, _ = check(folder)  # the bundled wording awaits approval: warnings only
    assert code == 0 and all(": warning: " in line for line in lines), lines


def test_show_an_unknown_id_names_the_known_ones() -> None:
    result = run_discharge("templates", "show", "apendix")
    assert result.code == 2
    assert result.stdout == ""
    assert "unknown template: expected one of: hsg, miscarriage" in result.stderr


def test_show_a_language_that_is_not_there(tmp_path: Path) -> None:
    result = run_discharge("templates", "show", "hsg", "--language", "xx")
    assert result.code == 2
    assert "has no 'xx' version" in result.stderr


def test_show_a_translation(tmp_path: Path) -> None:
    current = tomllib.loads(bundled("miscarriage.toml"))["version"]
    folder = folder_with(tmp_path, miscarriage__es__toml=translation(current))
    config = tmp_path / "clinic.toml"
    config.write_text(
        f'[clinic]\nname = "T"\nphone = "0100"\nemergency_number = "999"\n'
        f'templates_dir = "{folder}"\n',
        encoding="utf-8",
    )
    result = run_discharge("templates", "show", "miscarriage", "--language", "es",
                           "--config", config)  # fmt: skip
    assert result.code == 0
    assert 'translates = "miscarriage' in result.stdout


def test_translations_are_not_procedures_of_their_own(tmp_path: Path) -> None:
    current = tomllib.loads(bundled("miscarriage.toml"))["version"]
    folder = folder_with(tmp_path, miscarriage__es__toml=translation(current))
    config = tmp_path / "clinic.toml"
    config.write_text(
        f'[clinic]\nname = "T"\nphone = "0100"\nemergency_number = "999"\n'
        f'templates_dir = "{folder}"\n',
        encoding="utf-8",
    )
    listing = run_discharge("procedures", "--config", config)
    assert listing.code == 0
    assert "miscarriage.es" not in listing.stdout
