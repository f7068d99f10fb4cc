"""Rebuilding a product's gate from PostgreSQL when Redis may have lost writes.

A Redis restarted from a stale snapshot or AOF, or a failover to a lagging replica, keeps
keys older than PostgreSQL: holds answered 201 are missing and their units look available.
The gate notices (each product records the server identity it was loaded under, and a take
compares it: decision 0014) and refuses takes of that product until it is rebuilt here.
"""

from __future__ import annotations

import asyncio
import logging

from stockgate.domain.errors import StoreUnavailable
from stockgate.services.ports import StockGate, UnitOfWorkFactory

log = logging.getLogger(__name__)

# Holds taken on the lost server may still be committing (the journal answers within
# seconds). Rebuilding only after they had the time to land means the rebuild reads every
# hold that was or will be answered 201. The reconciler makes the same assumption
# (RESTORE_MIN_AGE) about a hold between its gate call and its commit.
REBUILD_SETTLE_SECONDS = 2.0


async def rebuild(
    product_id: int,
    *,
    uow_factory: UnitOfWorkFactory,
    gate: StockGate,
    settle_seconds: float = REBUILD_SETTLE_SECONDS,
) -> bool:
    """Rebuild one product's gate from PostgreSQL; False when it was rebuilt by someone else
    meanwhile or does not exist. Every committed active hold and sale is put back."""
    await asyncio.sleep(settle_seconds)
    async with uow_factory() as uow:
        totals = await uow.products.totals(product_id)
    if totals is None:
        return False
    # The script rebuilds only if the product is still stale: another node or the reconciler
    # may have done it meanwhile, and takes may already be running on their rebuild.
    return await gate.load(totals)


class GateRebuilds:
    """The rebuilds this process started, at most one per product at a time."""

    def __init__(self, settle_seconds: float = REBUILD_SETTLE_SECONDS) -> None:
        self.settle_seconds = settle_seconds
        self._running: dict[int, asyncio.Task[bool]] = {}

    def request(self, product_id: int, *, uow_factory: UnitOfWorkFactory, gate: StockGate) -> None:
        """Start rebuilding a stale product unless this process is at it already."""
        if product_id in self._running:
            return
        task = asyncio.get_running_loop().create_task(
            rebuild(
                product_id,
                uow_factory=uow_factory,
                gate=gate,
                settle_seconds=self.settle_seconds,
            )
        )
        self._running[product_id] = task
        task.add_done_callback(lambda done: self._finished(product_id, done))

    def _finished(self, product_id: int, task: asyncio.Task[bool]) -> None:
        self._running.pop(product_id, None)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, StoreUnavailable):
            # A store is down: the next take of the product asks again.
            log.warning("gate rebuild of product %s failed: %s", product_id, exc)
        elif exc is not None:
            log.error("gate rebuild of product %s failed", product_id, exc_info=exc)
        elif task.result():
            log.warning("gate of product %s rebuilt from PostgreSQL", product_id)
