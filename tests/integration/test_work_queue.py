"""The bullmq adapter against real Redis: job ids from the business key, retries with backoff,
asking again for lost work, depth, schedules once per period across runners, clean stop."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from redis import Redis

from stockgate.adapters.queue.bull import BullJobRunner, BullWorkQueue, QueueSettings, backoff_ms
from stockgate.services.jobs import FULFILL_ORDER, FULFILLMENT_QUEUE, MAINTENANCE_QUEUE
from stockgate.services.ports import JobContext, Schedule


def queue_settings(redis_url: str, prefix: str, **overrides: Any) -> QueueSettings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "prefix": prefix,
        "attempts": 3,
        "backoff_seconds": 0.1,
        "backoff_max_seconds": 1.0,
        "lock_seconds": 2.0,
        "stalled_check_seconds": 1.0,
    }
    values.update(overrides)
    return QueueSettings(**values)


async def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


Handle = Callable[[JobContext, Mapping[str, Any]], Awaitable[object]]


def recorder(seen: list[tuple[JobContext, dict[str, Any]]], fail_first: int = 0) -> Handle:
    async def handle(job: JobContext, data: Mapping[str, Any]) -> object:
        seen.append((job, dict(data)))
        if job.attempt <= fail_first:
            raise RuntimeError(f"attempt {job.attempt} fails")
        return "ok"

    return handle


async def test_a_job_asked_for_twice_runs_once_and_keys_stay_under_the_prefix(
    redis_url: str, redis_prefix: str
) -> None:
    settings = queue_settings(redis_url, redis_prefix)
    queue, runner = BullWorkQueue(settings), BullJobRunner(settings)
    order_id = uuid.uuid4()
    await queue.request_fulfillment(order_id)
    await queue.request_fulfillment(order_id)  # same business key: no second job
    seen: list[tuple[JobContext, dict[str, Any]]] = []
    await runner.start([FULFILLMENT_QUEUE], recorder(seen))
    try:
        await until(lambda: len(seen) == 1)
        await asyncio.sleep(0.3)
        assert len(seen) == 1
        job, data = seen[0]
        assert job.name == FULFILL_ORDER and job.job_id == f"fulfill:{order_id}"
        assert data == {"order_id": str(order_id)} and job.attempt == 1
        redis = Redis.from_url(redis_url, decode_responses=True)
        assert redis.keys(f"{redis_prefix}:bull:fulfillment:*")  # the queue is under the prefix
        assert not redis.keys("bull:fulfillment:*")  # and not under bullmq's default one
    finally:
        await runner.stop()
        await queue.close()


async def test_a_failing_job_is_retried_with_backoff_until_it_succeeds(
    redis_url: str, redis_prefix: str
) -> None:
    settings = queue_settings(redis_url, redis_prefix)
    queue, runner = BullWorkQueue(settings), BullJobRunner(settings)
    seen: list[tuple[JobContext, dict[str, Any]]] = []
    await runner.start([FULFILLMENT_QUEUE], recorder(seen, fail_first=2))
    try:
        await queue.request_fulfillment(uuid.uuid4())
        await until(lambda: len(seen) == 3)
        assert [job.attempt for job, _ in seen] == [1, 2, 3]
        assert seen[-1][0].last_attempt and not seen[0][0].last_attempt
    finally:
        await runner.stop()
        await queue.close()


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    for attempt, full in [(1, 1000), (2, 2000), (3, 4000), (8, 10_000)]:
        delays = {backoff_ms(attempt, 1.0, 10.0) for _ in range(50)}
        assert all(full / 2 <= d <= full for d in delays)
        assert len(delays) > 1  # jitter: not every retry at the same moment


async def test_asking_again_adds_a_lost_job_but_not_a_waiting_one(
    redis_url: str, redis_prefix: str
) -> None:
    queue = BullWorkQueue(queue_settings(redis_url, redis_prefix))
    order_id = str(uuid.uuid4())
    try:
        assert await queue.request_again(FULFILL_ORDER, order_id, {"order_id": order_id})
        assert not await queue.request_again(FULFILL_ORDER, order_id, {"order_id": order_id})
        (fulfillment, *_) = await queue.depths()
        assert fulfillment.queue == FULFILLMENT_QUEUE and fulfillment.waiting == 1
        await asyncio.sleep(0.05)
        assert (await queue.depths())[0].oldest_waiting_seconds > 0
    finally:
        await queue.close()


async def test_a_schedule_runs_once_per_period_however_many_runners_declare_it(
    redis_url: str, redis_prefix: str
) -> None:
    settings = queue_settings(redis_url, redis_prefix)
    runners = [BullJobRunner(settings) for _ in range(3)]
    seen: list[tuple[JobContext, dict[str, Any]]] = []
    schedule = [Schedule("tick", MAINTENANCE_QUEUE, 0.5)]
    for runner in runners:
        await runner.start([MAINTENANCE_QUEUE], recorder(seen), schedule)
    try:
        started = time.monotonic()
        await asyncio.sleep(2.6)
        periods = (time.monotonic() - started) / 0.5
        ticks = [job for job, _ in seen if job.name == "tick"]
        # One run per period (the first may come at once), never one per runner.
        assert periods - 2 <= len(ticks) <= periods + 2, (len(ticks), periods)
        assert len({job.job_id for job in ticks}) == len(ticks)
    finally:
        for runner in runners:
            await runner.stop()


async def test_stop_lets_the_running_job_finish(redis_url: str, redis_prefix: str) -> None:
    settings = queue_settings(redis_url, redis_prefix)
    queue, runner = BullWorkQueue(settings), BullJobRunner(settings)
    finished: list[str] = []
    started = asyncio.Event()

    async def slow(job: JobContext, data: Mapping[str, Any]) -> object:
        started.set()
        await asyncio.sleep(0.5)
        finished.append(job.job_id)
        return None

    await runner.start([FULFILLMENT_QUEUE], slow)
    await queue.request_fulfillment(uuid.uuid4())
    await asyncio.wait_for(started.wait(), 10)
    await runner.stop()
    assert len(finished) == 1
    assert (await queue.depths())[0].active == 0
    await queue.close()
