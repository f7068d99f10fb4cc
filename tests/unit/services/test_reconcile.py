"""reconcile(): finds and repairs drift between the gate and the database."""

from __future__ import annotations

import uuid

import pytest

from stockgate.domain.reservation import ReservationStatus
from stockgate.services.reconcile import ReconcileReport, reconcile
from tests.unit.conftest import World


async def run(world: World, *, fix: bool, grace: float = 30.0) -> ReconcileReport:
    return await reconcile(
        uow_factory=world.uow_factory,
        gate=world.gate,
        clock=world.clock,
        grace_seconds=grace,
        fix=fix,
    )


async def test_quiet_system_has_no_drift(world: World) -> None:
    a = await world.product(5)
    await world.reserve([(a.id, 2)])
    world.clock.advance(5)
    report = await run(world, fix=False)
    (product,) = report.products
    assert (product.leaked, product.oversold, product.ledger_ok) == (0, 0, True)
    assert (product.stock, product.held, product.gate_available, product.gate_held) == (5, 2, 3, 2)


async def test_orphan_hold_is_given_back_after_grace(world: World) -> None:
    a = await world.product(5)
    world.journal.fail_with = RuntimeError("crash between gate and commit")
    with pytest.raises(RuntimeError):
        await world.reserve([(a.id, 2)])
    assert await world.available(a.id) == 3
    assert (await run(world, fix=True)).products[0].fixes == []  # within the grace period
    world.clock.advance(31)
    report = await run(world, fix=True)
    assert report.leaked == 2
    assert await world.available(a.id) == 5
    assert (await run(world, fix=False)).leaked == 0


async def test_lost_hold_is_restored_when_stock_allows(world: World) -> None:
    a = await world.product(5)
    reservation = await world.reserve([(a.id, 2)])
    world.gate.holds[a.id].clear()  # Redis lost the hold, its units look available
    world.gate.counters[a.id].available += 2
    world.clock.advance(5)
    report = await run(world, fix=True)
    assert report.oversold == 2
    assert await world.available(a.id) == 3
    assert reservation.id in world.gate.holds[a.id]
    after = await run(world, fix=False)
    assert (after.leaked, after.oversold) == (0, 0)


async def test_lost_hold_without_stock_is_ended(world: World) -> None:
    a = await world.product(2)
    lost = await world.reserve([(a.id, 2)])
    world.gate.holds[a.id].clear()
    world.gate.counters[a.id].available = 2
    winner = await world.reserve([(a.id, 2)])  # the units were sold twice in the gate
    world.clock.advance(5)
    await run(world, fix=True)
    assert world.db.data.reservations[lost.id].status is ReservationStatus.RELEASED
    assert world.db.data.reservations[winner.id].status is ReservationStatus.ACTIVE
    after = await run(world, fix=False)
    assert (after.leaked, after.oversold, after.products[0].ledger_ok) == (0, 0, True)
    assert await world.available(a.id) == 0


async def test_flushed_gate_is_rebuilt_with_holds_and_limits(world: World) -> None:
    a = await world.product(5, limit=2)
    buyer = uuid.uuid4()
    await world.reserve([(a.id, 2)], buyer)
    world.gate.flush()
    report = await run(world, fix=True)
    assert report.products[0].fixes == ["rebuilt"]
    assert await world.available(a.id) == 3
    assert world.gate.buyers[a.id] == {buyer: 2}


async def test_drifted_counter_is_corrected(world: World) -> None:
    a = await world.product(5)
    world.gate.counters[a.id].available = 9
    report = await run(world, fix=True)
    assert report.oversold == 4
    assert report.products[0].fixes == ["corrected available by -4"]
    assert await world.available(a.id) == 5
