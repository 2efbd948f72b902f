"""The one-way architecture of pyproject.toml's import contracts, checked on every test run."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Where reportlab may be imported: the PDF wing, and the one module of speed tricks (which reach
# into its private names, and which DISCHARGE_SPEEDUPS=0 turns off).
REPORTLAB_ALLOWED = ("discharge.pdf", "discharge.speedups")


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


def reportlab_importers(package: Path) -> list[str]:
    """The modules under ``package`` (``discharge/`` or a copy) outside the PDF wing that import
    reportlab: at the top, inside a function or class, or by name through importlib."""
    found = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if any(module == a or module.startswith(a + ".") for a in REPORTLAB_ALLOWED):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        if any(name == "reportlab" or name.startswith("reportlab.") for name in _imports(tree)):
            found.append(module)
    return found


def _imports(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):  # every node, so imports inside functions count too
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Call) and _call_name(node.func) in _BY_NAME and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.append(first.value)
    return names


_BY_NAME = {"import_module", "__import__", "find_spec"}


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def test_only_the_pdf_wing_imports_reportlab() -> None:
    importers = reportlab_importers(ROOT / "discharge")
    assert not importers, (
        f"{', '.join(importers)}: import(s) reportlab, which only discharge/pdf/ (and "
        "discharge/speedups.py) may: move the drawing into the PDF wing"
    )


def test_the_reportlab_check_names_each_module_outside_the_wing(tmp_path: Path) -> None:
    """The check above, on a copy of the package with reportlab imported where it must not be:
    at the top of a new module, inside a function, and by name."""
    copy = tmp_path / "discharge"
    shutil.copytree(ROOT / "discharge", copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert reportlab_importers(copy) == []
    (copy / "web" / "badge.py").write_text("from reportlab.graphics import renderPM\n")
    dates = copy / "dates.py"
    dates.write_text(
        dates.read_text(encoding="utf-8")
        + "\n\ndef _width(text):\n    import reportlab.pdfbase.pdfmetrics as m\n"
        + "    return m.stringWidth(text, 'Body', 12)\n"
    )
    (copy / "batch" / "warm.py").write_text(
        "import importlib\n\n\ndef warm():\n    importlib.import_module('reportlab.platypus')\n"
    )
    (copy / "pdf" / "extra.py").write_text("import reportlab\n")  # inside the wing: allowed
    (copy / "cache.py").write_text("import reportlabx\n")  # another package: not reportlab
    expected = ["discharge.batch.warm", "discharge.dates", "discharge.web.badge"]
    assert reportlab_importers(copy) == expected


def test_every_section_config_imports_by_name_is_declared() -> None:
    """``SECTIONS`` in config.py names each section's class as text (its module is imported
    only when a settings file has that section), which import-linter cannot follow: a moved or
    renamed class must fail here, not for the first clinic whose file has that section."""
    import importlib

    from discharge.config import SECTIONS
    from discharge.settings_schema import Section

    for name, target in SECTIONS.items():
        module, _, attr = target.partition(":")
        kind = getattr(importlib.import_module(module), attr, None)
        assert isinstance(kind, type) and issubclass(kind, Section), target
        assert name == kind.NAME, target
        # Each lives in a module the one-way flow allows config's by-name import to load: a
        # settings module (or the audit log's own), not a front end.
        assert module.endswith(".settings") or module == "discharge.audit", target
