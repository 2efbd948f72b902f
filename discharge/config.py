"""Clinic settings: one typed object, from defaults, then a TOML file, then the environment.

The file is found through ``--config PATH`` or the ``DISCHARGE_CONFIG`` environment variable.
Without one, a clearly fictional demo clinic is used so the tool works out of the box.
Secrets (the SMTP password) never live in the file: it names an environment variable instead.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from discharge.errors import ConfigError, reason

CONFIG_ENV = "DISCHARGE_CONFIG"
PAPER_SIZES = ("a4", "letter")
DATE_ORDERS = ("dmy", "mdy")


@dataclass(frozen=True)
class Resource:
    """Support or further reading the clinic recommends: printed with a QR code for its URL."""

    name: str
    phone: str = ""
    url: str = ""
    procedures: tuple[str, ...] = ()  # the procedure ids it is for; empty: every procedure
    variants: tuple[str, ...] = ()  # the variants it is for (e.g. "fertility"); empty: every one
    language: str = ""  # the language its page is in ("en"); empty: the clinic's language
    urls: tuple[tuple[str, str], ...] = ()  # the same page in other languages: (("es", url),)


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


@dataclass(frozen=True)
class Clinic:
    """Everything about the clinic that is printed or decides how things are printed."""

    name: str = "Riverside Demo Clinic (fictional)"
    address: tuple[str, ...] = ("1 Example Lane", "Sampleton")
    phone: str = "01632 960 123"
    after_hours_phone: str = "01632 960 999"
    emergency_number: str = "999"
    locale: str = "en_GB"
    timezone: str = "Europe/London"
    paper: str = "a4"
    logo: Path | None = None
    date_order: str | None = None  # how the batch reads 21/11/2026: "dmy", "mdy" or not at all
    templates_dir: Path | None = None  # the clinic's own procedure templates, before the bundled
    large_print: bool = False  # print every patient's sheet in large print unless asked not to
    review_interval_months: int = 12  # `templates check` warns on a template reviewed longer ago
    resources: tuple[Resource, ...] = DEMO_RESOURCES  # a clinic's file lists its own, or none

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Config:
    clinic: Clinic = field(default_factory=Clinic)
    source: Path | None = None  # the file it came from, for messages
    extra: dict[str, Any] = field(default_factory=dict)  # other sections ([smtp], [print], ...)

    @property
    def templates_dir(self) -> Path | None:
        return self.clinic.templates_dir


_CLINIC_FIELDS = {f.name for f in fields(Clinic)}
REQUIRED_IN_FILE = ("name", "phone", "emergency_number")
_NOT_INHERITED: dict[str, Any] = {"address": (), "after_hours_phone": ""}
_KNOWN_SECTIONS = {"clinic", "smtp", "email", "audit", "serve", "resources", "print", "hl7"}


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load the clinic settings from ``path``, else ``$DISCHARGE_CONFIG``, else the demo clinic.

    Every problem in the file is reported at once, in one ConfigError.
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
    where = str(file) if file else "config"
    problems: list[str] = []
    for key in data:
        if key not in _KNOWN_SECTIONS:
            known = "clinic, smtp, email, audit, serve, print, hl7, [[resources]]"
            problems.append(f"unknown section [{key}] (expected one of: {known})")
    raw = data.get("clinic", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [clinic] must be a table of settings")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _CLINIC_FIELDS:
            problems.append(f"clinic.{key} is not a known setting")
            continue
        if key == "address":
            if isinstance(value, str):
                value = tuple(line.strip() for line in value.splitlines() if line.strip())
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                value = tuple(value)
            else:
                problems.append("clinic.address must be text or a list of lines")
                continue
        elif key in ("logo", "templates_dir"):
            what = "a PNG or JPEG file" if key == "logo" else "a folder of templates"
            if not isinstance(value, str) or not value:
                problems.append(f"clinic.{key} must be the path of {what}")
                continue
            path = Path(value).expanduser()
            if not path.is_absolute() and file is not None:
                path = file.parent / path  # relative to the settings file, not the cwd
            path = path.absolute()  # as meant here, whatever folder a process is in later
            if not (path.is_file() if key == "logo" else path.is_dir()):
                problems.append(f"clinic.{key}: {path} is not {what}")
                continue
            if key == "logo" and (problem := _logo_problem(path)):
                problems.append(f"clinic.logo: {path} {problem}")
                continue
            value = path
        elif key == "large_print":
            if not isinstance(value, bool):
                problems.append("clinic.large_print must be true or false (without quotes)")
                continue
        elif key == "review_interval_months":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 120:
                problems.append(
                    "clinic.review_interval_months must be a whole number of months from 1 to 120"
                )
                continue
        elif not isinstance(value, str):
            problems.append(f"clinic.{key} must be text in quotes")
            continue
        values[key] = value
    if "clinic" in data:
        # A real clinic's settings never inherit the demo clinic's address or phone numbers: a
        # forgotten number must stop the program, not put a fictional one in the help box.
        # (Without a [clinic] section the whole demo clinic is used, named as fictional.)
        for key in REQUIRED_IN_FILE:
            if key not in values and key not in raw:
                problems.append(f"clinic.{key} is required")
        values = {**_NOT_INHERITED, **values}
    if "clinic" in data or "resources" in data:
        values["resources"] = _resources(data.get("resources", []), problems)
    clinic = replace(Clinic(), **values)
    problems.extend(validate_clinic(clinic))
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    extra = {k: v for k, v in data.items() if k not in ("clinic", "resources")}
    return Config(clinic=clinic, source=file, extra=extra)


def _resources(raw: Any, problems: list[str]) -> tuple[Resource, ...]:
    """``[[resources]]``: name (required), phone, url (https), procedures (a list of ids),
    variants (a list of variant names), language (of its page), url_LANG (the page in LANG)."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        problems.append("resources: expected [[resources]] tables with name, phone, url")
        return ()
    found = []
    for index, item in enumerate(raw):
        where = f"resources[{index}]"
        urls = []
        for key in item:
            if re.fullmatch(r"url_[a-z]{2,3}", key):
                value = item[key]
                if (
                    not isinstance(value, str)
                    or not value.startswith("https://")
                    or any(c.isspace() for c in value)
                ):
                    problems.append(f"{where}.{key} must be one https:// address")
                else:
                    urls.append((key[4:], value.strip()))
            elif key not in ("name", "phone", "url", "procedures", "variants", "language"):
                problems.append(f"{where}.{key} is not a known setting")
        variants = item.get("variants", [])
        if not isinstance(variants, list) or not all(isinstance(v, str) for v in variants):
            problems.append(f"{where}.variants must be a list of variant names")
            variants = []
        language = item.get("language", "")
        if not isinstance(language, str) or not re.fullmatch(r"([a-z]{2,3})?", language):
            problems.append(f"{where}.language must be a language code such as en or es")
            language = ""
        name, phone, url = (item.get(k, "") for k in ("name", "phone", "url"))
        procedures = item.get("procedures", [])
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{where}.name is required (the organisation or page, in words)")
        if not isinstance(phone, str) or not isinstance(url, str):
            problems.append(f"{where}: phone and url must be text in quotes")
            continue
        if url and (not url.startswith("https://") or any(c.isspace() for c in url)):
            problems.append(f"{where}.url must be one https:// address (printed as a QR code)")
        if not phone and not url:
            problems.append(f"{where}: give a phone number, a url, or both")
        if not isinstance(procedures, list) or not all(isinstance(p, str) for p in procedures):
            problems.append(f"{where}.procedures must be a list of procedure ids")
            procedures = []
        if isinstance(name, str):
            found.append(Resource(
                name.strip(), phone.strip(), url.strip(), tuple(procedures),
                tuple(v.strip().lower() for v in variants), language, tuple(urls),
            ))  # fmt: skip
    return tuple(found)


def validate_clinic(clinic: Clinic) -> list[str]:
    problems = []
    for name in ("name", "phone", "emergency_number"):
        if not getattr(clinic, name).strip():
            problems.append(f"clinic.{name} must not be empty")
    if clinic.paper not in PAPER_SIZES:
        problems.append(f"clinic.paper is {clinic.paper!r}, expected a4 or letter")
    if clinic.date_order is not None and clinic.date_order not in DATE_ORDERS:
        problems.append(f"clinic.date_order is {clinic.date_order!r}, expected dmy or mdy")
    try:
        ZoneInfo(clinic.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            f"clinic.timezone {clinic.timezone!r} is not a known time zone "
            "(expected a name such as Europe/London or America/New_York)"
        )
    from babel import Locale, UnknownLocaleError

    try:
        Locale.parse(clinic.locale)
    except (UnknownLocaleError, ValueError, TypeError):
        problems.append(
            f"clinic.locale {clinic.locale!r} is not a known locale (expected e.g. en_GB, en_US)"
        )
    return problems


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
