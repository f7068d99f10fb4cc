"""The job registry: which service coroutine runs for each job name, and the periodic tasks.

Adding a job is one line in `JOBS` (name -> queue and handler); adding a periodic task is one
line in `PERIODIC` (name, its period from the settings, handler). A handler gets the container
(the services' dependencies), the job's context (attempt, last attempt) and the job's data; it
raises to be retried with backoff, and must be idempotent: jobs may run more than once.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from stockgate.adapters import metrics
from stockgate.bootstrap import Container
from stockgate.config import Settings
from stockgate.domain.errors import StockgateError
from stockgate.entrypoints.worker import payment_jobs
from stockgate.services import fulfill
from stockgate.services.jobs import (
    FULFILL_ORDER,
    FULFILLMENT_QUEUE,
    MAINTENANCE_QUEUE,
    PAYMENTS_QUEUE,
    PROCESS_PAYMENT_EVENT,
)
from stockgate.services.maintenance import purge_finished_jobs, report_depths, requeue_paid
from stockgate.services.ports import JobContext, JobHandle, Schedule
from stockgate.services.reconcile import reconcile

log = structlog.get_logger(__name__)

JobRun = Callable[[Container, JobContext, Mapping[str, Any]], Awaitable[object]]
TaskRun = Callable[[Container], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class JobType:
    queue: str
    run: JobRun


@dataclass(frozen=True, slots=True)
class PeriodicTask:
    name: str
    every: Callable[[Settings], float]  # seconds, from the settings
    run: TaskRun


class UnknownJob(StockgateError):
    code = "unknown_job"
    title = "No handler for this job"


# ------------------------------------------------------------------ job handlers


async def fulfill_order(container: Container, job: JobContext, data: Mapping[str, Any]) -> object:
    result = await fulfill.fulfill_order(uuid.UUID(str(data["order_id"])), container.fulfill_deps)
    metrics.FULFILLMENTS.labels(result.outcome.value).inc()
    log.info(
        "fulfillment.attempt",
        order_id=str(data["order_id"]),
        outcome=result.outcome.value,
        attempt=job.attempt,
        error=result.error.detail if result.error else None,
    )
    if result.lag_seconds is not None:
        metrics.FULFILLMENT_LAG.observe(result.lag_seconds)
    if result.retry is not None:
        raise result.retry  # bullmq retries it with backoff
    return result.outcome.value


# ------------------------------------------------------------------ periodic tasks


async def reconcile_task(container: Container) -> object:
    settings = container.settings
    report = await reconcile(
        uow_factory=container.uow_factory,
        gate=container.gate,
        clock=container.clock,
        grace_seconds=settings.reconcile_grace_seconds,
        fix=True,
        stock_changes=container.stock_changes,
    )
    metrics.RECONCILE_DRIFT_FOUND.inc(report.drift_found)
    metrics.RECONCILE_DRIFT_FIXED.inc(report.drift_fixed)
    for product in report.products:
        if product.error:
            log.error(
                "reconcile.product_failed", product_id=product.product_id, error=product.error
            )
        if product.fixes:
            log.warning("reconcile.fixed", product_id=product.product_id, fixes=product.fixes)
    return {"drift_found": report.drift_found, "drift_fixed": report.drift_fixed}


async def requeue_paid_task(container: Container) -> object:
    asked = await requeue_paid(
        uow_factory=container.uow_factory,
        queue=container.work_queue,
        clock=container.clock,
        older_than_seconds=container.settings.requeue_after_seconds,
    )
    if asked:
        log.warning("maintenance.requeued_paid_orders", count=asked)
    return asked


async def queue_depth_task(container: Container) -> object:
    depths = await report_depths(container.work_queue)
    for depth in depths:
        metrics.QUEUE_WAITING.labels(depth.queue).set(depth.waiting)
        metrics.QUEUE_ACTIVE.labels(depth.queue).set(depth.active)
        metrics.QUEUE_DELAYED.labels(depth.queue).set(depth.delayed)
        metrics.QUEUE_FAILED.labels(depth.queue).set(depth.failed)
        metrics.QUEUE_OLDEST_WAITING.labels(depth.queue).set(depth.oldest_waiting_seconds)
    return {d.queue: d.waiting for d in depths}


async def purge_task(container: Container) -> object:
    return await purge_finished_jobs(
        container.work_queue, older_than_seconds=container.settings.keep_failed_jobs_seconds
    )


# ------------------------------------------------------------------ the registry

JOBS: dict[str, JobType] = {
    FULFILL_ORDER: JobType(FULFILLMENT_QUEUE, fulfill_order),
    PROCESS_PAYMENT_EVENT: JobType(PAYMENTS_QUEUE, payment_jobs.process_payment_event),
}

PERIODIC: tuple[PeriodicTask, ...] = (
    PeriodicTask("reconcile", lambda s: s.reconcile_interval_seconds, reconcile_task),
    PeriodicTask("requeue-paid-orders", lambda s: s.requeue_interval_seconds, requeue_paid_task),
    PeriodicTask("queue-depth", lambda s: s.queue_depth_interval_seconds, queue_depth_task),
    PeriodicTask("purge-finished-jobs", lambda s: s.purge_interval_seconds, purge_task),
    PeriodicTask("payment-outbox", lambda s: s.payments_interval_seconds, payment_jobs.outbox_task),
    PeriodicTask(
        "stuck-orders", lambda s: s.payments_interval_seconds, payment_jobs.stuck_orders_task
    ),
    PeriodicTask(
        "inbox-sweep", lambda s: s.payments_interval_seconds, payment_jobs.inbox_sweep_task
    ),
)


def schedules(settings: Settings) -> list[Schedule]:
    return [Schedule(task.name, MAINTENANCE_QUEUE, task.every(settings)) for task in PERIODIC]


def dispatcher(container: Container) -> JobHandle:
    """The one handle the job runner calls: looks the job's name up in the registry."""
    tasks = {task.name: task for task in PERIODIC}

    async def handle(job: JobContext, data: Mapping[str, Any]) -> object:
        if job.name in JOBS:
            return await JOBS[job.name].run(container, job, data)
        if job.name in tasks:
            metrics.PERIODIC_RUNS.labels(job.name).inc()
            log.debug("maintenance.task", task=job.name, job_id=job.job_id)
            return await tasks[job.name].run(container)
        raise UnknownJob(f"no handler for job {job.name!r} (id {job.job_id})")

    return handle
