"""The job queue on BullMQ (the Python `bullmq` package): WorkQueue for producers, JobRunner
for workers.

Queue keys live under `<redis prefix>:bull`, so stacks sharing a Redis never see each other's
jobs. Job ids are the business key (`fulfill:<order id>`, `event:<event id>`): adding a job
whose id exists is a no-op. Finished jobs are removed (a completed job's id must be free for
the maintenance role to ask again) but failed ones are kept for operators until purged.

Retries use bullmq's attempts with our own backoff: exponential with "equal jitter" (half the
delay fixed, half random), so a merchant endpoint coming back is not hit by every retry at
once.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from bullmq import Job, Queue, Worker

from stockgate.services.jobs import (
    FULFILL_ORDER,
    FULFILLMENT_QUEUE,
    PAYMENTS_QUEUE,
    PROCESS_PAYMENT_EVENT,
    QUEUES,
)
from stockgate.services.ports import JobContext, JobHandle, QueueDepth, Schedule

log = structlog.get_logger(__name__)

JITTER_BACKOFF = "jitter-exponential"


@dataclass(frozen=True, slots=True)
class QueueSettings:
    redis_url: str
    prefix: str  # the settings' Redis key prefix; bullmq keys go under `<prefix>:bull`
    attempts: int = 5
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    lock_seconds: float = 5.0  # a killed worker's job is taken again after about this long
    stalled_check_seconds: float = 2.0
    concurrency: int = 8
    keep_failed_seconds: float = 7 * 86_400

    @property
    def bull_prefix(self) -> str:
        return f"{self.prefix}:bull"


def fulfillment_job_id(order_id: uuid.UUID) -> str:
    return f"fulfill:{order_id}"


def event_job_id(event_id: str) -> str:
    return f"event:{event_id}"


def backoff_ms(attempts_made: int, base_seconds: float, max_seconds: float) -> int:
    """Delay before the next attempt: base * 2^(n-1), capped, half of it random."""
    delay = min(max_seconds, base_seconds * 2 ** max(0, attempts_made - 1))
    return int(1000 * (delay / 2 + random.uniform(0, delay / 2)))  # not crypto


class BullWorkQueue:
    """Producer side: one bullmq Queue per queue name, made on first use."""

    def __init__(self, settings: QueueSettings) -> None:
        self._settings = settings
        self._queues: dict[str, Queue] = {}

    def queue(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = Queue(
                name,
                {"connection": self._settings.redis_url, "prefix": self._settings.bull_prefix},
            )
            self._queues[name] = queue
        return queue

    def job_options(self, job_id: str, *, delay_seconds: float = 0) -> dict[str, Any]:
        settings = self._settings
        options: dict[str, Any] = {
            "jobId": job_id,
            "attempts": settings.attempts,
            "backoff": {"type": JITTER_BACKOFF, "delay": int(settings.backoff_seconds * 1000)},
            "removeOnComplete": True,
            "removeOnFail": {"age": int(settings.keep_failed_seconds)},
        }
        if delay_seconds > 0:
            options["delay"] = int(delay_seconds * 1000)
        return options

    async def request_fulfillment(self, order_id: uuid.UUID, *, delay_seconds: float = 0) -> None:
        await self.add(
            FULFILLMENT_QUEUE,
            FULFILL_ORDER,
            fulfillment_job_id(order_id),
            {"order_id": str(order_id)},
            delay_seconds=delay_seconds,
        )

    async def request_event_processing(self, event_id: str) -> None:
        await self.add(
            PAYMENTS_QUEUE, PROCESS_PAYMENT_EVENT, event_job_id(event_id), {"event_id": event_id}
        )

    async def add(
        self,
        queue: str,
        job: str,
        job_id: str,
        data: Mapping[str, Any],
        *,
        delay_seconds: float = 0,
    ) -> None:
        await self.queue(queue).add(
            job, dict(data), self.job_options(job_id, delay_seconds=delay_seconds)
        )

    async def request_again(self, job: str, key: str, data: Mapping[str, Any]) -> bool:
        queue_name, job_id = _route(job, key)
        queue = self.queue(queue_name)
        state = await queue.getJobState(job_id)
        if state in ("waiting", "active", "delayed", "prioritized", "waiting-children"):
            return False
        if state == "failed":  # gave up (store errors): its id must be freed to ask again
            await queue.remove(job_id)
        await self.add(queue_name, job, job_id, data)
        return True

    async def depths(self) -> list[QueueDepth]:
        found = []
        now_ms = time.time() * 1000
        for name in QUEUES:
            queue = self.queue(name)
            counts = await queue.getJobCounts("waiting", "active", "delayed", "failed")
            oldest = 0.0
            # New jobs are pushed on the left and taken from the right: the oldest is last.
            oldest_id = await queue.client.lindex(queue.toKey("wait"), -1)
            if oldest_id:
                stamp = await queue.client.hget(queue.toKey(oldest_id), "timestamp")
                if stamp:
                    oldest = max(0.0, (now_ms - float(stamp)) / 1000)
            found.append(
                QueueDepth(
                    queue=name,
                    waiting=int(counts.get("waiting", 0)),
                    active=int(counts.get("active", 0)),
                    delayed=int(counts.get("delayed", 0)),
                    failed=int(counts.get("failed", 0)),
                    oldest_waiting_seconds=oldest,
                )
            )
        return found

    async def purge_finished(self, older_than_seconds: float) -> int:
        grace_ms = int(older_than_seconds * 1000)
        removed = 0
        for name in QUEUES:
            for state in ("completed", "failed"):
                removed += len(await self.queue(name).clean(grace_ms, 1000, state))
        return removed

    async def close(self) -> None:
        for queue in self._queues.values():
            await queue.close()
        self._queues.clear()


def _log_error(queue: str) -> Callable[..., None]:
    def on_error(error: object, *_: object) -> None:
        log.warning("jobs.queue_error", queue=queue, error=f"{type(error).__name__}: {error}")

    return on_error


def _log_stalled(queue: str) -> Callable[..., None]:
    def on_stalled(job_id: object, *_: object) -> None:
        # A worker died or hung past its lock: the job runs again on whichever worker is free.
        log.warning("jobs.stalled", queue=queue, job_id=str(job_id))

    return on_stalled


def _route(job: str, key: str) -> tuple[str, str]:
    if job == FULFILL_ORDER:
        return FULFILLMENT_QUEUE, fulfillment_job_id(uuid.UUID(key))
    if job == PROCESS_PAYMENT_EVENT:
        return PAYMENTS_QUEUE, event_job_id(key)
    raise ValueError(f"unknown job {job!r}")


JobObserver = Callable[[str, str, str, float], None]  # queue, job name, outcome, seconds


class BullJobRunner:
    """Worker side: one bullmq Worker per queue in this process."""

    def __init__(self, settings: QueueSettings, observe: JobObserver | None = None) -> None:
        self._settings = settings
        self._observe = observe
        self._workers: list[Worker] = []
        self._producer = BullWorkQueue(settings)

    async def start(
        self, queues: Sequence[str], handle: JobHandle, schedules: Sequence[Schedule] = ()
    ) -> None:
        for name in queues:
            worker = Worker(name, self._processor(name, handle), self._worker_options())
            # bullmq reports its own trouble (Redis errors, stalled jobs) only as events.
            worker.on("error", _log_error(name))
            worker.on("stalled", _log_stalled(name))
            # Seen with bullmq 3.4.4: delays under a second misbehave until the blocking
            # connection knows the Redis version (DESIGN.md, facts about dependencies).
            if worker.blockingRedisConnection is not None:
                await worker.blockingRedisConnection.getRedisVersion()
            self._workers.append(worker)
        for schedule in schedules:
            # The scheduler makes one job per period (its id is the period's start), so every
            # maintenance worker may declare it: the period runs once, on one of them.
            await self._producer.queue(schedule.queue).upsertJobScheduler(
                schedule.name,
                {"every": max(1, int(schedule.every_seconds * 1000))},
                schedule.name,
                {},
                {"removeOnComplete": True, "removeOnFail": {"age": 3600}, "attempts": 1},
            )
        log.info("jobs.started", queues=list(queues), schedules=[s.name for s in schedules])

    def _worker_options(self) -> dict[str, Any]:
        settings = self._settings
        lock_ms = int(settings.lock_seconds * 1000)

        def strategy(attempts_made: int, _type: str, _err: object, _job: object) -> int:
            return backoff_ms(attempts_made, settings.backoff_seconds, settings.backoff_max_seconds)

        return {
            "connection": settings.redis_url,
            "prefix": settings.bull_prefix,
            "concurrency": settings.concurrency,
            "lockDuration": lock_ms,
            "lockRenewTime": max(500, lock_ms // 2),
            "stalledInterval": int(settings.stalled_check_seconds * 1000),
            "maxStalledCount": 3,
            "drainDelay": 5,
            "runRetryDelay": 1000,
            "settings": {"backoffStrategy": strategy},
        }

    def _processor(self, queue: str, handle: JobHandle) -> Callable[[Job, str], Awaitable[object]]:
        async def process(job: Job, _token: str) -> object:
            context = JobContext(
                name=str(job.name),
                job_id=str(job.id),
                attempt=int(job.attemptsMade) + 1,
                max_attempts=int(job.opts.get("attempts") or 1),
            )
            started = time.perf_counter()
            outcome = "failed"
            try:
                result = await handle(context, job.data or {})
                outcome = "completed"
                return result
            except asyncio.CancelledError:
                outcome = "canceled"
                raise
            except Exception as exc:
                outcome = "failed" if context.last_attempt else "retried"
                log.warning(
                    "jobs.failed",
                    queue=queue,
                    job=context.name,
                    job_id=context.job_id,
                    attempt=context.attempt,
                    max_attempts=context.max_attempts,
                    error=f"{type(exc).__name__}: {exc}",
                )
                raise
            finally:
                if self._observe is not None:
                    self._observe(queue, context.name, outcome, time.perf_counter() - started)

        return process

    async def stop(self) -> None:
        # close() waits for the running jobs: SIGTERM loses no job and cuts none in half.
        await asyncio.gather(*(worker.close() for worker in self._workers))
        self._workers.clear()
        await self._producer.close()
