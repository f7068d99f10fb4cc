"""The maintenance role's payment loop: outbox, stuck orders, unprocessed webhook events.

Every `payments_interval_seconds`: drain the payment outbox (cancel intents of expired
reservations, refund late payments), settle orders awaiting payment for longer than
`stuck_order_seconds` by asking Stripe, and apply webhook events still unprocessed
`inbox_sweep_seconds` after they arrived. Each task is safe in several workers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from stockgate.bootstrap import Container
from stockgate.domain.errors import StoreUnavailable
from stockgate.services.payment_tasks import (
    TaskReport,
    drain_outbox,
    settle_stuck_orders,
    sweep_inbox,
)

log = structlog.get_logger(__name__)


async def payments_loop(container: Container, stop: asyncio.Event) -> None:
    if container.payments is None:
        log.info("payments.unconfigured", detail="no Stripe key: payment tasks do not run")
        return
    settings = container.settings
    while not stop.is_set():
        await run_payment_tasks(container)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.payments_interval_seconds)


async def run_payment_tasks(container: Container) -> None:
    """One round of every payment task; a failing task does not stop the others."""
    settings = container.settings
    deps = container.payment_deps
    tasks: dict[str, Callable[[], Awaitable[TaskReport]]] = {
        "outbox": lambda: drain_outbox(deps),
        "stuck_orders": lambda: settle_stuck_orders(
            deps, older_than_seconds=settings.stuck_order_seconds
        ),
        "inbox_sweep": lambda: sweep_inbox(deps, older_than_seconds=settings.inbox_sweep_seconds),
    }
    for name, task in tasks.items():
        try:
            report = await task()
        except StoreUnavailable as exc:
            log.warning("payments.store_unavailable", task=name, store=exc.store)
            continue
        except Exception:  # keep the other tasks and the next rounds going
            log.exception("payments.task_failed", task=name)
            continue
        if report.done or report.failed:
            log.info(
                "payments.task",
                task=name,
                done=report.done,
                failed=report.failed,
                outcomes=report.outcomes[:10],
                errors=report.errors[:10],
            )
