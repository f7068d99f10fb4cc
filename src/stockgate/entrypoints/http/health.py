"""Readiness: can this node reach PostgreSQL and Redis right now?"""

from __future__ import annotations

from typing import Any

from litestar import Response

from stockgate.entrypoints.http.problems import problem
from stockgate.services.ports import StoreProbe


async def readiness(probe: StoreProbe) -> Response[Any]:
    checks = await probe.reachable()
    down = [name for name, ok in checks.items() if not ok]
    if down:
        return problem(
            503,
            "unavailable",
            "Not ready",
            f"unreachable: {', '.join(down)}",
            checks={k: "ok" if v else "down" for k, v in checks.items()},
        )
    body: dict[str, Any] = {"status": "ready", "checks": {k: "ok" for k in checks}}
    warnings = await probe.warnings()
    if warnings:  # ready, but configured so that data can be lost: say so (decision 0014)
        body["warnings"] = warnings
    return Response(body)
