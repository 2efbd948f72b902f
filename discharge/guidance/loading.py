"""Finding and loading procedure templates: the clinic's own folder first, then the bundled
one; each file read once (a batch asks thousands of times), checked and compiled once per
installation (``discharge/cache.py``), and refused before it is read if it cannot be one.
"""

from __future__ import annotations

import stat
from functools import cache
from pathlib import Path
from typing import Any

from discharge import cache as install_cache
from discharge.errors import InputError, TemplateError, UnknownProcedureError
from discharge.guidance.model import Procedure, template_key
from discharge.resources import bundled_dir

# A template is a few pages of text (the bundled ones are about 8,000 bytes). Larger is refused
# before it is read: a 3 GB one ran out of memory (checking has a time budget too, parser.py).
MAX_TEMPLATE_BYTES = 1_000_000


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
    return load_file(file)


def load_all(extra: Path | None = None) -> list[Procedure]:
    """Every procedure's template in the clinic's own language (translations not included)."""
    return [load_file(f) for f in available_procedures(extra).values()]


def load_translations(extra: Path | None = None) -> list[Procedure]:
    """Every translated template (``ID.LANG.toml``), clinic's own folder first."""
    return [
        load_file(f) for (_, language), f in sorted(available_templates(extra).items()) if language
    ]


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


def load_file(file: Path) -> Procedure:
    """The procedure a template file holds, checked (a TemplateError names what is wrong)."""
    return _load_file(file, file.stat().st_mtime_ns)


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
    shaping = ("parser.py", "model.py", "context.py", "filling.py", "sandbox.py")
    return install_cache.source_digest(
        *(str(here / name) for name in shaping), str(here.parent / "milestones.py")
    )


def _jinja_version() -> str:
    # Its package's __init__ (which names its version), read rather than imported.
    import importlib.util

    spec = importlib.util.find_spec("jinja2")
    return install_cache.source_digest(spec.origin) if spec and spec.origin else ""


def _parse_file(file: Path, raw: bytes) -> Procedure:
    import tomllib  # only when the cache has no entry: the parsed result is cached

    from discharge.guidance.parser import Parser

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
    return Parser(file).parse(data)


# --- template governance (`discharge templates check`) -----------------------------------


def parse_template_file(file: Path) -> tuple[Procedure | None, dict[str, Any], list[str]]:
    """Load one template file without stopping at the first problem.

    Returns the procedure (None if it cannot be built), its raw TOML data, and every problem
    as "field: what is wrong". Placeholders are not rendered here: ``text_problems`` does that
    for every text, so each bad placeholder is reported, not only the first.
    """
    import tomllib

    from discharge.guidance.parser import Parser

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
    parser = Parser(file)
    try:
        return parser.parse(data, placeholders=False), data, []
    except TemplateError as exc:
        if parser.timed_out:
            return None, data, [f"(file): {parser.timed_out}"]
        return None, data, parser.problems or [str(exc)]
