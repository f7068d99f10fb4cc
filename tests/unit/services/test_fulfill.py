"""Fulfillment, retry and cancel-with-refund over fakes of every port."""

from __future__ import annotations

import dataclasses
import uuid
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockgate.domain.errors import NotificationFailed
from stockgate.domain.order import Order, OrderStatus
from stockgate.domain.reservation import ReservationStatus
from stockgate.services.cancel import CancelDeps, OrderNotPaid, cancel_with_refund
from stockgate.services.fulfill import (
    FulfillDeps,
    FulfillOutcome,
    OrderNotFound,
    fulfill_order,
    retry_fulfillment,
)
from stockgate.services.maintenance import requeue_paid
from stockgate.services.ports import ConvertMode, PaymentProvider
from tests.fakes import FakeMailer, FakeNotifier, FakeRefunds, FakeWorkQueue
from tests.unit.conftest import World, make_world


async def paid_order(world: World, quantity: int = 2, stock: int = 10) -> Order:
    """A paid order whose reservation is converted (sold), as the payments stage leaves it."""
    product = await world.product(stock=stock)
    reservation = await world.reserve([(product.id, quantity)])
    order = Order.for_reservation(reservation, [product], now=world.clock.now())
    order = order.with_intent(f"pi_{uuid.uuid4().hex[:8]}", "secret")
    order = order.mark_paid(now=world.clock.now())
    converted, entries = reservation.convert()
    world.db.data.reservations[reservation.id] = converted
    world.db.data.orders[order.id] = order
    world.db.add_ledger(entries)
    await world.gate.convert(reservation, ConvertMode.HOLD)  # as the payments stage does
    return order


def deps(world: World, notifier: FakeNotifier, mailer: FakeMailer | None = None) -> FulfillDeps:
    return dataclasses.replace(
        world.container.fulfill_deps,
        notifier=notifier,
        mailer=mailer,
        merchant_email="shop@example.com" if mailer else None,
        max_attempts=3,
    )


def status(world: World, order: Order) -> OrderStatus:
    return world.db.data.orders[order.id].status


async def test_paid_order_is_fulfilled_and_the_merchant_told_once(world: World) -> None:
    order, notifier, mailer = await paid_order(world), FakeNotifier(), FakeMailer()
    world.clock.advance(0.25)
    first = await fulfill_order(order.id, deps(world, notifier, mailer))
    again = await fulfill_order(order.id, deps(world, notifier, mailer))  # a duplicate job
    assert first.outcome is FulfillOutcome.FULFILLED and first.lag_seconds == pytest.approx(0.25)
    assert again.outcome is FulfillOutcome.SKIPPED
    assert status(world, order) is OrderStatus.FULFILLED
    assert [n.id for n in notifier.sent] == [f"msg_order_{order.id.hex}_fulfilled"]
    assert notifier.sent[0].data["amount_cents"] == order.amount_cents
    assert [m.to for m in mailer.sent] == ["shop@example.com"]


async def test_failed_attempts_retry_then_the_last_one_marks_the_order_failed(
    world: World,
) -> None:
    order, notifier = await paid_order(world), FakeNotifier(down=True)
    outcomes = [(await fulfill_order(order.id, deps(world, notifier))).outcome for _ in range(3)]
    assert outcomes == [FulfillOutcome.RETRY, FulfillOutcome.RETRY, FulfillOutcome.FAILED]
    stored = world.db.data.orders[order.id]
    assert stored.status is OrderStatus.FULFILLMENT_FAILED
    assert stored.failure_reason == "merchant endpoint answered 503"
    assert stored.fulfillment_attempts == 3
    # A job still queued finds nothing to do; only an operator's retry fulfills it.
    assert (await fulfill_order(order.id, deps(world, notifier))).outcome is FulfillOutcome.SKIPPED


async def test_a_retry_after_the_webhook_went_through_does_not_send_it_again(
    world: World,
) -> None:
    order, notifier, mailer = await paid_order(world), FakeNotifier(), FakeMailer(down=True)
    assert (await fulfill_order(order.id, deps(world, notifier, mailer))).outcome is (
        FulfillOutcome.RETRY
    )
    mailer.down = False
    assert (await fulfill_order(order.id, deps(world, notifier, mailer))).outcome is (
        FulfillOutcome.FULFILLED
    )
    assert len(notifier.sent) == 1 and len(mailer.sent) == 1


async def test_operator_retry_fulfills_a_failed_order_and_is_idempotent(world: World) -> None:
    order, notifier = await paid_order(world), FakeNotifier(down=True)
    for _ in range(3):
        await fulfill_order(order.id, deps(world, notifier))
    with pytest.raises(NotificationFailed):
        await retry_fulfillment(order.id, deps(world, notifier))  # still down: still failed
    assert status(world, order) is OrderStatus.FULFILLMENT_FAILED
    notifier.down = False
    done = await retry_fulfillment(order.id, deps(world, notifier))
    assert done.status is OrderStatus.FULFILLED
    assert (await retry_fulfillment(order.id, deps(world, notifier))).status is (
        OrderStatus.FULFILLED
    )
    assert len(notifier.sent) == 1
    with pytest.raises(OrderNotFound):
        await retry_fulfillment(uuid.uuid4(), deps(world, notifier))


def cancel_deps(world: World, payments: FakeRefunds) -> CancelDeps:
    # Cancelling only refunds: the fake implements that much of the PaymentProvider.
    provider = cast(PaymentProvider, payments)
    return dataclasses.replace(world.container.cancel_deps, payments=provider)


async def test_cancel_refunds_once_and_puts_the_stock_back(world: World) -> None:
    order = await paid_order(world, quantity=3, stock=10)
    product_id = order.lines[0].product_id
    assert await world.available(product_id) == 7
    payments = FakeRefunds()
    canceled = await cancel_with_refund(order.id, cancel_deps(world, payments))
    again = await cancel_with_refund(order.id, cancel_deps(world, payments))
    assert canceled.status is again.status is OrderStatus.REFUNDED
    assert len(payments.refunds) == 1
    assert await world.available(product_id) == 10
    reservation = world.db.data.reservations[order.reservation_id]
    assert reservation.status is ReservationStatus.RETURNED
    assert world.db.ledger_levels(product_id).sold == 0


async def test_cancel_of_a_fulfilled_order_refunds_but_keeps_the_stock(world: World) -> None:
    order = await paid_order(world, quantity=2, stock=5)
    await fulfill_order(order.id, deps(world, FakeNotifier()))
    await cancel_with_refund(order.id, cancel_deps(world, FakeRefunds()))
    assert status(world, order) is OrderStatus.REFUNDED
    assert await world.available(order.lines[0].product_id) == 3


async def test_cancel_changes_nothing_when_the_refund_fails(world: World) -> None:
    order = await paid_order(world)
    with pytest.raises(Exception, match="stripe unreachable"):
        await cancel_with_refund(order.id, cancel_deps(world, FakeRefunds(down=True)))
    assert status(world, order) is OrderStatus.PAID
    assert world.db.data.reservations[order.reservation_id].status is ReservationStatus.CONVERTED


async def test_an_unpaid_order_cannot_be_canceled_with_a_refund(world: World) -> None:
    order = await paid_order(world)
    world.db.data.orders[order.id] = dataclasses.replace(order, status=OrderStatus.PAYMENT_PENDING)
    with pytest.raises(OrderNotPaid):
        await cancel_with_refund(order.id, cancel_deps(world, FakeRefunds()))


async def test_maintenance_asks_again_for_paid_orders_only(world: World) -> None:
    paid, done = await paid_order(world), await paid_order(world)
    await fulfill_order(done.id, deps(world, FakeNotifier()))
    queue = FakeWorkQueue()
    world.clock.advance(60)
    asked = await requeue_paid(
        uow_factory=world.uow_factory, queue=queue, clock=world.clock, older_than_seconds=30
    )
    assert asked == 1 and list(queue.jobs) == [f"fulfill:{paid.id}"]
    again = await requeue_paid(
        uow_factory=world.uow_factory, queue=queue, clock=world.clock, older_than_seconds=30
    )
    assert again == 0  # its job still waits


@settings(max_examples=30, deadline=None)
@given(failures=st.lists(st.booleans(), min_size=1, max_size=8))
async def test_every_order_ends_fulfilled_or_failed_within_its_attempts(
    failures: list[bool],
) -> None:
    """Whatever the merchant endpoint does, at most `max_attempts` attempts end the order in
    fulfilled or fulfillment_failed, it is notified at most once, and attempts are counted."""
    world = await make_world()
    order, notifier = await paid_order(world), FakeNotifier()
    attempts = 0
    for down in failures:
        notifier.down = down
        result = await fulfill_order(order.id, deps(world, notifier))
        if result.outcome is FulfillOutcome.SKIPPED:
            break
        attempts += 1
    stored = world.db.data.orders[order.id]
    assert stored.fulfillment_attempts == attempts <= 3
    if stored.status is OrderStatus.FULFILLED:
        assert len(notifier.sent) == 1
    elif stored.status is OrderStatus.FULFILLMENT_FAILED:
        assert attempts == 3 and not notifier.sent
    else:
        assert stored.status is OrderStatus.PAID and attempts == len(failures) < 3
