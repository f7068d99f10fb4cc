"""What the payment use cases share: their dependencies, and the one way an order gets paid.

`settle_paid` is the single home of "the provider says this order's payment succeeded": the
webhook event, the stuck-order task and the payment outbox all end here, so a payment is
applied the same way whoever notices it first, and exactly once (the reservation and order
rows are locked, and every branch looks at their status first).

The rule for a payment (decision 0021):
- order awaiting payment, reservation still held: paid, the hold converted to a sale;
- reservation expired (a late payment): the units are taken again if enough are left
  (converted under the same reservation id), else the order is refunded automatically;
- amount or currency differ from the order: flagged for an operator, never fulfilled;
- order canceled (the buyer released it): refunded.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from stockgate.domain.errors import PaymentsUnconfigured
from stockgate.domain.order import MONEY_TAKEN, Flag, Order, OrderStatus
from stockgate.domain.reservation import Reservation, ReservationStatus
from stockgate.services.catalog import ensure_loaded
from stockgate.services.ports import (
    Clock,
    ConvertMode,
    ConvertStatus,
    OutboxKind,
    PaymentIntent,
    PaymentProvider,
    StockChanges,
    StockGate,
    UnitOfWork,
    UnitOfWorkFactory,
    WorkQueue,
)

After = Callable[[], Awaitable[object]]  # what runs once the unit of work has committed
Work = Callable[[UnitOfWork], Awaitable[tuple[str, list[After]]]]

LATE_SOLD_OUT = "late payment: the reservation had expired and its stock was sold"


@dataclass(frozen=True, slots=True)
class PaymentDeps:
    uow_factory: UnitOfWorkFactory
    gate: StockGate
    payments: PaymentProvider | None
    queue: WorkQueue | None
    clock: Clock
    hold_seconds: int
    payment_hold_seconds: int
    stock_changes: StockChanges | None = None  # live stock: told when available stock moves

    def provider(self) -> PaymentProvider:
        if self.payments is None:
            raise PaymentsUnconfigured(
                "payments are not configured (set STOCKGATE_STRIPE_SECRET_KEY)"
            )
        return self.payments


def refund_key(order_id: uuid.UUID) -> str:
    """One automatic refund per order: the outbox key, also Stripe's idempotency key."""
    return f"order-{order_id}-refund"


def cancel_key(order_id: uuid.UUID) -> str:
    return f"order-{order_id}-cancel"


async def in_unit_of_work(
    deps: PaymentDeps, work: Work, *, event_id: str | None = None
) -> str | None:
    """Run `work` in one unit of work, then its after-commit effects.

    With `event_id`, the webhook event's inbox row is locked first (an event being applied by
    another worker is skipped: None) and marked processed in the same transaction, so an
    event takes effect once however often it is delivered or swept (I5).
    """
    async with deps.uow_factory() as uow:
        if event_id is not None:
            stored = await uow.inbox.get(event_id, lock=True)
            if stored is None or stored.processed_at is not None:
                return None
        outcome, after = await work(uow)
        if event_id is not None:
            await uow.inbox.processed(event_id, outcome)
        await uow.commit()
    for effect in after:
        await effect()
    return outcome


async def locked(uow: UnitOfWork, order_id: uuid.UUID) -> tuple[Order, Reservation]:
    """The order and its reservation, locked in the one order every use case takes them
    (reservation first, as expiry does), so two of them never deadlock."""
    found = await uow.orders.get(order_id)
    assert found is not None, f"order {order_id} vanished"
    reservation = await uow.reservations.get_for_update(found.reservation_id)
    order = await uow.orders.get(order_id, lock=True)
    assert reservation is not None and order is not None
    return order, reservation


def settle_paid(order_id: uuid.UUID, intent: PaymentIntent, deps: PaymentDeps) -> Work:
    """The work of applying a succeeded payment (`intent` as the provider reports it now)."""

    async def work(uow: UnitOfWork) -> tuple[str, list[After]]:
        order, reservation = await locked(uow, order_id)
        if intent.status != "succeeded":
            return f"not paid: the payment intent is {intent.status}", []
        if order.status in MONEY_TAKEN or order.status is OrderStatus.REFUNDED:
            return f"already settled ({order.status})", []
        if intent.id != order.payment_intent_id or not order.payment_matches(
            intent.amount_cents, intent.currency
        ):
            if order.flag is None:
                await uow.orders.save(order.flagged(Flag.AMOUNT_MISMATCH))
                await uow.orders.record(
                    order.id,
                    "flagged",
                    flag=Flag.AMOUNT_MISMATCH.value,
                    paid_cents=intent.amount_cents,
                    paid_currency=intent.currency,
                    payment_intent_id=intent.id,
                )
            return "flagged: amount or currency differ from the order", []
        if order.status is OrderStatus.CANCELED:
            await uow.outbox.add(OutboxKind.REFUND, order.id, intent.id, refund_key(order.id))
            await uow.orders.record(order.id, "refund_requested", reason="order was canceled")
            return "refund requested: the order was canceled", []
        now = deps.clock.now()
        if reservation.status is ReservationStatus.ACTIVE:
            converted, entries = reservation.convert()
            await uow.reservations.move(converted, was=ReservationStatus.ACTIVE)
            await uow.ledger.add(entries)
            await uow.orders.save(order.mark_paid(now=now))
            await uow.orders.record(order.id, "paid", payment_intent_id=intent.id)
            # After the commit: a crash before the gate call leaves a hold of a converted
            # reservation, which the repair converts (never gives back).
            return "paid", [
                lambda: deps.gate.convert(converted, ConvertMode.HOLD),
                lambda: request_fulfillment(order.id, deps),
            ]
        return await _late(uow, order, reservation, intent, deps)

    return work


async def _late(
    uow: UnitOfWork,
    order: Order,
    reservation: Reservation,
    intent: PaymentIntent,
    deps: PaymentDeps,
) -> tuple[str, list[After]]:
    """A payment that succeeded after its reservation expired: take the stock again, or
    refund. The gate is asked before the commit (it decides which); its convert is keyed by
    the reservation id, so applying this again after a failed commit takes nothing twice."""
    if order.status is OrderStatus.PAYMENT_PENDING:
        order = order.expire()  # its reservation ended without the order: end it as expiry would
    status = await _take_again(reservation, deps)
    if status is ConvertStatus.CONVERTED:
        tell_stock_moved(deps.stock_changes, reservation)  # taken again: less available
    if status in (ConvertStatus.CONVERTED, ConvertStatus.ALREADY):
        converted, entries = reservation.convert_late()
        await uow.reservations.move(converted, was=reservation.status)
        await uow.ledger.add(entries)
        await uow.orders.save(order.mark_paid(now=deps.clock.now()))
        await uow.orders.record(order.id, "paid_late", payment_intent_id=intent.id)
        return "paid late: stock taken again", [lambda: request_fulfillment(order.id, deps)]
    await uow.orders.save(order.refund(LATE_SOLD_OUT))
    await uow.outbox.add(OutboxKind.REFUND, order.id, intent.id, refund_key(order.id))
    await uow.orders.record(order.id, "refund_requested", reason=LATE_SOLD_OUT)
    return "refunded: late payment, sold out", []


async def _take_again(reservation: Reservation, deps: PaymentDeps) -> ConvertStatus:
    if reservation.status is not ReservationStatus.EXPIRED:
        return ConvertStatus.REFUSED  # released or void: nothing to convert
    for _ in range(len(reservation.lines) + 1):
        status = await deps.gate.convert(reservation, ConvertMode.TAKE)
        if status is not ConvertStatus.NOT_LOADED:
            return status
        for line in reservation.lines:
            await ensure_loaded(line.product_id, uow_factory=deps.uow_factory, gate=deps.gate)
    return ConvertStatus.REFUSED


def tell_stock_moved(stock_changes: StockChanges | None, reservation: Reservation) -> None:
    """Live stock: the reservation's products' available stock moved in the gate."""
    if stock_changes is not None:
        stock_changes.changed(line.product_id for line in reservation.lines)


def then_tell_stock_moved(action: After, reservation: Reservation, deps: PaymentDeps) -> After:
    """`action` (a gate call returning units), then tell live stock."""

    async def run() -> object:
        result = await action()
        tell_stock_moved(deps.stock_changes, reservation)
        return result

    return run


async def request_fulfillment(order_id: uuid.UUID, deps: PaymentDeps) -> None:
    """Ask for fulfillment. Without a queue, or when this fails (the caller logs it), the
    maintenance worker re-asks for every paid order not fulfilled: the payment stands."""
    if deps.queue is not None:
        await deps.queue.request_fulfillment(order_id)
