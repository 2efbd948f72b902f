"""Dates as a patient reads them: weekday, day, month name and year, in the document's locale."""

from __future__ import annotations

from datetime import date, datetime
from functools import cache, lru_cache

from babel import Locale
from babel.dates import format_date, format_time
from babel.numbers import format_decimal

from discharge.i18n import N_, gettext, language_of
from discharge.locale_data import locale as cached_locale

# Translators: a date, then a clock time: "Sunday 22 November 2026 at 10:30".
_AT = N_("{day} at {time}")


def _sample(loc: Locale) -> None:
    # Every pattern and name our dates read, so the cached locale data holds them.
    moment = datetime(2026, 1, 5, 15, 30)
    format_date(moment.date(), _pattern(loc), locale=loc)
    format_date(moment.date(), "medium", locale=loc)
    format_time(moment, "short", locale=loc)
    format_decimal(100.4, "0.#", locale=loc)


def format_number(value: float, pattern: str, locale: str) -> str:
    """``value`` written the locale's way ("100.4" in English, "100,4" in Spanish)."""
    return str(format_decimal(value, pattern, locale=_locale(locale)))


def temperature(celsius: float, locale: str) -> str:
    """A temperature in both scales, the patient's usual one first: "38 °C (100.4 °F)"."""
    c = format_number(celsius, "0.##", locale) + " °C"
    f = format_number(round(celsius * 9 / 5 + 32, 1), "0.#", locale) + " °F"
    if locale.endswith("_US"):
        return f"{f} ({c})"
    return f"{c} ({f})"


def _locale(name: str) -> Locale:
    return cached_locale(name, _sample)


@cache
def date_pattern(locale: str) -> str:
    """The clinic locale's full date pattern (CLDR), e.g. ``EEEE, d MMMM y`` for en_GB.

    UK and Commonwealth English house styles (GOV.UK, NHS) drop the comma after the weekday:
    "Monday 23 November 2026". US English keeps "Monday, November 23, 2026".
    """
    return _pattern(_locale(locale))


def _pattern(loc: Locale) -> str:
    pattern = str(loc.date_formats["full"].pattern)
    if loc.language == "en" and loc.territory not in (None, "US"):
        pattern = pattern.replace("EEEE, ", "EEEE ")
    return pattern


@lru_cache(maxsize=4096)  # a day's schedule prints the same few dates for every patient
def format_day(day: date, locale: str) -> str:
    return format_date(day, date_pattern(locale), locale=_locale(locale))


def format_moment(value: date | datetime, locale: str) -> str:
    """A date, or a date and clock time: "Sunday 22 November 2026 at 10:30".

    The time is joined to the date with no-break spaces, so a line never ends on "at" with the
    time alone on the next line.
    """
    if isinstance(value, datetime):
        clock = format_time(value, "short", locale=_locale(locale))
        day = format_day(value.date(), locale)
        # No-break spaces around the joining word: a line never ends on "at" with the time
        # alone on the next line.
        joined = gettext(language_of(locale), _AT).replace(" ", "\u00a0")
        return joined.format(day=day, time=clock)
    return format_day(value, locale)


def format_short_day(day: date, locale: str) -> str:
    """A compact but unambiguous date (month as a word), e.g. "1 Feb 1990" for en_GB."""
    return format_date(day, "medium", locale=_locale(locale))
