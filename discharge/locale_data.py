"""Babel locales that load only the locale data our dates use, from the installation's cache.

Babel loads a locale's whole CLDR data on first use: for en_GB four pickles (root, en, en_001,
en_GB, 400 KB) merged key by key, about 20 ms of every start, to read a few month and weekday
names and three patterns. ``locale(name)`` gives a Babel ``Locale`` whose data is just the
entries formatting our dates has read (recorded once, kept in the cache, see ``cache.py``);
anything else asked of it loads the full data as Babel would, so it is never wrong, only as
slow as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import FunctionType
from typing import Any

import babel
from babel import Locale, localedata

from discharge import cache as install_cache
from discharge import speedups


class _Subset(dict[str, Any]):
    """Some of a locale's data; a key not kept loads the locale's full data."""

    def __init__(self, identifier: str, entries: Mapping[str, Any]) -> None:
        super().__init__(entries)
        self.identifier = identifier

    def __missing__(self, key: str) -> Any:
        full = localedata.LocaleDataDict(localedata.load(self.identifier))  # type: ignore[arg-type]
        value = full[key]
        self[key] = value
        return value


class _Recorder(localedata.LocaleDataDict):
    """The full data, noting which top-level entries are read."""

    def __init__(self, data: Any) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def __getitem__(self, key: str | int | None) -> Any:
        self.read.add(str(key))
        return super().__getitem__(key)


def _plain(value: Any) -> Any:
    # A LocaleDataDict resolves CLDR aliases as it is read: keep the resolved values.
    if isinstance(value, Mapping):
        return {k: _plain(value[k]) for k in value}
    return value


@cache
def locale(name: str, sample: FunctionType) -> Locale:
    """The Babel locale ``name``, its data limited to what ``sample(locale)`` reads.

    ``sample`` formats a few values the way the caller will (every pattern it uses), so that
    the entries it reads are the ones kept.
    """
    loc = Locale.parse(name)
    if not speedups.usable("babel-locale"):
        return loc
    identifier = speedups.locale_identifier(loc)
    made_by = install_cache.source_digest(__file__, sample.__code__.co_filename)
    key = (identifier, babel.__version__, sample.__qualname__, made_by)
    entries = install_cache.fetch("locale", key)
    if not isinstance(entries, dict):
        recorder = _Recorder(localedata.load(identifier))
        speedups.set_locale_data(loc, recorder)
        sample(loc)
        entries = {k: _plain(recorder[k]) for k in sorted(recorder.read)}
        install_cache.store("locale", key, entries)
    speedups.set_locale_data(loc, _Subset(identifier, entries))
    return loc
