"""Failures mid-sale (PostgreSQL gone, connections killed, Redis emptied): no unit lost."""

from __future__ import annotations

import asyncio
import collections
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

import asyncpg
import pytest
import sqlalchemy as sa

from stockgate.adapters.clock import SystemClock
from stockgate.adapters.postgres.journal import GroupCommitJournal
from stockgate.bootstrap import Container
from stockgate.domain.errors import LimitExceeded, SoldOut, StoreUnavailable
from stockgate.domain.reservation import Reservation, ReservationLine, ReserveRequest
from stockgate.services.reconcile import ReconcileReport, reconcile
from stockgate.services.reserve import reserve
from tests.conftest import MakeProduct


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
            keys = [k async for k in container.redis.scan_iter(match=f"{prefix}:*")]
            if keys:
                await container.redis.delete(*keys)
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
        k async for k in container.redis.scan_iter(match=f"{container.settings.redis_prefix}:*")
    ]
    await container.redis.delete(*keys)
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
    await container.gate.take(orphan, None, "")  # the process died before the commit
    assert (await run_reconcile(container, fix=False)).leaked == 2
    await assert_no_unit_lost_or_oversold(container, product.id)
    assert (await container.gate.available([product.id]))[product.id] == 5
    async with container.engine.connect() as connection:
        count = (
            await connection.execute(sa.text("SELECT count(*) FROM reservations"))
        ).scalar_one()
    assert count == 0
