"""`stockgate worker --role fulfillment|expiry|maintenance|all`: the background processes.

fulfillment  takes jobs of the `fulfillment` and `payments` queues (bullmq): fulfills paid
             orders, applies payment events. Registry of job names: worker/jobs.py.
expiry       ends due reservations and gives their stock back (about every 0.2 s); a give-back
             that fails (Redis unreachable) is retried on the next rounds.
maintenance  runs the periodic tasks of worker/jobs.py (reconcile, re-ask for paid orders,
             queue depth, purge old jobs), each once per period however many workers run.
Several workers of each role may run at once: expiry claims rows with SKIP LOCKED, jobs are
locked by bullmq, and every repair is idempotent. SIGTERM: no new job is taken, the running
ones finish, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
import uvloop
from prometheus_client import start_http_server

from stockgate.adapters import metrics
from stockgate.adapters.logs import configure_logging
from stockgate.bootstrap import Container, bootstrap
from stockgate.config import Settings
from stockgate.domain.errors import StoreUnavailable
from stockgate.entrypoints.worker.jobs import dispatcher, schedules
from stockgate.services.expire import ExpiryRound, PendingGiveBacks, expire_due
from stockgate.services.jobs import MAINTENANCE_QUEUE, ROLE_QUEUES

log = structlog.get_logger(__name__)
# For a round in progress to finish when asked to stop; below `stockgate up`'s 10 s before
# SIGKILL, and what a supervisor's stop timeout must exceed.
SHUTDOWN_GRACE_SECONDS = 5.0
EXPIRY_BATCH = 500


def run_worker(settings: Settings, role: str) -> int:
    configure_logging(settings)
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.http_host)
    uvloop.run(_main(settings, role))
    return 0


async def _main(settings: Settings, role: str) -> None:
    container = await bootstrap(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loops: list[Callable[[Container, asyncio.Event], Coroutine[Any, Any, None]]] = []
    if role in ("expiry", "all"):
        loops.append(expiry_loop)
    queues = ROLE_QUEUES[role]
    runner = container.job_runner()
    if queues:
        periodic = schedules(settings) if MAINTENANCE_QUEUE in queues else []
        await runner.start(queues, dispatcher(container), periodic)
    log.info("worker.started", role=role, queues=list(queues))
    tasks = [loop.create_task(run(container, stop), name=run.__name__) for run in loops]
    await stop.wait()
    log.info("worker.stopping", role=role)
    # The loops see `stop` and end after their round: cancelling an expiry round between its
    # commit and its give-back would leave the units to the reconciler. Only a hung one is cut.
    # Jobs: the runner takes no new one and waits for the running ones (their lock would
    # otherwise make the next worker wait for it to run out).
    stopping = [loop.create_task(runner.stop(), name="jobs"), *tasks]
    _, hung = await asyncio.wait(stopping, timeout=SHUTDOWN_GRACE_SECONDS)
    for task in hung:
        log.warning("worker.round_cut_at_shutdown", task=task.get_name())
        task.cancel()
    await asyncio.gather(*stopping, return_exceptions=True)
    await container.close()
    log.info("worker.stopped", role=role)


async def expiry_loop(container: Container, stop: asyncio.Event) -> None:
    poll = container.settings.expiry_poll_seconds
    # Expired reservations whose give-back failed: retried each round, bounded in memory.
    pending = PendingGiveBacks()
    try:
        while not stop.is_set():
            try:
                done = await expire_due(
                    uow_factory=container.uow_factory,
                    gate=container.gate,
                    clock=container.clock,
                    batch=EXPIRY_BATCH,
                    pending=pending,
                    stock_changes=container.stock_changes,
                )
            except StoreUnavailable as exc:
                log.warning("expiry.store_unavailable", store=exc.store)
                await _sleep(stop, 1.0)
                continue
            except Exception:  # keep expiring: a dead loop would leak every held unit
                log.exception("expiry.unexpected_error")
                await _sleep(stop, 1.0)
                continue
            _report(done)
            if done.failed:  # the gate is failing: retry in a second, not at full speed
                await _sleep(stop, 1.0)
            elif done.expired < EXPIRY_BATCH:
                await _sleep(stop, poll)
    finally:
        if pending:  # the reconciler gives these back (orphan holds after its grace period)
            log.warning("expiry.give_back_left_to_reconciler", count=len(pending))


def _report(done: ExpiryRound) -> None:
    metrics.EXPIRY_GIVE_BACK_WAITING.set(done.waiting)
    if done.expired:
        metrics.HOLDS_EXPIRED.inc(done.expired)
        log.info("expiry.expired", count=done.expired)
    if done.retried:
        log.info("expiry.given_back_on_retry", count=done.retried, waiting=done.waiting)
    if done.failed:
        log.warning(
            "expiry.give_back_failed", count=done.failed, waiting=done.waiting, error=done.error
        )
    if done.dropped:
        metrics.EXPIRY_GIVE_BACK_DROPPED.inc(done.dropped)
        log.warning("expiry.give_back_dropped", count=done.dropped, left_to="reconciler")


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
