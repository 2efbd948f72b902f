"""The clinic's ``[print]`` settings: which printer a desk prints to, and how long to wait.

```toml
[print]
printer = "Ward3-Laser"      # or a list the nurse chooses from; the first is the default
# timeout = 120              # seconds a job may take before it is reported not printed
# copies = 1
```

Like ``[smtp]``, the table stays raw in ``Config.extra`` until something is about to be printed,
so a clinic that never prints is never troubled by it; then every problem is reported at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from discharge.config import Config
from discharge.errors import ConfigError, InputError

DEFAULT_TIMEOUT = 120.0
MAX_TIMEOUT = 3600.0
MAX_COPIES = 20
_KEYS = {"printer", "timeout", "copies"}
# CUPS printer names: printable characters except space, tab, "/", "\\", "#", quotes; at most
# 127 bytes (cupsd's own rule, in lpadmin's validate_name).
_PRINTER_NAME = re.compile(r"^[^\s/\\#'\"\x00-\x1f\x7f]{1,127}$")


@dataclass(frozen=True)
class PrintSettings:
    printers: tuple[str, ...] = ()  # the desk's printers; the first is the default
    timeout: float = DEFAULT_TIMEOUT
    copies: int = 1

    @property
    def default_printer(self) -> str | None:
        return self.printers[0] if self.printers else None


def load_print_settings(config: Config) -> PrintSettings:
    """The validated ``[print]`` table (defaults when there is none)."""
    raw = config.extra.get("print", {})
    where = str(config.source) if config.source else "config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [print] must be a table of settings")
    problems = [f"print.{key} is not a known setting" for key in raw if key not in _KEYS]
    printers: tuple[str, ...] = ()
    value = raw.get("printer", [])
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(
        isinstance(n, str) and _PRINTER_NAME.match(n) for n in names
    ):
        problems.append(
            "print.printer must be a printer's name as the print system knows it "
            '(e.g. "Ward3-Laser", no spaces or slashes), or a list of such names'
        )
    else:
        printers = tuple(dict.fromkeys(names))
    timeout = raw.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        problems.append("print.timeout must be a number of seconds")
    elif not 0 < timeout <= MAX_TIMEOUT:
        problems.append(f"print.timeout must be more than 0 and at most {MAX_TIMEOUT:.0f} seconds")
    copies = raw.get("copies", 1)
    if isinstance(copies, bool) or not isinstance(copies, int) or not 1 <= copies <= MAX_COPIES:
        problems.append(f"print.copies must be a whole number from 1 to {MAX_COPIES}")
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return PrintSettings(printers=printers, timeout=float(timeout), copies=copies)


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
