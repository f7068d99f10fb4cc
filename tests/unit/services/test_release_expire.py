"""release() and expire_due(): stock comes back once, only to its owner, after the commit."""

from __future__ import annotations

import uuid
from functools import partial

import pytest

from stockgate.domain.errors import ReservationNotActive, ReservationNotFound
from stockgate.domain.ledger import LedgerKind
from stockgate.domain.reservation import ReservationStatus
from stockgate.services.expire import expire_due
from stockgate.services.reserve import get_reservation
from tests.fakes import FakeUnitOfWork, FakeUnitOfWorkFactory
from tests.unit.conftest import World


class CommitFailed(Exception):
    pass


class FailingCommitUnitOfWork(FakeUnitOfWork):
    async def commit(self) -> None:
        raise CommitFailed


class FailingCommitFactory(FakeUnitOfWorkFactory):
    def __call__(self) -> FakeUnitOfWork:
        return FailingCommitUnitOfWork(self.db)


async def test_release_by_owner_gives_stock_back_and_writes_ledger(world: World) -> None:
    a, b = await world.product(5), await world.product(5)
    buyer = uuid.uuid4()
    reservation = await world.reserve([(a.id, 2), (b.id, 1)], buyer)
    released = await world.release(reservation.id, buyer)
    assert released.status is ReservationStatus.RELEASED
    assert world.db.data.reservations[reservation.id].status is ReservationStatus.RELEASED
    assert await world.available(a.id) == 5 and await world.available(b.id) == 5
    assert (
        world.db.ledger_levels(a.id).available == 5 and world.db.ledger_levels(b.id).available == 5
    )
    kinds = [e.kind for _, e in world.db.data.ledger if e.product_id == a.id]
    assert kinds == [LedgerKind.STOCK_ADDED, LedgerKind.HELD, LedgerKind.RELEASED]


async def test_release_by_someone_else_looks_like_nothing(world: World) -> None:
    a = await world.product(5)
    reservation = await world.reserve([(a.id, 2)])
    with pytest.raises(ReservationNotFound):
        await world.release(reservation.id, uuid.uuid4())
    with pytest.raises(ReservationNotFound):
        await get_reservation(reservation.id, uuid.uuid4(), uow_factory=world.uow_factory)
    assert await world.available(a.id) == 3


async def test_second_release_of_same_reservation_returns_no_stock(world: World) -> None:
    a = await world.product(5)
    buyer = uuid.uuid4()
    reservation = await world.reserve([(a.id, 2)], buyer)
    await world.release(reservation.id, buyer)
    with pytest.raises(ReservationNotActive):
        await world.release(reservation.id, buyer)
    assert await world.available(a.id) == 5
    assert world.db.ledger_levels(a.id).available == 5
    # The gate's own give-back is idempotent too.
    assert await world.gate.give_back(reservation) == 0
    assert await world.available(a.id) == 5


async def test_release_of_unknown_reservation_is_not_found(world: World) -> None:
    with pytest.raises(ReservationNotFound):
        await world.release(uuid.uuid4(), uuid.uuid4())


async def test_expire_due_ends_only_reservations_past_expiry(world: World) -> None:
    a = await world.product(5)
    old = await world.reserve([(a.id, 2)])
    world.clock.advance(300)
    young = await world.reserve([(a.id, 1)])
    world.clock.advance(301)  # old is 601 s old, young 301 s
    ended = await expire_due(uow_factory=world.uow_factory, gate=world.gate)
    assert ended.expired == 1
    assert world.db.data.reservations[old.id].status is ReservationStatus.EXPIRED
    assert world.db.data.reservations[young.id].status is ReservationStatus.ACTIVE
    assert await world.available(a.id) == 4
    assert world.db.ledger_levels(a.id).available == 4
    again = await expire_due(uow_factory=world.uow_factory, gate=world.gate)
    assert again.expired == 0
    assert await world.available(a.id) == 4


async def test_expired_reservation_cannot_be_released(world: World) -> None:
    a = await world.product(5)
    buyer = uuid.uuid4()
    reservation = await world.reserve([(a.id, 2)], buyer)
    world.clock.advance(601)
    await expire_due(uow_factory=world.uow_factory, gate=world.gate)
    with pytest.raises(ReservationNotActive):
        await world.release(reservation.id, buyer)
    assert await world.available(a.id) == 5


async def test_expiry_returns_no_stock_when_its_commit_fails(world: World) -> None:
    a = await world.product(5)
    await world.reserve([(a.id, 2)])
    world.clock.advance(601)

    factory = FailingCommitFactory(world.db)
    with pytest.raises(CommitFailed):
        await expire_due(uow_factory=factory, gate=world.gate)
    # Stock must stay held: giving it back before a commit that fails would oversell.
    assert await world.available(a.id) == 3


async def test_expire_due_takes_at_most_one_batch(world: World) -> None:
    a = await world.product(10)
    for _ in range(5):
        await world.reserve([(a.id, 1)])
    world.clock.advance(601)
    expire = partial(expire_due, uow_factory=world.uow_factory, gate=world.gate)
    assert (await expire(batch=3)).expired == 3
    assert (await expire(batch=3)).expired == 2
    assert await world.available(a.id) == 10
