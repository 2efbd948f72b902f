"""The one-way architecture of pyproject.toml's import contracts, checked on every test run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    lint_imports = shutil.which("lint-imports")
    assert lint_imports, "import-linter is missing: pip install -e '.[test]'"
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_library_code_has_no_import_order_hacks() -> None:
    for path in (ROOT / "discharge").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "noqa: E402" not in text, path
        assert "type: ignore[has-type" not in text, path
