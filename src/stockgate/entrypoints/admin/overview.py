"""The live overview of a sale: per product stock, held, sold, available, and the pace."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Request, Response, get

from stockgate.entrypoints.admin.web import render, session_of, state_of

POLL_SECONDS = 2


async def _context(request: Request[Any, Any, Any]) -> dict[str, Any]:
    container = state_of(request).container
    now = container.clock.now()
    activity = await container.admin_views.activity(since=now - timedelta(minutes=1))
    gate = await container.gate.available([a.product.id for a in activity])
    return {
        "rows": [(a, gate.get(a.product.id)) for a in activity],
        "holds_per_minute": sum(a.holds_last_minute for a in activity),
        "paid_per_minute": sum(a.paid_last_minute for a in activity),
        "queue": await _queue_depth(request),
        "now": now,
        "poll_seconds": POLL_SECONDS,
    }


async def _queue_depth(request: Request[Any, Any, Any]) -> dict[str, int] | None:
    """Jobs waiting per queue, when the container has a work queue that can tell."""
    queue = getattr(state_of(request).container, "queue", None)
    depth = getattr(queue, "depth", None)
    if depth is None:
        return None
    counts: dict[str, int] = await depth()
    return counts


@get("/", include_in_schema=False)
async def overview(request: Request[Any, Any, Any]) -> Response[str]:
    context = await _context(request)
    return render("overview.html", session=session_of(request), page="overview", **context)


@get("/overview/live", include_in_schema=False)
async def overview_live(request: Request[Any, Any, Any]) -> Response[str]:
    """The overview's figures alone; the page replaces them every few seconds."""
    return render("overview_live.html", **(await _context(request)))


OVERVIEW_ROUTES = [overview, overview_live]
