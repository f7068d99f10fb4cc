"""The live overview of a sale: per product stock, held, sold, available, and the pace."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from litestar import Request, Response, get

from stockgate.entrypoints.admin.web import render, session_of, state_of
from stockgate.services.ports import ProductActivity, QueueDepth

log = structlog.get_logger(__name__)

POLL_SECONDS = 3
# The figures come from PostgreSQL (the truth), and a reading of a big sale takes a few hundred
# milliseconds (300k reservations: docs/operations.md): every open tab of one API node shares
# one reading this young, so operators watching cost one query per few seconds, not one per tab.
FRESH_SECONDS = 2.5


@dataclass
class Reading:
    at: float = -FRESH_SECONDS
    activity: list[ProductActivity] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def _activity(request: Request[Any, Any, Any], since: datetime) -> list[ProductActivity]:
    reading: Reading | None = getattr(request.app.state, "admin_reading", None)
    if reading is None:
        reading = request.app.state.admin_reading = Reading()
    async with reading.lock:  # one reader at a time; the others get its answer
        if time.monotonic() - reading.at > FRESH_SECONDS:
            views = state_of(request).container.admin_views
            reading.activity = await views.activity(since=since)
            reading.at = time.monotonic()
        return reading.activity


async def _context(request: Request[Any, Any, Any]) -> dict[str, Any]:
    container = state_of(request).container
    now = container.clock.now()
    activity = await _activity(request, now - timedelta(minutes=1))
    gate = await container.gate.available([a.product.id for a in activity])
    return {
        "rows": [(a, gate.get(a.product.id)) for a in activity],
        "holds_per_minute": sum(a.holds_last_minute for a in activity),
        "paid_per_minute": sum(a.paid_last_minute for a in activity),
        "queues": await _queue_depths(request),
        "now": now,
        "poll_seconds": POLL_SECONDS,
    }


async def _queue_depths(request: Request[Any, Any, Any]) -> list[QueueDepth] | None:
    """Each queue's backlog; None when the queue's Redis cannot tell now (the rest of the
    page still shows: an operator mid-sale needs the stock figures most)."""
    try:
        return await state_of(request).container.work_queue.depths()
    except Exception:
        log.warning("admin.queue_depths_failed", exc_info=True)
        return None


@get("/", include_in_schema=False)
async def overview(request: Request[Any, Any, Any]) -> Response[str]:
    context = await _context(request)
    return render("overview.html", session=session_of(request), page="overview", **context)


@get("/overview/live", include_in_schema=False)
async def overview_live(request: Request[Any, Any, Any]) -> Response[str]:
    """The overview's figures alone; the page replaces them every few seconds."""
    return render("overview_live.html", **(await _context(request)))


@get("/queues", include_in_schema=False)
async def queues_page(request: Request[Any, Any, Any]) -> Response[str]:
    """Queue health: what waits, runs, is delayed (retries) or failed, per queue."""
    queues = await state_of(request).container.work_queue.depths()
    return render("queues.html", session=session_of(request), page="queues", queues=queues)


OVERVIEW_ROUTES = [overview, overview_live, queues_page]
