"""The fixed wording in the patient's language: gettext message catalogues, through Babel.

Every fixed string a patient reads (the page's headings and labels, the email's default texts,
the calendar's event titles) is written in English in the code, marked with :func:`N_` (or
:func:`gettext`), extracted into ``discharge/locale/discharge.pot`` with ``pybabel extract``,
and translated in ``discharge/locale/<language>/LC_MESSAGES/discharge.po``. The compiled
``.mo`` files ship in the package, so nobody needs to compile anything to use a language.
README, "How to add a language", gives the ``pybabel`` commands.

A language is a plain code (``en``, ``es``); Babel's locale for dates and numbers is that
language in the clinic's territory when Babel knows the pair (``es_US`` for a clinic in the
US), else the language's own default (``es`` -> ``es_ES``).
"""

from __future__ import annotations

import gettext as _gettext
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.core import get_global
from babel.support import NullTranslations, Translations

DOMAIN = "discharge"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
SOURCE_LANGUAGE = "en"  # the language the msgids are written in


def N_(message: str) -> str:  # noqa: N802 (gettext's conventional name)
    """Mark a string for extraction into the catalogue; it is translated where it is used."""
    return message


@cache
def translations(language: str) -> _gettext.NullTranslations:
    """The catalogue of ``language`` (a NullTranslations, printing the English, if none)."""
    if language == SOURCE_LANGUAGE or not (LOCALE_DIR / language).is_dir():
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [language], DOMAIN)


def gettext(language: str, message: str) -> str:
    """``message`` in ``language``; a message the catalogue lacks is returned as it is."""
    return translations(language).gettext(message)


def language_of(locale: str) -> str:
    """The language of a Babel/POSIX locale name: ``en_GB`` -> ``en``."""
    return locale.split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower()


@cache
def locale_for(language: str, clinic_locale: str) -> str:
    """The Babel locale for dates and numbers in ``language`` at this clinic.

    The clinic's own locale when the language is the clinic's; else the language in the
    clinic's territory if Babel knows that pair (``es`` at an ``en_US`` clinic: ``es_US``),
    else the language's most likely territory (``es`` at an ``en_GB`` clinic: ``es_ES``).
    """
    clinic = Locale.parse(clinic_locale)
    if language == clinic.language:
        return clinic_locale
    if clinic.territory:
        try:
            return str(Locale.parse(f"{language}_{clinic.territory}"))
        except (UnknownLocaleError, ValueError):
            pass
    likely = get_global("likely_subtags").get(language, "")  # "es" -> "es_Latn_ES"
    try:
        found = Locale.parse(likely or language)
        return f"{found.language}_{found.territory}" if found.territory else found.language
    except (UnknownLocaleError, ValueError):
        return clinic_locale
