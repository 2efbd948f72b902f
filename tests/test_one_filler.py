"""Every clinic-written text (a procedure's, an email's) is filled by one function,
discharge.guidance.filling.fill: only it renders in the sandbox, so the quick paths and the
error messages cannot drift apart between two fillers again."""

from __future__ import annotations

import ast
from pathlib import Path

import discharge

PACKAGE = Path(discharge.__file__).parent
FILLER = PACKAGE / "guidance" / "filling.py"


def _renders_in_the_sandbox(tree: ast.AST) -> list[int]:
    """Lines that import the sandbox's ``render`` or call ``sandbox.render``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "discharge.guidance.sandbox":
            if any(alias.name == "render" for alias in node.names):
                lines.append(node.lineno)
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "render"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sandbox"
        ):
            lines.append(node.lineno)
    return lines


def test_only_the_filler_renders_in_the_sandbox() -> None:
    others = {
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != FILLER
        for line in _renders_in_the_sandbox(ast.parse(path.read_text(encoding="utf-8")))
    }
    assert others == set(), "fill texts with discharge.guidance.filling.fill"
    assert _renders_in_the_sandbox(ast.parse(FILLER.read_text(encoding="utf-8")))


def test_email_and_procedure_texts_use_the_filler() -> None:
    for name in ("delivery/compose.py", "delivery/settings.py", "guidance/model.py"):
        tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "discharge.guidance.filling"
            for alias in node.names
        }
        assert "fill" in imported, name
