"""Failed admin logins counted in Redis, per key, in a fixed window shared by every node.

Only failures count: an operator who logs in often is never locked out by their own
successes, and a success clears the account's count (not the address's: one address trying
many accounts stays throttled).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from stockgate.domain.errors import StoreUnavailable


class RedisLoginThrottle:
    def __init__(
        self, redis: Redis, prefix: str, *, max_failures: Mapping[str, int], window_seconds: int
    ) -> None:
        """`max_failures` by scope: a key "account:bob" counts against max_failures["account"]."""
        self._redis = redis
        self._prefix = prefix
        self._max_failures = dict(max_failures)
        self._window = window_seconds

    def _limit(self, key: str) -> int:
        scope = key.partition(":")[0]
        return self._max_failures.get(scope, min(self._max_failures.values()))

    def _key(self, key: str) -> str:
        # Hashed: user input (names, addresses) never shapes the key's text.
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return f"{self._prefix}:admin:login-failures:{digest}"

    async def retry_after(self, keys: Sequence[str]) -> int:
        names = [self._key(key) for key in keys]
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.get(name)
                    pipe.ttl(name)
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable("redis") from exc
        wait = 0
        for key, count, ttl in zip(keys, replies[::2], replies[1::2], strict=True):
            if count is not None and int(count) >= self._limit(key):
                wait = max(wait, int(ttl) if int(ttl) > 0 else self._window)
        return wait

    async def failed(self, keys: Sequence[str]) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key in keys:
                    name = self._key(key)
                    pipe.incr(name)
                    pipe.expire(name, self._window, nx=True)  # the window starts at the first
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable("redis") from exc

    async def clear(self, keys: Sequence[str]) -> None:
        try:
            await self._redis.delete(*(self._key(key) for key in keys))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable("redis") from exc
