"""Readiness: can this node reach PostgreSQL and Redis right now?"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from litestar import Response

from stockgate.bootstrap import Container
from stockgate.entrypoints.http.problems import problem

CHECK_TIMEOUT_SECONDS = 1.0


async def readiness(container: Container) -> Response[Any]:
    postgres, redis = await asyncio.gather(_postgres(container), _redis(container))
    checks = {"postgres": postgres, "redis": redis}
    down = [name for name, ok in checks.items() if not ok]
    if down:
        return problem(
            503,
            "unavailable",
            "Not ready",
            f"unreachable: {', '.join(down)}",
            checks={k: "ok" if v else "down" for k, v in checks.items()},
        )
    return Response({"status": "ready", "checks": {k: "ok" for k in checks}})


async def _postgres(container: Container) -> bool:
    async def ping() -> None:
        async with container.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    return await _ok(ping())


async def _redis(container: Container) -> bool:
    async def ping() -> None:
        await container.redis.ping()

    return await _ok(ping())


async def _ok(check: Any) -> bool:
    try:
        await asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS)
    except Exception:  # any failure means "not ready"; the body names the store
        return False
    return True
