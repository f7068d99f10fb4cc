"""Orders: what a buyer pays for, and the one state machine every order follows.

An order is made at checkout from a reservation (one order per reservation) with the unit
prices of that moment. Its status moves only along `TRANSITIONS`; every move is a method
that raises `IllegalTransition` otherwise, so no code path can set a status by hand.

    payment_pending -> paid -> fulfilled | fulfillment_failed
    fulfillment_failed -> fulfilled                          (an operator's retry)
    payment_pending -> expired | canceled
    expired -> paid | refunded                               (a payment that came late)
    paid | fulfilled | fulfillment_failed -> refunded

`refunded`, `canceled` are final; `expired` is final unless a late payment arrives.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from uuid_utils.compat import uuid7

from stockgate.domain.errors import Conflict, InvalidInput
from stockgate.domain.product import Product
from stockgate.domain.reservation import Reservation


class OrderStatus(StrEnum):
    PAYMENT_PENDING = "payment_pending"
    PAID = "paid"
    FULFILLED = "fulfilled"
    FULFILLMENT_FAILED = "fulfillment_failed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    REFUNDED = "refunded"


TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PAYMENT_PENDING: frozenset(
        {OrderStatus.PAID, OrderStatus.EXPIRED, OrderStatus.CANCELED}
    ),
    OrderStatus.PAID: frozenset(
        {OrderStatus.FULFILLED, OrderStatus.FULFILLMENT_FAILED, OrderStatus.REFUNDED}
    ),
    OrderStatus.FULFILLMENT_FAILED: frozenset({OrderStatus.FULFILLED, OrderStatus.REFUNDED}),
    OrderStatus.FULFILLED: frozenset({OrderStatus.REFUNDED}),
    OrderStatus.EXPIRED: frozenset({OrderStatus.PAID, OrderStatus.REFUNDED}),
    OrderStatus.CANCELED: frozenset(),
    OrderStatus.REFUNDED: frozenset(),
}

# Statuses in which the buyer's money is (or may soon be) with us.
MONEY_TAKEN = frozenset({OrderStatus.PAID, OrderStatus.FULFILLED, OrderStatus.FULFILLMENT_FAILED})


class IllegalTransition(Conflict):
    code = "illegal_transition"
    title = "The order cannot make that move"

    def __init__(self, order_id: uuid.UUID, current: OrderStatus, wanted: OrderStatus) -> None:
        super().__init__(
            f"order {order_id} is {current}; it cannot become {wanted}",
            order_id=str(order_id),
            status=current.value,
        )


class MixedCurrencies(InvalidInput):
    code = "mixed_currencies"
    title = "One order, one currency"


class Flag(StrEnum):
    """Why an order needs an operator's eyes; it is never fulfilled while flagged."""

    AMOUNT_MISMATCH = "amount_mismatch"
    DISPUTE = "dispute"


@dataclass(frozen=True, slots=True)
class OrderLine:
    product_id: int
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True, slots=True)
class Order:
    id: uuid.UUID
    reservation_id: uuid.UUID
    customer_id: uuid.UUID
    status: OrderStatus
    lines: tuple[OrderLine, ...]
    amount_cents: int
    currency: str
    created_at: datetime
    payment_intent_id: str | None = None
    client_secret: str | None = None
    flag: Flag | None = None
    failure_reason: str | None = None
    fulfillment_attempts: int = 0
    paid_at: datetime | None = None
    fulfilled_at: datetime | None = None

    @classmethod
    def for_reservation(
        cls, reservation: Reservation, products: Sequence[Product], *, now: datetime
    ) -> Order:
        """The order for everything a reservation holds, at today's prices."""
        by_id = {p.id: p for p in products}
        lines = tuple(
            OrderLine(line.product_id, line.quantity, by_id[line.product_id].price_cents)
            for line in reservation.lines
        )
        currencies = {by_id[line.product_id].currency for line in lines}
        if len(currencies) != 1:
            raise MixedCurrencies(
                "the reservation mixes currencies "
                f"({', '.join(sorted(currencies))}); check out each currency on its own"
            )
        return cls(
            id=uuid7(),
            reservation_id=reservation.id,
            customer_id=reservation.customer_id,
            status=OrderStatus.PAYMENT_PENDING,
            lines=lines,
            amount_cents=sum(line.quantity * line.unit_price_cents for line in lines),
            currency=currencies.pop(),
            created_at=now,
        )

    # ------------------------------------------------------------------ payment

    def with_intent(self, intent_id: str, client_secret: str | None) -> Order:
        if self.payment_intent_id not in (None, intent_id):
            raise Conflict(f"order {self.id} is already paid through {self.payment_intent_id}")
        return replace(self, payment_intent_id=intent_id, client_secret=client_secret)

    def payment_matches(self, amount_cents: int | None, currency: str | None) -> bool:
        return amount_cents == self.amount_cents and (currency or "").lower() == self.currency

    def mark_paid(self, *, now: datetime) -> Order:
        return replace(self._to(OrderStatus.PAID), paid_at=now)

    def expire(self) -> Order:
        return self._to(OrderStatus.EXPIRED)

    def cancel(self) -> Order:
        return self._to(OrderStatus.CANCELED)

    def refund(self, reason: str) -> Order:
        return replace(self._to(OrderStatus.REFUNDED), failure_reason=reason)

    def flagged(self, flag: Flag) -> Order:
        return replace(self, flag=flag)

    # ------------------------------------------------------------------ fulfillment

    def mark_fulfilled(self, *, now: datetime) -> Order:
        if self.flag is not None:
            raise Conflict(f"order {self.id} is flagged ({self.flag}); an operator decides")
        return replace(self._to(OrderStatus.FULFILLED), fulfilled_at=now, failure_reason=None)

    def fulfillment_attempted(self) -> Order:
        return replace(self, fulfillment_attempts=self.fulfillment_attempts + 1)

    def mark_fulfillment_failed(self, reason: str) -> Order:
        return replace(self._to(OrderStatus.FULFILLMENT_FAILED), failure_reason=reason)

    @property
    def awaits_fulfillment(self) -> bool:
        return self.status is OrderStatus.PAID and self.flag is None

    def _to(self, status: OrderStatus) -> Order:
        if status not in TRANSITIONS[self.status]:
            raise IllegalTransition(self.id, self.status, status)
        return replace(self, status=status)
