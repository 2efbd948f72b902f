"""Sign-in throttling: after a few wrong passwords, each further try must wait.

After ``FREE_TRIES`` failed sign-ins *from an address*, or *for an account*, the next try is
allowed only after a wait that doubles with each further failure (1 s, 2 s, 4 s ... capped at
``MAX_WAIT`` seconds). A try during the wait is answered at once ("too many tries, wait N
seconds", HTTP 429 with ``Retry-After``) without checking the password: a guesser learns
nothing, and no server thread sleeps (a sleeping thread is one a nurse cannot have).

An account under attack must not lock its nurses out (guessers anywhere could then keep a
ward from signing in): its wait applies to the addresses that have failed on it, so a nurse at
another computer still signs in; each guessing address has at most one try per wait. A correct
password clears the account's count; an address's count is cleared only by time (``FORGET``
seconds without a failure), so one known password cannot buy more guesses at the others.

Counts live in memory (a restart forgets them, as it forgets the sessions) and are bounded:
the oldest are dropped beyond ``MAX_ENTRIES``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

FREE_TRIES = 5
FIRST_WAIT = 1.0
MAX_WAIT = 60.0
FORGET = 15 * 60.0  # seconds without a failure after which a count starts again
MAX_ENTRIES = 10_000
MAX_ADDRESSES = 1_000  # an account failed from more addresses than this waits for everyone


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    addresses: set[str] = field(default_factory=set)  # for an account: who failed on it

    def wait(self, now: float) -> float:
        """Seconds until the next try is allowed (0: now)."""
        if self.count < FREE_TRIES:
            return 0.0
        delay = min(MAX_WAIT, FIRST_WAIT * 2.0 ** min(self.count - FREE_TRIES, 16))
        return max(0.0, self.last + delay - now)


class SignInThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._addresses: OrderedDict[str, _Failures] = OrderedDict()
        self._accounts: OrderedDict[str, _Failures] = OrderedDict()

    def wait(self, account: str, address: str) -> int:
        """Whole seconds this try must wait before its password is checked (0: check it now)."""
        now = self._clock()
        with self._lock:
            waits = [0.0]
            by_address = self._current(self._addresses, address, now)
            if by_address is not None:
                waits.append(by_address.wait(now))
            by_account = self._current(self._accounts, account.casefold(), now)
            if by_account is not None and (
                address in by_account.addresses or len(by_account.addresses) > MAX_ADDRESSES
            ):
                waits.append(by_account.wait(now))
        return math.ceil(max(waits))

    def failed(self, account: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            for table, key in ((self._addresses, address), (self._accounts, account.casefold())):
                entry = self._current(table, key, now) or _Failures()
                entry.count += 1
                entry.last = now
                table[key] = entry
                table.move_to_end(key)
                while len(table) > MAX_ENTRIES:
                    table.popitem(last=False)
            addresses = self._accounts[account.casefold()].addresses
            if len(addresses) <= MAX_ADDRESSES:
                addresses.add(address)

    def succeeded(self, account: str) -> None:
        with self._lock:
            self._accounts.pop(account.casefold(), None)

    @staticmethod
    def _current(table: OrderedDict[str, _Failures], key: str, now: float) -> _Failures | None:
        entry = table.get(key)
        if entry is not None and now - entry.last > max(FORGET, entry.wait(now)):
            del table[key]
            return None
        return entry
