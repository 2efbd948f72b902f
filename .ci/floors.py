"""Print pip constraints pinning every dependency in pyproject.toml at its declared floor.

``.ci/run`` installs the package with these constraints into a second venv and runs the fast
part of the suite there, so a floor that does not really work fails CI. Read from
pyproject.toml each time, so the pins cannot drift from what is declared.

Usage: python .ci/floors.py [EXTRA ...] > floors.txt   (default extras: test)
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_SPEC = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?\s*(.*)$")


def floors(pyproject: Path, extras: list[str]) -> dict[str, str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    specs = list(project["dependencies"])
    for extra in extras:
        specs += project["optional-dependencies"][extra]
    pins: dict[str, str] = {}
    for spec in specs:
        match = _SPEC.match(spec.split(";")[0])
        if match is None:
            raise SystemExit(f"cannot read the dependency {spec!r}")
        name, _, versions = match.groups()
        lowest = [v.strip()[2:].strip() for v in versions.split(",") if v.strip().startswith(">=")]
        if not lowest:
            raise SystemExit(f"{name} declares no floor (>=): every dependency needs one")
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in pins and pins[key] != lowest[0]:
            raise SystemExit(f"{name} has two floors: {pins[key]} and {lowest[0]}")
        pins[key] = lowest[0]
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    for name, version in floors(root / "pyproject.toml", sys.argv[1:] or ["test"]).items():
        print(f"{name}=={version}")
