"""The one small in-memory cache: the last values made, by key, for the life of a process.

Bounded, so a batch of 100,000 patients keeps flat memory, and least-recently-used first out,
so what every document uses (a template's wording, a font's subset) stays while what one
patient's document made (a paragraph with their name) goes. Kept across documents by the speed
tricks (``speedups.py``) and by a batch reading its templates (``batch/schedule.py``).
(What is kept between runs, on disk, is ``cache.py``'s.)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class Lru(Generic[_K, _V]):
    """At most ``size`` values by key, the least recently used dropped first. Safe to share
    between threads (documents may be drawn in several at once): each step is one operation on
    a C ``OrderedDict``, atomic under the GIL, and a value made twice at once is kept once.
    ``None`` is never kept (it means "not there")."""

    __slots__ = ("items", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[_K, _V] = OrderedDict()

    def find(self, key: _K) -> _V | None:
        """The value kept under ``key`` (now the most recently used), or None."""
        items = self.items
        try:
            items.move_to_end(key)
            return items[key]
        except KeyError:  # not there (or dropped by another thread just now)
            return None

    def put(self, key: _K, value: _V) -> _V:
        """Keep ``value`` under ``key``, dropping the least recently used beyond ``size``."""
        items = self.items
        items[key] = value
        while len(items) > self.size:
            try:
                items.popitem(last=False)
            except KeyError:  # emptied by another thread
                break
        return value

    def get(self, key: _K, make: Callable[[], _V]) -> _V:
        """The value kept under ``key``, else ``make()``'s, kept."""
        found = self.find(key)
        return found if found is not None else self.put(key, make())

    def clear(self) -> None:
        self.items.clear()

    def __len__(self) -> int:
        return len(self.items)
