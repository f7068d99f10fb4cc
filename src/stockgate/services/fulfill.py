"""Fulfillment of paid orders: notify the merchant, then mark the order fulfilled.

One attempt runs with the order's row locked, so two jobs of the same order (a duplicate, a
job taken again after its worker died) run one after the other and the second finds the order
fulfilled and does nothing. Each channel (webhook, email) that succeeds is written in the
order's history in the same transaction as the attempt's outcome, so a retry after the webhook
went through but the email failed does not call the merchant's endpoint again. Crashing
between a delivery and the commit sends it again, with the same webhook id: the receiver
deduplicates by that id (at least once, deduplicable, as Standard Webhooks intends).

After the last attempt the order becomes `fulfillment_failed` with the reason; an operator
then retries it (`retry_fulfillment`) or cancels it with a refund (services/cancel.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from enum import StrEnum

from stockgate.domain.errors import NotFound, NotificationFailed
from stockgate.domain.order import IllegalTransition, Order, OrderStatus
from stockgate.services.ports import (
    Clock,
    EmailMessage,
    Mailer,
    MerchantNotifier,
    OrderNotification,
    UnitOfWork,
    UnitOfWorkFactory,
)

NOTIFIED = "notified"  # order history kind: one channel delivered
ATTEMPT_FAILED = "fulfillment_attempt_failed"


class OrderNotFound(NotFound):
    code = "order_not_found"

    def __init__(self, order_id: object) -> None:
        super().__init__(f"no order {order_id}", order_id=str(order_id))


class FulfillOutcome(StrEnum):
    FULFILLED = "fulfilled"
    SKIPPED = "skipped"  # nothing to do: already fulfilled, refunded, flagged, not paid
    RETRY = "retry"  # an attempt failed; another one will come
    FAILED = "failed"  # the last attempt failed: the order is fulfillment_failed


@dataclass(frozen=True, slots=True)
class FulfillDeps:
    uow_factory: UnitOfWorkFactory
    clock: Clock
    notifier: MerchantNotifier | None  # None: no merchant webhook configured
    mailer: Mailer | None  # None: no SMTP configured
    merchant_email: str | None
    max_attempts: int


@dataclass(frozen=True, slots=True)
class FulfillResult:
    outcome: FulfillOutcome
    order: Order | None
    lag_seconds: float | None = None  # paid -> fulfilled, when it was fulfilled now
    error: NotificationFailed | None = None  # why the attempt failed (RETRY, FAILED)

    @property
    def retry(self) -> NotificationFailed | None:
        """The error to raise for the job to be retried (RETRY only)."""
        return self.error if self.outcome is FulfillOutcome.RETRY else None


def notification_for(order: Order) -> OrderNotification:
    return OrderNotification(
        id=f"msg_order_{order.id.hex}_fulfilled",
        type="order.fulfilled",
        order_id=order.id,
        data={
            "order_id": str(order.id),
            "customer_id": str(order.customer_id),
            "amount_cents": order.amount_cents,
            "currency": order.currency,
            "payment_intent_id": order.payment_intent_id,
            "paid_at": order.paid_at.isoformat() if order.paid_at else None,
            "items": [
                {
                    "product_id": line.product_id,
                    "quantity": line.quantity,
                    "unit_price_cents": line.unit_price_cents,
                }
                for line in order.lines
            ],
        },
    )


def email_for(order: Order, to: str) -> EmailMessage:
    lines = "\n".join(
        f"  product {line.product_id} x {line.quantity} at {line.unit_price_cents} cents"
        for line in order.lines
    )
    return EmailMessage(
        to=to,
        subject=f"Order {order.id} paid: please ship",
        text=(
            f"Order {order.id} was paid ({order.amount_cents} {order.currency.upper()}).\n"
            f"Items:\n{lines}\n"
        ),
    )


async def fulfill_order(order_id: uuid.UUID, deps: FulfillDeps) -> FulfillResult:
    """One attempt of the fulfillment job (idempotent: a done order is skipped)."""
    async with deps.uow_factory() as uow:
        order = await uow.orders.get(order_id, lock=True)
        if order is None or not order.awaits_fulfillment:
            return FulfillResult(FulfillOutcome.SKIPPED, order)
        result = await _attempt(uow, order, deps)
        await uow.commit()
    return result


async def retry_fulfillment(order_id: uuid.UUID, deps: FulfillDeps) -> Order:
    """An operator's retry of a failed (or still retrying) order, run now; idempotent: a
    fulfilled order is returned as it is. Raises NotificationFailed if this try fails too."""
    async with deps.uow_factory() as uow:
        order = await uow.orders.get(order_id, lock=True)
        if order is None:
            raise OrderNotFound(order_id)
        if order.status is OrderStatus.FULFILLED:
            return order
        if order.status not in (OrderStatus.PAID, OrderStatus.FULFILLMENT_FAILED):
            raise IllegalTransition(order.id, order.status, OrderStatus.FULFILLED)
        await uow.orders.record(order.id, "fulfillment_retry_requested")
        result = await _attempt(uow, order, deps)
        await uow.commit()
    if result.error is not None:
        raise result.error
    assert result.order is not None
    return result.order


async def _attempt(uow: UnitOfWork, order: Order, deps: FulfillDeps) -> FulfillResult:
    done = {
        event.detail.get("channel")
        for event in await uow.orders.history(order.id)
        if event.kind == NOTIFIED
    }
    order = order.fulfillment_attempted()
    try:
        if deps.notifier is not None and "webhook" not in done:
            notification = notification_for(order)
            await deps.notifier.notify(notification)
            await uow.orders.record(order.id, NOTIFIED, channel="webhook", id=notification.id)
        if deps.mailer is not None and deps.merchant_email and "email" not in done:
            await deps.mailer.send(email_for(order, deps.merchant_email))
            await uow.orders.record(order.id, NOTIFIED, channel="email", to=deps.merchant_email)
    except NotificationFailed as exc:
        reason = exc.detail
        last = order.fulfillment_attempts >= deps.max_attempts
        if order.status is OrderStatus.FULFILLMENT_FAILED:
            order = replace(order, failure_reason=reason)  # still failed, for a new reason
        elif last:
            order = order.mark_fulfillment_failed(reason)
        await uow.orders.save(order)
        await uow.orders.record(
            order.id, ATTEMPT_FAILED, attempt=order.fulfillment_attempts, reason=reason
        )
        if order.status is OrderStatus.FULFILLMENT_FAILED:
            return FulfillResult(FulfillOutcome.FAILED, order, error=exc)
        return FulfillResult(FulfillOutcome.RETRY, order, error=exc)
    now = deps.clock.now()
    order = order.mark_fulfilled(now=now)
    await uow.orders.save(order)
    lag = (now - order.paid_at).total_seconds() if order.paid_at else None
    return FulfillResult(FulfillOutcome.FULFILLED, order, lag_seconds=lag)
