"""Readiness: can this process reach PostgreSQL and Redis right now? (implements StoreProbe)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

CHECK_TIMEOUT_SECONDS = 1.0


class StoresProbe:
    def __init__(self, engine: AsyncEngine, redis: Redis) -> None:
        self._engine = engine
        self._redis = redis

    async def reachable(self) -> dict[str, bool]:
        postgres, redis = await asyncio.gather(_answers(self._select_one()), _answers(self._ping()))
        return {"postgres": postgres, "redis": redis}

    async def warnings(self) -> list[str]:
        """What in Redis's configuration can cost the gate data (decision 0014)."""
        try:
            config = await asyncio.wait_for(
                self._redis.config_get("maxmemory-policy", "appendonly", "appendfsync"),
                CHECK_TIMEOUT_SECONDS,
            )
        except Exception:  # CONFIG is often disabled on managed Redis: nothing to say then
            return []
        return redis_warnings({str(k): str(v) for k, v in config.items()})

    async def _select_one(self) -> None:
        async with self._engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def _ping(self) -> None:
        await self._redis.ping()


async def _answers(check: Awaitable[None]) -> bool:
    try:
        await asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS)
    except Exception:  # any failure means "not ready"; the caller names the store
        return False
    return True


def redis_warnings(config: dict[str, str]) -> list[str]:
    found = []
    policy = config.get("maxmemory-policy", "noeviction")
    if policy != "noeviction":
        found.append(
            f"redis maxmemory-policy is {policy}: gate keys can be evicted under memory "
            "pressure; set noeviction"
        )
    if config.get("appendonly", "yes") != "yes":
        found.append(
            "redis appendonly is off: a restart loses every write since the last snapshot "
            "(the gate then refuses takes until rebuilt from PostgreSQL); set appendonly yes"
        )
    elif config.get("appendfsync", "always") != "always":
        found.append(
            f"redis appendfsync is {config.get('appendfsync')}: a crash can lose the last "
            "second of writes (the gate then refuses takes until rebuilt from PostgreSQL)"
        )
    return found
