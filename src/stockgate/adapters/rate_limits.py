"""Request limits shared by every API node (implements services.ports.RateLimits).

The counting is the `limits` library's sliding-window-counter strategy on its async Redis
storage (whose hot call joins a per-tick pipeline), sharing the process's connection pool;
keys live under the settings' prefix (`<prefix>:rl:{LIMITER/<scope>/<key>/...}`), so stacks
and tests sharing a Redis never see each other's counts. A scope is a name with its limits
("20/minute", or several: "5/second;100/minute"); a scope configured with no limits is off.
Unit tests and stacks without Redis use the library's in-memory storage, same strategy.

When Redis cannot be reached the request is let through (and logged, at most once a
second): a limit protects the stores, and a store that is down refuses the work anyway;
failing closed would make customer creation depend on Redis.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from hashlib import sha1

import structlog
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from stockgate.adapters.redis.scripts import Script, ScriptBatcher
from stockgate.domain.errors import RateLimited, StoreUnavailable

log = structlog.get_logger(__name__)


def parse_limits(text: str) -> tuple[RateLimitItem, ...]:
    """ "20/minute", "5/second;100/minute" (also "20 per minute"); "" or "off": no limit."""
    if text.strip().lower() in ("", "off", "none"):
        return ()
    return tuple(parse_many(text))


class BatchedRedisStorage(RedisStorage):
    """The library's Redis storage, on our own client's pool (no second pool to size), except
    that its hot call joins a per-tick pipeline: the hits of every request of one event-loop
    tick go to Redis in one write, as the gate's calls do (docs/performance.md, "Rate
    limits"). Same script (the library's), same keys, same answers."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        super().__init__(
            "async+redis://",  # the scheme picks the storage; the pool says where Redis is
            implementation="redispy",
            key_prefix=f"{prefix}:rl",
            # The library types its options as scalars, but hands them to redis.asyncio.Redis.
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
        )
        self._batcher = ScriptBatcher(redis)
        source = self.bridge.SCRIPT_ACQUIRE_SLIDING_WINDOW  # bytes, as the library reads it
        self._acquire = Script("limits_acquire", source.decode(), sha1(source).hexdigest())

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        keys = [
            self.bridge.prefixed_key(self._previous_window_key(key)),
            self.bridge.prefixed_key(self._current_window_key(key)),
        ]
        # The script answers true (1) or false (nil).
        return bool(await self._batcher.run(self._acquire, keys, [limit, expiry, amount]))


def redis_storage(redis: Redis, prefix: str) -> Storage:
    return BatchedRedisStorage(redis, prefix)


def memory_storage() -> Storage:
    return MemoryStorage()


class LibraryRateLimits:
    def __init__(self, storage: Storage, scopes: Mapping[str, Sequence[RateLimitItem]]) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._scopes = {scope: tuple(items) for scope, items in scopes.items()}
        self._last_warning = 0.0

    def enabled(self, scope: str) -> bool:
        return bool(self._scopes[scope])

    async def hit(self, scope: str, key: str) -> None:
        items = self._scopes[scope]  # an unknown scope is a bug: KeyError, not "unlimited"
        for item in items:
            try:
                allowed = await self._limiter.hit(item, scope, key)
                if allowed:
                    continue
                stats = await self._limiter.get_window_stats(item, scope, key)
            except (RedisError, OSError, StoreUnavailable) as exc:
                self._warn(scope, exc)
                return
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            raise RateLimited(retry_after)

    async def hit_all(self, *hits: tuple[str, str]) -> None:
        counted = [self.hit(scope, key) for scope, key in hits if self._scopes[scope]]
        if len(counted) == 1:
            await counted[0]
        elif counted:  # scopes that are off cost nothing, not even a task
            await asyncio.gather(*counted)

    def _warn(self, scope: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_warning >= 1.0:
            self._last_warning = now
            log.warning("rate_limit.store_unavailable", scope=scope, error=str(exc))
