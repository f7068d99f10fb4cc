"""Checkout: an order and a Stripe PaymentIntent for a reservation; what the buyer sees of it.

Checkout is repeatable: the order is made once per reservation (unique in PostgreSQL) and the
PaymentIntent once per order (the provider's idempotency key is the order id), so a retry
after a timeout returns the same order and client secret. While the payment is in flight the
reservation is held longer, in PostgreSQL only (the gate's holds have no clock): until at
least `payment_hold_seconds` after checkout, capped at `hold_seconds + payment_hold_seconds`
after it was taken, so repeated checkouts cannot hold stock forever.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import TypeGuard

from stockgate.domain.errors import (
    InvalidInput,
    OrderNotFound,
    OrderNotPayable,
    PaymentInProgress,
    PaymentProviderUnavailable,
    PaymentStateConflict,
    ProductNotFound,
    ReservationNotActive,
    ReservationNotFound,
)
from stockgate.domain.order import Order, OrderStatus
from stockgate.domain.reservation import Reservation, ReservationStatus
from stockgate.services.payments import PaymentDeps, cancel_key
from stockgate.services.ports import OutboxKind, PaymentIntent, PaymentProvider

# What a payment method id from Stripe.js (or a test card's name) looks like.
PAYMENT_METHOD = re.compile(r"^pm_[A-Za-z0-9_]{1,200}$")


async def checkout(reservation_id: uuid.UUID, customer_id: uuid.UUID, deps: PaymentDeps) -> Order:
    payments = deps.provider()
    order = await _order_for(reservation_id, customer_id, deps)
    if order.payment_intent_id is not None:
        return order  # a repeat: the same order and client secret
    if order.status is not OrderStatus.PAYMENT_PENDING:
        raise OrderNotPayable(f"order {order.id} is {order.status}")
    # Stripe unreachable or slow: PaymentProviderUnavailable (503); the order and the hold
    # stay, and a retry creates the same PaymentIntent (idempotency key = order id).
    intent = await payments.create_intent(
        order_id=order.id,
        amount_cents=order.amount_cents,
        currency=order.currency,
        customer_id=customer_id,
    )
    return await _attach(order.id, intent, deps)


async def _order_for(reservation_id: uuid.UUID, customer_id: uuid.UUID, deps: PaymentDeps) -> Order:
    async with deps.uow_factory() as uow:
        reservation = await uow.reservations.get_for_update(reservation_id)
        if not _owned(reservation, customer_id):
            raise ReservationNotFound(reservation_id)
        order = await uow.orders.for_reservation(reservation_id)
        if order is not None:
            return order
        if reservation.status is not ReservationStatus.ACTIVE:
            raise ReservationNotActive(f"reservation {reservation_id} is {reservation.status}")
        products = []
        for line in reservation.lines:
            product = await uow.products.get(line.product_id)
            if product is None:
                raise ProductNotFound(line.product_id)
            products.append(product)
        now = deps.clock.now()
        order = Order.for_reservation(reservation, products, now=now)
        await uow.orders.add(order)
        await uow.reservations.move(_extended(reservation, deps), was=ReservationStatus.ACTIVE)
        await uow.commit()
    return order


def _extended(reservation: Reservation, deps: PaymentDeps) -> Reservation:
    now = deps.clock.now()
    wanted = now + timedelta(seconds=deps.payment_hold_seconds)
    cap = reservation.created_at + timedelta(seconds=deps.hold_seconds + deps.payment_hold_seconds)
    return reservation.extend_to(min(wanted, cap))


async def _attach(order_id: uuid.UUID, intent: PaymentIntent, deps: PaymentDeps) -> Order:
    async with deps.uow_factory() as uow:
        order = await uow.orders.get(order_id, lock=True)
        assert order is not None
        if order.payment_intent_id is None:
            order = order.with_intent(intent.id, intent.client_secret)
            await uow.orders.save(order)
            await uow.orders.record(order.id, "payment_intent_created", payment_intent_id=intent.id)
            if order.status is OrderStatus.EXPIRED:
                # Expired while the intent was being made: it must not stay payable.
                await uow.outbox.add(
                    OutboxKind.CANCEL_INTENT, order.id, intent.id, cancel_key(order.id)
                )
        await uow.commit()
    if order.status is not OrderStatus.PAYMENT_PENDING:
        raise OrderNotPayable(f"order {order.id} is {order.status}")
    return order


async def get_order(order_id: uuid.UUID, customer_id: uuid.UUID, deps: PaymentDeps) -> Order:
    async with deps.uow_factory() as uow:
        order = await uow.orders.get(order_id)
    if order is None or order.customer_id != customer_id:
        raise OrderNotFound(order_id)  # I6: someone else's looks like nothing
    return order


async def pay_with(
    order_id: uuid.UUID, customer_id: uuid.UUID, payment_method: str, deps: PaymentDeps
) -> PaymentIntent:
    """The buyer's payment method (from Stripe.js, or a test card with the fake) on the
    order's PaymentIntent, confirmed; the outcome arrives as a webhook like any payment."""
    payments = deps.provider()
    if not PAYMENT_METHOD.match(payment_method):
        raise InvalidInput("payment_method must be a payment method id (pm_...)")
    order = await get_order(order_id, customer_id, deps)
    if order.status is not OrderStatus.PAYMENT_PENDING or order.payment_intent_id is None:
        raise OrderNotPayable(f"order {order.id} is {order.status}; it cannot be paid")
    return await payments.pay_with(order.payment_intent_id, payment_method)


async def cancel_payment(order: Order, payments: PaymentProvider | None) -> None:
    """Before a buyer's release of a reservation in checkout: cancel its PaymentIntent.
    PaymentInProgress (409, the hold intact) when it cannot be: it succeeded or is
    processing, or the provider cannot be reached (it might be succeeding right now)."""
    if order.payment_intent_id is None:
        return
    if payments is None:
        raise PaymentInProgress("payments are not configured; the payment cannot be canceled")
    try:
        await payments.cancel_intent(order.payment_intent_id)
    except PaymentStateConflict as exc:
        raise PaymentInProgress(
            f"the payment is {exc.status}; the reservation cannot be released"
        ) from exc
    except PaymentProviderUnavailable as exc:
        raise PaymentInProgress(
            "the payment provider could not cancel the payment; try again shortly"
        ) from exc


def _owned(reservation: Reservation | None, customer_id: uuid.UUID) -> TypeGuard[Reservation]:
    return (
        reservation is not None
        and reservation.customer_id == customer_id
        and reservation.status is not ReservationStatus.VOID
    )
