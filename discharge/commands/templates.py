"""`discharge templates`: check the procedure templates, or show one to start from."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from discharge.errors import ExitStatus
from discharge.options import config_option


@click.group()
def templates() -> None:
    """Check procedure templates before patients see them, or show one to copy."""


@templates.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path), metavar="[DIR]")
@config_option
def check(folder: Path | None, config_path: Path | None) -> None:
    """Check every template in DIR (default: the clinic's templates_dir, else the bundled ones).

    Schema, placeholders, every variant rendered with a sample patient, reading level of each
    part (US grade 6 at most), review date and translations. One line per problem, naming the
    file and the field. Exit 0 if there are no problems (warnings allowed), 1 if there are.
    """
    from discharge.config import load_config
    from discharge.governance import check_templates, template_folder

    config = load_config(config_path)
    where = template_folder(folder, config)
    findings = check_templates(where, config)
    for finding in findings:
        click.echo(str(finding))
    failures = sum(1 for f in findings if f.level == "fail")
    warnings = len(findings) - failures
    what = f"templates in {where}" if where else "bundled templates"
    click.echo(f"templates check: {what}: {failures} problem(s), {warnings} warning(s)",
               err=True)  # fmt: skip
    sys.exit(ExitStatus.ROWS_FAILED if failures else ExitStatus.OK)


@templates.command()
@click.argument("procedure_id", metavar="ID")
@click.option("--language", metavar="CODE", help="The translation to show, e.g. es.")
@config_option
def show(procedure_id: str, language: str | None, config_path: Path | None) -> None:
    """Print a template's source, to copy into the clinic's own templates folder."""
    from discharge.config import load_config
    from discharge.errors import InputError
    from discharge.governance import template_source

    config = load_config(config_path)
    path = template_source(procedure_id, config, language)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read template {path.name}: {exc}") from None
    click.echo(text, nl=not text.endswith("\n"))
