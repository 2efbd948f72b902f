"""discharge.lru.Lru, the one in-memory cache the speed tricks and the batch keep: bounded,
least recently used out, and safe to share between threads."""

from __future__ import annotations

import threading

from discharge.lru import Lru


def test_it_keeps_at_most_its_size_dropping_the_least_recently_used() -> None:
    kept: Lru[str, int] = Lru(3)
    for key, value in (("a", 1), ("b", 2), ("c", 3)):
        kept.put(key, value)
    assert kept.find("a") == 1  # used: now the most recent, "b" the least
    kept.put("d", 4)
    assert len(kept) == 3
    assert kept.find("b") is None
    assert (kept.find("a"), kept.find("c"), kept.find("d")) == (1, 3, 4)


def test_get_makes_a_value_once_and_keeps_it() -> None:
    kept: Lru[int, str] = Lru(2)
    calls: list[int] = []

    def make(n: int) -> str:
        calls.append(n)
        return f"value {n}"

    assert kept.get(1, lambda: make(1)) == "value 1"
    assert kept.get(1, lambda: make(1)) == "value 1"
    assert calls == [1]
    kept.get(2, lambda: make(2))
    kept.get(3, lambda: make(3))  # drops 1, the least recently used
    assert kept.get(1, lambda: make(1)) == "value 1"
    assert calls == [1, 2, 3, 1]


def test_clear_empties_it() -> None:
    kept: Lru[str, int] = Lru(4)
    kept.put("a", 1)
    kept.clear()
    assert len(kept) == 0 and kept.find("a") is None


def test_threads_sharing_one_stay_within_its_size_and_get_their_values() -> None:
    kept: Lru[int, int] = Lru(16)
    wrong: list[object] = []

    def work(offset: int) -> None:
        try:
            for i in range(5_000):
                key = (i * 7 + offset) % 40
                value = kept.get(key, lambda key=key: key * key)
                if value != key * key:
                    wrong.append((key, value))
        except Exception as exc:  # noqa: BLE001 - a thread's error would otherwise be lost
            wrong.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert len(kept) <= 16
