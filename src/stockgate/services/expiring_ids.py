"""Ids a process remembers for a short while: the per-node caches that only ever refuse."""

from __future__ import annotations

import time


class ExpiringIds:
    """Each id is remembered for `ttl` seconds (none with ttl <= 0).

    `max_size` bounds memory: when it is reached, everything is forgotten at once rather than
    growing (a flood of distinct ids); forgetting early only costs a lookup.
    """

    def __init__(self, ttl: float, *, max_size: int | None = None) -> None:
        self._ttl = ttl
        self._max_size = max_size
        self._until: dict[int, float] = {}

    def remember(self, item: int) -> None:
        if self._ttl <= 0:
            return
        if self._max_size is not None and len(self._until) >= self._max_size:
            self._until.clear()
        self._until[item] = time.monotonic() + self._ttl

    def forget(self, item: int) -> None:
        self._until.pop(item, None)

    def clear(self) -> None:
        self._until.clear()

    def __contains__(self, item: int) -> bool:
        until = self._until.get(item)
        if until is None:
            return False
        if time.monotonic() < until:
            return True
        del self._until[item]
        return False
