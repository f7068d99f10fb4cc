"""Per-node memory of products seen sold out, so a refused request touches no store.

An entry lives at most `ttl` seconds and is dropped as soon as any node publishes that the
product is back in stock. It only ever refuses a request, so it can never cause an oversell.
"""

from __future__ import annotations

import asyncio

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from stockgate.services.expiring_ids import ExpiringIds

log = structlog.get_logger(__name__)


class SoldOutCache(ExpiringIds):
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
