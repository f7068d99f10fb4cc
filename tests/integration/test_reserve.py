"""Reserve through the real container: PostgreSQL and Redis agree on every unit."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from stockgate.bootstrap import Container
from stockgate.domain.errors import SoldOut
from stockgate.domain.reservation import ReservationLine, ReserveRequest
from stockgate.services.reserve import reserve
from tests.conftest import MakeProduct


async def test_reserve_holds_stock_in_gate_and_postgres(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=5)
    request = ReserveRequest(uuid.uuid4(), (ReservationLine(product.id, 2),))
    reservation = await reserve(request, container.reserve_deps)
    assert (await container.gate.available([product.id]))[product.id] == 3
    async with container.uow_factory() as uow:
        stored = await uow.reservations.get(reservation.id)
    assert stored is not None and stored.lines == request.lines
    with pytest.raises(SoldOut):
        await reserve(
            ReserveRequest(uuid.uuid4(), (ReservationLine(product.id, 4),)), container.reserve_deps
        )


async def _product_row_and_lines(
    database_url: str, product_id: int
) -> tuple[tuple[str, str, str], int]:
    """The product row's header (ctid, xmin, xmax), and how many reservation lines name it."""
    connection = await asyncpg.connect(database_url)
    try:
        row = await connection.fetchrow(
            "SELECT ctid::text, xmin::text, xmax::text FROM products WHERE id = $1", product_id
        )
        lines = await connection.fetchval(
            "SELECT count(*) FROM reservation_lines WHERE product_id = $1", product_id
        )
    finally:
        await connection.close()
    assert row is not None
    return (row[0], row[1], row[2]), lines


async def test_reservations_never_write_the_product_row(
    container: Container, make_product: MakeProduct, database_url: str
) -> None:
    # The hot row of a drop: neither an update (new ctid/xmin) nor a row lock (xmax, which a
    # foreign-key check from the batch's lines or ledger rows would leave there).
    product = await make_product(stock=1_000)
    header_before, lines_before = await _product_row_and_lines(database_url, product.id)
    requests = [ReserveRequest(uuid.uuid4(), (ReservationLine(product.id, 1),)) for _ in range(50)]
    await asyncio.gather(*(reserve(r, container.reserve_deps) for r in requests))
    header_after, lines_after = await _product_row_and_lines(database_url, product.id)
    assert (lines_before, lines_after) == (0, 50)  # all 50 written, beside the row
    assert header_after == header_before
