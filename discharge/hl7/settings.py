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

The section is declared for the settings schema (``Hl7Section``: every problem of the file at
once, when it is loaded); whether each procedure and variant of the table exists is checked
when the listener starts (``load_hl7_settings``), since the clinic's own templates folder is
part of the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from discharge.config import Config
from discharge.errors import ConfigError, DischargeError
from discharge.settings_schema import Check, Invalid, Section, Text, Where, setting

if TYPE_CHECKING:
    from discharge.hl7.filing import FilingSettings

_ONE_WORD = r"[^\s|^~\\&]{1,60}"  # a code as the record system has it: no HL7 separators


def _id_type(value: Any, where: Where) -> str:
    if not isinstance(value, str) or len(value.strip()) > 10:
        raise ValueError
    return value.strip().upper()


def _destination(value: Any, where: Where) -> tuple[str, int]:
    from discharge.hl7.filing import parse_destination

    if not isinstance(value, str):
        raise ValueError
    try:
        return parse_destination(value, "hl7.file_to")
    except ConfigError:
        raise ValueError from None


def _table(value: Any, where: Where) -> tuple[tuple[str, str, str], ...]:
    """``"HSG" = "hsg"``, ``"MISC-MED" = "miscarriage:medical"``: (CODE, procedure, variant)."""
    if not isinstance(value, dict):
        raise ValueError
    rows: list[tuple[str, str, str]] = []
    for code, target in value.items():
        if not isinstance(target, str) or not target.strip():
            raise Invalid(
                f'{code}: must be a procedure id in quotes, such as "hsg" or "miscarriage:medical"'
            )
        key = code.strip().upper()
        if any(key == row[0] for row in rows):
            raise Invalid(f"{code}: the code is in the table twice (codes ignore case)")
        procedure, _, variant = (part.strip().lower() for part in target.partition(":"))
        rows.append((key, procedure, variant))
    return tuple(rows)


_CODE = Text(
    strip=True,
    empty=False,
    pattern=_ONE_WORD,
    problem='must be a code in quotes, such as "DS" (no spaces or | ^ ~ \\ &)',
)


@dataclass(frozen=True)
class Hl7Section(Section):
    """The ``[hl7]`` section of the clinic's settings."""

    NAME: ClassVar[str] = "hl7"

    patient_id_type: str = setting(
        Check(_id_type, 'must be an identifier type code in quotes, such as "MR"'), default=""
    )
    procedures: tuple[tuple[str, str, str], ...] = setting(
        Check(_table, 'must be a table such as "HSG" = "hsg"'), default=()
    )
    file_to: tuple[str, int] | None = setting(
        Check(_destination, 'must be host:port (e.g. "interface-engine:2576")'), default=None
    )
    # What the filed MDM^T02 says, for the record system's interface ("": the filing default).
    document_type: str = setting(_CODE, default="")
    sending_facility: str = setting(_CODE, default="")
    receiving_application: str = setting(_CODE, default="")
    receiving_facility: str = setting(_CODE, default="")


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
    """The clinic's ``[hl7]`` section (checked when the settings were loaded), with every
    procedure and variant of its table checked against the templates: every problem at once
    (a ConfigError, a line each)."""
    from discharge.guidance.loading import load_procedure

    section = config.section(Hl7Section) or Hl7Section()
    problems = []
    for code, procedure, variant in section.procedures:
        try:
            load_procedure(procedure, config.templates_dir).variant(variant or None)
        except DischargeError as exc:
            problems.append(f"{config.where()}: [hl7.procedures] {code}: {exc}")
    if problems:
        raise ConfigError("\n".join(problems))
    filing = {
        key: getattr(section, key)
        for key in ("document_type", "sending_facility", "receiving_application",
                    "receiving_facility")
        if getattr(section, key)
    }  # fmt: skip
    table = {code: (procedure, variant) for code, procedure, variant in section.procedures}
    return Hl7Settings(section.patient_id_type, table, section.file_to, filing)


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
