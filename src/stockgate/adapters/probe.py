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
