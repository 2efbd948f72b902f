"""The ``[hl7]`` settings: which patient identifier is the hospital number, which appointment
types make which sheet, and where to file the made sheets.

```toml
[hl7]
patient_id_type = "MR"        # PID-3's identifier type code (CX.5) of the hospital number
file_to = "ris.example:2576"  # optional: file each made sheet back as MDM^T02 there
document_type = "DS"          # optional, for the filed MDM^T02: TXA-2 (the site's table 0270),
receiving_application = "EPR" # MSH-5, receiving_facility MSH-6, sending_facility MSH-4

[hl7.procedures]              # appointment reason (SCH-7) or service (AIS-3) code -> sheet
"HSG" = "hsg"
"MISC-MED" = "miscarriage:medical"   # procedure:variant
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from discharge.config import Config
from discharge.errors import ConfigError, DischargeError

if TYPE_CHECKING:
    from discharge.hl7.filing import FilingSettings

# What the filed MDM^T02 says, for the record system's interface (FilingSettings' names).
_FILING_TEXT = ("document_type", "sending_facility", "receiving_application", "receiving_facility")
_KEYS = {"patient_id_type", "procedures", "file_to", *_FILING_TEXT}


@dataclass(frozen=True)
class Hl7Settings:
    patient_id_type: str = ""  # "": the first identifier of PID-3
    # code (upper case) -> (procedure id, variant or "")
    procedures: dict[str, tuple[str, str]] = field(default_factory=dict)
    file_to: tuple[str, int] | None = None  # (host, port) to file made sheets to
    filing: dict[str, str] = field(default_factory=dict)  # document_type, ... (if given)

    def sheet_for(self, code: str) -> tuple[str, str] | None:
        return self.procedures.get(code.strip().upper()) if code.strip() else None


def load_hl7_settings(config: Config) -> Hl7Settings:
    """The clinic's ``[hl7]`` section, every problem reported at once (a ConfigError)."""
    where = str(config.source) if config.source else "config"
    raw = config.extra.get("hl7", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [hl7] must be a table of settings")
    problems = [f"hl7.{key} is not a known setting" for key in raw if key not in _KEYS]
    id_type = raw.get("patient_id_type", "")
    if not isinstance(id_type, str) or len(id_type.strip()) > 10:
        problems.append(
            'hl7.patient_id_type must be an identifier type code in quotes, such as "MR"'
        )
        id_type = ""
    procedures = _procedures(raw.get("procedures", {}), config, problems)
    file_to = None
    if "file_to" in raw:
        file_to = parse_host_port(raw["file_to"], problems)
    filing = {}
    for key in _FILING_TEXT:
        if key in raw:
            value = raw[key]
            if not isinstance(value, str) or not value.strip() or len(value) > 60:
                problems.append(f'hl7.{key} must be text in quotes, such as "DS"')
            else:
                filing[key] = value.strip()
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return Hl7Settings(id_type.strip().upper(), procedures, file_to, filing)


def parse_host_port(value: Any, problems: list[str]) -> tuple[str, int] | None:
    from discharge.hl7.filing import parse_destination

    try:
        if not isinstance(value, str):
            raise ConfigError('hl7.file_to must be host:port (e.g. "interface-engine:2576")')
        return parse_destination(value, "hl7.file_to")
    except ConfigError as exc:
        problems.append(str(exc))
        return None


def filing_settings(settings: Hl7Settings) -> FilingSettings | None:
    """Where to file the sheets made (``file_to``), None when they are not filed."""
    from discharge.hl7.filing import FilingSettings

    if settings.file_to is None:
        return None
    host, port = settings.file_to
    default = FilingSettings(host, port)
    given = settings.filing
    return FilingSettings(
        host,
        port,
        document_type=given.get("document_type", default.document_type),
        sending_facility=given.get("sending_facility", default.sending_facility),
        receiving_application=given.get("receiving_application", default.receiving_application),
        receiving_facility=given.get("receiving_facility", default.receiving_facility),
    )


def _procedures(raw: Any, config: Config, problems: list[str]) -> dict[str, tuple[str, str]]:
    from discharge.procedures import load_procedure

    if not isinstance(raw, dict):
        problems.append('[hl7.procedures] must be a table such as "HSG" = "hsg"')
        return {}
    table: dict[str, tuple[str, str]] = {}
    for code, target in raw.items():
        name = f"hl7.procedures.{code}"
        if not isinstance(target, str) or not target.strip():
            problems.append(f'{name} must be a procedure id in quotes, such as "hsg" or '
                            '"miscarriage:medical"')  # fmt: skip
            continue
        procedure, _, variant = (part.strip().lower() for part in target.partition(":"))
        try:
            load_procedure(procedure, config.templates_dir).variant(variant or None)
        except DischargeError as exc:
            problems.append(f"{name}: {exc}")
            continue
        key = code.strip().upper()
        if key in table:
            problems.append(f"{name}: the code is in the table twice (codes ignore case)")
            continue
        table[key] = (procedure, variant)
    return table
