"""One schema for the clinic's settings file: each section declares its keys, and every problem
in the file is reported at once, one line each, in file order (mkdocs' config pattern).

A section is a frozen dataclass; each field names its key's kind (the type, range and what is
expected), its default, and whether the file must give it. The package that uses a section
declares it beside its code, e.g. ``discharge/printing/settings.py``::

    @dataclass(frozen=True)
    class PrintSettings(Section):
        NAME: ClassVar[str] = "print"
        printers: tuple[str, ...] = setting(ListOf(PRINTER), key="printer", default=())
        timeout: float = setting(Number(above=0, most=3600), default=120.0)

**To add a key**, add one such field (a kind below, or ``Check(function)`` for a rule of its
own). **To add a section**, declare its class like this and add its name and class to
``SECTIONS`` in ``discharge/config.py``: ``load_config`` then checks it with the rest of the
file (importing its module only when the file has the section), and ``config.section(Class)``
gives the checked record. Rules between keys go in the class's ``relations`` method; keys
named by a rule rather than one by one (``url_es``, ``url_fr``) are a ``Pattern`` in its
``PATTERNS``. An array of tables (``[[resources]]``) is one such class checked per table.

A problem reads ``settings.toml: [section] key: problem``; an unknown key names the keys the
section knows (and the nearest one, for a typing slip).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

S = TypeVar("S", bound="Section")


class Invalid(Exception):
    """A value's problem, in the words that follow ``[section] key: `` (``must be ...``)."""


@dataclass(frozen=True)
class Where:
    """The settings file being checked: paths in it are relative to its folder."""

    source: Path | None = None

    def path(self, text: str) -> Path:
        path = Path(text).expanduser()
        if not path.is_absolute() and self.source is not None:
            path = self.source.parent / path  # relative to the settings file, not the cwd
        return path.absolute()  # as meant here, whatever folder a process is in later


# --- the kinds of value ----------------------------------------------------------------------


class Kind:
    """What one key holds: ``check`` returns the value as the program uses it, or raises
    Invalid with ``problem`` (or a more precise one)."""

    problem = "is not valid"

    def check(self, value: Any, where: Where) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Text(Kind):
    """Text in quotes; ``empty`` allows "", ``one_line`` refuses line breaks and control
    codes, ``pattern`` is a rule the (stripped) text must match."""

    empty: bool = True
    strip: bool = False
    lower: bool = False  # kept in lower case (a name compared without regard to case)
    one_line: bool = False
    pattern: str | None = None
    problem: str = "must be text in quotes"

    def check(self, value: Any, where: Where) -> str:
        if not isinstance(value, str) or (not self.empty and not value.strip()):
            raise Invalid(self.problem)
        if self.one_line and any(_is_control(char) for char in value):
            # A line break in a header value would start a new header (header injection).
            raise Invalid("must be one line, without line breaks or control codes")
        text = value.strip() if self.strip else value
        if self.pattern is not None and not re.fullmatch(self.pattern, text):
            raise Invalid(self.problem)
        return text.lower() if self.lower else text


@dataclass(frozen=True)
class Whole(Kind):
    """A whole number from ``least`` to ``most`` (TOML's true/false are not numbers here)."""

    least: int | None = None
    most: int | None = None
    problem: str = "must be a whole number"

    def check(self, value: Any, where: Where) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(self.problem)
        if (self.least is not None and value < self.least) or (
            self.most is not None and value > self.most
        ):
            raise Invalid(self.problem)
        return value


@dataclass(frozen=True)
class Number(Kind):
    """A number (whole or not) at least ``least`` (or more than ``above``) and at most
    ``most``; ``range_problem`` when its type is right but it is out of range."""

    least: float | None = None
    above: float | None = None
    most: float | None = None
    problem: str = "must be a number"
    range_problem: str | None = None

    def check(self, value: Any, where: Where) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(self.problem)
        if (
            (self.least is not None and value < self.least)
            or (self.above is not None and not value > self.above)
            or (self.most is not None and value > self.most)
        ):
            raise Invalid(self.range_problem or self.problem)
        return float(value)


@dataclass(frozen=True)
class Flag(Kind):
    problem: str = "must be true or false (without quotes)"

    def check(self, value: Any, where: Where) -> bool:
        if not isinstance(value, bool):
            raise Invalid(self.problem)
        return value


@dataclass(frozen=True)
class Choice(Kind):
    """One of ``options``, as text."""

    options: tuple[str, ...] = ()

    def check(self, value: Any, where: Where) -> str:
        if value not in self.options:
            expected = " or ".join((", ".join(self.options[:-1]), self.options[-1]))
            raise Invalid(f"is {value!r}, expected {expected}")
        return str(value)


@dataclass(frozen=True)
class ListOf(Kind):
    """A list of ``item``s (kept in order, each once); ``single`` also takes one bare item."""

    item: Kind = field(default_factory=Text)
    single: bool = False
    problem: str = "must be a list"

    def check(self, value: Any, where: Where) -> tuple[Any, ...]:
        items = [value] if self.single and not isinstance(value, list) else value
        if not isinstance(items, list):
            raise Invalid(self.problem)
        try:
            return tuple(dict.fromkeys(self.item.check(item, where) for item in items))
        except Invalid:
            raise Invalid(self.problem) from None


@dataclass(frozen=True)
class EnvName(Kind):
    """The NAME of an environment variable (a secret's home; the secret is never in the file).
    ``capitals``: "hunter2" is far more likely a password typed in the wrong place than a
    variable's name, and it must then not be repeated anywhere."""

    capitals: bool = False
    problem: str = "must be the name of an environment variable"

    def check(self, value: Any, where: Where) -> str:
        rule = r"[A-Z_][A-Z0-9_]*" if self.capitals else r"[A-Za-z_][A-Za-z0-9_]*"
        if not isinstance(value, str) or not re.fullmatch(rule, value.strip()):
            raise Invalid(self.problem)
        return value.strip()


@dataclass(frozen=True)
class FilePath(Kind):
    """A path, relative to the settings file; ``must`` "file" or "dir" exist as one, ``what``
    names it in words ("a folder of templates")."""

    what: str = "a file"
    must: str | None = None

    def check(self, value: Any, where: Where) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise Invalid(f"must be the path of {self.what}")
        path = where.path(value)
        if self.must == "file" and not path.is_file() or self.must == "dir" and not path.is_dir():
            raise Invalid(f"{path} is not {self.what}")
        return path


@dataclass(frozen=True)
class Check(Kind):
    """A rule of the section's own: ``function(value, where)`` returns the value to use or
    raises Invalid (or ValueError, reported as ``problem``)."""

    function: Callable[[Any, Where], Any] = lambda value, where: value
    problem: str = "is not valid"

    def check(self, value: Any, where: Where) -> Any:
        try:
            return self.function(value, where)
        except (ValueError, TypeError):
            raise Invalid(self.problem) from None


def _is_control(char: str) -> bool:
    import unicodedata

    return unicodedata.category(char) in ("Cc", "Zl", "Zp")


# --- declaring a section -----------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    kind: Kind
    key: str | None = None  # the key in the file, when not the field's name
    required: str | None = None  # the problem when the file's section lacks it (None: optional)
    absent: Any = None  # with has_absent: the value when the file's section lacks it, if not the
    # default (the default is for no section at all: the demo clinic's)
    has_absent: bool = False


def setting(
    kind: Kind,
    *,
    default: Any = dataclasses.MISSING,
    key: str | None = None,
    required: str | bool = False,
    absent: Any = dataclasses.MISSING,
) -> Any:
    """A field of a section: its kind, its default, and whether the file must give it."""
    needed = ("is required" if required is True else required) or None
    unset = absent is dataclasses.MISSING
    meta = {"setting": Setting(kind, key, needed, None if unset else absent, not unset)}
    if default is dataclasses.MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Pattern:
    """Keys named by a rule rather than one by one (``url_es``, ``url_fr``): each is checked as
    ``kind`` and kept, in file order, in the section's field ``into`` as (what the rule's group
    matched, the value) pairs, e.g. ``(("es", "https://..."),)``."""

    rule: str  # a regular expression with one group, matched against the whole key
    shown: str  # how messages name these keys: "url_LANG"
    into: str  # the section's field (a plain field, not a setting) that holds them
    kind: Kind


class Section:
    """A section of the settings file; subclasses are frozen dataclasses of ``setting`` fields."""

    NAME: ClassVar[str]
    # Keys refused with a reason rather than as unknown: {"password": "use password_env"}.
    UNSUPPORTED: ClassVar[Mapping[str, str]] = {}
    # Keys named by a rule (``url_LANG``), besides the declared ones.
    PATTERNS: ClassVar[tuple[Pattern, ...]] = ()

    @classmethod
    def relations(cls, values: Mapping[str, Any], where: Where) -> Iterator[tuple[str, str]]:
        """Rules between keys: (key, problem) pairs, key "" for the section. ``values`` maps
        each field's name to its checked value, or its default when not given (a key whose value
        is wrong is left out: its problem is already named)."""
        return iter(())


def declared(section: type[Section]) -> dict[str, dataclasses.Field[Any]]:
    """The section's keys in the file, and their fields (a field without ``setting`` is not
    a key, e.g. the clinic's resources, which come from ``[[resources]]``)."""
    return {
        f.metadata["setting"].key or f.name: f
        for f in dataclasses.fields(section)  # type: ignore[arg-type]
        if "setting" in f.metadata
    }


@dataclass
class Problems:
    """Every problem found in one settings file, in file order."""

    source: Path | None = None
    found: list[tuple[str, str | None, str]] = field(default_factory=list)

    def add(self, section: str, key: str | None, problem: str) -> None:
        self.found.append((section, key, problem))

    def lines(self) -> list[str]:
        where = str(self.source) if self.source else "config"
        return [
            f"{where}: {section} {key}: {problem}" if key else f"{where}: {section} {problem}"
            for section, key, problem in self.found
        ]

    def __bool__(self) -> bool:
        return bool(self.found)


def check_section(
    section: type[S], raw: Any, where: Where, problems: Problems, label: str | None = None
) -> S | None:
    """The checked record of one section of the file, or None with its problems added.

    ``label``: how problems name the section, when not ``[NAME]`` (one table of an array of
    tables: ``[[resources]] #2``).
    """
    label = label or f"[{section.NAME}]"
    if not isinstance(raw, dict):
        problems.add(label, None, "must be a table of settings")
        return None
    fields = declared(section)
    before = len(problems.found)
    values: dict[str, Any] = {}
    patterned: dict[str, list[tuple[str, Any]]] = {p.into: [] for p in section.PATTERNS}
    for key, value in raw.items():  # in file order
        if key in section.UNSUPPORTED:
            problems.add(label, key, f"is not supported ({section.UNSUPPORTED[key]})")
        elif key in fields:
            try:
                values[fields[key].name] = fields[key].metadata["setting"].kind.check(value, where)
            except Invalid as exc:
                problems.add(label, key, str(exc))
        elif (match := _matching_pattern(section, key)) is not None:
            pattern, part = match
            try:
                patterned[pattern.into].append((part, pattern.kind.check(value, where)))
            except Invalid as exc:
                problems.add(label, key, str(exc))
        else:
            shown = [*fields, *(p.shown for p in section.PATTERNS)]
            problems.add(label, key, unknown_key(key, shown))
    values.update({into: tuple(pairs) for into, pairs in patterned.items() if pairs})
    for key, f in fields.items():
        wanted: Setting = f.metadata["setting"]
        if key in raw:
            continue
        if wanted.required is not None:
            problems.add(label, key, wanted.required)
        elif wanted.has_absent:
            values[f.name] = wanted.absent
    # Rules between keys see every valid key (a default for the others), so a file's problems
    # are all found at once; the record is made only when there are none.
    wrong = {fields[key].name for key in raw if key in fields} - values.keys()
    seen = {
        f.name: f.default
        for f in fields.values()
        if f.default is not dataclasses.MISSING and f.name not in wrong
    } | values
    for key, problem in section.relations(seen, where):
        problems.add(label, key, problem)
    if len(problems.found) > before:
        return None
    return section(**values)


def _matching_pattern(section: type[Section], key: str) -> tuple[Pattern, str] | None:
    """The section's pattern this key matches, and what the pattern's group matched."""
    for pattern in section.PATTERNS:
        if found := re.fullmatch(pattern.rule, key):
            return pattern, found.group(1)
    return None


def unknown_key(key: str, known: Iterable[str]) -> str:
    """``is not a known setting (expected one of: ...)``, with the nearest key for a slip."""
    import difflib  # only for a mistake

    known = list(known)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"is not a known setting{hint} (expected one of: {', '.join(known)})"
