"""An operator cancels a paid order: refund through the payment provider, stock back.

A paid order is never canceled without a refund (I3): the refund is asked for first, with the
order and its reservation locked, and only once the provider has accepted it does the order
become `refunded`. The provider's idempotency key is one per order, so a retry after a crash
or a timeout finds the same refund instead of making a second one; a canceled order asked
again is returned as it is.

Stock: the units of an order never fulfilled go back on sale (its reservation `converted` ->
`returned`, a `refund_returned` ledger entry per line, then the gate's `return_sold`); a
fulfilled order's goods are gone, so its refund leaves the stock as it is (the rule of
decision 0023, shared with refunds made in Stripe).
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass

from stockgate.domain.errors import Conflict, PaymentsUnconfigured, StoreUnavailable
from stockgate.domain.order import MONEY_TAKEN, Order, OrderStatus
from stockgate.domain.reservation import Reservation, ReservationStatus
from stockgate.services.fulfill import OrderNotFound
from stockgate.services.ports import (
    PaymentProvider,
    StockChanges,
    StockGate,
    UnitOfWork,
    UnitOfWorkFactory,
)

CANCELED_BY_OPERATOR = "canceled by an operator"


class OrderNotPaid(Conflict):
    code = "order_not_paid"
    title = "Only a paid order is canceled with a refund"


@dataclass(frozen=True, slots=True)
class CancelDeps:
    uow_factory: UnitOfWorkFactory
    gate: StockGate
    payments: PaymentProvider | None
    stock_changes: StockChanges | None = None  # live stock: told when units come back


def refund_key(order_id: uuid.UUID) -> str:
    """One refund per order whoever asks (the same key as the payments' automatic refund)."""
    return f"order-{order_id}-refund"


async def cancel_with_refund(
    order_id: uuid.UUID, deps: CancelDeps, *, reason: str = CANCELED_BY_OPERATOR
) -> Order:
    if deps.payments is None:
        raise PaymentsUnconfigured("payments are not configured (set STOCKGATE_STRIPE_SECRET_KEY)")
    async with deps.uow_factory() as uow:
        order, reservation = await _locked(uow, order_id)
        if order.status is OrderStatus.REFUNDED:
            return order
        if order.status not in MONEY_TAKEN or order.payment_intent_id is None:
            raise OrderNotPaid(
                f"order {order.id} is {order.status}: nothing was paid to refund",
                order_id=str(order.id),
                status=order.status.value,
            )
        # With the rows locked: nothing else moves this order while the provider refunds.
        refund = await deps.payments.refund(
            order.payment_intent_id, key=refund_key(order.id), reason=reason
        )
        fulfilled = order.status is OrderStatus.FULFILLED
        refunded = order.refund(reason)
        await uow.orders.save(refunded)
        await uow.orders.record(order.id, "refund", refund_id=refund.id, reason=reason)
        returned = None
        if not fulfilled and reservation is not None:
            returned = await return_refunded_units(uow, reservation, refund.id)
        await uow.commit()
    if returned is not None:
        await give_back_sold(returned, deps)
    return refunded


async def return_refunded_units(
    uow: UnitOfWork, reservation: Reservation, refund_id: str
) -> Reservation | None:
    """Put a refunded reservation's sold units back on sale in PostgreSQL, with their ledger
    entries, in the caller's unit of work; None when they are not sold (nothing to return)."""
    if reservation.status is not ReservationStatus.CONVERTED:
        return None
    returned, entries = reservation.return_units(refund_id)
    await uow.reservations.move(returned, was=ReservationStatus.CONVERTED)
    await uow.ledger.add(entries)
    return returned


async def give_back_sold(reservation: Reservation, deps: CancelDeps) -> None:
    """Return a refunded sale's units to the gate (after the commit; keyed by reservation, so
    a second call gives nothing). If Redis cannot be reached now, the reconciler returns them:
    it compares the gate's sold units with PostgreSQL's, where the sale already ended."""
    with contextlib.suppress(StoreUnavailable):
        await deps.gate.return_sold(reservation)
        if deps.stock_changes is not None:
            deps.stock_changes.changed(line.product_id for line in reservation.lines)


async def _locked(uow: UnitOfWork, order_id: uuid.UUID) -> tuple[Order, Reservation | None]:
    """The order and its reservation locked, reservation first (as expiry and payments lock
    them), so two use cases never deadlock."""
    found = await uow.orders.get(order_id)
    if found is None:
        raise OrderNotFound(order_id)
    reservation = await uow.reservations.get_for_update(found.reservation_id)
    order = await uow.orders.get(order_id, lock=True)
    assert order is not None  # orders are never deleted
    return order, reservation
