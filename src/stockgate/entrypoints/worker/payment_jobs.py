"""Payment jobs and periodic tasks, registered in worker/jobs.py.

process-payment-event  applies one stored webhook event (a job per event, id from the event
                       id, so a redelivered webhook does not queue it twice)
payment-outbox         cancels intents of expired reservations, refunds late payments
stuck-orders           asks Stripe about orders awaiting payment for too long
inbox-sweep            applies webhook events still unprocessed a while after they arrived
Without Stripe configured the periodic tasks do nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from stockgate.bootstrap import Container
from stockgate.services.payment_events import apply_event
from stockgate.services.payment_tasks import (
    TaskReport,
    drain_outbox,
    settle_stuck_orders,
    sweep_inbox,
)
from stockgate.services.ports import JobContext

log = structlog.get_logger(__name__)


async def process_payment_event(
    container: Container, job: JobContext, data: Mapping[str, Any]
) -> object:
    event_id = str(data["event_id"])
    outcome = await apply_event(event_id, container.payment_deps)  # raises: retried
    log.info("payment_event.applied", event_id=event_id, outcome=outcome)
    return outcome


async def outbox_task(container: Container) -> object:
    if container.payments is None:
        return None
    return _logged("payment-outbox", await drain_outbox(container.payment_deps))


async def stuck_orders_task(container: Container) -> object:
    if container.payments is None:
        return None
    report = await settle_stuck_orders(
        container.payment_deps, older_than_seconds=container.settings.stuck_order_seconds
    )
    return _logged("stuck-orders", report)


async def inbox_sweep_task(container: Container) -> object:
    if container.payments is None:
        return None
    report = await sweep_inbox(
        container.payment_deps, older_than_seconds=container.settings.inbox_sweep_seconds
    )
    return _logged("inbox-sweep", report)


def _logged(task: str, report: TaskReport) -> dict[str, int]:
    if report.failed:
        log.warning(
            "payments.task_failed", task=task, failed=report.failed, errors=report.errors[:10]
        )
    if report.done:
        log.info("payments.task_done", task=task, done=report.done, outcomes=report.outcomes[:10])
    return {"done": report.done, "failed": report.failed}
