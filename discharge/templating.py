"""The one sandboxed Jinja2 environment for every text a clinic can write.

Procedure templates and the clinic's email texts are rendered here, with the same rules: a
sandbox (no access to Python internals), an unknown placeholder is an error (StrictUndefined),
and patient data only ever enters as values, never as template source. HTML output (the email's
HTML body) is autoescaped.
"""

from __future__ import annotations

from functools import cache

from jinja2 import StrictUndefined, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment


@pass_context
def _temp(context: Context, celsius: float) -> str:
    """A temperature in both scales, the patient's usual one first."""
    c = f"{celsius:g} °C"
    f = f"{celsius * 9 / 5 + 32:.1f}".rstrip("0").rstrip(".") + " °F"
    if str(context.get("locale", "")).endswith("_US"):
        return f"{f} ({c})"
    return f"{c} ({f})"


@cache
def environment(*, html: bool = False) -> SandboxedEnvironment:
    """The shared environment (one for plain text, one autoescaping for HTML)."""
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=html)
    env.filters["temp"] = _temp
    return env
