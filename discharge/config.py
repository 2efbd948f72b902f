"""Clinic settings: one typed object, from defaults, then a TOML file, then the environment.

The file is found through ``--config PATH`` or the ``DISCHARGE_CONFIG`` environment variable.
Without one, a clearly fictional demo clinic is used so the tool works out of the box.
Secrets (the SMTP password) never live in the file: it names an environment variable instead.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from discharge.errors import ConfigError, reason
from discharge.settings_schema import (
    Check,
    Choice,
    FilePath,
    Flag,
    Invalid,
    ListOf,
    Pattern,
    Problems,
    Section,
    Text,
    Where,
    Whole,
    check_section,
    setting,
)

S = TypeVar("S", bound=Section)

CONFIG_ENV = "DISCHARGE_CONFIG"
PAPER_SIZES = ("a4", "letter")
DATE_ORDERS = ("dmy", "mdy")


# A page printed as a QR code: one https:// address, nothing else (a space would end it).
_WEB_PAGE = r"https://\S+"
_NAME_NEEDED = "is required (the organisation or page, in words)"


@dataclass(frozen=True)
class Resource(Section):
    """Support or further reading the clinic recommends: printed with a QR code for its URL.

    One ``[[resources]]`` table of the settings file each (checked like a section, and named
    ``[[resources]] #N`` in its problems).
    """

    NAME: ClassVar[str] = "resources"
    PATTERNS: ClassVar[tuple[Pattern, ...]] = (
        # url_es = "https://...": the same page in another language
        Pattern(r"url_([a-z]{2,3})", "url_LANG", "urls",
                Text(strip=True, pattern=_WEB_PAGE, problem="must be one https:// address")),
    )  # fmt: skip

    name: str = setting(Text(empty=False, strip=True, problem=_NAME_NEEDED), required=_NAME_NEEDED)
    phone: str = setting(Text(strip=True), default="")
    url: str = setting(
        Text(strip=True, pattern=f"({_WEB_PAGE})?",
             problem="must be one https:// address (printed as a QR code)"),
        default="",
    )  # fmt: skip
    # the procedure ids it is for; empty: every procedure
    procedures: tuple[str, ...] = setting(
        ListOf(Text(), problem="must be a list of procedure ids"), default=()
    )
    # the variants it is for (e.g. "fertility"); empty: every one
    variants: tuple[str, ...] = setting(
        ListOf(Text(strip=True, lower=True), problem="must be a list of variant names"),
        default=(),
    )
    language: str = setting(  # the language its page is in ("en"); empty: the clinic's
        Text(pattern=r"([a-z]{2,3})?", problem="must be a language code such as en or es"),
        default="",
    )
    urls: tuple[tuple[str, str], ...] = ()  # the same page in other languages: (("es", url),)

    @classmethod
    def relations(cls, values: Mapping[str, Any], where: Where) -> Iterator[tuple[str, str]]:
        phone, url = values.get("phone"), values.get("url")  # None: wrong, and already named
        if phone == "" and url == "":
            yield "", "give a phone number, a url, or both"


# The demo clinic's resources are as fictional as its phone numbers (example.org addresses).
DEMO_RESOURCES = (
    Resource(
        name="Example Pregnancy Loss Support (fictional)",
        phone="01632 960 555",
        url="https://support.example.org/pregnancy-loss",
        procedures=("miscarriage",),
        language="en",
        urls=(("es", "https://support.example.org/es/perdida-del-embarazo"),),
    ),
    Resource(
        name="Example Fertility Network: your HSG, in a short video (fictional)",
        url="https://fertility.example.org/hsg-video",
        procedures=("hsg",),
        variants=("fertility",),  # not for the sterilisation check: she is not trying for a baby
        language="en",
    ),
)


def _time_zone(value: Any, where: Where) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise Invalid(
            f"{value!r} is not a known time zone "
            "(expected a name such as Europe/London or America/New_York)"
        ) from None
    return str(value)


def _locale(value: Any, where: Where) -> str:
    from babel import Locale, UnknownLocaleError

    try:
        Locale.parse(value)
    except (UnknownLocaleError, ValueError, TypeError):
        raise Invalid(f"{value!r} is not a known locale (expected e.g. en_GB, en_US)") from None
    return str(value)


def _address(value: Any, where: Where) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(line.strip() for line in value.splitlines() if line.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise Invalid("must be text or a list of lines")


def _logo(value: Any, where: Where) -> Path:
    path: Path = FilePath("a PNG or JPEG file", must="file").check(value, where)
    if problem := _logo_problem(path):
        raise Invalid(f"{path} {problem}")
    return path


_TEXT = Text()
_TEMPLATES_DIR = FilePath("a folder of templates", must="dir")
# A real clinic's settings never inherit the demo clinic's address or phone numbers: a forgotten
# number must stop the program, not put a fictional one in the help box. (Without a [clinic]
# section the whole demo clinic is used, named as fictional.)
_REQUIRED = "is required"


@dataclass(frozen=True)
class Clinic(Section):
    """Everything about the clinic that is printed or decides how things are printed: the
    ``[clinic]`` section (the defaults are the fictional demo clinic's)."""

    NAME: ClassVar[str] = "clinic"

    name: str = setting(_TEXT, default="Riverside Demo Clinic (fictional)", required=_REQUIRED)
    address: tuple[str, ...] = setting(
        Check(_address), default=("1 Example Lane", "Sampleton"), absent=()
    )
    phone: str = setting(_TEXT, default="01632 960 123", required=_REQUIRED)
    after_hours_phone: str = setting(_TEXT, default="01632 960 999", absent="")
    emergency_number: str = setting(_TEXT, default="999", required=_REQUIRED)
    locale: str = setting(Check(_locale), default="en_GB")
    timezone: str = setting(Check(_time_zone), default="Europe/London")
    paper: str = setting(Choice(PAPER_SIZES), default="a4")
    logo: Path | None = setting(Check(_logo), default=None)
    # how the batch reads 21/11/2026: "dmy", "mdy" or not at all
    date_order: str | None = setting(Choice(DATE_ORDERS), default=None)
    # the clinic's own procedure templates, before the bundled
    templates_dir: Path | None = setting(_TEMPLATES_DIR, default=None)
    # print every patient's sheet in large print unless asked not to
    large_print: bool = setting(Flag(), default=False)
    # `templates check` warns on a template reviewed longer ago
    review_interval_months: int = setting(
        Whole(1, 120, "must be a whole number of months from 1 to 120"), default=12
    )
    resources: tuple[Resource, ...] = DEMO_RESOURCES  # a clinic's file lists its own, or none

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def relations(cls, values: Mapping[str, Any], where: Where) -> Iterator[tuple[str, str]]:
        for key in ("name", "phone", "emergency_number"):
            if isinstance(values.get(key), str) and not values[key].strip():
                yield key, "must not be empty"


# Every section of the settings file but [clinic], and the class that declares it, imported
# only when the file has that section (a clinic that never emails never loads the email code).
SECTIONS: dict[str, str] = {
    "smtp": "discharge.delivery.settings:SmtpSettings",
    "email": "discharge.delivery.settings:EmailSettings",
    "audit": "discharge.audit:AuditSection",
    "serve": "discharge.web.settings:ServeSettings",
    "print": "discharge.printing.settings:PrintSettings",
    "hl7": "discharge.hl7.settings:Hl7Section",
}


@dataclass(frozen=True)
class Config:
    clinic: Clinic = field(default_factory=Clinic)
    source: Path | None = None  # the file it came from, for messages
    sections: dict[str, Section] = field(default_factory=dict)  # the other sections, checked

    @property
    def templates_dir(self) -> Path | None:
        return self.clinic.templates_dir

    def section(self, kind: type[S]) -> S | None:
        """The checked ``[kind.NAME]`` section, or None when the file has none."""
        found = self.sections.get(kind.NAME)
        return found if isinstance(found, kind) else None

    def where(self) -> str:
        """The settings file, as problems name it."""
        return str(self.source) if self.source else "config"


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load the clinic settings from ``path``, else ``$DISCHARGE_CONFIG``, else the demo clinic.

    Every problem in the file is reported at once, in one ConfigError (a line each).
    """
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
    if path is None:
        return Config()
    import tomllib  # only with a settings file: the demo clinic's start does without it

    # Absolute now, where it is read: a process that later runs in another folder (the web
    # batch's worker) must find the same file, and the paths in it, as the user meant.
    file = Path(path).expanduser().absolute()
    try:
        if file.exists() and not file.is_file():  # a FIFO or a device would block or never end
            raise ConfigError(f"config file {file} is not a regular file")
        # utf-8-sig: Windows Notepad starts a UTF-8 file with a byte order mark; allow it.
        data = tomllib.loads(file.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {file}: {reason(exc)}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(
            f"config file {file} is not valid TOML: tables or lists nested too deeply"
        ) from None
    return parse_config(data, file)


def parse_config(data: dict[str, Any], file: Path | None = None) -> Config:
    """Check every section of the file against its declaration; every problem at once."""
    where = Where(file)
    problems = Problems(file)
    clinic = Clinic()
    resources: tuple[Resource, ...] | None = None  # None: the file lists none
    sections: dict[str, Section] = {}
    for name, raw in data.items():  # in file order
        if name == "clinic":
            clinic = check_section(Clinic, raw, where, problems) or clinic
        elif name == "resources":
            resources = _resources(raw, where, problems)
        elif name in SECTIONS:
            module, _, attr = SECTIONS[name].partition(":")
            kind = getattr(importlib.import_module(module), attr)
            if (record := check_section(kind, raw, where, problems)) is not None:
                sections[name] = record
        else:
            known = ", ".join(["clinic", *SECTIONS, "[[resources]]"])
            problems.add(f"[{name}]", None, f"is not a known section (expected one of: {known})")
    if "clinic" in data or resources is not None:
        # A clinic's own file never prints the demo clinic's (fictional) resources.
        clinic = replace(clinic, resources=resources or ())
    if problems:
        raise ConfigError("\n".join(problems.lines()))
    return Config(clinic=clinic, source=file, sections=sections)


def _resources(raw: Any, where: Where, problems: Problems) -> tuple[Resource, ...]:
    """``[[resources]]``: each table checked as a ``Resource``."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        problems.add("[[resources]]", None, "expected [[resources]] tables with name, phone, url")
        return ()
    found = (
        check_section(Resource, item, where, problems, label=f"[[resources]] #{number}")
        for number, item in enumerate(raw, 1)
    )
    return tuple(resource for resource in found if resource is not None)


# A logo is printed 40 mm wide: 4,000 x 4,000 pixels is far more than enough. A larger image
# (a "decompression bomb" of a few KB that unpacks to gigabytes) is refused from its header.
MAX_LOGO_PIXELS = 16_000_000


def _logo_problem(path: Path) -> str | None:
    """Why ``path`` cannot be the logo, or None. Checked now, so a bad file is a settings error
    before any work, not a crash on every document."""
    try:
        with path.open("rb") as handle:
            start = handle.read(8)
    except OSError as exc:
        return f"cannot be read: {reason(exc)}"
    if not start.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")):
        return "is not a PNG or JPEG image"
    from PIL import Image  # reportlab's own image library, so no new dependency

    try:
        with warnings.catch_warnings():
            # Pillow warns (on stderr) of a large image: the size is checked here instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)  # reads the header only
    except Image.DecompressionBombError:
        return (
            f"is too large for a logo (expected at most {MAX_LOGO_PIXELS // 1_000_000} megapixels)"
        )
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds of error for bad data
        return f"is a damaged image ({type(exc).__name__})"
    try:
        with image:
            width, height = image.size
            if width * height > MAX_LOGO_PIXELS:
                return (
                    f"is {width} x {height} pixels, too large for a logo "
                    f"(expected at most {MAX_LOGO_PIXELS // 1_000_000} megapixels)"
                )
            image.load()  # the whole image: damaged data is found now
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds of error for bad data
        return f"is a damaged image ({type(exc).__name__})"
    return None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or exc.__class__.__name__
