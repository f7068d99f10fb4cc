"""The live stock feed (implements services.ports.StockChanges).

Services mark the products whose available stock changed; nothing is read or sent per call,
so the reservation path pays a set insert, not a message. One flush per interval reads the
latest `available` of every marked product in one Redis round trip and sends one `stock`
event per product to its room (`product:<id>`), through the Socket.IO Redis manager so the
watchers of every API node get it. A burst of changes to one product therefore costs its
watchers at most one message per interval (per sending process), always the latest value.

The first change after a quiet spell is flushed at once (low latency); later ones wait for
the interval. Each product flushed is read and sent once more `settle` seconds after its last
change: two processes (an API node and the expiry worker) may read a product's value in one
order and publish it in the other, and this last send makes what watchers end up with the
value once everything is quiet (decision 0030).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import structlog

from stockgate.domain.errors import StoreUnavailable
from stockgate.services.live_stock import STOCK_EVENT, room_of
from stockgate.services.ports import StockGate

log = structlog.get_logger(__name__)


class Emitter(Protocol):
    """What sends an event to a room on every node: a Socket.IO client manager."""

    async def emit(
        self, event: str, data: Any, namespace: str | None = None, room: str | None = None
    ) -> None: ...


class StockFeed:
    def __init__(
        self,
        gate: StockGate,
        emitter: Emitter,
        *,
        interval: float = 0.1,
        settle: float = 0.5,
        on_flush: Any = None,
    ) -> None:
        self._gate = gate
        self._emitter = emitter
        self._interval = interval
        self._settle = settle
        self._on_flush = on_flush  # (products sent) -> None, for metrics
        self._dirty: set[int] = set()
        self._settle_at: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def changed(self, product_ids: Iterable[int]) -> None:
        self._dirty.update(product_ids)
        if self._dirty:
            self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="stock-feed")

    async def close(self) -> None:
        """Stop, sending what is still marked (a CLI restock's change reaches the watchers)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._dirty:
            with contextlib.suppress(StoreUnavailable):
                await self.flush(settle=False)

    async def flush(self, *, settle: bool = True) -> dict[int, int]:
        """Send the latest value of every product marked, or due to settle; returns them."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = [pid for pid, at in self._settle_at.items() if at <= now]
        for product_id in due:
            del self._settle_at[product_id]
        dirty, self._dirty = self._dirty, set()
        if settle:
            for product_id in dirty:
                self._settle_at[product_id] = now + self._settle
        product_ids = sorted(dirty.union(due))
        if not product_ids:
            return {}
        try:
            levels = await self._gate.available(product_ids)
        except StoreUnavailable:
            self._dirty |= dirty  # read again next time; watchers keep the last value
            raise
        current = {pid: max(count, 0) for pid, count in levels.items() if count is not None}
        await self._send(current)
        if self._on_flush is not None:
            self._on_flush(len(current))
        return current

    async def _send(self, current: Mapping[int, int]) -> None:
        for product_id, available in current.items():
            await self._emitter.emit(
                STOCK_EVENT,
                {"product_id": product_id, "available": available},
                namespace="/",
                room=room_of(product_id),
            )

    def _next_settle_in(self) -> float | None:
        if not self._settle_at:
            return None
        now = asyncio.get_running_loop().time()
        return max(0.0, min(self._settle_at.values()) - now)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_settle_in())
            self._wake.clear()
            try:
                await self.flush()
            except StoreUnavailable:
                log.warning("stock_feed.redis_unavailable")
            except Exception:  # keep the feed alive: a dead one would freeze every watcher
                log.exception("stock_feed.flush_failed")
            # At most one flush per interval: a burst waits here and is sent as one update.
            await asyncio.sleep(self._interval)
