"""Buyers give reservations back through the journal's release batch (one statement per tick)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa

from stockgate.adapters.postgres.journal import GroupCommitJournal
from stockgate.bootstrap import Container
from stockgate.domain.errors import ReservationNotActive, ReservationNotFound, StoreUnavailable
from stockgate.domain.reservation import Reservation, ReservationLine, ReserveRequest
from stockgate.services.expire import expire_due
from stockgate.services.reserve import release, reserve
from tests.conftest import MakeProduct, clients, drift, make_due


async def give_back(
    container: Container, reservation_id: uuid.UUID, buyer: uuid.UUID
) -> Reservation:
    return await release(
        reservation_id,
        buyer,
        journal=container.journal,
        uow_factory=container.uow_factory,
        gate=container.gate,
    )


async def hold(
    container: Container, buyer: uuid.UUID, product_id: int, quantity: int
) -> Reservation:
    request = ReserveRequest(buyer, (ReservationLine(product_id, quantity),))
    return await reserve(request, container.reserve_deps)


async def one_unit_each(container: Container, product_id: int, *, buyers: int) -> list[Reservation]:
    """`buyers` reservations of one unit, by as many buyers, taken at once."""
    return await asyncio.gather(
        *(hold(container, uuid.uuid4(), product_id, 1) for _ in range(buyers))
    )


async def ledger_of(container: Container, reservation_id: uuid.UUID) -> list[tuple[str, int, int]]:
    async with clients(container).engine.connect() as connection:
        rows = await connection.execute(
            sa.text(
                "SELECT kind, product_id, quantity FROM stock_ledger"
                " WHERE reservation_id = :id ORDER BY kind, product_id"
            ),
            {"id": reservation_id},
        )
        return [(row.kind, row.product_id, row.quantity) for row in rows]


async def test_release_ends_the_reservation_with_its_ledger_and_returns_every_line(
    container: Container, make_product: MakeProduct
) -> None:
    first, second = await make_product(stock=5), await make_product(stock=5)
    buyer = uuid.uuid4()
    lines = (ReservationLine(first.id, 2), ReservationLine(second.id, 3))
    made = await reserve(ReserveRequest(buyer, lines), container.reserve_deps)

    released = await give_back(container, made.id, buyer)

    assert (released.id, released.status.value, released.lines) == (made.id, "released", lines)
    assert await container.gate.available([first.id, second.id]) == {first.id: 5, second.id: 5}
    assert await ledger_of(container, made.id) == [
        ("held", first.id, 2),
        ("held", second.id, 3),
        ("released", first.id, 2),
        ("released", second.id, 3),
    ]
    assert (await drift(container)).drift_found == 0


async def test_the_same_release_at_once_from_its_buyer_and_others_gives_stock_back_once(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=10)
    buyer = uuid.uuid4()
    made = await hold(container, buyer, product.id, 4)
    # Strangers first: they share the owner's batch and must neither get nor spoil it.
    callers = [uuid.uuid4() for _ in range(5)] + [buyer] * 5
    outcomes = await asyncio.gather(
        *(give_back(container, made.id, caller) for caller in callers), return_exceptions=True
    )

    strangers, owner = outcomes[:5], outcomes[5:]
    assert all(isinstance(o, ReservationNotFound) for o in strangers), strangers
    assert sum(isinstance(o, Reservation) for o in owner) == 1, owner
    assert all(isinstance(o, Reservation | ReservationNotActive) for o in owner), owner
    assert (await container.gate.available([product.id]))[product.id] == 10
    assert await ledger_of(container, made.id) == [
        ("held", product.id, 4),
        ("released", product.id, 4),
    ]
    assert (await drift(container)).drift_found == 0


async def test_hundreds_of_releases_at_once_return_all_stock(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=300)
    made = await one_unit_each(container, product.id, buyers=300)
    assert (await container.gate.available([product.id]))[product.id] == 0

    released = await asyncio.gather(*(give_back(container, r.id, r.customer_id) for r in made))

    assert {r.id for r in released} == {r.id for r in made}
    assert (await container.gate.available([product.id]))[product.id] == 300
    assert (await drift(container)).drift_found == 0


async def test_release_while_postgres_is_down_answers_unavailable_and_keeps_the_hold(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=5)
    buyer = uuid.uuid4()
    made = await hold(container, buyer, product.id, 2)
    broken = GroupCommitJournal(
        "postgresql://postgres@127.0.0.1:1/nowhere", pool_size=1, max_batch=8
    )
    with pytest.raises(StoreUnavailable):
        await release(
            made.id, buyer, journal=broken, uow_factory=container.uow_factory, gate=container.gate
        )
    await broken.drain()
    # Nothing changed: still held in both stores, and the buyer can release it now.
    assert (await container.gate.available([product.id]))[product.id] == 3
    assert (await drift(container)).drift_found == 0
    assert (await give_back(container, made.id, buyer)).status.value == "released"
    assert (await container.gate.available([product.id]))[product.id] == 5


async def test_releases_racing_the_expiry_worker_end_each_reservation_once(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=200)
    made = await one_unit_each(container, product.id, buyers=200)
    await make_due(container, [r.id for r in made])

    async def expire_everything() -> int:
        expired = 0
        for _ in range(40):  # small rounds, so that they interleave with the releases
            round_ = await expire_due(
                uow_factory=container.uow_factory,
                gate=container.gate,
                batch=10,
            )
            expired += round_.expired
            await asyncio.sleep(0)
        return expired

    async def release_all() -> list[Reservation | BaseException]:
        return await asyncio.gather(
            *(give_back(container, r.id, r.customer_id) for r in made), return_exceptions=True
        )

    expired, outcomes = await asyncio.gather(expire_everything(), release_all())

    released = [o for o in outcomes if isinstance(o, Reservation)]
    assert all(isinstance(o, Reservation | ReservationNotActive) for o in outcomes), outcomes
    assert len(released) + expired == 200  # each ended once, by one of the two
    async with clients(container).engine.connect() as connection:
        ends = (
            await connection.execute(
                sa.text(
                    "SELECT count(*) FROM stock_ledger WHERE product_id = :p"
                    " AND kind IN ('released', 'expired')"
                ),
                {"p": product.id},
            )
        ).scalar_one()
    assert ends == 200
    assert (await container.gate.available([product.id]))[product.id] == 200
    assert (await drift(container)).drift_found == 0


async def test_a_release_waiting_for_the_expiry_worker_lock_finds_it_expired(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=5)
    buyer = uuid.uuid4()
    made = await hold(container, buyer, product.id, 2)
    await make_due(container, [made.id])
    async with container.uow_factory() as uow:
        (due,) = await uow.reservations.claim_due(10)  # the row is locked until this commits
        releasing = asyncio.create_task(give_back(container, made.id, buyer))
        await asyncio.sleep(0.3)
        assert not releasing.done()  # waiting for the lock
        expired, entries = due.expire()
        await uow.reservations.end([expired])
        await uow.ledger.add(entries)
        await uow.commit()
    with pytest.raises(ReservationNotActive):
        await releasing
    assert await ledger_of(container, made.id) == [
        ("expired", product.id, 2),
        ("held", product.id, 2),
    ]
