"""The rules written twice for speed say the same as their one definition in the domain.

The group-commit journal writes ledger entries in SQL, PostgreSQL's totals are SQL, and the
gate keeps `available` in Lua; the domain defines them once (Reservation.held_entries() and
.release(), domain/ledger.py MOVES, domain/stock.py StockLevels). Hypothesis draws
reservations and releases; after each example the three forms must agree.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockgate.bootstrap import Container, bootstrap
from stockgate.config import Settings, StoreUrls
from stockgate.domain.errors import SoldOut
from stockgate.domain.ledger import LedgerEntry, LedgerKind
from stockgate.domain.product import NewProduct, Product
from stockgate.domain.reservation import Reservation, ReservationLine, ReserveRequest
from stockgate.domain.stock import StockLevels
from stockgate.services.catalog import add_product
from stockgate.services.reserve import release, reserve
from tests.conftest import delete_keys

T = TypeVar("T")

# Per example: a few reservations of up to three of the example's four products, each
# released or kept.
reservation_plans = st.lists(
    st.tuples(
        st.lists(
            st.tuples(st.integers(0, 3), st.integers(1, 4)),
            min_size=1,
            max_size=3,
            unique_by=lambda line: line[0],
        ),
        st.booleans(),  # released afterwards?
    ),
    min_size=1,
    max_size=6,
)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stocks=st.lists(st.integers(0, 6), min_size=4, max_size=4), plans=reservation_plans)
def test_journal_sql_totals_sql_and_gate_lua_agree_with_the_domain(
    database_url: str, redis_server_url: str, stocks: list[int], plans: list[Any]
) -> None:
    prefix = "t" + secrets.token_hex(6)
    try:
        run(_example(database_url, redis_server_url, prefix, stocks, plans))
    finally:
        delete_keys(redis_server_url, prefix)


async def _example(
    database_url: str, redis_url: str, prefix: str, stocks: list[int], plans: list[Any]
) -> None:
    settings_ = Settings(
        database_url=database_url, redis_url=redis_url, redis_prefix=prefix, hold_seconds=600
    )
    container = await bootstrap(settings_, StoreUrls(database_url, redis_url))
    try:
        products = [await _product(container, stock) for stock in stocks]
        expected_entries: list[LedgerEntry] = []
        held = {p.id: 0 for p in products}
        kept: list[Reservation] = []
        for lines, released in plans:
            request = ReserveRequest(
                uuid.uuid4(),
                tuple(ReservationLine(products[i].id, quantity) for i, quantity in lines),
            )
            try:
                reservation = await reserve(request, container.reserve_deps)
            except SoldOut:
                continue
            expected_entries += reservation.held_entries()
            if released:
                ended = await release(
                    reservation.id,
                    reservation.customer_id,
                    journal=container.journal,
                    uow_factory=container.uow_factory,
                    gate=container.gate,
                )
                expected_entries += reservation.release()[1]
                assert ended.status is reservation.release()[0].status
            else:
                kept.append(reservation)
                for line in reservation.lines:
                    held[line.product_id] += line.quantity
        # The SQL wrote exactly the entries the domain says, kind by kind and line by line.
        assert sorted(map(_key, await _entries(database_url, products))) == sorted(
            map(_key, expected_entries)
        )
        for product in products:
            expected = StockLevels(stock=product.stock, held=held[product.id], sold=0)
            async with container.uow_factory() as uow:
                totals = await uow.products.totals(product.id)
            assert totals is not None
            assert totals.levels == expected  # the totals SQL
            assert totals.ledger == expected  # the ledger, summed through MOVES
            gate_available = (await container.gate.available([product.id]))[product.id]
            assert gate_available == expected.available  # the Lua counters
    finally:
        await container.close()


async def _product(container: Container, stock: int) -> Product:
    new = NewProduct(sku=f"RA-{secrets.token_hex(5)}", name="rules", price_cents=1, stock=stock)
    return await add_product(new, uow_factory=container.uow_factory, gate=container.gate)


async def _entries(database_url: str, products: list[Product]) -> list[LedgerEntry]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT product_id, kind, quantity, reservation_id FROM stock_ledger "
            "WHERE product_id = ANY($1::bigint[]) AND kind <> 'stock_added'",
            [p.id for p in products],
        )
    finally:
        await connection.close()
    return [
        LedgerEntry(r["product_id"], LedgerKind(r["kind"]), r["quantity"], r["reservation_id"])
        for r in rows
    ]


def _key(entry: LedgerEntry) -> tuple[int, str, int, str]:
    return (entry.product_id, entry.kind.value, entry.quantity, str(entry.reservation_id))
