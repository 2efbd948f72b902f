"""discharge: personalised, printable discharge instructions with real recovery dates."""

from __future__ import annotations

__version__ = "0.1.0"
