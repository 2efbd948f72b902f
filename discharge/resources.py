"""Where the bundled templates and fonts live, in a checkout and in an installed wheel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent


@cache
def bundled_dir(name: str) -> Path:
    """Return the folder of bundled ``templates`` or ``fonts``.

    A wheel carries them inside the package (``discharge/_bundled/NAME``); a checkout or an
    editable install keeps them at the top level of the project, beside ``discharge/``.
    """
    for candidate in (_HERE / "_bundled" / name, _HERE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"bundled folder {name!r} is missing from this installation")
