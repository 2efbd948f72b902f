"""Issue 18, finding 6: `discharge templates check` fails a translation that dropped an urgent
sign, a timeline row or a section of the template it translates (real template files, the
real command)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from tests.test_template_commands import bundled, check, folder_with

SPANISH = bundled("hsg.es.toml")
ENGLISH = tomllib.loads(bundled("hsg.toml"))
URGENT = len(ENGLISH["help"]["urgent"]["signs"])
ROWS = len(ENGLISH["milestones"])
SECTIONS = len(ENGLISH["sections"])


def spanish_folder(tmp_path: Path, spanish: str) -> Path:
    return folder_with(tmp_path, hsg__toml=bundled("hsg.toml"), hsg__es__toml=spanish)


def fails(lines: list[str]) -> list[str]:
    return [line for line in lines if ": warning: " not in line]


def test_a_faithful_translation_passes(tmp_path: Path) -> None:
    code, lines, _ = check(spanish_folder(tmp_path, SPANISH))
    assert code == 0 and fails(lines) == [], lines


def test_a_translation_without_an_urgent_sign_fails(tmp_path: Path) -> None:
    # The second urgent sign (severe pain) left out of the Spanish help box.
    dropped = re.sub(r'(signs = \[\n  "Sangra mucho[^\n]*\n)  "Dolor muy fuerte[^\n]*\n', r"\1",
                     SPANISH, count=1)  # fmt: skip
    assert dropped != SPANISH
    code, lines, _ = check(spanish_folder(tmp_path, dropped))
    assert code == 1
    assert fails(lines) == [
        f"hsg.es.toml: help.urgent.signs: {URGENT - 1} warning sign(s) (variant {variant}), "
        f"but the English template has {URGENT}; a translation must keep every sign"
        for variant in ("fertility", "sterilisation-check")
    ], lines


def test_a_translation_without_a_timeline_row_fails(tmp_path: Path) -> None:
    dropped = re.sub(r'\[\[milestones\]\]\nkey = "sex"\n.*?\n\n', "", SPANISH, count=1,
                     flags=re.DOTALL)  # fmt: skip
    assert dropped != SPANISH and 'key = "sex"' not in dropped
    code, lines, _ = check(spanish_folder(tmp_path, dropped))
    assert code == 1
    assert fails(lines) == [
        f"hsg.es.toml: milestones: {ROWS - 1} timeline row(s), the English template has {ROWS} "
        "(missing: sex); a translation must keep the same rows, in the same order"
    ], lines


def test_a_translation_with_a_row_at_another_time_fails(tmp_path: Path) -> None:
    moved = SPANISH.replace('key = "sex"\nstart = "24h"', 'key = "sex"\nstart = "12h"', 1)
    assert moved != SPANISH
    code, lines, _ = check(spanish_folder(tmp_path, moved))
    assert code == 1
    assert fails(lines) == [
        f"hsg.es.toml: milestones: {ROWS} timeline row(s), the English template has {ROWS} "
        "(other times, order or variants: sex); a translation must keep the same rows, in the "
        "same order"
    ], lines


def test_a_translation_without_a_section_fails(tmp_path: Path) -> None:
    start = SPANISH.index("[[sections]]")
    second = SPANISH.index("[[sections]]", start + 1)
    dropped = SPANISH[:start] + SPANISH[second:]
    code, lines, _ = check(spanish_folder(tmp_path, dropped))
    assert code == 1
    assert fails(lines) == [
        f"hsg.es.toml: sections: {SECTIONS - 1} section(s), the English template has "
        f"{SECTIONS}; a translation must keep every section, in the same order"
    ], lines
