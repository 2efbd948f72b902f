"""Every clinic-written text (a procedure's, an email's) is filled by one function,
discharge.guidance.filling.fill: only it renders in the sandbox, so the quick paths and the
error messages cannot drift apart between two fillers again."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import discharge

PACKAGE = Path(discharge.__file__).parent
FILLER = PACKAGE / "guidance" / "filling.py"
USERS = ("delivery/compose.py", "delivery/settings.py", "guidance/model.py")

# A Jinja2 template's three ways to be filled: only filling.py calls them (sandbox.render), and
# sandbox.py itself. Anywhere else such a call is a second filler, e.g. a settings module's
# ``environment().from_string(s).render(ctx)`` or ``text.template.render(ctx)``.
RENDERS = {"render", "generate", "stream"}
# The calls of those names elsewhere that fill no sandbox template, each with why.
NOT_A_TEMPLATE = {
    "guidance/parser.py: procedure.render",  # Procedure.render, which calls fill
    "web/form.py: current_app.extensions['discharge.renderer'].render",  # the PDF renderer
}


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


def template_renders(package: Path) -> set[str]:
    """``module: call`` for each render, generate or stream call outside filling.py and
    sandbox.py that is not in NOT_A_TEMPLATE."""
    found = set()
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package).as_posix()
        if name in ("guidance/filling.py", "guidance/sandbox.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in RENDERS
            ):
                found.add(f"{name}: {ast.unparse(node.func)}")
    return found - NOT_A_TEMPLATE


def test_no_module_but_the_filler_fills_a_template() -> None:
    assert template_renders(PACKAGE) == set(), (
        "fill texts with discharge.guidance.filling.fill (or, for a call that fills no "
        "template, add it to NOT_A_TEMPLATE with why)"
    )


def calls_fill(tree: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "fill"
        for node in ast.walk(tree)
    )


def test_email_and_procedure_texts_use_the_filler() -> None:
    for name in USERS:
        tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "discharge.guidance.filling"
            for alias in node.names
        }
        assert "fill" in imported, name
        assert calls_fill(tree), name


def test_the_checks_catch_a_second_filler(tmp_path: Path) -> None:
    """The checks above, on a copy of the package where compose.py renders its template
    itself (fill still imported) and a new module renders a text's template."""
    copy = tmp_path / "discharge"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert template_renders(copy) == set()
    compose = copy / "delivery" / "compose.py"
    source = compose.read_text(encoding="utf-8")
    assert source.count("fill(_template(source, html), context)") == 1
    compose.write_text(
        source.replace(
            "fill(_template(source, html), context)", "_template(source, html).render(context)"
        ),
        encoding="utf-8",
    )
    (copy / "web" / "preview.py").write_text(
        "def preview(text, context):\n    return text.template.render(context)\n", encoding="utf-8"
    )
    assert template_renders(copy) == {
        "delivery/compose.py: _template(source, html).render",
        "web/preview.py: text.template.render",
    }
    assert not calls_fill(ast.parse(compose.read_text(encoding="utf-8")))
