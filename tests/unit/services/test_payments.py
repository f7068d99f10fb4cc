"""Payment use cases over fakes of every port: checkout, events, late payments, the outbox.

The same cases against real PostgreSQL, Redis and the fake Stripe server are in
tests/integration/test_payments.py; these pin each branch quickly.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from typing import Any

import pytest

from stockgate.domain.errors import PaymentInProgress, ReservationNotFound
from stockgate.domain.order import Flag, Order, OrderStatus
from stockgate.domain.reservation import ReservationStatus
from stockgate.services.checkout import checkout
from stockgate.services.expire import expire_due
from stockgate.services.payment_events import apply_event
from stockgate.services.payment_tasks import drain_outbox, settle_stuck_orders
from stockgate.services.payments import PaymentDeps
from stockgate.services.ports import PaymentEvent
from stockgate.services.reserve import release
from tests.fakes import FakePayments, FakeWorkQueue
from tests.unit.conftest import World


@pytest.fixture
def stripe() -> FakePayments:
    return FakePayments()


def deps(world: World, stripe: FakePayments) -> PaymentDeps:
    return dataclasses.replace(world.container.payment_deps, payments=stripe)


async def started(
    world: World, stripe: FakePayments, stock: int = 5, quantity: int = 2
) -> tuple[Order, int]:
    product = await world.product(stock=stock)
    reservation = await world.reserve([(product.id, quantity)])
    order = await checkout(reservation.id, reservation.customer_id, deps(world, stripe))
    return order, product.id


async def event(world: World, kind: str, intent_id: str, **obj: Any) -> str:
    event_id = f"evt_{uuid.uuid4().hex[:12]}"
    payload = {"id": intent_id, "object": "payment_intent", **obj}
    async with world.uow_factory() as uow:
        await uow.inbox.add(
            PaymentEvent(
                id=event_id,
                type=kind,
                created=0,
                payment_intent_id=intent_id,
                payload={"id": event_id, "type": kind, "created": 0, "data": {"object": payload}},
            )
        )
        await uow.commit()
    return event_id


def order_now(world: World, order: Order) -> Order:
    return world.db.data.orders[order.id]


async def test_checkout_is_repeatable_and_extends_the_hold_capped(
    world: World, stripe: FakePayments
) -> None:
    order, _ = await started(world, stripe)
    again = await checkout(order.reservation_id, order.customer_id, deps(world, stripe))
    assert again == order_now(world, order) and again.payment_intent_id == order.payment_intent_id
    assert len(stripe.intents) == 1
    reservation = world.db.data.reservations[order.reservation_id]
    hold = world.container.settings
    assert reservation.expires_at == world.clock.now() + timedelta(
        seconds=hold.payment_hold_seconds
    )
    assert reservation.expires_at <= reservation.created_at + timedelta(
        seconds=hold.hold_seconds + hold.payment_hold_seconds
    )
    with pytest.raises(ReservationNotFound):  # someone else's
        await checkout(order.reservation_id, uuid.uuid4(), deps(world, stripe))


async def test_succeeded_event_pays_converts_and_asks_for_fulfillment_once(
    world: World, stripe: FakePayments
) -> None:
    order, product_id = await started(world, stripe)
    assert order.payment_intent_id
    stripe.succeed(order.payment_intent_id)
    first = await event(world, "payment_intent.succeeded", order.payment_intent_id)
    assert await apply_event(first, deps(world, stripe)) == "paid"
    assert await apply_event(first, deps(world, stripe)) is None  # applied already
    again = await event(world, "payment_intent.succeeded", order.payment_intent_id)
    assert await apply_event(again, deps(world, stripe)) == "already settled (paid)"
    assert order_now(world, order).status is OrderStatus.PAID
    assert world.gate.counters[product_id].sold == 2
    assert world.db.ledger_levels(product_id).sold == 2
    queue = world.container.work_queue
    assert isinstance(queue, FakeWorkQueue)
    assert [job for job, _ in queue.take()] == ["fulfill-order"]


async def test_an_event_is_not_the_truth_the_provider_is(
    world: World, stripe: FakePayments
) -> None:
    order, _ = await started(world, stripe)
    assert order.payment_intent_id
    # A succeeded event for an intent the provider says is not paid: nothing happens.
    fake = await event(world, "payment_intent.succeeded", order.payment_intent_id)
    assert await apply_event(fake, deps(world, stripe)) == (
        "not paid: the payment intent is requires_payment_method"
    )
    assert order_now(world, order).status is OrderStatus.PAYMENT_PENDING


async def test_amount_mismatch_is_flagged_not_paid(world: World, stripe: FakePayments) -> None:
    order, _ = await started(world, stripe)
    assert order.payment_intent_id
    paid = stripe.succeed(order.payment_intent_id)
    stripe.intents[paid.id] = dataclasses.replace(paid, amount_cents=paid.amount_cents - 1)
    flagged = await event(world, "payment_intent.succeeded", paid.id)
    assert (await apply_event(flagged, deps(world, stripe)) or "").startswith("flagged")
    now = order_now(world, order)
    assert (now.status, now.flag) == (OrderStatus.PAYMENT_PENDING, Flag.AMOUNT_MISMATCH)


async def expire(world: World, order: Order) -> None:
    world.clock.advance(world.container.settings.payment_hold_seconds + 1)
    done = await expire_due(uow_factory=world.uow_factory, gate=world.gate, clock=world.clock)
    assert done.expired == 1
    assert order_now(world, order).status is OrderStatus.EXPIRED


async def test_expiry_ends_the_order_and_cancels_its_intent_through_the_outbox(
    world: World, stripe: FakePayments
) -> None:
    order, product_id = await started(world, stripe)
    await expire(world, order)
    assert await world.available(product_id) == 5
    stripe.down = True
    assert (await drain_outbox(deps(world, stripe))).failed == 1  # retried later
    stripe.down = False
    assert order.payment_intent_id
    assert (await drain_outbox(deps(world, stripe))).done == 1
    assert stripe.intents[order.payment_intent_id].status == "canceled"


async def test_late_payment_takes_the_stock_again_when_there_is_some(
    world: World, stripe: FakePayments
) -> None:
    order, product_id = await started(world, stripe)
    await expire(world, order)
    assert order.payment_intent_id
    stripe.succeed(order.payment_intent_id)
    late = await event(world, "payment_intent.succeeded", order.payment_intent_id)
    assert await apply_event(late, deps(world, stripe)) == "paid late: stock taken again"
    assert order_now(world, order).status is OrderStatus.PAID
    reservation = world.db.data.reservations[order.reservation_id]
    assert reservation.status is ReservationStatus.CONVERTED
    assert (await world.available(product_id), world.gate.counters[product_id].sold) == (3, 2)
    assert world.db.ledger_levels(product_id) == world.db.totals(product_id).levels  # type: ignore[union-attr]


async def test_late_payment_without_stock_is_refunded_once(
    world: World, stripe: FakePayments
) -> None:
    order, product_id = await started(world, stripe, stock=2, quantity=2)
    await expire(world, order)
    await world.reserve([(product_id, 2)])  # someone else took the stock
    assert order.payment_intent_id
    stripe.succeed(order.payment_intent_id)
    for _ in range(2):  # a duplicate event under another id, then the stuck-order task
        late = await event(world, "payment_intent.succeeded", order.payment_intent_id)
        await apply_event(late, deps(world, stripe))
    await settle_stuck_orders(deps(world, stripe), older_than_seconds=0)
    await drain_outbox(deps(world, stripe))
    await drain_outbox(deps(world, stripe))
    now = order_now(world, order)
    assert now.status is OrderStatus.REFUNDED and "late payment" in (now.failure_reason or "")
    assert len(stripe.refunds) == 1
    assert world.gate.counters[product_id].sold == 0


async def test_release_in_checkout_cancels_the_intent_or_refuses_once_paid(
    world: World, stripe: FakePayments
) -> None:
    order, product_id = await started(world, stripe)
    paid_order, _ = await started(world, stripe)
    kwargs: dict[str, Any] = {
        "journal": world.journal,
        "uow_factory": world.uow_factory,
        "gate": world.gate,
        "payments": stripe,
    }
    released = await release(order.reservation_id, order.customer_id, **kwargs)
    assert released.status is ReservationStatus.RELEASED
    assert order_now(world, order).status is OrderStatus.CANCELED
    assert order.payment_intent_id and paid_order.payment_intent_id
    assert stripe.intents[order.payment_intent_id].status == "canceled"
    stripe.succeed(paid_order.payment_intent_id)
    with pytest.raises(PaymentInProgress):
        await release(paid_order.reservation_id, paid_order.customer_id, **kwargs)
    reservation = world.db.data.reservations[paid_order.reservation_id]
    assert reservation.status is ReservationStatus.ACTIVE
    assert await world.available(product_id) == 5


async def test_canceled_intent_ends_a_pending_order_and_gives_the_stock_back(
    world: World, stripe: FakePayments
) -> None:
    order, product_id = await started(world, stripe)
    assert order.payment_intent_id
    canceled = await event(world, "payment_intent.canceled", order.payment_intent_id)
    assert await apply_event(canceled, deps(world, stripe)) == "canceled: stock given back"
    assert order_now(world, order).status is OrderStatus.CANCELED
    assert await world.available(product_id) == 5
