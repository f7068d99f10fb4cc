"""Per-node memory of products seen sold out, so a refused request touches no store.

An entry lives at most `ttl` seconds and is dropped as soon as any node publishes that the
product is back in stock. It only ever refuses a request, so it can never cause an oversell.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)


class SoldOutCache:
    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._until: dict[int, float] = {}

    def remember(self, product_id: int) -> None:
        if self._ttl > 0:
            self._until[product_id] = time.monotonic() + self._ttl

    def forget(self, product_id: int) -> None:
        self._until.pop(product_id, None)

    def clear(self) -> None:
        self._until.clear()

    def __contains__(self, product_id: int) -> bool:
        until = self._until.get(product_id)
        if until is None:
            return False
        if time.monotonic() < until:
            return True
        del self._until[product_id]
        return False

    async def follow(self, redis: Redis, channel: str) -> None:
        """Drop entries when stock comes back anywhere; runs until cancelled."""
        while True:
            try:
                async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(channel)
                    self.clear()  # we may have missed messages while (re)connecting
                    async for message in pubsub.listen():
                        self.forget(int(message["data"]))
            except (RedisError, OSError, ValueError) as exc:
                self.clear()
                log.warning("sold_out_cache.follow_failed", error=type(exc).__name__)
                await asyncio.sleep(1.0)
