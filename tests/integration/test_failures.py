"""Failures mid-sale (PostgreSQL gone, connections killed, Redis emptied): no unit lost."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta

import asyncpg
import pytest
import sqlalchemy as sa

from stockgate.adapters.clock import SystemClock
from stockgate.adapters.postgres import journal as journal_module
from stockgate.adapters.postgres.journal import GroupCommitJournal
from stockgate.adapters.redis.keys import Keys
from stockgate.bootstrap import Container
from stockgate.domain.errors import (
    LimitExceeded,
    RequestInProgress,
    SoldOut,
    StoreUnavailable,
    WriteOutcomeUnknown,
)
from stockgate.domain.reservation import Reservation, ReservationLine, ReserveRequest
from stockgate.services.ports import UnitOfWork
from stockgate.services.reconcile import ReconcileReport, reconcile, reconcile_product
from stockgate.services.reserve import release, reserve
from tests.conftest import MakeProduct, clients


class LaterClock:
    def __init__(self, seconds: float) -> None:
        self._ahead = timedelta(seconds=seconds)

    def now(self) -> datetime:
        return SystemClock().now() + self._ahead


def request(product_id: int, quantity: int = 1) -> ReserveRequest:
    return ReserveRequest(uuid.uuid4(), (ReservationLine(product_id, quantity),))


async def run_reconcile(container: Container, *, fix: bool) -> ReconcileReport:
    return await reconcile(
        uow_factory=container.uow_factory,
        gate=container.gate,
        clock=LaterClock(10),  # every hold is past the grace period and RESTORE_MIN_AGE
        grace_seconds=1,
        fix=fix,
    )


async def assert_no_unit_lost_or_oversold(container: Container, product_id: int) -> None:
    await run_reconcile(container, fix=True)
    report = await run_reconcile(container, fix=False)
    (product,) = [p for p in report.products if p.product_id == product_id]
    assert (product.leaked, product.oversold, product.ledger_ok) == (0, 0, True), product
    assert product.sold + product.held <= product.stock
    assert product.gate_available == product.stock - product.sold - product.held


async def test_postgres_down_answers_unavailable_and_gives_stock_back(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=50)
    broken = GroupCommitJournal(
        "postgresql://postgres@127.0.0.1:1/nowhere", pool_size=2, max_batch=64
    )
    deps = replace(container.reserve_deps, journal=broken)
    try:
        results = await asyncio.gather(
            *(reserve(request(product.id), deps) for _ in range(300)), return_exceptions=True
        )
    finally:
        await broken.drain()
    kinds = collections.Counter(type(r).__name__ for r in results)
    assert kinds == {"StoreUnavailable": 50, "SoldOut": 250}  # the 50 taken were compensated
    assert (await container.gate.available([product.id]))[product.id] == 50
    await assert_no_unit_lost_or_oversold(container, product.id)
    # The real container still works.
    await reserve(request(product.id), container.reserve_deps)


async def test_connections_killed_mid_burst_lose_no_unit(
    container: Container, make_product: MakeProduct, database_url: str
) -> None:
    product = await make_product(stock=1500)  # more than requested: never sold out

    async def kill_backends() -> None:
        admin = await asyncpg.connect(database_url)
        try:
            for _ in range(15):
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                await asyncio.sleep(0.01)
        finally:
            await admin.close()

    async def waves() -> list[object]:
        results: list[object] = []
        for _ in range(20):
            results += await asyncio.gather(
                *(reserve(request(product.id), container.reserve_deps) for _ in range(50)),
                return_exceptions=True,
            )
        return results

    results, _ = await asyncio.gather(waves(), kill_backends())
    unexpected = [r for r in results if not isinstance(r, Reservation | SoldOut | StoreUnavailable)]
    assert unexpected == []
    await assert_no_unit_lost_or_oversold(container, product.id)
    # The pool replaced its dead connections: the container keeps working.
    made = await reserve(request(product.id), container.reserve_deps)
    async with container.uow_factory() as uow:
        assert await uow.reservations.get(made.id) is not None


async def test_redis_emptied_mid_sale_reloads_and_never_oversells(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=300, limit=5)
    prefix = container.settings.redis_prefix

    async def empty_redis() -> None:
        await asyncio.sleep(0.02)
        for _ in range(3):
            keys = [k async for k in clients(container).redis.scan_iter(match=f"{prefix}:*")]
            if keys:
                await clients(container).redis.delete(*keys)
            await asyncio.sleep(0.03)

    async def waves() -> list[object]:
        results: list[object] = []
        for _ in range(30):
            results += await asyncio.gather(
                *(reserve(request(product.id), container.reserve_deps) for _ in range(40)),
                return_exceptions=True,
            )
        return results

    results, _ = await asyncio.gather(waves(), empty_redis())
    granted = [r for r in results if isinstance(r, Reservation)]
    # Emptied again while a request was reloading, more often than it retries: 503, nothing taken.
    unexpected = [
        r
        for r in results
        if not isinstance(r, Reservation | SoldOut)
        and not (isinstance(r, StoreUnavailable) and r.store == "redis")
    ]
    assert unexpected == []
    assert granted  # the NOT_LOADED path rebuilt the counter from PostgreSQL
    await assert_no_unit_lost_or_oversold(container, product.id)


async def test_redis_emptied_after_sale_is_rebuilt_by_reconcile(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=20, limit=2)
    buyer = uuid.uuid4()
    for _ in range(2):
        await reserve(
            ReserveRequest(buyer, (ReservationLine(product.id, 1),)), container.reserve_deps
        )
    keys = [
        k
        async for k in clients(container).redis.scan_iter(
            match=f"{container.settings.redis_prefix}:*"
        )
    ]
    await clients(container).redis.delete(*keys)
    report = await run_reconcile(container, fix=True)
    assert [p.fixes for p in report.products] == [["rebuilt"]]
    assert (await container.gate.available([product.id]))[product.id] == 18
    state = await container.gate.state(product.id)
    assert len(state.holds) == 2
    # Limits survive the rebuild: the buyer's two units still count.
    with pytest.raises(LimitExceeded):
        await reserve(
            ReserveRequest(buyer, (ReservationLine(product.id, 1),)), container.reserve_deps
        )


async def test_orphan_gate_hold_is_given_back_by_reconcile(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=5)
    orphan = Reservation.new(request(product.id, 2), now=container.clock.now(), hold_seconds=600)
    await container.gate.take(orphan, None, "")  # its write stalled, or its process died
    assert (await run_reconcile(container, fix=False)).leaked == 2
    await assert_no_unit_lost_or_oversold(container, product.id)
    assert (await container.gate.available([product.id]))[product.id] == 5
    assert await statuses(container) == {orphan.id: "void"}
    # The write was only slow: arriving now, it must not commit a hold that was given back.
    with pytest.raises(StoreUnavailable):
        await container.journal.record(orphan)
    assert await statuses(container) == {orphan.id: "void"}
    await assert_no_unit_lost_or_oversold(container, product.id)


class GiveBackLost:
    """A gate whose give-back fails (Redis blipped right after the commit)."""

    async def give_back(self, reservation: Reservation, idempotency_key: str | None = None) -> int:
        raise StoreUnavailable("redis")


async def test_ended_reservation_whose_give_back_was_lost_is_given_back_by_reconcile(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=5)
    made = await reserve(request(product.id, 2), container.reserve_deps)
    with pytest.raises(StoreUnavailable):  # released in PostgreSQL, still held in the gate
        await release(
            made.id,
            made.customer_id,
            journal=container.journal,
            uow_factory=container.uow_factory,
            # A stand-in with only give_back, the one gate method release calls here.
            gate=GiveBackLost(),  # type: ignore[arg-type]
        )
    assert (await run_reconcile(container, fix=False)).leaked == 2
    await assert_no_unit_lost_or_oversold(container, product.id)
    assert (await container.gate.available([product.id]))[product.id] == 5
    assert await statuses(container) == {made.id: "released"}  # the fence changed nothing


async def test_reconcile_keeps_a_hold_whose_row_lands_before_the_fence(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=5)
    late = Reservation.new(request(product.id, 2), now=container.clock.now(), hold_seconds=600)
    await container.gate.take(late, None, "")
    opened = 0

    @contextlib.asynccontextmanager
    async def row_lands_late() -> AsyncIterator[UnitOfWork]:
        nonlocal opened
        opened += 1
        if opened == 2:  # the reconciler read the gate and PostgreSQL, and is about to void
            await container.journal.record(late)
        async with container.uow_factory() as uow:
            yield uow

    report = await reconcile_product(
        product.id,
        # Its context manager yields a real unit of work, which is all reconcile_product uses.
        uow_factory=row_lands_late,  # type: ignore[arg-type]
        gate=container.gate,
        clock=LaterClock(10),
        grace_seconds=1,
        fix=True,
    )
    assert report is not None and report.orphan_holds == 2  # what it saw
    assert report.fixes == []  # but the fence found a real row: nothing given back
    assert await statuses(container) == {late.id: "active"}
    assert (await container.gate.available([product.id]))[product.id] == 3
    await assert_no_unit_lost_or_oversold(container, product.id)


async def test_voided_orphan_frees_its_idempotency_key_for_a_retry(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=5)
    first = ReserveRequest(uuid.uuid4(), (ReservationLine(product.id, 1),), "order-17")
    orphan = Reservation.new(first, now=container.clock.now(), hold_seconds=600)
    await container.gate.take(orphan, first.idempotency_key, first.fingerprint())
    with pytest.raises(RequestInProgress):  # the original never became durable
        await reserve(first, container.reserve_deps)
    await run_reconcile(container, fix=True)
    retried = await reserve(first, container.reserve_deps)
    assert retried.id != orphan.id
    assert await reserve(first, container.reserve_deps) == retried  # and it is remembered
    assert (await container.gate.available([product.id]))[product.id] == 4


async def statuses(container: Container) -> dict[uuid.UUID, str]:
    async with clients(container).engine.connect() as connection:
        rows = await connection.execute(sa.text("SELECT id, status FROM reservations"))
    return {row.id: row.status for row in rows}


async def blocked_backend(database_url: str, query_part: str) -> int:
    """The pid of the backend whose statement containing `query_part` waits on a lock."""
    admin = await asyncpg.connect(database_url)
    try:
        for _ in range(200):
            pid = await admin.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND position($1 in query) > 0",
                query_part,
            )
            if pid is not None:
                return int(pid)
            await asyncio.sleep(0.02)
    finally:
        await admin.close()
    raise AssertionError(f"no statement with {query_part!r} ever waited")


@pytest.mark.parametrize("other_writer_commits", [False, True])
async def test_write_cut_off_after_sending_is_settled_by_the_fence(
    container: Container, make_product: MakeProduct, database_url: str, other_writer_commits: bool
) -> None:
    """The journal's statement dies after it was sent: committed or not, it finds out."""
    product = await make_product(stock=5)
    reservation = Reservation.new(request(product.id), now=container.clock.now(), hold_seconds=60)
    # Another transaction writes the same id first, uncommitted: the journal's insert waits on
    # it, so it is surely in flight when its connection is cut.
    other = await asyncpg.connect(database_url)
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.execute(
            "INSERT INTO reservations (id, customer_id, status, created_at, expires_at) "
            "VALUES ($1, $2, 'active', now(), now() + interval '1 minute')",
            reservation.id,
            reservation.customer_id,
        )
        writing = asyncio.create_task(container.journal.record(reservation))
        terminator = await asyncpg.connect(database_url)
        try:
            journal_pid = await blocked_backend(database_url, "json_to_recordset")
            await terminator.execute("SELECT pg_terminate_backend($1)", journal_pid)
            await blocked_backend(database_url, "'void'")  # the fence waits on it as well
        finally:
            await terminator.close()
        if other_writer_commits:  # stands for "committed, only the answer was lost"
            await transaction.commit()
        else:
            await transaction.rollback()
        if other_writer_commits:
            await writing
        else:
            with pytest.raises(StoreUnavailable) as failed:
                await writing
            assert not isinstance(failed.value, WriteOutcomeUnknown)  # settled, not a guess
    finally:
        await other.close()
    expected = "active" if other_writer_commits else "void"
    assert await statuses(container) == {reservation.id: expected}


@pytest.mark.parametrize("damage", ["unparsable hold record", "key of the wrong type"])
async def test_one_products_bad_data_does_not_stop_the_others_repair(
    container: Container, make_product: MakeProduct, damage: str
) -> None:
    broken, fine = await make_product(stock=5), await make_product(stock=5)
    holds_key = Keys(container.settings.redis_prefix).holds(broken.id)
    if damage == "key of the wrong type":  # Redis itself refuses: WRONGTYPE
        await clients(container).redis.delete(holds_key)
        await clients(container).redis.set(holds_key, "oops")
    else:
        await clients(container).redis.hset(holds_key, "not-a-reservation-id", "garbage")
    orphan = Reservation.new(request(fine.id, 2), now=container.clock.now(), hold_seconds=600)
    await container.gate.take(orphan, None, "")  # never journaled
    report = await run_reconcile(container, fix=True)
    by_id = {p.product_id: p for p in report.products}
    assert by_id[broken.id].error is not None and by_id[broken.id].drift
    assert by_id[fine.id].fixes == [f"gave back orphan {orphan.id} (void)"]
    assert (await container.gate.available([fine.id]))[fine.id] == 5


async def test_a_batch_waits_for_a_connection_only_so_long(
    container: Container,
    make_product: MakeProduct,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(journal_module, "ACQUIRE_TIMEOUT_SECONDS", 0.2)
    product = await make_product(stock=5)
    journal = GroupCommitJournal(database_url, pool_size=1, max_batch=64)
    pool = await journal._connections()
    busy = await pool.acquire()  # the journal's only connection, taken by a stuck writer
    try:
        now = container.clock.now()
        reservation = Reservation.new(request(product.id), now=now, hold_seconds=60)
        with pytest.raises(StoreUnavailable) as failed:
            async with asyncio.timeout(5):  # a wait without bound would fail here, not hang
                await journal.record(reservation)
        assert not isinstance(failed.value, WriteOutcomeUnknown)  # never sent: surely not written
    finally:
        await pool.release(busy)
        await journal.drain()
    assert await statuses(container) == {}
