"""Operators' maintenance actions from the dashboard, each written to the audit log."""

from __future__ import annotations

import uuid
from typing import Any

from stockgate.domain.errors import NotFound, NotificationFailed
from stockgate.domain.order import Order
from stockgate.services.cancel import CancelDeps, cancel_with_refund
from stockgate.services.fulfill import FulfillDeps, retry_fulfillment
from stockgate.services.order_admin import order_details
from stockgate.services.ports import (
    AdminViews,
    AuditLog,
    Clock,
    StockGate,
    UnitOfWorkFactory,
    WorkQueue,
)
from stockgate.services.reconcile import ReconcileReport, reconcile


async def reconcile_as(
    actor: str,
    *,
    fix: bool,
    uow_factory: UnitOfWorkFactory,
    gate: StockGate,
    clock: Clock,
    grace_seconds: float,
    audit: AuditLog,
) -> ReconcileReport:
    report = await reconcile(
        uow_factory=uow_factory, gate=gate, clock=clock, grace_seconds=grace_seconds, fix=fix
    )
    drift = {
        p.sku: {"leaked": p.leaked, "oversold": p.oversold, "fixes": p.fixes}
        for p in report.products
        if p.drift or p.fixes
    }
    await audit.add(
        actor,
        "reconcile.fix" if fix else "reconcile.run",
        None,
        after={"products": len(report.products), "drift": drift},
    )
    return report


async def replay_webhook(
    actor: str,
    event_id: str,
    *,
    uow_factory: UnitOfWorkFactory,
    views: AdminViews,
    queue: WorkQueue,
    audit: AuditLog,
) -> None:
    """Mark a stored event for applying again and ask a worker to apply it now (reopen, then
    request processing); if the request is lost, the inbox sweeper finds the reopened row.
    Applying is idempotent (I5), so replaying an applied event changes nothing that was right.
    The stored payload is not parsed here: whether it applies is the worker's to say."""
    before = await views.webhook_event(event_id)
    if before is None:
        raise NotFound(f"no webhook event {event_id}")
    async with uow_factory() as uow:
        if not await uow.inbox.reopen(event_id):
            raise NotFound(f"no webhook event {event_id}")
        await uow.commit()
    await queue.request_event_processing(event_id)
    await audit.add(
        actor,
        "webhook.replay",
        event_id,
        before={
            "processed_at": None if before.processed_at is None else str(before.processed_at),
            "outcome": before.outcome,
            "attempts": before.attempts,
        },
    )


def order_record(order: Order) -> dict[str, Any]:
    return {
        "status": order.status.value,
        "fulfillment_attempts": order.fulfillment_attempts,
        "failure_reason": order.failure_reason,
    }


async def retry_order(
    actor: str, order_id: uuid.UUID, *, deps: FulfillDeps, audit: AuditLog
) -> Order:
    """Fulfill a failed order again, now (services/fulfill.py); NotificationFailed when this
    try fails too, which is written down as well."""
    before = await order_details(deps.uow_factory, order_id)
    try:
        after = await retry_fulfillment(order_id, deps)
    except NotificationFailed as exc:
        await audit.add(
            actor,
            "order.retry",
            str(order_id),
            before=order_record(before.order),
            after={"error": exc.detail},
        )
        raise
    await audit.add(
        actor,
        "order.retry",
        str(order_id),
        before=order_record(before.order),
        after=order_record(after),
    )
    return after


async def cancel_order(
    actor: str, order_id: uuid.UUID, *, deps: CancelDeps, audit: AuditLog
) -> Order:
    """Refund a paid order and put its units back on sale (services/cancel.py)."""
    before = await order_details(deps.uow_factory, order_id)
    after = await cancel_with_refund(order_id, deps)
    await audit.add(
        actor,
        "order.cancel_with_refund",
        str(order_id),
        before=order_record(before.order),
        after=order_record(after),
    )
    return after
