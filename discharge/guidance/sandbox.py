"""The one sandboxed Jinja2 environment for every clinic-written text.

Procedure templates and the ``[email]`` texts are written by clinic staff, not programmers, and
are rendered for every patient. So a mistake must be found when the text is loaded, and no text
can hang the program or exhaust its memory, whatever it says:

- the sandbox (no attribute access to Python internals, no mutation of lists and dicts);
- an unknown placeholder is an error (``StrictUndefined``), never an empty string;
- no ``{% include %}``, ``{% import %}``, ``{% extends %}`` (a text is self-contained) and no
  ``recursive`` loops;
- hard limits on one rendering: loop iterations and calls (``MAX_STEPS``), the length of any
  string or list and of the output (``MAX_OUTPUT``), ``range`` (``MAX_RANGE``) and the size of
  numbers (``MAX_INT_BITS``). A text that goes past one stops with a ``TemplateLimitError``.

``render`` turns every failure, including Python errors such as a division by zero, into one
``discharge.errors.TemplateError`` whose message the caller prefixes with the file and field.
Texts are filled through ``filling.fill``, which calls it for whatever needs Jinja2.
"""

from __future__ import annotations

import contextvars
import functools
import marshal
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, nodes, pass_context
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.exceptions import SecurityError, TemplateRuntimeError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from discharge.dates import temperature
from discharge.errors import TemplateError

MAX_STEPS = 10_000  # loop iterations plus calls, in one rendering
MAX_OUTPUT = 100_000  # characters of output, and of any string or list made on the way
MAX_RANGE = 10_000  # items in one range()
MAX_INT_BITS = 1_024  # a number larger than this is not a date, dose or phone number
_FORBIDDEN = {
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from ... import",
    nodes.Extends: "extends",
}
_COUNTED = "_discharge_counted"
# A numeric width in a format string ("{:>1000000000}", "%1000000000d") builds a huge string.
_WIDE_FORMAT = re.compile(r"(\{[^{}]*:[^{}]*\d{6,}|%[-+ #0]*\d{6,})")


class TemplateLimitError(SecurityError):
    """A text went past one of the rendering limits."""


class _Budget:
    def __init__(self) -> None:
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateLimitError(
                f"the text runs loops or calls more than {MAX_STEPS:,} times (a loop inside a "
                "loop, or a macro that calls itself?)"
            )


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("budget", default=None)


def _step() -> None:
    budget = _budget.get()
    if budget is None:  # rendered outside LimitedTemplate.render: count from here on
        budget = _Budget()
        _budget.set(budget)
    budget.step()


def _too_long() -> TemplateLimitError:
    return TemplateLimitError(f"the text makes a value longer than {MAX_OUTPUT:,} characters")


def _printed_size(value: Any) -> int:
    """Roughly how long ``value`` is when printed, counted only up to just past MAX_OUTPUT.

    A list can hold the same long string many times over (``["y" * 90000] * 1000``): short
    by ``len``, yet 90 million characters once joined or printed. Counting what it holds
    stops it being made at all, so no join, filter or print of it can build that string.
    """
    total, stack = 0, [value]
    while stack and total <= MAX_OUTPUT:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2  # the quotes of a string printed inside a list
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 2
        else:
            total += 24  # a float, None, a date: a short word
    return total


def _check_size(value: Any) -> Any:
    if isinstance(value, str | list | tuple | dict | set | frozenset) and len(value) > MAX_OUTPUT:
        raise _too_long()
    if isinstance(value, list | tuple | dict | set | frozenset) and _printed_size(value) > (
        MAX_OUTPUT
    ):
        raise _too_long()
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimitError("the text makes a number too large to print")
    return value


def _check_result(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Before a string operation runs: the length of what it would make, if it can grow.

    ``replace``, ``join``, ``format``, ``indent``, ``wordwrap`` and ``expandtabs`` make a
    string that can be many times longer than any of their arguments (one ``replace`` of a
    90,000-character text made 8 GB): the result's length is worked out from the arguments
    first, so it is never built. ``args`` start with the string (or list) worked on.
    """
    if not args:
        return
    subject, rest = args[0], args[1:]
    size = 0
    if name == "replace" and isinstance(subject, str) and len(rest) >= 2:
        old, new = str(rest[0]), str(rest[1])
        count = rest[2] if len(rest) > 2 else kwargs.get("count", -1)
        times = subject.count(old) if old else len(subject) + 1
        if isinstance(count, int) and 0 <= count < times:
            times = count
        size = len(subject) + max(0, len(new) - len(old)) * times
    elif name == "join" and not isinstance(subject, str):
        between = rest[0] if rest else kwargs.get("d", "")
        items = list(subject) if isinstance(subject, Iterable) else []
        size = _printed_size(items) + len(str(between)) * len(items)
    elif name in ("format", "format_map", "%") and isinstance(subject, str):
        values = [*rest, *kwargs.values()]
        fields = subject.count("{") + subject.count("%")
        size = len(subject) + fields * max((_printed_size(v) for v in values), default=0)
    elif name == "indent" and isinstance(subject, str):
        width = rest[0] if rest else kwargs.get("width", 4)
        width = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        size = len(subject) + (subject.count("\n") + 1) * width
    elif name == "wordwrap" and isinstance(subject, str):
        wrap = rest[2] if len(rest) > 2 else kwargs.get("wrapstring") or "\n"
        size = len(subject) * (1 + len(str(wrap)))
    elif name == "expandtabs" and isinstance(subject, str):
        tab = rest[0] if rest else kwargs.get("tabsize", 8)
        size = len(subject) + subject.count("\t") * (tab if isinstance(tab, int) else 8)
    if size > MAX_OUTPUT:
        raise _too_long()


def _check_args(args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        _check_size(value)
        # A count or a width ("x"|center(10**9), "x".ljust(10**9)) would build a huge string.
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_OUTPUT:
            raise TemplateLimitError(f"the number {value} is larger than any text needs")


def _counted(iterable: Any) -> Iterator[Any]:
    for item in iterable:
        _step()
        yield item


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateLimitError(f"range() of more than {MAX_RANGE:,} numbers")
    return numbers


class _Namespace(Namespace):
    def __setitem__(self, name: str, value: Any) -> None:
        Namespace.__setitem__(self, name, _check_size(value))


def _concat(parts: Iterable[str]) -> str:
    parts = list(parts)
    if sum(map(len, parts)) > MAX_OUTPUT:
        raise TemplateLimitError(f"the text is longer than {MAX_OUTPUT:,} characters")
    return "".join(parts)


def _limited_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    # The filtered value comes first, after the context or environment if the filter asks for
    # one; only the arguments after it are counts and widths.
    skip = 2 if getattr(function, "jinja_pass_arg", None) else 1

    name = function.__name__.removeprefix("do_")

    @functools.wraps(function)  # keeps jinja's pass_context / pass_environment marks
    def limited(*args: Any, **kwargs: Any) -> Any:
        _check_args(args[skip:], kwargs)
        _check_result(name, args[skip - 1 :], kwargs)
        return _check_size(function(*args, **kwargs))

    return limited


class LimitedTemplate(Template):
    """A template whose every rendering runs under a fresh budget, streamed and bounded."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        token = _budget.set(_Budget())
        try:
            context = self.new_context(dict(*args, **kwargs))
            parts: list[str] = []
            size = 0
            for part in self.root_render_func(context):
                size += len(part)
                if size > MAX_OUTPUT:
                    raise TemplateLimitError(f"the text is longer than {MAX_OUTPUT:,} characters")
                parts.append(part)
            return "".join(parts)
        except Exception:
            self.environment.handle_exception()
        finally:
            _budget.reset(token)


class LimitedEnvironment(ImmutableSandboxedEnvironment):
    """Sandboxed, strict Jinja2 with the limits in the module docstring."""

    intercepted_binops = frozenset({"+", "*", "**", "%", "//", "/", "-"})
    template_class = LimitedTemplate

    def __init__(self, *, html: bool = False, keep_trailing_newline: bool = False) -> None:
        super().__init__(
            undefined=StrictUndefined, autoescape=html, keep_trailing_newline=keep_trailing_newline
        )
        self.globals["range"] = _range
        self.globals["namespace"] = _Namespace
        self.globals[_COUNTED] = _counted
        self.filters = {name: _limited_filter(f) for name, f in self.filters.items()}
        self.filters["temp"] = _limited_filter(_temp)
        self.concat = _concat  # type: ignore[method-assign]  # macro and {% set %} block bodies

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for kind, word in _FORBIDDEN.items():
            for node in tree.find_all(kind):
                raise TemplateSyntaxError(
                    f"{{% {word} %}} is not allowed: each text must be complete in itself",
                    node.lineno, name, filename,
                )  # fmt: skip
        for loop in tree.find_all(nodes.For):
            if loop.recursive:
                raise TemplateSyntaxError(
                    "recursive loops are not allowed", loop.lineno, name, filename
                )
            # Every loop counts its iterations against the rendering's budget.
            counter = nodes.Name(_COUNTED, "load", lineno=loop.lineno)
            loop.iter = nodes.Call(counter, [loop.iter], [], None, None, lineno=loop.lineno)
            loop.iter.set_environment(self)
        return tree

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _step()
        if __obj is not _range:  # range() has its own limit on the numbers it makes
            _check_args(args, {k: v for k, v in kwargs.items() if not k.startswith("_")})
        # The sandbox hands out str.format wrapped; the string is the wrapped method's __self__.
        method = getattr(__obj, "__wrapped__", __obj)
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str):  # a string's own method: "...".replace(...), .join(...)
            name = getattr(method, "__name__", "")
            if name in ("format", "format_map"):
                _check_format(owner)
            if name == "join":
                _check_result("join", (*args[:1], owner), {})
            else:
                _check_result(name, (owner, *args), kwargs)
        return _check_size(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "*":
            sized, count = (left, right) if isinstance(right, int) else (right, left)
            if (
                isinstance(sized, str | list | tuple)
                and isinstance(count, int)
                and (
                    len(sized) * count > MAX_OUTPUT
                    or (not isinstance(sized, str) and _printed_size(sized) * count > MAX_OUTPUT)
                )
            ):
                raise TemplateLimitError(
                    f"the text makes a value longer than {MAX_OUTPUT:,} characters"
                )
        elif operator_ == "**" and isinstance(left, int) and isinstance(right, int):
            if right > 0 and max(abs(left).bit_length(), 1) * right > MAX_INT_BITS:
                raise TemplateLimitError("the text makes a number too large to print")
        elif operator_ == "%" and isinstance(left, str):
            _check_format(left)
            _check_result("%", (left, *(right if isinstance(right, tuple) else (right,))), {})
        return _check_size(_BINOPS[operator_](left, right))


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "**": operator.pow,
    "%": operator.mod,
}


def _check_format(text: str) -> None:
    if _WIDE_FORMAT.search(text):
        raise TemplateLimitError("a format width larger than any text needs")


@pass_context
def _temp(context: Context, celsius: Any) -> str:
    """A temperature in both scales, the patient's usual one first: ``{{ 38|temp }}``."""
    if isinstance(celsius, bool) or not isinstance(celsius, int | float):
        raise TemplateRuntimeError(
            "the temp filter expects a number of degrees Celsius, such as {{ 38|temp }}"
        )
    # The document's locale writes the numbers: "100.4 °F" in English, "100,4 °F" in Spanish.
    return temperature(celsius, str(context.get("locale", "")) or "en")


@cache
def environment(*, html: bool = False, keep_trailing_newline: bool = False) -> LimitedEnvironment:
    """The shared environment: HTML output (an email's HTML body) is autoescaped."""
    return LimitedEnvironment(html=html, keep_trailing_newline=keep_trailing_newline)


def compile_text(source: str) -> tuple[Template, bytes]:
    """A procedure text compiled in the shared environment, with its compiled code (marshal
    bytes, as Jinja's own bytecode cache keeps it) for ``template_from_code`` in a later run."""
    env = environment()
    code = env.compile(source)
    return env.template_class.from_code(env, code, env.make_globals(None)), marshal.dumps(code)


def template_from_code(code: bytes) -> Template:
    """The template ``compile_text`` made, from its code: no lexing, parsing or compiling."""
    env = environment()
    return env.template_class.from_code(env, marshal.loads(code), env.make_globals(None))


# Python errors a text can cause with values of the wrong type; their messages name types and
# operations, not values. Any other error is reported by its type only: its message might
# quote a value, and in an email text a value may be the patient's name.
_DESCRIBED = (TypeError, ZeroDivisionError, OverflowError)


def render(template: Template, context: Mapping[str, Any]) -> str:
    """Render ``template``; any failure is a TemplateError with a one-line reason."""
    try:
        return template.render(context)
    except JinjaTemplateError as exc:
        raise TemplateError(" ".join(str(exc.message or exc).split())) from None
    except RecursionError:
        raise TemplateError("the text calls itself without end (recursion)") from None
    except _DESCRIBED as exc:
        raise TemplateError(f"cannot be worked out: {' '.join(str(exc).split())}") from None
    except Exception as exc:  # noqa: BLE001 - whatever a text does, it is the text's mistake
        raise TemplateError(f"cannot be worked out ({type(exc).__name__})") from None
