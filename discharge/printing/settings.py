"""The clinic's ``[print]`` settings: which printer a desk prints to, and how long to wait.

```toml
[print]
printer = "Ward3-Laser"      # or a list the nurse chooses from; the first is the default
# timeout = 120              # seconds a job may take before it is reported not printed
# copies = 1
```

Declared with the settings schema (``discharge/settings_schema.py``): checked with the rest of
the file when it is loaded, every problem reported at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from discharge.config import Config
from discharge.errors import InputError
from discharge.settings_schema import ListOf, Number, Section, Text, Whole, setting

DEFAULT_TIMEOUT = 120.0
MAX_TIMEOUT = 3600.0
MAX_COPIES = 20
# CUPS printer names: printable characters except space, tab, "/", "\\", "#", quotes; at most
# 127 bytes (cupsd's own rule, in lpadmin's validate_name).
_PRINTER_NAME = re.compile(r"^[^\s/\\#'\"\x00-\x1f\x7f]{1,127}$")
_PRINTER = Text(pattern=_PRINTER_NAME.pattern[1:-1])


@dataclass(frozen=True)
class PrintSettings(Section):
    """The ``[print]`` section."""

    NAME: ClassVar[str] = "print"

    # the desk's printers; the first is the default
    printers: tuple[str, ...] = setting(
        ListOf(
            _PRINTER,
            single=True,
            problem="must be a printer's name as the print system knows it "
            '(e.g. "Ward3-Laser", no spaces or slashes), or a list of such names',
        ),
        key="printer",
        default=(),
    )
    timeout: float = setting(
        Number(
            above=0,
            most=MAX_TIMEOUT,
            problem="must be a number of seconds",
            range_problem=f"must be more than 0 and at most {MAX_TIMEOUT:.0f} seconds",
        ),
        default=DEFAULT_TIMEOUT,
    )
    copies: int = setting(
        Whole(1, MAX_COPIES, f"must be a whole number from 1 to {MAX_COPIES}"), default=1
    )

    @property
    def default_printer(self) -> str | None:
        return self.printers[0] if self.printers else None


def load_print_settings(config: Config) -> PrintSettings:
    """The ``[print]`` section (checked when the settings were loaded), else the defaults."""
    return config.section(PrintSettings) or PrintSettings()


def check_printer_name(name: str, option: str = "--printer") -> str:
    """A printer name given by hand: the same rule as the settings file's."""
    name = name.strip()
    if not _PRINTER_NAME.match(name):
        raise InputError(
            f"{option} must be a printer's name as the print system knows it "
            '(e.g. "Ward3-Laser", no spaces or slashes)'
        )
    return name


def check_copies(copies: int, option: str = "--copies") -> int:
    if not 1 <= copies <= MAX_COPIES:
        raise InputError(f"{option} must be a whole number from 1 to {MAX_COPIES}")
    return copies
