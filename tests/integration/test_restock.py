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
from stockgate.domain.errors import RestockInProgress, RestockKeyReused, StoreUnavailable
from stockgate.domain.product import NewProduct
from stockgate.domain.reservation import ReservationLine, ReserveRequest
from stockgate.services.catalog import add_product, new_restock_key, restock
from stockgate.services.reconcile import reconcile
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
        *(
            restock(
                product.sku, 1, key=new_restock_key(), uow_factory=container.uow_factory, gate=gate
            )
            for _ in range(20)
        )
    )
    assert gate.slowed == 1
    assert max(done.product.stock for done in restocked) == 30
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
                restock(
                    product.sku,
                    2,
                    key=new_restock_key(),
                    uow_factory=container.uow_factory,
                    gate=container.gate,
                )
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
    await restock(
        sku, 5, key=new_restock_key(), uow_factory=container.uow_factory, gate=container.gate
    )
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


class DownGate:
    """Only what restock calls, failing as an unreachable Redis does."""

    async def add_stock(self, product_id: int, quantity: int, version: int) -> None:
        raise StoreUnavailable("redis")


async def test_restock_whose_gate_call_fails_frees_the_product_for_the_next(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=10)
    down: Any = DownGate()
    done = await restock(
        product.sku, 5, key=new_restock_key(), uow_factory=container.uow_factory, gate=down
    )
    assert (done.added, done.gate_updated) == (True, False)  # committed: reported done
    assert await advisory_locks(container) == 0  # not kept by a pooled connection
    async with asyncio.timeout(5):  # the next restock does not wait for a leaked lock
        await restock(
            product.sku,
            1,
            key=new_restock_key(),
            uow_factory=container.uow_factory,
            gate=container.gate,
        )
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
            await restock(
                product.sku,
                5,
                key=new_restock_key(),
                uow_factory=container.uow_factory,
                gate=container.gate,
            )
    finally:
        await other.close()
    async with container.uow_factory() as uow:
        unchanged = await uow.products.get(product.id)
        assert unchanged is not None and unchanged.stock == 10
    assert await available(container, product.id) == 10
    restocked = await restock(
        product.sku,
        5,
        key=new_restock_key(),
        uow_factory=container.uow_factory,
        gate=container.gate,
    )
    assert restocked.product.stock == 15
    assert await advisory_locks(container) == 0


async def stock_added_rows(container: Container, product_id: int, key: str) -> int:
    query = sa.text(
        "SELECT count(*) FROM stock_ledger "
        "WHERE product_id = :id AND kind = 'stock_added' AND ref = :key"
    )
    async with clients(container).engine.connect() as connection:
        return int((await connection.execute(query, {"id": product_id, "key": key})).scalar_one())


async def test_rerun_with_the_same_key_adds_nothing(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=10)
    first = await restock(
        product.sku, 5, key="k-1", uow_factory=container.uow_factory, gate=container.gate
    )
    again = await asyncio.gather(
        *(
            restock(
                product.sku, 5, key="k-1", uow_factory=container.uow_factory, gate=container.gate
            )
            for _ in range(5)
        )
    )
    assert (first.added, first.product.stock) == (True, 15)
    assert [(done.added, done.product.stock) for done in again] == [(False, 15)] * 5
    assert await available(container, product.id) == 15
    assert await stock_added_rows(container, product.id, "k-1") == 1
    await assert_no_drift(container, product.id)


async def test_same_key_with_another_quantity_is_refused_and_changes_nothing(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=10)
    await restock(product.sku, 5, key="k-2", uow_factory=container.uow_factory, gate=container.gate)
    with pytest.raises(RestockKeyReused, match="5 units"):
        await restock(
            product.sku, 7, key="k-2", uow_factory=container.uow_factory, gate=container.gate
        )
    assert await available(container, product.id) == 15
    assert await advisory_locks(container) == 0


async def test_restock_committed_while_redis_is_down_is_done_and_caught_up(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=10)
    down: Any = DownGate()
    done = await restock(product.sku, 5, key="k-3", uow_factory=container.uow_factory, gate=down)
    assert (done.added, done.gate_updated, done.product.stock) == (True, False, 15)
    assert await available(container, product.id) == 10  # the gate missed it
    # The operator reruns it to be sure: nothing is added twice, and the gate catches up.
    rerun = await restock(
        product.sku, 5, key="k-3", uow_factory=container.uow_factory, gate=container.gate
    )
    assert (rerun.added, rerun.gate_updated, rerun.product.stock) == (False, True, 15)
    assert await available(container, product.id) == 15
    await assert_no_drift(container, product.id)


async def test_restock_the_gate_missed_is_repaired_by_reconcile(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=10)
    down: Any = DownGate()
    await restock(product.sku, 4, key="k-4", uow_factory=container.uow_factory, gate=down)
    report = await reconcile(
        uow_factory=container.uow_factory,
        gate=container.gate,
        clock=container.clock,
        grace_seconds=30,
        fix=True,
    )
    assert any(p.product_id == product.id for p in report.products)
    assert await available(container, product.id) == 14
    await assert_no_drift(container, product.id)
