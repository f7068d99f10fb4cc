"""Restocks on real stores: concurrent restocks of one product all reach the gate at once,
without waiting for the reconciler, whatever order their gate calls would have taken."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from stockgate.adapters.postgres import unit_of_work
from stockgate.bootstrap import Container
from stockgate.domain.errors import RestockInProgress, StoreUnavailable
from stockgate.domain.product import NewProduct
from stockgate.domain.reservation import ReservationLine, ReserveRequest
from stockgate.services.catalog import add_product, restock
from stockgate.services.reserve import reserve
from tests.conftest import MakeProduct, clients, drift


class SlowFirstCall:
    """The real gate, but the first call of one method waits: later calls overtake it."""

    def __init__(self, gate: Any, method: str, delay: float) -> None:
        self._gate = gate
        self._method = method
        self._delay = delay
        self.slowed = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._gate, name)
        if name != self._method:
            return real

        async def slow_once(*args: Any, **kwargs: Any) -> Any:
            if not self.slowed:
                self.slowed += 1
                await asyncio.sleep(self._delay)
            return await real(*args, **kwargs)

        return slow_once


async def available(container: Container, product_id: int) -> int | None:
    return (await container.gate.available([product_id]))[product_id]


async def assert_no_drift(container: Container, product_id: int) -> None:
    report = await drift(container)
    (mine,) = [p for p in report.products if p.product_id == product_id]
    assert (mine.leaked, mine.oversold, mine.ledger_ok) == (0, 0, True), mine


async def test_overtaken_restock_still_reaches_the_gate_without_reconcile(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=10)
    await reserve(
        ReserveRequest(uuid.uuid4(), (ReservationLine(product.id, 3),)), container.reserve_deps
    )
    # The first restock's gate call is slow, so the 19 committed after it would apply their
    # newer versions first; the gate then skips the older one as already counted.
    gate = SlowFirstCall(container.gate, "add_stock", delay=0.3)
    restocked = await asyncio.gather(
        *(restock(product.sku, 1, uow_factory=container.uow_factory, gate=gate) for _ in range(20))
    )
    assert gate.slowed == 1
    assert max(p.stock for p in restocked) == 30
    assert await available(container, product.id) == 30 - 3  # at once: no reconcile ran
    await assert_no_drift(container, product.id)
    assert await advisory_locks(container) == 0


async def test_many_concurrent_restocks_of_one_product_are_all_counted(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=5)
    await reserve(
        ReserveRequest(uuid.uuid4(), (ReservationLine(product.id, 2),)), container.reserve_deps
    )
    for round_ in range(3):
        await asyncio.gather(
            *(
                restock(product.sku, 2, uow_factory=container.uow_factory, gate=container.gate)
                for _ in range(20)
            )
        )
        assert await available(container, product.id) == 5 + 40 * (round_ + 1) - 2
    await assert_no_drift(container, product.id)


async def test_restock_right_after_add_is_not_lost_to_the_first_load(
    container: Container,
) -> None:
    # add_product commits, then loads the gate from its own snapshot; a restock committed in
    # between (its gate call finds no counter yet) must not be missing from that load.
    sku = f"SKU-{secrets.token_hex(4)}"
    gate = SlowFirstCall(container.gate, "load", delay=0.3)
    new = NewProduct(sku=sku, name="Fresh", price_cents=100, stock=10)
    adding = asyncio.create_task(add_product(new, uow_factory=container.uow_factory, gate=gate))
    while True:  # the product is committed, its gate load not done yet
        async with container.uow_factory() as uow:
            if any(p.sku == sku for p in await uow.products.list()):
                break
        await asyncio.sleep(0.005)
    await restock(sku, 5, uow_factory=container.uow_factory, gate=container.gate)
    product = await adding
    assert gate.slowed == 1
    assert await available(container, product.id) == 15
    await assert_no_drift(container, product.id)


async def advisory_locks(container: Container) -> int:
    async with clients(container).engine.connect() as connection:
        held = await connection.execute(
            sa.text(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND d.datname = current_database()"
            )
        )
        return int(held.scalar_one())


async def test_restock_whose_gate_call_fails_frees_the_product_for_the_next(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=10)

    class DownGate:
        async def add_stock(self, product_id: int, quantity: int, version: int) -> None:
            raise StoreUnavailable("redis")

    with pytest.raises(StoreUnavailable):  # a stand-in with add_stock, all restock calls
        await restock(product.sku, 5, uow_factory=container.uow_factory, gate=DownGate())  # type: ignore[arg-type]
    assert await advisory_locks(container) == 0  # not kept by a pooled connection
    async with asyncio.timeout(5):  # the next restock does not wait for a leaked lock
        await restock(product.sku, 1, uow_factory=container.uow_factory, gate=container.gate)
    # The committed restock the gate missed (5 units) is the reconciler's, as documented.
    assert await available(container, product.id) == 11
    assert await advisory_locks(container) == 0


async def test_restock_waiting_too_long_for_another_says_so_and_changes_nothing(
    container: Container,
    make_product: MakeProduct,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    product = await make_product(stock=10)
    monkeypatch.setattr(unit_of_work, "STOCK_LOCK_WAIT_SECONDS", 0.2)
    other = await asyncpg.connect(database_url)  # stands for a restock stuck in its gate call
    try:
        await other.execute(
            "SELECT pg_advisory_lock($1, ($2 % 2147483648)::int)",
            unit_of_work.STOCK_LOCK_NAMESPACE,
            product.id,
        )
        with pytest.raises(RestockInProgress, match=product.sku):
            await restock(product.sku, 5, uow_factory=container.uow_factory, gate=container.gate)
    finally:
        await other.close()
    async with container.uow_factory() as uow:
        unchanged = await uow.products.get(product.id)
        assert unchanged is not None and unchanged.stock == 10
    assert await available(container, product.id) == 10
    restocked = await restock(
        product.sku, 5, uow_factory=container.uow_factory, gate=container.gate
    )
    assert restocked.stock == 15
    assert await advisory_locks(container) == 0
