"""The one template filler: every clinic-written text is filled here, a procedure's and an
email's alike (``fill``).

Most of a procedure's texts have no placeholders, or only simple ones (a value, a choice on
the variant, a temperature): those are filled without Jinja2 (importing it is an eighth of a
cold start), from what the parser worked out when the template was loaded (``Text.static``,
``Text.plan``). Anything else, and every email text, is rendered in the sandboxed Jinja2
environment of ``sandbox.py``, where an unknown placeholder is an error.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from discharge.dates import temperature

if TYPE_CHECKING:
    from jinja2 import Template


# Built, read and cached, never compared or printed: eq=False and repr=False spare every start
# the methods a dataclass would generate for that (see model.py).
@dataclass(frozen=True, eq=False, repr=False)
class Text:
    """One piece of template text, compiled once. Most texts have no placeholders: their
    rendering (``static``) is kept with them, and such a text's Jinja template is only made
    if something asks for it (a template check); the others make it on first use."""

    field: str  # e.g. "sections[2].body", for error messages
    source: str
    code: bytes  # compiled (marshal bytes, see sandbox.compile_text)
    static: str | None = None  # the rendering of a text with no placeholders, else None
    plan: tuple[Any, ...] | None = None  # see plan(): a text with only simple placeholders

    @functools.cached_property
    def template(self) -> Template:
        from discharge.guidance import sandbox

        return sandbox.template_from_code(self.code)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (for the cache) as its compiled code: a template object holds the environment.
        return Text, (self.field, self.source, self.code, self.static, self.plan)


def fill(text: Text | Template, context: Mapping[str, Any]) -> str:
    """``text`` filled from ``context``: a procedure's Text (by the quickest way that gives
    Jinja2's result), or a Jinja2 template made in the sandbox (an email's text). Any failure
    is a TemplateError with a one-line reason, which the caller prefixes with where the text
    is (the file and field)."""
    if isinstance(text, Text):
        if text.static is not None:  # no placeholders: the same for every patient
            return text.static
        if text.plan is not None and (filled := _fill_plan(text.plan, context)) is not None:
            return filled
        text = text.template
    from discharge.guidance import sandbox

    return sandbox.render(text, context)


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


def plan(source: str) -> tuple[Any, ...] | None:
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


def _fill_plan(plan: tuple[Any, ...], context: Mapping[str, Any]) -> str | None:
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
            filled = _fill_plan(then if chosen == wanted else otherwise, context)
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
