"""Thousands of simultaneous reserve() calls: never one unit more than the stock.

These tests catch an oversell if the Lua gate were wrong: with the availability check removed
from take.lua, test_burst_never_oversells fails (all 3000 requests are granted).
"""

from __future__ import annotations

import asyncio
import uuid

import sqlalchemy as sa

from stockgate.bootstrap import Container
from stockgate.domain.errors import LimitExceeded, SoldOut, StockgateError
from stockgate.domain.reservation import Reservation, ReservationLine, ReserveRequest
from stockgate.services.reserve import reserve
from tests.conftest import MakeProduct, clients, drift


async def burst(
    container: Container, requests: list[ReserveRequest]
) -> tuple[list[Reservation], list[BaseException]]:
    results = await asyncio.gather(
        *(reserve(r, container.reserve_deps) for r in requests), return_exceptions=True
    )
    granted = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, BaseException)]
    return granted, refused


async def held_in_postgres(container: Container, product_id: int) -> tuple[int, int]:
    """(active reservation rows, units) for one product, counted in SQL."""
    async with clients(container).engine.connect() as connection:
        row = (
            await connection.execute(
                sa.text(
                    "SELECT count(*), coalesce(sum(l.quantity), 0) FROM reservation_lines l "
                    "JOIN reservations r ON r.id = l.reservation_id "
                    "WHERE l.product_id = :p AND r.status = 'active'"
                ),
                {"p": product_id},
            )
        ).one()
    return int(row[0]), int(row[1])


async def assert_consistent(container: Container) -> None:
    report = await drift(container)
    for product in report.products:
        assert (product.leaked, product.oversold, product.ledger_ok) == (0, 0, True), product


def one_line(
    product_id: int,
    quantity: int = 1,
    *,
    customer: uuid.UUID | None = None,
    idempotency_key: str | None = None,
) -> ReserveRequest:
    return ReserveRequest(
        customer or uuid.uuid4(),
        (ReservationLine(product_id, quantity),),
        idempotency_key=idempotency_key,
    )


async def test_burst_never_oversells(container: Container, make_product: MakeProduct) -> None:
    product = await make_product(stock=100)
    granted, refused = await burst(container, [one_line(product.id) for _ in range(3000)])
    assert len(granted) == 100
    assert len(refused) == 2900 and all(isinstance(e, SoldOut) for e in refused)
    assert await held_in_postgres(container, product.id) == (100, 100)
    assert (await container.gate.available([product.id]))[product.id] == 0
    await assert_consistent(container)


async def test_burst_with_quantities_takes_exactly_the_stock(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=100)
    requests = [one_line(product.id, 1 + i % 3) for i in range(1500)]
    granted, _ = await burst(container, requests)
    units = sum(r.lines[0].quantity for r in granted)
    assert 98 <= units <= 100  # the last units may be too few for a 2- or 3-unit request
    assert await held_in_postgres(container, product.id) == (len(granted), units)
    assert (await container.gate.available([product.id]))[product.id] == 100 - units
    await assert_consistent(container)


async def test_one_customer_in_parallel_never_exceeds_the_limit(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=100, limit=3)
    buyer = uuid.uuid4()
    granted, refused = await burst(
        container, [one_line(product.id, customer=buyer) for _ in range(200)]
    )
    assert len(granted) == 3
    assert all(isinstance(e, LimitExceeded) for e in refused)
    assert await held_in_postgres(container, product.id) == (3, 3)


async def test_multi_item_requests_never_take_part(
    container: Container, make_product: MakeProduct
) -> None:
    a, b = await make_product(stock=50), await make_product(stock=30)
    requests = [
        ReserveRequest(uuid.uuid4(), (ReservationLine(a.id, 1), ReservationLine(b.id, 1)))
        for _ in range(500)
    ] + [one_line(a.id) for _ in range(500)]
    granted, refused = await burst(container, requests)
    assert all(isinstance(e, SoldOut) for e in refused)
    pairs = [r for r in granted if len(r.lines) == 2]
    singles = [r for r in granted if len(r.lines) == 1]
    held_a, held_b = (
        await held_in_postgres(container, a.id),
        await held_in_postgres(container, b.id),
    )
    # Every pair took both products or neither: b's units are exactly the pairs.
    assert held_b == (len(pairs), len(pairs))
    assert held_a == (len(pairs) + len(singles), len(pairs) + len(singles))
    assert held_a[1] <= 50 and held_b[1] <= 30
    assert held_a[1] == 50  # a sold out: there were more requests than units
    await assert_consistent(container)


async def test_idempotent_retries_create_exactly_one_reservation(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=100)
    buyer = uuid.uuid4()
    requests = [one_line(product.id, 2, customer=buyer, idempotency_key="pay-1")] * 300
    granted, refused = await burst(container, requests)
    assert refused == []
    assert {r.id for r in granted} == {granted[0].id}
    assert await held_in_postgres(container, product.id) == (1, 2)
    assert (await container.gate.available([product.id]))[product.id] == 98


async def test_many_products_many_customers(
    container: Container, make_product: MakeProduct
) -> None:
    products = [await make_product(stock=20, limit=2) for _ in range(5)]
    customers = [uuid.uuid4() for _ in range(40)]
    requests = [
        ReserveRequest(
            customers[i % 40],
            tuple(
                ReservationLine(products[(i + k) % 5].id, 1 + (i + k) % 2) for k in range(1 + i % 3)
            ),
        )
        for i in range(2000)
    ]
    granted, refused = await burst(container, requests)
    assert all(isinstance(e, StockgateError) for e in refused)
    for product in products:
        _, units = await held_in_postgres(container, product.id)
        assert units <= 20
    for customer in customers:
        for product in products:
            mine = sum(
                line.quantity
                for r in granted
                if r.customer_id == customer
                for line in r.lines
                if line.product_id == product.id
            )
            assert mine <= 2
    await assert_consistent(container)
