"""Every movement of available stock tells StockChanges which products moved (live stock)."""

from __future__ import annotations

import uuid

import pytest

from stockgate.domain.errors import SoldOut, StoreUnavailable
from stockgate.domain.reservation import ReservationLine
from stockgate.services.cart import add_items, remove_item
from stockgate.services.catalog import restock
from stockgate.services.expire import PendingGiveBacks, expire_due
from stockgate.services.reconcile import reconcile
from tests.unit.conftest import World


async def test_a_hold_marks_each_of_its_products(world: World) -> None:
    a, b = await world.product(5), await world.product(5)
    world.stock_changes.take()
    await world.reserve([(a.id, 1), (b.id, 2)])
    assert world.stock_changes.take() == {a.id, b.id}


async def test_a_refused_hold_marks_nothing(world: World) -> None:
    a = await world.product(1)
    world.stock_changes.take()
    with pytest.raises(SoldOut):
        await world.reserve([(a.id, 2)])
    assert world.stock_changes.take() == set()


async def test_a_compensated_hold_marks_its_products_again(world: World) -> None:
    a = await world.product(5)
    world.stock_changes.take()
    world.journal.fail_with = StoreUnavailable("postgres")
    with pytest.raises(StoreUnavailable):
        await world.reserve([(a.id, 2)])
    assert world.stock_changes.changes == [a.id, a.id]  # taken, then given back
    assert await world.available(a.id) == 5


async def test_a_release_marks_its_products(world: World) -> None:
    a = await world.product(5)
    buyer = uuid.uuid4()
    reservation = await world.reserve([(a.id, 2)], buyer)
    world.stock_changes.take()
    await world.release(reservation.id, buyer)
    assert world.stock_changes.take() == {a.id}


async def test_expiry_marks_expired_and_retried_products(world: World) -> None:
    a, b = await world.product(5), await world.product(5)
    await world.reserve([(a.id, 1)])
    world.clock.advance(601)
    pending = PendingGiveBacks()
    world.gate.fail = True  # the give-back fails after the commit: kept for the next round
    changes = world.stock_changes
    await expire_due(
        uow_factory=world.uow_factory,
        gate=world.gate,
        clock=world.clock,
        pending=pending,
        stock_changes=changes,
    )
    world.gate.fail = False
    await world.reserve([(b.id, 1)])
    world.clock.advance(601)
    changes.take()
    await expire_due(
        uow_factory=world.uow_factory,
        gate=world.gate,
        clock=world.clock,
        pending=pending,
        stock_changes=changes,
    )
    assert changes.take() == {a.id, b.id}
    assert await world.available(a.id) == 5


async def test_a_restock_marks_the_product(world: World) -> None:
    a = await world.product(5)
    world.stock_changes.take()
    changes = world.stock_changes
    await restock(
        a.sku, 3, key="r1", uow_factory=world.uow_factory, gate=world.gate, stock_changes=changes
    )
    assert world.stock_changes.take() == {a.id}


async def test_a_repair_marks_the_product_and_a_clean_pass_does_not(world: World) -> None:
    a = await world.product(5)
    world.journal.fail_with = RuntimeError("crash between gate and commit")
    with pytest.raises(RuntimeError):
        await world.reserve([(a.id, 2)])  # an orphan hold: 2 units stuck in the gate
    world.clock.advance(60)

    async def run() -> set[int]:
        world.stock_changes.take()
        await reconcile(
            uow_factory=world.uow_factory,
            gate=world.gate,
            clock=world.clock,
            grace_seconds=30,
            fix=True,
            stock_changes=world.stock_changes,
        )
        return world.stock_changes.take()

    assert await run() == {a.id}
    assert await world.available(a.id) == 5
    assert await run() == set()


async def test_cart_add_and_remove_mark_the_lines_they_move(world: World) -> None:
    a, b = await world.product(5), await world.product(5)
    cart = await world.reserve([(a.id, 1)])
    world.stock_changes.take()
    await add_items(cart.id, cart.customer_id, (ReservationLine(b.id, 2),), world.deps)
    assert world.stock_changes.take() == {b.id}
    await remove_item(cart.id, cart.customer_id, a.id, world.deps)
    assert world.stock_changes.take() == {a.id}
