"""Maintenance use cases run on schedules by the maintenance role: re-asking for lost work,
reporting the queues, forgetting old jobs. Reconciling lives in services/reconcile.py.

PostgreSQL is the truth: a paid order whose fulfillment job Redis lost (a flush, a restart
from an old snapshot, a job that gave up on store errors) is found here and asked for again.
"""

from __future__ import annotations

from datetime import timedelta

from stockgate.domain.order import OrderStatus
from stockgate.services.jobs import FULFILL_ORDER
from stockgate.services.ports import Clock, QueueDepth, UnitOfWorkFactory, WorkQueue

PAGE = 500


async def requeue_paid(
    *,
    uow_factory: UnitOfWorkFactory,
    queue: WorkQueue,
    clock: Clock,
    older_than_seconds: float,
) -> int:
    """Ask again for the fulfillment of paid orders paid more than that long ago; how many
    jobs were added (an order whose job still waits or runs is left alone)."""
    paid_before = clock.now() - timedelta(seconds=older_than_seconds)
    asked = 0
    after = None
    while True:
        async with uow_factory() as uow:
            page = await uow.orders.with_status([OrderStatus.PAID], after=after, limit=PAGE)
        for order in page:
            if order.awaits_fulfillment and (order.paid_at is None or order.paid_at <= paid_before):
                key = str(order.id)
                if await queue.request_again(FULFILL_ORDER, key, {"order_id": key}):
                    asked += 1
        if len(page) < PAGE:
            return asked
        after = page[-1].id


async def report_depths(queue: WorkQueue) -> list[QueueDepth]:
    return await queue.depths()


async def purge_finished_jobs(queue: WorkQueue, *, older_than_seconds: float) -> int:
    return await queue.purge_finished(older_than_seconds)
