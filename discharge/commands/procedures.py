"""`discharge procedures`: the procedures that have templates."""

from __future__ import annotations

from pathlib import Path

import click

from discharge.options import config_option, warn_drafts


@click.command()
@config_option
def procedures(config_path: Path | None) -> None:
    """List the procedures that have templates, with their titles, languages and variants."""
    from discharge.config import load_config
    from discharge.guidance.loading import load_all, procedure_languages
    from discharge.i18n import language_of

    config = load_config(config_path)
    clinic_language = language_of(config.clinic.locale)
    for procedure in load_all(config.templates_dir):
        click.echo(f"{procedure.id:<14} {procedure.title}  (version {procedure.version})")
        languages = procedure_languages(procedure.id, config.templates_dir, clinic_language)
        click.echo(f"  --language {', '.join(languages)}")
        for variant in procedure.variants:
            default = "  (default)" if variant.name == procedure.default_variant else ""
            click.echo(f"  --variant {variant.name:<20} {variant.label}{default}")
    warn_drafts(config)
