"""The order state machine: every move is in TRANSITIONS, every other move raises."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from stockgate.domain.errors import Conflict
from stockgate.domain.order import (
    MONEY_TAKEN,
    TRANSITIONS,
    Flag,
    IllegalTransition,
    MixedCurrencies,
    Order,
    OrderStatus,
)
from stockgate.domain.product import Product
from stockgate.domain.reservation import Reservation, ReservationLine, ReserveRequest

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def product(product_id: int, price: int = 500, currency: str = "usd") -> Product:
    return Product(product_id, f"S{product_id}", "p", price, currency, 10, None)


def new_order(*lines: tuple[int, int]) -> Order:
    request = ReserveRequest(uuid.uuid4(), tuple(ReservationLine(p, q) for p, q in lines))
    reservation = Reservation.new(request, now=NOW, hold_seconds=600)
    return Order.for_reservation(reservation, [product(p, 100 * p) for p, _ in lines], now=NOW)


# Each move by name: the status it leads to, and how to make it.
MOVES: dict[str, tuple[OrderStatus, Callable[[Order], Order]]] = {
    "pay": (OrderStatus.PAID, lambda o: o.mark_paid(now=NOW)),
    "expire": (OrderStatus.EXPIRED, lambda o: o.expire()),
    "cancel": (OrderStatus.CANCELED, lambda o: o.cancel()),
    "refund": (OrderStatus.REFUNDED, lambda o: o.refund("test")),
    "fulfil": (OrderStatus.FULFILLED, lambda o: o.mark_fulfilled(now=NOW)),
    "fail": (OrderStatus.FULFILLMENT_FAILED, lambda o: o.mark_fulfillment_failed("x")),
}


class OrderMachine(RuleBasedStateMachine):
    """Random moves, legal or not: legal ones land where TRANSITIONS says, illegal ones raise
    IllegalTransition and change nothing; a flagged order is never fulfilled."""

    def __init__(self) -> None:
        super().__init__()
        self.order = new_order((1, 2), (3, 1))
        self.path = [self.order.status]

    @rule(move=st.sampled_from(sorted(MOVES)))
    def move(self, move: str) -> None:
        target, make = MOVES[move]
        before = self.order
        legal = target in TRANSITIONS[before.status]
        if target is OrderStatus.FULFILLED and before.flag is not None:
            with pytest.raises(Conflict):
                make(before)
            return
        if not legal:
            with pytest.raises(IllegalTransition):
                make(before)
            return
        self.order = make(before)
        self.path.append(self.order.status)
        assert self.order.status is target
        assert (self.order.id, self.order.lines, self.order.amount_cents) == (
            before.id,
            before.lines,
            before.amount_cents,
        )

    @rule(flag=st.sampled_from(list(Flag)))
    def flag(self, flag: Flag) -> None:
        self.order = self.order.flagged(flag)

    @invariant()
    def money_is_never_dropped(self) -> None:
        # Once money was taken, the order only ends refunded (never canceled or expired).
        taken = [i for i, s in enumerate(self.path) if s in MONEY_TAKEN]
        if taken:
            later = self.path[taken[0] :]
            assert OrderStatus.CANCELED not in later and OrderStatus.EXPIRED not in later

    @invariant()
    def final_states_stay(self) -> None:
        for before, after in zip(self.path, self.path[1:], strict=False):
            assert after in TRANSITIONS[before]


TestOrderMachine = OrderMachine.TestCase
TestOrderMachine.settings = settings(max_examples=200, stateful_step_count=12, deadline=None)


def test_order_copies_prices_and_sums_the_amount() -> None:
    order = new_order((2, 3), (5, 1))
    assert order.status is OrderStatus.PAYMENT_PENDING
    assert order.amount_cents == 3 * 200 + 1 * 500
    assert [(line.product_id, line.unit_price_cents) for line in order.lines] == [
        (2, 200),
        (5, 500),
    ]


def test_one_order_one_currency() -> None:
    request = ReserveRequest(uuid.uuid4(), (ReservationLine(1, 1), ReservationLine(2, 1)))
    reservation = Reservation.new(request, now=NOW, hold_seconds=600)
    with pytest.raises(MixedCurrencies):
        Order.for_reservation(reservation, [product(1), product(2, currency="eur")], now=NOW)


def test_payment_matches_amount_and_currency_only() -> None:
    order = new_order((1, 2))
    assert order.payment_matches(200, "USD")
    assert not order.payment_matches(199, "usd")
    assert not order.payment_matches(200, "eur")
    assert not order.payment_matches(None, None)


def test_an_order_keeps_its_first_payment_intent() -> None:
    order = new_order((1, 1)).with_intent("pi_1", "secret")
    assert order.with_intent("pi_1", "secret") == order
    with pytest.raises(Conflict):
        order.with_intent("pi_2", "other")


def test_a_late_payment_may_pay_or_refund_an_expired_order() -> None:
    expired = new_order((1, 1)).expire()
    assert expired.mark_paid(now=NOW).status is OrderStatus.PAID
    assert expired.refund("late").status is OrderStatus.REFUNDED
    with pytest.raises(IllegalTransition):
        new_order((1, 1)).refund("never paid")
