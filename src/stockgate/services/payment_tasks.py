"""The maintenance worker's payment tasks: each safe to run in many workers at once.

- drain_outbox: make the provider calls that must happen but must not block their caller
  (cancel the PaymentIntent of an expired reservation, refund a late payment); retried with
  back-off until done, so a Stripe outage never blocks expiry.
- settle_stuck_orders: ask the provider about orders awaiting payment for too long and settle
  them, so a webhook that never arrives loses nothing (I3).
- sweep_inbox: apply webhook events still unprocessed a while after they arrived.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from stockgate.domain.errors import (
    PaymentProviderUnavailable,
    PaymentStateConflict,
    StockgateError,
    StoreUnavailable,
)
from stockgate.domain.order import OrderStatus
from stockgate.services.payment_events import apply_event, canceled
from stockgate.services.payments import PaymentDeps, in_unit_of_work, settle_paid
from stockgate.services.ports import OutboxItem, OutboxKind, PaymentProvider, UnitOfWork

OUTBOX_BATCH = 20
MAX_RETRY_DELAY_SECONDS = 300.0
REFUND_REASON = "requested_by_customer"


@dataclass(slots=True)
class TaskReport:
    done: int = 0
    failed: int = 0
    outcomes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # for the worker's log


async def drain_outbox(deps: PaymentDeps, *, limit: int = OUTBOX_BATCH) -> TaskReport:
    payments = deps.provider()
    report = TaskReport()
    succeeded: list[uuid.UUID] = []
    async with deps.uow_factory() as uow:
        for item in await uow.outbox.claim_due(limit=limit):  # locked: other workers skip them
            try:
                await _call(item, payments)
            except PaymentStateConflict as exc:
                if item.kind is OutboxKind.CANCEL_INTENT and exc.status == "succeeded":
                    # Paid before it could be canceled: a late payment, settled below.
                    succeeded.append(item.order_id)
                    await uow.outbox.done(item.id)
                    report.done += 1
                    continue
                await _later(uow, item, exc, report)
            except StockgateError as exc:  # unreachable, refused: try again later
                await _later(uow, item, exc, report)
            else:
                await uow.outbox.done(item.id)
                report.done += 1
        await uow.commit()
    for order_id in succeeded:
        report.outcomes.append(await settle_order(order_id, deps) or "")
    return report


async def _call(item: OutboxItem, payments: PaymentProvider) -> None:
    if item.kind is OutboxKind.CANCEL_INTENT:
        await payments.cancel_intent(item.payment_intent_id)
    else:
        await payments.refund(item.payment_intent_id, key=item.key, reason=REFUND_REASON)


async def _later(
    uow: UnitOfWork, item: OutboxItem, exc: StockgateError, report: TaskReport
) -> None:
    delay = min(MAX_RETRY_DELAY_SECONDS, 2.0 ** min(item.attempts, 10))
    await uow.outbox.retry_later(item.id, f"{exc.code}: {exc.detail}", delay)
    report.failed += 1
    report.errors.append(f"{item.kind} {item.order_id}: {exc.detail}")


async def settle_order(order_id: uuid.UUID, deps: PaymentDeps) -> str | None:
    """Ask the provider where an order's payment stands, and apply it."""
    async with deps.uow_factory() as uow:
        order = await uow.orders.get(order_id)
    if order is None or order.payment_intent_id is None:
        return None
    intent = await deps.provider().get_intent(order.payment_intent_id)
    if intent.status == "succeeded":
        return await in_unit_of_work(deps, settle_paid(order.id, intent, deps))
    if intent.status == "canceled" and order.status is OrderStatus.PAYMENT_PENDING:
        return await in_unit_of_work(deps, canceled(order, deps))
    return None


async def settle_stuck_orders(deps: PaymentDeps, *, older_than_seconds: float) -> TaskReport:
    report = TaskReport()
    cutoff = deps.clock.now() - timedelta(seconds=older_than_seconds)
    async with deps.uow_factory() as uow:
        stuck = await uow.orders.with_status(
            [OrderStatus.PAYMENT_PENDING], created_before=cutoff, limit=100
        )
    for order in stuck:
        if order.payment_intent_id is None or order.flag is not None:
            continue
        try:
            outcome = await settle_order(order.id, deps)
        except PaymentProviderUnavailable as exc:
            report.failed += 1
            report.errors.append(exc.detail)
            break  # the next round asks again
        if outcome:
            report.done += 1
            report.outcomes.append(outcome)
    return report


async def sweep_inbox(deps: PaymentDeps, *, older_than_seconds: float) -> TaskReport:
    report = TaskReport()
    cutoff = deps.clock.now() - timedelta(seconds=older_than_seconds)
    async with deps.uow_factory() as uow:
        waiting = await uow.inbox.unprocessed(received_before=cutoff, limit=100)
    for event_id in waiting:
        try:
            outcome = await apply_event(event_id, deps)
        except StoreUnavailable:
            raise
        except StockgateError as exc:  # recorded on the row (last_error); the next round retries
            report.failed += 1
            report.errors.append(f"{event_id}: {exc.detail}")
            continue
        if outcome:
            report.done += 1
            report.outcomes.append(outcome)
    return report
