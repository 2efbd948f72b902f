"""Procedure templates: TOML data plus Jinja2 text, validated on load.

Templates are clinic content, so every problem is reported with the file, the field and what
was expected. Text is rendered in the sandboxed Jinja2 environment of ``templating.py``, where
an unknown placeholder is an error, and patient data only ever enters as values, never as
template source. ``template_context`` gives the values a template's placeholders see.
"""

from __future__ import annotations

import contextlib
import functools
import re
import stat
import time as clock
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from discharge import cache as install_cache
from discharge.config import Clinic
from discharge.dates import format_day, format_moment, temperature
from discharge.errors import InputError, TemplateError, UnknownProcedureError
from discharge.i18n import N_, gettext, language_of
from discharge.milestones import Offset, apply_offset, parse_offset
from discharge.resources import bundled_dir

if TYPE_CHECKING:
    from jinja2 import Template

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_TOP_FIELDS = {
    "id", "version", "title", "subtitle", "reviewed", "sources", "intro", "default_variant",
    "variants", "milestones", "sections", "help", "teach_back",
    "language", "translates", "reviewed_by", "reviewed_version",
}  # fmt: skip
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_TRANSLATES = re.compile(r"^(?P<id>\S+)\s+(?P<version>\S+)$")
_SOURCE_FIELDS = ("title", "publisher", "author", "url", "reviewed", "note")
_VARIANT_FIELDS = ("label", "date_label", "intro")
_MAX_QUESTIONS = 6
# A template is a few pages of text (the bundled ones are about 8,000 bytes). Larger is refused
# before it is read, and checking one has a time budget: a file of a thousand long sections
# once took minutes, a 3 GB one ran out of memory.
MAX_TEMPLATE_BYTES = 1_000_000
LOAD_SECONDS = 10.0
# Translators: a range of dates: "Monday 23 November 2026 to Friday 27 November 2026".
RANGE = N_("{start} to {end}")


# The records below are built, read and cached, never compared or printed: eq=False and
# repr=False spare every start the methods a dataclass would generate for that (about 5 ms
# of a cold `discharge generate` over the package).
@dataclass(frozen=True, eq=False, repr=False)
class Text:
    """One piece of template text, compiled once. Most texts have no placeholders: their
    rendering (``static``) is kept with them, and such a text's Jinja template is only made
    if something asks for it (a template check); the others make it on first use."""

    field: str  # e.g. "sections[2].body", for error messages
    source: str
    code: bytes  # compiled (marshal bytes, see templating.compile_text)
    static: str | None = None  # the rendering of a text with no placeholders, else None
    plan: tuple[Any, ...] | None = None  # see _plan: a text with only simple placeholders

    @functools.cached_property
    def template(self) -> Template:
        from discharge import templating

        return templating.template_from_code(self.code)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (for the cache) as its compiled code: a template object holds the environment.
        return Text, (self.field, self.source, self.code, self.static, self.plan)


# The placeholders most texts use, which need no Jinja2 to fill (importing it is an eighth of
# a cold start): a value, `{{ clinic.emergency_number }}`, and a temperature, `{{ 38 | temp }}`.
_SIMPLE = re.compile(
    r"\{\{ *(?:(?P<name>[A-Za-z]\w*(?:\.[A-Za-z]\w*)*)|(?P<number>\d+(?:\.\d+)?) *\| *temp) *\}\}"
)
_DICT_ATTRIBUTES = frozenset(dir(dict))  # `{{ m.items }}` is a method to Jinja, not a key


# And one choice: {% if variant == "surgical" %}...{% else %}...{% endif %}, not nested.
_CHOICE = re.compile(
    r'\{% *if +(?P<name>[A-Za-z]\w*) *== *"(?P<value>[^"\\{}%]*)" *%\}(?P<then>.*?)'
    r"(?:\{% *else *%\}(?P<otherwise>.*?))?\{% *endif *%\}",
    re.DOTALL,
)


def _plan(source: str) -> tuple[Any, ...] | None:
    """``source`` as literal text, simple placeholders (``(names,)`` or ``(number,)``) and
    choices (``(name, value, then, otherwise)``, each branch a plan), or None when anything
    else is in it (a loop, a filter, a comment, a nested block): Jinja renders that."""
    parts: list[Any] = []
    at = 0
    for match in _CHOICE.finditer(source):
        before = _plan_simple(source[at : match.start()])
        then = _plan_simple(match.group("then"))
        otherwise = _plan_simple(match.group("otherwise") or "")
        if before is None or then is None or otherwise is None:
            return None
        parts += before
        parts.append((match.group("name"), match.group("value"), then, otherwise))
        at = match.end()
    rest = _plan_simple(source[at:])
    return None if rest is None else (*parts, *rest)


def _plan_simple(source: str) -> tuple[Any, ...] | None:
    parts: list[Any] = []
    at = 0
    for match in _SIMPLE.finditer(source):
        parts.append(source[at : match.start()])
        if match.group("name"):
            parts.append((tuple(match.group("name").split(".")),))
        else:
            number = match.group("number")
            parts.append((float(number) if "." in number else int(number),))
        at = match.end()
    parts.append(source[at:])
    literals = parts[::2]
    if any("{" in text or "\r" in text for text in literals):  # Jinja syntax, or line endings
        return None  # that Jinja would normalise
    return tuple(parts)


def _fill(plan: tuple[Any, ...], context: Mapping[str, Any]) -> str | None:
    """The text of ``plan`` filled from ``context`` as Jinja fills it, or None to let Jinja
    render it (a missing value, or one that is not plain text: Jinja's message explains)."""
    out = []
    for part in plan:
        if isinstance(part, str):
            out.append(part)
            continue
        if len(part) == 4:  # a choice on a value that is text
            name, wanted, then, otherwise = part
            chosen = context.get(name)
            if type(chosen) is not str:
                return None
            filled = _fill(then if chosen == wanted else otherwise, context)
            if filled is None:
                return None
            out.append(filled)
            continue
        (what,) = part
        if not isinstance(what, tuple):  # a temperature, in the document's locale
            out.append(temperature(what, str(context.get("locale", "")) or "en"))
            continue
        value: Any = context
        for depth, name in enumerate(what):
            if not isinstance(value, dict) or name not in value:
                return None
            if depth and name in _DICT_ATTRIBUTES:
                return None
            value = value[name]
        if type(value) is not str:
            return None
        out.append(value)
    return "".join(out)


Variants = frozenset[str] | None  # the variants an entry is printed for; None: all of them


def _applies(variants: Variants, variant: str | None) -> bool:
    return variants is None or variant in variants


@dataclass(frozen=True, eq=False, repr=False)
class Item:
    """One warning sign or teach-back question, optionally for some variants only."""

    text: Text
    variants: Variants = None


@dataclass(frozen=True, eq=False, repr=False)
class MilestoneSpec:
    key: str
    start: Offset
    end: Offset | None
    label: Text
    variants: Variants = None


@dataclass(frozen=True, eq=False, repr=False)
class SectionSpec:
    heading: Text
    body: Text
    variants: Variants = None


@dataclass(frozen=True, eq=False, repr=False)
class HelpLevelSpec:
    """One level of the help box: a heading that says what to do, then the signs."""

    heading: Text
    intro: Text | None
    signs: tuple[Item, ...]


@dataclass(frozen=True, eq=False, repr=False)
class TeachBackSpec:
    heading: Text
    intro: Text | None
    questions: tuple[Item, ...]


@dataclass(frozen=True, eq=False, repr=False)
class VariantSpec:
    name: str
    label: str  # listed by `discharge procedures`
    date_label: str  # the patient block's label for the date; "" for the usual "Date"
    intro: Text | None  # replaces the template's intro for this variant


@dataclass(frozen=True, eq=False, repr=False)
class SourceSpec:
    """Where the guidance comes from: full provenance here, one plain line on the sheet."""

    title: str
    publisher: str = ""
    author: str = ""
    url: str = ""
    reviewed: str = ""
    note: str = ""

    @property
    def printed(self) -> str:
        """What the patient reads: "Cleveland Clinic: Hysterosalpingogram (HSG)"."""
        return f"{self.publisher}: {self.title}" if self.publisher else self.title


@dataclass(frozen=True, eq=False, repr=False)
class Procedure:
    id: str
    version: str
    title: str
    subtitle: str
    reviewed: str
    sources: tuple[SourceSpec, ...]
    intro: Text | None
    milestones: tuple[MilestoneSpec, ...]
    sections: tuple[SectionSpec, ...]
    help_urgent: HelpLevelSpec
    help_clinic: HelpLevelSpec
    teach_back: TeachBackSpec | None
    variants: tuple[VariantSpec, ...]
    default_variant: str  # "" when the template declares no variants
    path: Path
    # A translation (a file named ID.LANG.toml) says what it is and where it comes from:
    language: str = ""  # "es"; "" in a file named ID.toml: the clinic's own language
    translates: str = ""  # the template id and version it translates: "hsg 1.2"
    reviewed_by: str = ""  # who approved this wording ("" until a qualified reviewer has)
    reviewed_version: str = ""  # the version that review approved ("": the current one)

    @property
    def approved(self) -> bool:
        """Signed off: a reviewer is named, and the review was of this version's wording. An
        unapproved template prints a "Draft" line on every page and a warning on stderr."""
        current = not self.reviewed_version or self.reviewed_version == self.version
        return bool(self.reviewed_by) and current

    @property
    def translated_version(self) -> str:
        """The version of the original that this translation was made from ("" if none)."""
        match = _TRANSLATES.match(self.translates)
        return match.group("version") if match else ""

    def render(self, text: Text, context: Mapping[str, Any]) -> str:
        if text.static is not None:  # no placeholders: the same for every patient
            return text.static
        if text.plan is not None and (filled := _fill(text.plan, context)) is not None:
            return filled
        from discharge import templating

        try:
            return templating.render(text.template, context)
        except TemplateError as exc:
            raise TemplateError(f"template {self.path.name}, field {text.field}: {exc}") from None

    def variant(self, name: str | None) -> VariantSpec | None:
        """The variant a nurse asked for (None: the default); an unknown name is an InputError."""
        wanted = (name or "").strip().lower() or self.default_variant
        if not wanted:
            return None
        for spec in self.variants:
            if spec.name == wanted:
                return spec
        known = ", ".join(v.name for v in self.variants)
        if not known:
            raise InputError(f"procedure {self.id!r} has no variants (leave the variant out)")
        raise InputError(
            f"unknown variant {wanted!r} for procedure {self.id!r}: expected one of: {known}"
        )

    def milestones_for(self, variant: str | None) -> tuple[MilestoneSpec, ...]:
        return tuple(m for m in self.milestones if _applies(m.variants, variant))

    def sections_for(self, variant: str | None) -> tuple[SectionSpec, ...]:
        return tuple(s for s in self.sections if _applies(s.variants, variant))


def items_for(items: tuple[Item, ...], variant: str | None) -> tuple[Text, ...]:
    return tuple(i.text for i in items if _applies(i.variants, variant))


def template_dirs(extra: Path | None = None) -> tuple[Path, ...]:
    """Where templates are looked up: the clinic's own folder first, then the bundled one."""
    bundled = bundled_dir("templates")
    return (extra, bundled) if extra else (bundled,)


def available_procedures(extra: Path | None = None) -> dict[str, Path]:
    """Map procedure id to its template in the clinic's own language (the file ``ID.toml``;
    a clinic's own folder wins over the bundled one). Translations: :func:`available_templates`."""
    return {
        pid: file for (pid, language), file in available_templates(extra).items() if not language
    }


def available_templates(extra: Path | None = None) -> dict[tuple[str, str], Path]:
    """Map (procedure id, language) to its template file: ``hsg.toml`` is ``("hsg", "")``, in
    the clinic's own language; ``hsg.es.toml`` is ``("hsg", "es")``, a translation."""
    folders = template_dirs(extra)
    try:
        stamps = tuple(folder.stat().st_mtime_ns for folder in folders)
    except OSError as exc:
        raise TemplateError(f"cannot read the templates folder: {exc}") from None
    return dict(_listing(folders, stamps))


def template_key(file: Path) -> tuple[str, str]:
    """``hsg.es.toml`` -> ``("hsg", "es")``; ``hsg.toml`` -> ``("hsg", "")``."""
    procedure_id, _, language = file.stem.partition(".")
    return procedure_id, language


@cache
def _listing(
    folders: tuple[Path, ...], _stamps: tuple[int, ...]
) -> tuple[tuple[tuple[str, str], Path], ...]:
    # A batch asks once per row: list each folder again only when its contents change.
    found: dict[tuple[str, str], Path] = {}
    for folder in reversed(folders):
        for file in sorted(folder.glob("*.toml")):
            # Only regular files: reading a FIFO (or a device) named *.toml would wait forever.
            if not file.name.startswith("_") and file.is_file():
                found[template_key(file)] = file
    return tuple(found.items())


def procedure_languages(
    procedure_id: str, extra: Path | None = None, default_language: str = "en"
) -> tuple[str, ...]:
    """The languages a procedure can be printed in: the clinic's own, then its translations."""
    files = available_templates(extra)
    pid = procedure_id.strip().lower()
    found = {language or default_language for (key, language) in files if key == pid}
    return tuple(sorted(found, key=lambda language: (language != default_language, language)))


def typo_of(text: str, known: list[str]) -> str | None:
    """The one known id that ``text`` is a near-misspelling of, else None.

    Following a suggestion prints that procedure's instructions, so it is made only for a
    typing slip, never between two different procedures' names: the same first letter, and
    one letter changed, added, dropped or two swapped, plus for an id of six letters or more
    a letter doubled or undoubled (``miscarige``). Two different words differ by more, or by
    a whole part of the word (``hysteroscopy`` is not a misspelt ``colposcopy``, nor
    ``colonoscopy`` a misspelt ``colposcopy``). Two equally near ids: no suggestion.
    """
    best: list[str] = []
    allowed = 1.0 if len(text) <= 5 else 1.5
    least = allowed
    for name in known:
        if not text or not name or text[0] != name[0] or abs(len(text) - len(name)) > 2:
            continue
        edits = _edits(text, name)
        if edits < least or (edits == least and not best):
            best, least = [name], edits
        elif edits == least:
            best.append(name)
    return best[0] if len(best) == 1 else None


def _edits(a: str, b: str) -> float:
    """Letters changed, added, dropped, or two neighbours swapped, to make ``a`` into ``b``
    (the optimal string alignment distance), a doubled letter added or dropped counting half."""

    def doubled(word: str, at: int) -> bool:  # word[at] has the same letter beside it
        return (at > 0 and word[at - 1] == word[at]) or (
            at + 1 < len(word) and word[at + 1] == word[at]
        )

    rows: list[list[float]] = [[0.0] * (len(b) + 1)]
    for j in range(1, len(b) + 1):
        rows[0][j] = rows[0][j - 1] + (0.5 if doubled(b, j - 1) else 1.0)
    for i in range(1, len(a) + 1):
        drop = 0.5 if doubled(a, i - 1) else 1.0
        row = [rows[-1][0] + drop] + [0.0] * len(b)
        for j in range(1, len(b) + 1):
            add = 0.5 if doubled(b, j - 1) else 1.0
            change = 0.0 if a[i - 1] == b[j - 1] else 1.0
            row[j] = min(rows[-1][j] + drop, row[j - 1] + add, rows[-1][j - 1] + change)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1.0)
        rows.append(row)
    return rows[-1][-1]


def load_procedure(
    procedure_id: str,
    extra: Path | None = None,
    language: str | None = None,
    *,
    default_language: str = "en",
) -> Procedure:
    """The template of a procedure in ``language`` (None: the clinic's own language, the file
    ``ID.toml``). ``default_language`` is the clinic's language, the one ``ID.toml`` is in."""
    files = available_templates(extra)
    pid = procedure_id.strip().lower()
    if (pid, "") not in files:
        known = sorted({key for key, lang in files if not lang})
        close = typo_of(pid, known)
        hint = f"did you mean {close!r}? " if close else ""
        # The value itself is not repeated: in a schedule it may be a name in the wrong column.
        raise UnknownProcedureError(f"unknown procedure: {hint}expected one of: {', '.join(known)}")
    wanted = (language or "").strip().lower()
    file = files.get((pid, wanted)) if wanted else None
    if file is None:
        if wanted and wanted != default_language:
            available = ", ".join(procedure_languages(pid, extra, default_language))
            # A checked code (two or three letters, see request.py) is safe to repeat.
            raise InputError(
                f"language {wanted!r} is not available for procedure {pid!r}: "
                f"expected one of: {available}"
            )
        file = files[(pid, "")]
    return _load_file(file, file.stat().st_mtime_ns)


def load_all(extra: Path | None = None) -> list[Procedure]:
    """Every procedure's template in the clinic's own language (translations not included)."""
    return [_load_file(f, f.stat().st_mtime_ns) for f in available_procedures(extra).values()]


def load_translations(extra: Path | None = None) -> list[Procedure]:
    """Every translated template (``ID.LANG.toml``), clinic's own folder first."""
    return [
        _load_file(f, f.stat().st_mtime_ns)
        for (_, language), f in sorted(available_templates(extra).items())
        if language
    ]


def language_name(language: str) -> str:
    """The English name of a language code, for messages: ``es`` -> ``Spanish``."""
    from babel import Locale, UnknownLocaleError

    try:
        return str(Locale.parse(language).get_display_name("en"))
    except (UnknownLocaleError, ValueError):
        return language


def draft_warning(procedure: Procedure) -> str | None:
    """Why this template is a draft (its sheets say so on every page), or None if approved."""
    if procedure.approved:
        return None
    if procedure.reviewed_by:
        why = (
            f"the review by {procedure.reviewed_by} was of version {procedure.reviewed_version}, "
            f"the wording is now version {procedure.version}"
        )
    else:
        why = "no clinician has approved its wording (reviewed_by is empty)"
    return (
        f"{procedure.path.name} is a draft: {why}; every page it prints says "
        '"Draft: not yet approved"'
    )


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
    current = _load_file(original, original.stat().st_mtime_ns)
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
    original = _load_file(original_path, original_path.stat().st_mtime_ns)
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


def read_template(file: Path) -> bytes:
    """A template file's bytes; a TemplateError, before reading, if it cannot be a template."""
    try:
        info = file.stat()
        if not stat.S_ISREG(info.st_mode):
            raise TemplateError(f"template {file.name} is not a regular file")
        if info.st_size > MAX_TEMPLATE_BYTES:
            raise TemplateError(_too_large(file))
        with file.open("rb") as handle:
            raw = handle.read(MAX_TEMPLATE_BYTES + 1)  # it may have grown since
    except OSError as exc:
        raise TemplateError(f"cannot read template {file}: {exc.strerror or exc}") from None
    if len(raw) > MAX_TEMPLATE_BYTES:
        raise TemplateError(_too_large(file))
    return raw


def _too_large(file: Path) -> str:
    return (
        f"template {file.name} is larger than {MAX_TEMPLATE_BYTES:,} bytes (a template is a few "
        "pages of text, about 8,000 bytes); split it, or check it is the right file"
    )


@cache
def _load_file(file: Path, _mtime: int) -> Procedure:
    raw = read_template(file)
    # Checked and compiled once per installation: the same file, the same program, the same
    # Procedure (see discharge/cache.py). The key holds everything the result depends on.
    key = (str(file), install_cache.file_digest(raw), _code_digest(), _jinja_version())
    cached = install_cache.fetch("procedure", key)
    if isinstance(cached, Procedure):
        return cached
    procedure = _parse_file(file, raw)
    install_cache.store("procedure", key, procedure)
    return procedure


def _code_digest() -> str:
    # The modules whose code shapes a checked Procedure and its compiled texts (by file: a
    # cold start with the procedure cached does not import Jinja2).
    here = Path(__file__).parent
    return install_cache.source_digest(
        __file__, str(here / "templating.py"), str(here / "milestones.py")
    )


def _jinja_version() -> str:
    # Its package's __init__ (which names its version), read rather than imported.
    import importlib.util

    spec = importlib.util.find_spec("jinja2")
    return install_cache.source_digest(spec.origin) if spec and spec.origin else ""


def _parse_file(file: Path, raw: bytes) -> Procedure:
    import tomllib  # only when the cache has no entry: the parsed result is cached

    try:
        # utf-8-sig: Windows Notepad starts a UTF-8 file with a byte order mark; allow it.
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise TemplateError(f"template {file.name} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"template {file.name} is not valid TOML: {exc}") from None
    except RecursionError:
        raise TemplateError(
            f"template {file.name} is not valid TOML: tables or lists nested too deeply"
        ) from None
    return _Parser(file).parse(data)


class _Parser:
    """Builds a Procedure, collecting every problem before raising one TemplateError."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.problems: list[str] = []
        self.variant_names: set[str] = set()
        self.deadline = clock.monotonic() + LOAD_SECONDS
        self.timed_out = ""

    def check_time(self) -> None:
        """Stop a template that takes longer than LOAD_SECONDS to check (every text is
        compiled, then rendered once per variant: each is bounded, their number is not)."""
        if clock.monotonic() > self.deadline:
            self.timed_out = (
                f"template {self.file.name}: checking it took longer than {LOAD_SECONDS:g} s "
                "(expected well under a second); it has too many or too long texts"
            )
            raise TemplateError(self.timed_out)

    def parse(self, data: dict[str, Any], *, placeholders: bool = True) -> Procedure:
        for key in data:
            if key not in _TOP_FIELDS:
                self.problems.append(f"{key}: not a known field")
        proc_id = self.string(data, "id")
        stem, file_language = template_key(self.file)
        if proc_id and not _ID.match(proc_id):
            self.problems.append("id: expected lowercase letters, digits and '-'")
        elif proc_id and proc_id != stem:
            self.problems.append(f"id: {proc_id!r} must match the file name {stem!r}")
        provenance = self.provenance(data, proc_id, file_language)
        variants = self.variants(data)
        default = self.default_variant(data, variants)
        milestones = tuple(
            self.milestone(m, i) for i, m in enumerate(self.table_list(data, "milestones"))
        )
        names: list[str | None] = [*sorted(self.variant_names)] or [None]
        for name in names:
            keys = [m.key for m in milestones if _applies(m.variants, name)]
            where = f" (variant {name})" if name else ""
            if not keys and milestones:
                self.problems.append(f"milestones: no timeline row is left{where}")
            for dup in sorted({k for k in keys if keys.count(k) > 1}):
                self.problems.append(f"milestones: key {dup!r} is used more than once{where}")
        sections = tuple(
            self.section(s, i) for i, s in enumerate(self.table_list(data, "sections"))
        )
        help_urgent, help_clinic = self.help(data)
        procedure = Procedure(
            id=proc_id,
            version=self.string(data, "version"),
            title=self.string(data, "title"),
            subtitle=self.string(data, "subtitle", required=False),
            reviewed=self.string(data, "reviewed", required=False),
            reviewed_version=self.string(data, "reviewed_version", required=False),
            sources=self.sources(data),
            intro=self.optional_text(data, "intro", "intro"),
            milestones=milestones,
            sections=sections,
            help_urgent=help_urgent,
            help_clinic=help_clinic,
            teach_back=self.teach_back(data),
            variants=variants,
            default_variant=default,
            path=self.file,
            **provenance,
        )
        if not self.problems:
            self.check_variants_complete(procedure)
        if self.problems:
            raise TemplateError(f"template {self.file.name}: " + "; ".join(self.problems))
        if placeholders:
            self.check_placeholders(procedure)
        return procedure

    # --- fields -------------------------------------------------------------------------

    def string(
        self, data: Mapping[str, Any], key: str, *, required: bool = True, field: str = ""
    ) -> str:
        value = data.get(key)
        if value is None and not required:
            return ""
        if not _nonblank(value):
            self.problems.append(f"{field or key}: expected non-empty text")
            return ""
        return str(value).strip()

    def table(self, data: Mapping[str, Any], key: str, field: str) -> dict[str, Any] | None:
        value = data.get(key)
        if not isinstance(value, dict):
            self.problems.append(f"{field}: expected a [{field}] table")
            return None
        return value

    def unknown(self, data: Mapping[str, Any], allowed: Iterable[str], field: str) -> None:
        allowed = set(allowed)
        for name in data:
            if name not in allowed:
                self.problems.append(f"{field}.{name}: not a known field")

    def table_list(self, data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
        value = data.get(key)
        if not (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
            self.problems.append(f"{key}: expected one or more [[{key}]] blocks")
            return []
        return value

    def text(self, data: Mapping[str, Any], key: str, field: str) -> Text:
        value = data.get(key)
        if not _nonblank(value):
            self.problems.append(f"{field}: expected non-empty text")
            value = ""
        return self.compile(str(value), field)

    def optional_text(self, data: Mapping[str, Any], key: str, field: str) -> Text | None:
        return None if data.get(key) is None else self.text(data, key, field)

    def compile(self, source: str, field: str) -> Text:
        from jinja2 import TemplateError as JinjaTemplateError

        from discharge import templating

        self.check_time()
        try:
            template, code = templating.compile_text(source.strip())
        except JinjaTemplateError as exc:
            self.problems.append(f"{field}: {exc}")
            template, code = templating.compile_text("")
        static = None
        if "{" not in source:  # nothing Jinja reads starts without "{": no placeholders
            with contextlib.suppress(TemplateError):
                static = templating.render(template, {})
        plan = _plan(source.strip()) if static is None else None
        text = Text(field, source.strip(), code, static, plan)
        text.__dict__["template"] = template  # made already (Text.template)
        return text

    def provenance(
        self, data: Mapping[str, Any], proc_id: str, file_language: str
    ) -> dict[str, str]:
        """A translation (``ID.LANG.toml``) names its language, the id and version it translates,
        and who reviewed it (``reviewed_by = ""`` until a qualified reviewer has)."""
        if not file_language:
            if "translates" in data:
                self.problems.append(
                    "translates: only a translation has this field (name the file ID.LANG.toml, "
                    "for example hsg.es.toml)"
                )
            language = data.get("language", "")
            if language and not (isinstance(language, str) and _LANGUAGE.match(language)):
                self.problems.append("language: expected a language code such as en or es")
            reviewed_by = data.get("reviewed_by", "")
            if not isinstance(reviewed_by, str):
                self.problems.append(
                    "reviewed_by: expected the name of the clinician who approved this wording "
                    '(reviewed_by = "" until one has)'
                )
                reviewed_by = ""
            return {
                "language": language if isinstance(language, str) else "",
                "reviewed_by": reviewed_by.strip(),
            }
        if not _LANGUAGE.match(file_language):
            self.problems.append(
                f"file name: {file_language!r} is not a language code (expected ID.LANG.toml, "
                "for example hsg.es.toml)"
            )
        if data.get("language") != file_language:
            self.problems.append(
                f"language: expected {file_language!r}, the language in the file name"
            )
        translates = data.get("translates")
        match = _TRANSLATES.match(translates) if isinstance(translates, str) else None
        if not match or match.group("id") != proc_id:
            self.problems.append(
                f"translates: expected the id and version of the template this translates, "
                f'such as "{proc_id or "hsg"} 1.2"'
            )
        reviewed_by = data.get("reviewed_by")
        if not isinstance(reviewed_by, str):
            self.problems.append(
                "reviewed_by: expected the name of the qualified reviewer of this translation "
                '(reviewed_by = "" until it has been reviewed)'
            )
            reviewed_by = ""
        return {
            "language": file_language,
            "translates": " ".join(translates.split()) if match and translates else "",
            "reviewed_by": reviewed_by.strip(),
        }

    def sources(self, data: Mapping[str, Any]) -> tuple[SourceSpec, ...]:
        value = data.get("sources")
        if not (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
            self.problems.append(
                "sources: expected one or more [[sources]] blocks, each with at least a title"
            )
            return ()
        out = []
        for i, source in enumerate(value):
            field = f"sources[{i}]"
            self.unknown(source, _SOURCE_FIELDS, field)
            fields = {
                name: self.string(source, name, required=name == "title", field=f"{field}.{name}")
                for name in _SOURCE_FIELDS
            }
            if fields["url"] and not fields["url"].startswith("https://"):
                self.problems.append(f"{field}.url: expected an address starting https://")
            out.append(SourceSpec(**fields))
        return tuple(out)

    def variants(self, data: Mapping[str, Any]) -> tuple[VariantSpec, ...]:
        value = data.get("variants")
        if value is None:
            return ()
        tables = isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())
        if not (tables and value):
            self.problems.append("variants: expected one or more [variants.NAME] tables")
            return ()
        out = []
        for name, spec in value.items():
            field = f"variants.{name}"
            if not _ID.match(name):
                self.problems.append(f"{field}: a variant name uses lowercase letters, digits, -")
            self.unknown(spec, _VARIANT_FIELDS, field)
            out.append(
                VariantSpec(
                    name=name,
                    label=self.string(spec, "label", field=f"{field}.label"),
                    date_label=self.string(
                        spec, "date_label", required=False, field=f"{field}.date_label"
                    ),
                    intro=self.optional_text(spec, "intro", f"{field}.intro"),
                )
            )
        self.variant_names = {v.name for v in out}
        return tuple(out)

    def default_variant(self, data: Mapping[str, Any], variants: tuple[VariantSpec, ...]) -> str:
        value = data.get("default_variant")
        if value is None:
            if len(variants) > 1:
                self.problems.append("default_variant: expected the name of one of the variants")
            return variants[0].name if variants else ""
        name = self.string(data, "default_variant")
        if name and name not in self.variant_names:
            known = ", ".join(sorted(self.variant_names)) or "none are declared"
            self.problems.append(f"default_variant: {name!r} is not a variant ({known})")
        return name

    def only_for(self, data: Mapping[str, Any], field: str) -> Variants:
        """An entry's optional `variants = [...]`: the variants it is printed for."""
        if "variants" not in data:
            return None
        value = data["variants"]
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            self.problems.append(f"{field}.variants: expected a list of variant names")
            return None
        for name in value:
            if name not in self.variant_names:
                known = ", ".join(sorted(self.variant_names)) or "none are declared"
                self.problems.append(f"{field}.variants: {name!r} is not a variant ({known})")
        return frozenset(value)

    def items(self, data: Mapping[str, Any], key: str, field: str, what: str) -> tuple[Item, ...]:
        """A list of texts; each may instead be a table {text = "...", variants = [...]}."""
        value = data.get(key)
        if not (isinstance(value, list) and value):
            self.problems.append(f"{field}.{key}: expected a list of at least one {what}")
            return ()
        out = []
        for i, entry in enumerate(value):
            where = f"{field}.{key}[{i}]"
            if isinstance(entry, dict):
                self.unknown(entry, ("text", "variants"), where)
                out.append(Item(self.text(entry, "text", where), self.only_for(entry, where)))
            elif _nonblank(entry):
                out.append(Item(self.compile(entry, where)))
            else:
                self.problems.append(f"{where}: expected non-empty text")
        return tuple(out)

    def help(self, data: Mapping[str, Any]) -> tuple[HelpLevelSpec, HelpLevelSpec]:
        help_ = data.get("help")
        levels = ("urgent", "clinic")
        if not (isinstance(help_, dict) and all(isinstance(help_.get(k), dict) for k in levels)):
            self.problems.append(
                "help: expected two tables, [help.urgent] (call the emergency number now) and "
                "[help.clinic] (call the clinic), each with a heading and signs"
            )
            help_ = {k: {} for k in levels}
        self.unknown(help_, levels, "help")
        out = []
        for level in levels:
            field = f"help.{level}"
            spec = help_[level]
            self.unknown(spec, ("heading", "intro", "signs"), field)
            out.append(
                HelpLevelSpec(
                    heading=self.text(spec, "heading", f"{field}.heading"),
                    intro=self.optional_text(spec, "intro", f"{field}.intro"),
                    signs=self.items(spec, "signs", field, "warning sign"),
                )
            )
        return out[0], out[1]

    def teach_back(self, data: Mapping[str, Any]) -> TeachBackSpec | None:
        if "teach_back" not in data:
            return None
        spec = self.table(data, "teach_back", "teach_back")
        if spec is None:
            return None
        self.unknown(spec, ("heading", "intro", "questions"), "teach_back")
        questions = self.items(spec, "questions", "teach_back", "question")
        if len(questions) > _MAX_QUESTIONS:
            self.problems.append(f"teach_back.questions: at most {_MAX_QUESTIONS} questions")
        return TeachBackSpec(
            heading=self.text(spec, "heading", "teach_back.heading"),
            intro=self.optional_text(spec, "intro", "teach_back.intro"),
            questions=questions,
        )

    def section(self, data: dict[str, Any], index: int) -> SectionSpec:
        field = f"sections[{index}]"
        self.unknown(data, ("heading", "body", "variants"), field)
        return SectionSpec(
            self.text(data, "heading", f"{field}.heading"),
            self.text(data, "body", f"{field}.body"),
            self.only_for(data, field),
        )

    def milestone(self, data: dict[str, Any], index: int) -> MilestoneSpec:
        field = f"milestones[{index}]"
        self.unknown(data, ("key", "start", "end", "label", "variants"), field)
        key = data.get("key")
        if not (isinstance(key, str) and _KEY.match(key)):
            self.problems.append(f"{field}.key: expected a short lowercase name like sex or period")
            key = f"_{index}"
        start = self.offset(data.get("start"), f"{field}.start")
        end = self.offset(data["end"], f"{field}.end") if "end" in data else None
        if start and end and _rough_hours(end) <= _rough_hours(start):
            self.problems.append(f"{field}.end: must be later than start ({start})")
        label = self.text(data, "label", f"{field}.label")
        variants = self.only_for(data, field)
        return MilestoneSpec(key, start or Offset(0, "d"), end, label, variants)

    def offset(self, value: Any, field: str) -> Offset | None:
        try:
            return parse_offset(value)
        except ValueError as exc:
            self.problems.append(f"{field}: {exc}")
            return None

    # --- whole-template checks ----------------------------------------------------------

    def check_variants_complete(self, procedure: Procedure) -> None:
        """Every variant keeps at least one urgent sign, one clinic sign and one question."""
        for spec in procedure.variants or (None,):
            name = spec.name if spec else None
            where = f" for variant {name}" if name else ""
            for field, items in (
                ("help.urgent.signs", procedure.help_urgent.signs),
                ("help.clinic.signs", procedure.help_clinic.signs),
                *(
                    [("teach_back.questions", procedure.teach_back.questions)]
                    if procedure.teach_back
                    else []
                ),
            ):
                if items and not items_for(items, name):
                    self.problems.append(f"{field}: none is left{where}")

    def check_placeholders(self, procedure: Procedure) -> None:
        """Render every text once per variant with sample values, so a typo fails at load."""
        for spec in procedure.variants or (None,):
            name = spec.name if spec else None
            context = template_context(procedure, date(2026, 1, 1), None, Clinic(), name).values
            for text in _texts(procedure, name):
                self.check_time()
                procedure.render(text, context)


@dataclass(frozen=True, eq=False, repr=False)
class DatedMilestone:
    spec: MilestoneSpec
    start: date | datetime  # a datetime (aware, clinic time zone) only for hour offsets + time
    end: date | datetime | None
    start_text: str  # as printed: "Monday 23 November 2026" (or "... at 10:30")
    end_text: str  # "" without an end


@dataclass(frozen=True, eq=False, repr=False)
class TemplateContext:
    """What a template's placeholders see, and the milestones' dates it was made from."""

    values: dict[str, Any]
    milestones: tuple[DatedMilestone, ...]


def template_context(
    procedure: Procedure,
    day: date,
    at: time | None,
    clinic: Clinic,
    variant: str | None = None,
    locale: str | None = None,
) -> TemplateContext:
    """The placeholders of ``templates/README.md`` for one procedure date and variant, in the
    document's locale (default: the clinic's)."""
    locale = locale or clinic.locale
    joiner = gettext(language_of(locale), RANGE)
    dated: list[DatedMilestone] = []
    for spec in procedure.milestones_for(variant):
        try:
            start = apply_offset(day, at, clinic.tz, spec.start)
            end = apply_offset(day, at, clinic.tz, spec.end) if spec.end else None
        except (OverflowError, ValueError):
            raise InputError(
                f"date: the {procedure.id} timeline runs past the year 9999 "
                "(expected the date of a procedure, such as today's)"
            ) from None
        end_text = format_moment(end, locale) if end is not None else ""
        dated.append(DatedMilestone(spec, start, end, format_moment(start, locale), end_text))
    values = {
        "m": {
            d.spec.key: {
                "start": d.start_text,
                "end": d.end_text,
                "when": joiner.format(start=d.start_text, end=d.end_text)
                if d.end_text
                else d.start_text,
            }
            for d in dated
        },
        "procedure_date": format_day(day, locale),
        "locale": locale,
        "variant": variant or "",
        "clinic": {
            "name": clinic.name,
            "phone": clinic.phone,
            "after_hours_phone": clinic.after_hours_phone,
            "emergency_number": clinic.emergency_number,
        },
    }
    return TemplateContext(values, tuple(dated))


def _texts(procedure: Procedure, variant: str | None) -> Iterable[Text]:
    chosen = next((v for v in procedure.variants if v.name == variant), None)
    intro = chosen.intro if chosen and chosen.intro else procedure.intro
    if intro:
        yield intro
    for m in procedure.milestones_for(variant):
        yield m.label
    for s in procedure.sections_for(variant):
        yield s.heading
        yield s.body
    for level in (procedure.help_urgent, procedure.help_clinic):
        yield level.heading
        if level.intro:
            yield level.intro
        yield from items_for(level.signs, variant)
    if procedure.teach_back:
        yield procedure.teach_back.heading
        if procedure.teach_back.intro:
            yield procedure.teach_back.intro
        yield from items_for(procedure.teach_back.questions, variant)


def _nonblank(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _rough_hours(offset: Offset) -> float:
    return offset.amount * {"h": 1, "d": 24, "w": 168, "m": 730}[offset.unit]


# --- template governance (`discharge templates check`) -----------------------------------


def parse_template_file(file: Path) -> tuple[Procedure | None, dict[str, Any], list[str]]:
    """Load one template file without stopping at the first problem.

    Returns the procedure (None if it cannot be built), its raw TOML data, and every problem
    as "field: what is wrong". Placeholders are not rendered here: ``text_problems`` does that
    for every text, so each bad placeholder is reported, not only the first.
    """
    import tomllib

    try:
        data = tomllib.loads(read_template(file).decode("utf-8-sig"))
    except UnicodeDecodeError:
        return None, {}, ["(file): is not UTF-8 text"]
    except TemplateError as exc:
        return None, {}, [f"(file): {exc}"]
    except tomllib.TOMLDecodeError as exc:
        return None, {}, [f"(file): is not valid TOML: {exc}"]
    except RecursionError:
        return None, {}, ["(file): is not valid TOML: tables or lists nested too deeply"]
    parser = _Parser(file)
    try:
        return parser.parse(data, placeholders=False), data, []
    except TemplateError as exc:
        if parser.timed_out:
            return None, data, [f"(file): {parser.timed_out}"]
        return None, data, parser.problems or [str(exc)]


def text_problems(procedure: Procedure, variant: str | None) -> list[str]:
    """Every text of one variant rendered with sample values: "field: what is wrong" each."""
    context = template_context(procedure, date(2026, 1, 1), None, Clinic(), variant).values
    problems = []
    from discharge import templating

    for text in _texts(procedure, variant):
        try:
            templating.render(text.template, context)
        except TemplateError as exc:
            problems.append(f"{text.field}: bad placeholder or expression ({exc})")
    return problems
