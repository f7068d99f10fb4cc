"""reserve(): all-or-nothing, limits, idempotency and compensation, over fakes."""

from __future__ import annotations

import uuid

import pytest

from stockgate.domain.errors import (
    IdempotencyConflict,
    InvalidInput,
    LimitExceeded,
    RequestInProgress,
    ReservationNotFound,
    SoldOut,
    StoreUnavailable,
    UnknownProduct,
    WriteOutcomeUnknown,
)
from stockgate.domain.ledger import LedgerKind
from stockgate.domain.reservation import ReservationLine, ReservationStatus, ReserveRequest
from stockgate.services.reserve import get_reservation, reserve
from tests.unit.conftest import World


async def test_reserve_takes_every_line_and_records_it(world: World) -> None:
    a, b = await world.product(5), await world.product(3)
    reservation = await world.reserve([(a.id, 2), (b.id, 3)])
    assert reservation.status is ReservationStatus.ACTIVE
    assert await world.available(a.id) == 3
    assert await world.available(b.id) == 0
    assert world.db.data.reservations[reservation.id] == reservation
    held = [e for _, e in world.db.data.ledger if e.kind is LedgerKind.HELD]
    assert sorted((e.product_id, e.quantity) for e in held) == [(a.id, 2), (b.id, 3)]


async def test_reservation_expires_after_hold_seconds(world: World) -> None:
    a = await world.product(5)
    reservation = await world.reserve([(a.id, 1)])
    assert (reservation.expires_at - reservation.created_at).total_seconds() == 600


async def test_one_sold_out_line_takes_nothing_at_all(world: World) -> None:
    a, b = await world.product(5), await world.product(1)
    with pytest.raises(SoldOut) as raised:
        await world.reserve([(a.id, 2), (b.id, 2)])
    assert raised.value.facts == {"product_id": b.id, "available": 1}
    assert await world.available(a.id) == 5
    assert await world.available(b.id) == 1
    assert world.db.data.reservations == {}


async def test_quantity_above_available_is_sold_out_but_smaller_fits(world: World) -> None:
    a = await world.product(3)
    with pytest.raises(SoldOut):
        await world.reserve([(a.id, 4)])
    await world.reserve([(a.id, 3)])
    assert await world.available(a.id) == 0


async def test_sold_out_product_is_refused_without_touching_the_gate(world: World) -> None:
    a = await world.product(1)
    await world.reserve([(a.id, 1)])
    with pytest.raises(SoldOut):
        await world.reserve([(a.id, 1)])
    world.gate.calls.clear()
    with pytest.raises(SoldOut):
        await world.reserve([(a.id, 1)])
    assert world.gate.calls == []


async def test_retry_of_a_success_after_sold_out_gets_the_original(world: World) -> None:
    a = await world.product(1)
    buyer = uuid.uuid4()
    original = await world.reserve([(a.id, 1)], buyer, key="k-1")
    with pytest.raises(SoldOut):
        await world.reserve([(a.id, 1)])  # the node now knows the product is sold out
    assert world.gate.known_sold_out(a.id)
    again = await world.reserve([(a.id, 1)], buyer, key="k-1")
    assert again == original


async def test_new_keyed_request_on_a_sold_out_product_is_still_sold_out(world: World) -> None:
    a = await world.product(1)
    await world.reserve([(a.id, 1)])
    with pytest.raises(SoldOut):
        await world.reserve([(a.id, 1)])
    with pytest.raises(SoldOut):
        await world.reserve([(a.id, 1)], key="fresh-key")
    assert len(world.db.data.reservations) == 1  # nothing new written


async def test_limit_per_customer_counts_earlier_reservations(world: World) -> None:
    a = await world.product(10, limit=3)
    buyer = uuid.uuid4()
    await world.reserve([(a.id, 2)], buyer)
    with pytest.raises(LimitExceeded) as raised:
        await world.reserve([(a.id, 2)], buyer)
    assert raised.value.facts == {"product_id": a.id, "limit": 3, "already": 2}
    await world.reserve([(a.id, 1)], buyer)
    await world.reserve([(a.id, 3)])  # another buyer has their own allowance
    assert await world.available(a.id) == 4


async def test_limit_is_free_again_after_release(world: World) -> None:

    a = await world.product(10, limit=2)
    buyer = uuid.uuid4()
    first = await world.reserve([(a.id, 2)], buyer)
    await world.release(first.id, buyer)
    second = await world.reserve([(a.id, 2)], buyer)  # LimitExceeded if the hold still counted
    assert second.id != first.id
    assert await world.available(a.id) == 8


async def test_idempotent_repeat_returns_the_original_reservation(world: World) -> None:
    a = await world.product(5)
    buyer = uuid.uuid4()
    first = await world.reserve([(a.id, 2)], buyer, key="k1")
    again = await world.reserve([(a.id, 2)], buyer, key="k1")
    assert again.id == first.id
    assert await world.available(a.id) == 3
    assert len(world.db.data.reservations) == 1


async def test_same_key_from_another_customer_is_a_new_request(world: World) -> None:
    a = await world.product(5)
    first = await world.reserve([(a.id, 2)], key="k1")
    second = await world.reserve([(a.id, 2)], key="k1")
    assert first.id != second.id


async def test_reused_key_with_different_body_is_a_conflict(world: World) -> None:
    a = await world.product(5)
    buyer = uuid.uuid4()
    await world.reserve([(a.id, 2)], buyer, key="k1")
    with pytest.raises(IdempotencyConflict):
        await world.reserve([(a.id, 3)], buyer, key="k1")
    assert await world.available(a.id) == 3


async def test_repeat_of_a_voided_original_is_in_progress_not_a_reservation(
    world: World,
) -> None:
    a = await world.product(5)
    buyer = uuid.uuid4()
    first = await world.reserve([(a.id, 1)], buyer, key="k1")
    world.db.data.reservations.clear()  # the original never landed ...
    async with world.uow_factory() as uow:  # ... and the reconciler is voiding it
        assert await uow.reservations.void(first.id, buyer) is ReservationStatus.VOID
        await uow.commit()
    with pytest.raises(RequestInProgress):
        await world.reserve([(a.id, 1)], buyer, key="k1")
    with pytest.raises(ReservationNotFound):  # a void id is nobody's reservation
        await get_reservation(first.id, buyer, uow_factory=world.uow_factory)
    with pytest.raises(ReservationNotFound):
        await world.release(first.id, buyer)


async def test_journal_failure_gives_stock_back_and_raises(world: World) -> None:
    a, b = await world.product(5), await world.product(5)
    world.journal.fail_with = StoreUnavailable("postgres")
    buyer = uuid.uuid4()
    with pytest.raises(StoreUnavailable):
        await world.reserve([(a.id, 2), (b.id, 1)], buyer, key="k1")
    assert await world.available(a.id) == 5
    assert await world.available(b.id) == 5
    assert world.gate.holds[a.id] == {} and world.gate.buyers[a.id] == {}
    assert world.db.data.reservations == {}
    # The key was forgotten, so the buyer's retry is a fresh attempt that can succeed.
    world.journal.fail_with = None
    retried = await world.reserve([(a.id, 2), (b.id, 1)], buyer, key="k1")
    assert retried.id in world.db.data.reservations
    assert await world.available(a.id) == 3


async def test_unknown_write_outcome_keeps_the_stock_held_for_the_reconciler(
    world: World,
) -> None:
    a = await world.product(5)
    world.journal.fail_with = WriteOutcomeUnknown()
    with pytest.raises(StoreUnavailable):
        await world.reserve([(a.id, 2)])
    # Giving back on a guess could sell the units twice if the commit did happen.
    assert await world.available(a.id) == 3


async def test_gate_failure_is_store_unavailable_and_writes_nothing(world: World) -> None:
    a = await world.product(5)
    world.gate.fail = True
    with pytest.raises(StoreUnavailable):
        await world.reserve([(a.id, 1)])
    assert world.db.data.reservations == {}


async def test_unloaded_products_are_loaded_from_the_database(world: World) -> None:
    products = [await world.product(5) for _ in range(6)]
    world.gate.flush()
    reservation = await world.reserve([(p.id, 1) for p in products])
    assert reservation.id in world.db.data.reservations
    for product in products:
        assert await world.available(product.id) == 4


async def test_reload_after_flush_counts_active_reservations(world: World) -> None:
    a = await world.product(5, limit=2)
    buyer = uuid.uuid4()
    await world.reserve([(a.id, 2)], buyer)
    world.gate.flush()
    with pytest.raises(LimitExceeded):
        await world.reserve([(a.id, 1)], buyer)
    assert await world.available(a.id) == 3


async def test_unknown_product_is_invalid_input(world: World) -> None:
    with pytest.raises(UnknownProduct):
        await world.reserve([(999, 1)])


async def test_unknown_product_is_remembered_without_asking_the_database_again(
    world: World,
) -> None:
    deps = world.deps
    with pytest.raises(UnknownProduct):
        await reserve(ReserveRequest(uuid.uuid4(), (ReservationLine(999, 1),)), deps)
    world.db.fail = True  # a database query now would be a 503, not a 404
    with pytest.raises(UnknownProduct):
        await reserve(ReserveRequest(uuid.uuid4(), (ReservationLine(999, 1),)), deps)
    world.db.fail = False
    real = await world.product(3)  # a new product is loaded into the gate when added
    made = await reserve(ReserveRequest(uuid.uuid4(), (ReservationLine(real.id, 1),)), deps)
    assert made.lines == (ReservationLine(real.id, 1),)


@pytest.mark.parametrize("quantity", [0, -1, 101])
async def test_bad_quantity_is_refused_before_any_store(world: World, quantity: int) -> None:
    a = await world.product(5)
    world.gate.calls.clear()
    with pytest.raises(InvalidInput):
        await world.reserve([(a.id, quantity)])
    assert world.gate.calls == []
