"""The dashboard's read model on real PostgreSQL: order search, status filter, keyset pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from stockgate.bootstrap import Container
from stockgate.domain.order import Order, OrderLine, OrderStatus
from stockgate.domain.reservation import ReservationLine, ReservationStatus, ReserveRequest
from stockgate.services.reserve import reserve
from tests.conftest import MakeProduct

START = datetime(2030, 1, 1, tzinfo=UTC)


async def add_orders(container: Container, product_id: int, count: int) -> list[Order]:
    customers = [uuid.uuid4(), uuid.uuid4()]
    made = []
    async with container.uow_factory() as uow:
        for number in range(count):
            order = Order(
                id=uuid.uuid4(),
                reservation_id=uuid.uuid4(),
                customer_id=customers[number % 2],
                status=OrderStatus.PAID if number % 3 == 0 else OrderStatus.PAYMENT_PENDING,
                lines=(OrderLine(product_id, 1, 1000),),
                amount_cents=1000,
                currency="usd",
                # Pairs share a timestamp: the id breaks the tie, and paging must not skip one.
                created_at=START + timedelta(seconds=number // 2),
            )
            await uow.orders.add(order)
            made.append(order)
        await uow.commit()
    return made


async def test_keyset_pages_visit_every_order_once_newest_first(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=100)
    made = await add_orders(container, product.id, 11)
    seen: list[uuid.UUID] = []
    before = None
    while True:
        page = await container.admin_views.orders(status=None, search=None, before=before, limit=4)
        if not page:
            break
        seen.extend(row.id for row in page)
        before = (page[-1].created_at, page[-1].id)
    assert sorted(seen) == sorted(order.id for order in made) and len(seen) == len(set(seen))
    times = [next(o.created_at for o in made if o.id == i) for i in seen]
    assert times == sorted(times, reverse=True)


async def test_filter_by_status_and_search_by_order_or_customer(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=100)
    made = await add_orders(container, product.id, 6)
    paid = await container.admin_views.orders(
        status=OrderStatus.PAID, search=None, before=None, limit=50
    )
    assert {row.id for row in paid} == {o.id for o in made if o.status is OrderStatus.PAID}
    one = await container.admin_views.orders(status=None, search=made[2].id, before=None, limit=50)
    assert [row.id for row in one] == [made[2].id]
    customer = made[1].customer_id
    theirs = await container.admin_views.orders(status=None, search=customer, before=None, limit=50)
    assert {row.id for row in theirs} == {o.id for o in made if o.customer_id == customer}


async def test_activity_counts_held_sold_and_the_last_minute(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=20)
    other = await make_product(stock=5)
    old = await reserve(
        ReserveRequest(uuid.uuid4(), (ReservationLine(product.id, 1),)), container.reserve_deps
    )
    now = container.clock.now()
    # The first hold counts as older than a minute: the window starts just after it.
    since = datetime.fromtimestamp(uuid_time(old.id) + 0.001, UTC)
    held = await reserve(
        ReserveRequest(uuid.uuid4(), (ReservationLine(product.id, 3),)), container.reserve_deps
    )
    bought = await reserve(
        ReserveRequest(uuid.uuid4(), (ReservationLine(product.id, 2),)), container.reserve_deps
    )
    order = Order.for_reservation(bought, [product], now=now)
    async with container.uow_factory() as uow:
        converted, entries = bought.convert()
        await uow.reservations.move(converted, was=ReservationStatus.ACTIVE)
        await uow.ledger.add(entries)
        await uow.orders.add(order.with_intent("pi_test", None).mark_paid(now=now))
        await uow.commit()

    rows = {r.product.id: r for r in await container.admin_views.activity(since=since)}
    mine = rows[product.id]
    assert (mine.held, mine.sold, mine.available) == (1 + 3, 2, 20 - 4 - 2)
    assert mine.holds_last_minute == 2  # `held` and `bought`, not the older one
    assert mine.paid_last_minute == 1
    assert held.id != old.id
    assert (rows[other.id].held, rows[other.id].holds_last_minute) == (0, 0)


def uuid_time(value: uuid.UUID) -> float:
    return (value.int >> 80) / 1000
