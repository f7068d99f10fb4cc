"""The worker's job registry over fakes: names reach their handlers, unknown names are refused,
every periodic task is scheduled on the maintenance queue."""

from __future__ import annotations

import pytest

from stockgate.domain.order import OrderStatus
from stockgate.entrypoints.worker.jobs import PERIODIC, UnknownJob, dispatcher, schedules
from stockgate.services.jobs import FULFILL_ORDER, MAINTENANCE_QUEUE
from stockgate.services.ports import JobContext
from tests.fakes import FakeWorkQueue
from tests.unit.conftest import World
from tests.unit.services.test_fulfill import paid_order


def job(name: str, attempt: int = 1) -> JobContext:
    return JobContext(name=name, job_id=f"{name}:1", attempt=attempt, max_attempts=3)


async def test_a_fulfill_job_fulfills_the_order_and_a_repeat_does_nothing(world: World) -> None:
    order = await paid_order(world)
    handle = dispatcher(world.container)
    assert await handle(job(FULFILL_ORDER), {"order_id": str(order.id)}) == "fulfilled"
    assert await handle(job(FULFILL_ORDER), {"order_id": str(order.id)}) == "skipped"
    assert world.db.data.orders[order.id].status is OrderStatus.FULFILLED


async def test_the_requeue_task_asks_for_paid_orders(world: World) -> None:
    order = await paid_order(world)
    world.clock.advance(3600)
    queue = world.container.work_queue
    assert isinstance(queue, FakeWorkQueue)
    assert await dispatcher(world.container)(job("requeue-paid-orders"), {}) == 1
    assert f"fulfill:{order.id}" in queue.jobs


async def test_an_unknown_job_is_refused(world: World) -> None:
    with pytest.raises(UnknownJob, match="no handler for job 'mystery'"):
        await dispatcher(world.container)(job("mystery"), {})


def test_every_periodic_task_is_scheduled_on_the_maintenance_queue(world: World) -> None:
    scheduled = schedules(world.container.settings)
    assert [s.name for s in scheduled] == [task.name for task in PERIODIC]
    assert {s.queue for s in scheduled} == {MAINTENANCE_QUEUE}
    assert all(s.every_seconds > 0 for s in scheduled)
