"""expire_due() with PendingGiveBacks: a give-back that fails after the commit is retried."""

from __future__ import annotations

from functools import partial

import pytest

from stockgate.domain.errors import StoreUnavailable
from stockgate.domain.reservation import ReservationStatus
from stockgate.services.expire import PendingGiveBacks, expire_due
from tests.unit.conftest import World


async def test_failed_give_back_is_retried_on_the_next_round(world: World) -> None:
    a = await world.product(5)
    reservation = await world.reserve([(a.id, 2)])
    world.clock.advance(601)
    pending = PendingGiveBacks()

    world.gate.fail = True  # Redis unreachable right after the commit
    first = await expire_due(uow_factory=world.uow_factory, gate=world.gate, pending=pending)
    assert (first.expired, first.failed, first.waiting) == (1, 1, 1)
    assert first.error
    assert world.db.data.reservations[reservation.id].status is ReservationStatus.EXPIRED
    world.gate.fail = False
    assert await world.available(a.id) == 3  # still held in the gate, not lost, not sold

    second = await expire_due(uow_factory=world.uow_factory, gate=world.gate, pending=pending)
    assert (second.expired, second.retried, second.failed, second.waiting) == (0, 1, 0, 0)
    assert await world.available(a.id) == 5
    assert len(pending) == 0
    assert world.db.ledger_levels(a.id).available == 5


async def test_retry_keeps_waiting_while_the_gate_still_fails(world: World) -> None:
    a = await world.product(5)
    await world.reserve([(a.id, 1)])
    world.clock.advance(601)
    pending = PendingGiveBacks()
    expire = partial(expire_due, uow_factory=world.uow_factory, gate=world.gate)
    world.gate.fail = True
    await expire(pending=pending)
    again = await expire(pending=pending)
    assert (again.retried, again.failed, again.waiting) == (0, 1, 1)
    world.gate.fail = False
    assert (await expire(pending=pending)).retried == 1
    assert await world.available(a.id) == 5


async def test_retry_after_the_reconciler_gave_back_returns_nothing_twice(world: World) -> None:
    a = await world.product(5)
    reservation = await world.reserve([(a.id, 2)])
    world.clock.advance(601)
    pending = PendingGiveBacks()
    world.gate.fail = True
    await expire_due(uow_factory=world.uow_factory, gate=world.gate, pending=pending)
    world.gate.fail = False
    await world.gate.give_back(reservation)  # the reconciler got there first (orphan hold)
    retried = await expire_due(uow_factory=world.uow_factory, gate=world.gate, pending=pending)
    assert retried.retried == 1 and retried.waiting == 0
    assert await world.available(a.id) == 5  # the give-back is keyed by reservation id


async def test_waiting_give_backs_are_bounded_by_dropping_the_oldest(world: World) -> None:
    a = await world.product(10)
    first = await world.reserve([(a.id, 1)])
    world.clock.advance(1)
    later = [await world.reserve([(a.id, 1)]) for _ in range(2)]
    world.clock.advance(601)
    pending = PendingGiveBacks(limit=2)
    world.gate.fail = True
    done = await expire_due(uow_factory=world.uow_factory, gate=world.gate, pending=pending)
    assert (done.expired, done.waiting, done.dropped) == (3, 2, 1)
    world.gate.fail = False
    retried = await expire_due(uow_factory=world.uow_factory, gate=world.gate, pending=pending)
    assert retried.retried == 2
    # The dropped (oldest) one is left to the reconciler: its hold is still in the gate.
    assert await world.available(a.id) == 9
    assert set(world.gate.holds[a.id]) == {first.id}
    assert all(r.id not in world.gate.holds[a.id] for r in later)


async def test_without_pending_a_failed_give_back_is_raised_after_the_commit(
    world: World,
) -> None:
    a = await world.product(5)
    reservation = await world.reserve([(a.id, 2)])
    world.clock.advance(601)
    world.gate.fail = True
    with pytest.raises(StoreUnavailable):
        await expire_due(uow_factory=world.uow_factory, gate=world.gate)
    assert world.db.data.reservations[reservation.id].status is ReservationStatus.EXPIRED
