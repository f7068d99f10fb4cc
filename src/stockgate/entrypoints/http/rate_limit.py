"""Per-client request limits for customer creation and reservations (fixed one-minute window).

Kept in process memory: each API node limits on its own, which bounds abuse per node
without a Redis round trip on the hot path. Load tests turn it off
(STOCKGATE_RATE_LIMIT_ENABLED=false).
"""

from __future__ import annotations

import time

from stockgate.domain.errors import RateLimited

WINDOW_SECONDS = 60
MAX_TRACKED = 100_000


class RateLimiter:
    def __init__(self, per_minute: int, *, enabled: bool) -> None:
        self._limit = per_minute
        self._enabled = enabled
        self._window = 0
        self._counts: dict[str, int] = {}

    def check(self, client: str) -> None:
        if not self._enabled:
            return
        window = int(time.time()) // WINDOW_SECONDS
        if window != self._window or len(self._counts) > MAX_TRACKED:
            self._window = window
            self._counts.clear()
        count = self._counts.get(client, 0) + 1
        self._counts[client] = count
        if count > self._limit:
            retry_after = WINDOW_SECONDS - int(time.time()) % WINDOW_SECONDS
            raise RateLimited(retry_after)
