"""Translations of a template (``ID.LANG.toml``): whether each is still current with its
original (stale), and whether it keeps every warning sign, timeline row and section of it.
``discharge templates check`` fails on either; ``generate`` warns of a stale one."""

from __future__ import annotations

from pathlib import Path

from discharge.guidance.loading import available_procedures, load_file, load_translations
from discharge.guidance.model import MilestoneSpec, Procedure, Variants, items_for


def language_name(language: str) -> str:
    """The English name of a language code, for messages: ``es`` -> ``Spanish``."""
    from babel import Locale, UnknownLocaleError

    try:
        return str(Locale.parse(language).get_display_name("en"))
    except (UnknownLocaleError, ValueError):
        return language


def stale_warning(translation: Procedure, extra: Path | None = None) -> str | None:
    """Why this translation is out of date with its original, or None if it is current.

    A translation names the version it was made from (``translates = "hsg 1.2"``); once the
    original's version moves on, the translation no longer says what the original says.
    """
    if not translation.language:
        return None
    name = language_name(translation.language)
    original = available_procedures(extra).get(translation.id)
    if original is None:
        return f"the {name} {translation.id} template translates a template that does not exist"
    current = load_file(original)
    if translation.translated_version == current.version:
        return None
    source = language_name(current.language or "en")
    return (
        f"the {name} {translation.id} template translates version "
        f"{translation.translated_version}, but the {source} one is {current.version}; "
        "have it translated again"
    )


def translation_differences(translation: Procedure, extra: Path | None = None) -> list[str]:
    """How a translation's structure differs from its original's, as "field: what" each.

    A translation says the same things in another language: the same warning signs at each
    level of the help box, the same timeline rows (keys and when they start and end) and the
    same sections, each for the same variants. A sign or a row left out is advice a patient
    reading that language never sees, so ``discharge templates check`` fails on it.
    """
    original_path = available_procedures(extra).get(translation.id)
    if not translation.language or original_path is None:
        return []  # not a translation, or one of nothing (stale_warning says so)
    original = load_file(original_path)
    theirs = f"the {language_name(original.language or 'en')} template"
    problems = []
    names = sorted({v.name for v in original.variants} | {v.name for v in translation.variants})
    variant_names: list[str | None] = [*names] or [None]
    for level in ("urgent", "clinic"):
        ours_signs = getattr(translation, f"help_{level}").signs
        their_signs = getattr(original, f"help_{level}").signs
        for name in variant_names:
            ours, want = len(items_for(ours_signs, name)), len(items_for(their_signs, name))
            if ours != want:
                where = f" (variant {name})" if name else ""
                problems.append(
                    f"help.{level}.signs: {ours} warning sign(s){where}, but {theirs} has "
                    f"{want}; a translation must keep every sign"
                )
    ours_rows = [_row_shape(m) for m in translation.milestones]
    their_rows = [_row_shape(m) for m in original.milestones]
    if ours_rows != their_rows:
        ours_keys, their_keys = [r[0] for r in ours_rows], [r[0] for r in their_rows]
        missing = [key for key in their_keys if key not in ours_keys]
        added = [key for key in ours_keys if key not in their_keys]
        moved = [mine[0] for mine, want in zip(ours_rows, their_rows, strict=False) if mine != want]
        if missing or added:
            detail = "; ".join(
                part
                for part in (
                    f"missing: {', '.join(missing)}" if missing else "",
                    f"not in the original: {', '.join(added)}" if added else "",
                )
                if part
            )
        else:
            detail = f"other times, order or variants: {', '.join(moved)}"
        problems.append(
            f"milestones: {len(ours_rows)} timeline row(s), {theirs} has {len(their_rows)} "
            f"({detail}); a translation must keep the same rows, in the same order"
        )
    ours_sections = [_variants_text(s.variants) for s in translation.sections]
    their_sections = [_variants_text(s.variants) for s in original.sections]
    if ours_sections != their_sections:
        problems.append(
            f"sections: {len(ours_sections)} section(s), {theirs} has {len(their_sections)}"
            + ("" if len(ours_sections) != len(their_sections) else " (for other variants)")
            + "; a translation must keep every section, in the same order"
        )
    return problems


def _row_shape(milestone: MilestoneSpec) -> tuple[str, str, str, str]:
    end = str(milestone.end) if milestone.end else ""
    return milestone.key, str(milestone.start), end, _variants_text(milestone.variants)


def _variants_text(variants: Variants) -> str:
    return ",".join(sorted(variants)) if variants is not None else "*"


def stale_translations(extra: Path | None = None) -> list[tuple[Path, str]]:
    """Every translated template that is out of date, as (file, message): for
    ``discharge templates check``, which fails on them, and ``generate``, which warns."""
    out = []
    for translation in load_translations(extra):
        message = stale_warning(translation, extra)
        if message:
            out.append((translation.path, message))
    return out
