"""The Lua gate against real Redis: every script, its edge cases, and NOSCRIPT recovery."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from stockgate.adapters.redis.gate import RedisStockGate
from stockgate.adapters.redis.keys import Keys
from stockgate.bootstrap import Container
from stockgate.domain.reservation import Reservation, ReservationLine, ReserveRequest
from stockgate.services.ports import GateHold, TakeStatus
from tests.conftest import MakeProduct, clients, delete_keys


def reservation(*lines: tuple[int, int], customer: uuid.UUID | None = None) -> Reservation:
    request = ReserveRequest(
        customer or uuid.uuid4(), tuple(ReservationLine(p, q) for p, q in lines)
    )
    return Reservation.new(request, now=datetime.now(UTC), hold_seconds=600)


async def available(container: Container, product_id: int) -> int | None:
    return (await container.gate.available([product_id]))[product_id]


async def test_take_is_all_or_nothing_across_products(
    container: Container, make_product: MakeProduct
) -> None:
    a, b, c = await make_product(5), await make_product(5), await make_product(1)
    gate = container.gate
    refused = await gate.take(reservation((a.id, 2), (b.id, 3), (c.id, 2)), None, "")
    assert (refused.status, refused.product_id, refused.available) == (
        TakeStatus.SOLD_OUT,
        c.id,
        1,
    )
    assert [await available(container, p.id) for p in (a, b, c)] == [5, 5, 1]
    assert (await gate.take(reservation((a.id, 2), (b.id, 3), (c.id, 1)), None, "")).status is (
        TakeStatus.TAKEN
    )
    assert [await available(container, p.id) for p in (a, b, c)] == [3, 2, 0]


async def test_take_quantity_above_one(container: Container, make_product: MakeProduct) -> None:
    a = await make_product(10)
    taken = reservation((a.id, 7))
    assert (await container.gate.take(taken, None, "")).status is TakeStatus.TAKEN
    state = await container.gate.state(a.id)
    assert state.available == 3
    assert state.holds[taken.id].quantity == 7
    assert state.holds[taken.id].customer_id == taken.customer_id
    result = await container.gate.take(reservation((a.id, 4)), None, "")
    assert (result.status, result.available) == (TakeStatus.SOLD_OUT, 3)


async def test_take_enforces_limit_per_customer(
    container: Container, make_product: MakeProduct
) -> None:
    a = await make_product(10, limit=3)
    buyer = uuid.uuid4()
    gate = container.gate
    assert (await gate.take(reservation((a.id, 2), customer=buyer), None, "")).status is (
        TakeStatus.TAKEN
    )
    over = await gate.take(reservation((a.id, 2), customer=buyer), None, "")
    assert (over.status, over.limit, over.already) == (TakeStatus.LIMIT_EXCEEDED, 3, 2)
    assert (await gate.take(reservation((a.id, 3)), None, "")).status is TakeStatus.TAKEN
    assert await available(container, a.id) == 5


async def test_idempotency_key_returns_the_original(
    container: Container, make_product: MakeProduct
) -> None:
    a = await make_product(10)
    buyer = uuid.uuid4()
    first = reservation((a.id, 2), customer=buyer)
    assert (await container.gate.take(first, "key-1", "fp")).status is TakeStatus.TAKEN
    repeat = await container.gate.take(reservation((a.id, 2), customer=buyer), "key-1", "fp2")
    assert (repeat.status, repeat.reservation_id, repeat.fingerprint) == (
        TakeStatus.DUPLICATE,
        first.id,
        "fp",
    )
    assert await available(container, a.id) == 8
    # Compensation forgets the key, so a retry is a fresh attempt.
    assert await container.gate.give_back(first, idempotency_key="key-1") == 2
    again = await container.gate.take(reservation((a.id, 2), customer=buyer), "key-1", "fp")
    assert again.status is TakeStatus.TAKEN


async def test_second_give_back_returns_nothing(
    container: Container, make_product: MakeProduct
) -> None:
    a, b = await make_product(5), await make_product(5)
    taken = reservation((a.id, 2), (b.id, 1))
    await container.gate.take(taken, None, "")
    assert await container.gate.give_back(taken) == 3
    assert await container.gate.give_back(taken) == 0
    assert [await available(container, p.id) for p in (a, b)] == [5, 5]
    assert (await container.gate.state(a.id)).holds == {}


async def test_give_back_frees_the_customer_limit(
    container: Container, make_product: MakeProduct
) -> None:
    a = await make_product(5, limit=2)
    buyer = uuid.uuid4()
    first = reservation((a.id, 2), customer=buyer)
    await container.gate.take(first, None, "")
    await container.gate.give_back(first)
    assert (await container.gate.take(reservation((a.id, 2), customer=buyer), None, "")).status is (
        TakeStatus.TAKEN
    )


async def test_unloaded_product_is_reported(container: Container) -> None:
    result = await container.gate.take(reservation((424242, 1)), None, "")
    assert (result.status, result.product_id) == (TakeStatus.NOT_LOADED, 424242)


async def test_scripts_are_reloaded_after_script_flush(
    container: Container, make_product: MakeProduct
) -> None:
    a = await make_product(5)
    await clients(container).redis.script_flush()
    assert (await container.gate.take(reservation((a.id, 1)), None, "")).status is (
        TakeStatus.TAKEN
    )
    await clients(container).redis.script_flush()
    assert await available(container, a.id) == 4


async def test_load_builds_only_once_and_counts_holds(
    container: Container, make_product: MakeProduct
) -> None:
    a = await make_product(10, limit=3)
    buyer = uuid.uuid4()
    taken = reservation((a.id, 3), customer=buyer)
    await container.gate.take(taken, None, "")
    await container.journal.record(taken)
    async with container.uow_factory() as uow:
        totals = await uow.products.totals(a.id)
    assert totals is not None
    assert await container.gate.load(totals) is False  # loaded already: nothing changes
    delete_keys(str(container.settings.redis_url), container.settings.redis_prefix)
    assert await container.gate.load(totals) is True
    state = await container.gate.state(a.id)
    assert state.available == 7
    assert state.version == totals.stock_version
    assert set(state.holds) == {taken.id}
    limited = await container.gate.take(reservation((a.id, 1), customer=buyer), None, "")
    assert limited.status is TakeStatus.LIMIT_EXCEEDED


async def test_add_stock_applies_each_version_once(
    container: Container, make_product: MakeProduct
) -> None:
    a = await make_product(5)
    version = (await container.gate.state(a.id)).version
    await container.gate.add_stock(a.id, 3, version + 1)
    await container.gate.add_stock(a.id, 3, version + 1)  # repeated: ignored
    await container.gate.add_stock(a.id, 100, version)  # older: ignored
    assert await available(container, a.id) == 8
    await container.gate.add_stock(999_999, 3, 1)  # not loaded: nothing to do
    assert await available(container, 999_999) is None


async def test_restore_puts_back_a_lost_hold_only_if_stock_allows(
    container: Container, make_product: MakeProduct
) -> None:
    a = await make_product(3)
    hold = GateHold(uuid.uuid4(), uuid.uuid4(), 2, 1)
    assert await container.gate.restore(a.id, hold) is True
    assert await container.gate.restore(a.id, hold) is True  # already there: no change
    assert await available(container, a.id) == 1
    assert await container.gate.restore(a.id, GateHold(uuid.uuid4(), uuid.uuid4(), 2, 1)) is False
    assert await available(container, a.id) == 1
    assert await container.gate.restore(777_777, hold) is False


async def test_set_total_corrects_available_and_skips_newer_versions(
    container: Container, make_product: MakeProduct
) -> None:
    a = await make_product(10)
    taken = reservation((a.id, 4))
    await container.gate.take(taken, None, "")
    await container.journal.record(taken)
    await clients(container).redis.hset(
        Keys(container.settings.redis_prefix).stock(a.id), "available", 50
    )
    async with container.uow_factory() as uow:
        totals = await uow.products.totals(a.id)
    assert totals is not None
    assert await container.gate.set_total(totals) == -44
    assert await available(container, a.id) == 6
    assert await container.gate.set_total(totals) == 0
    await container.gate.add_stock(a.id, 5, totals.stock_version + 10)
    assert await container.gate.set_total(totals) is None  # the snapshot is older
    assert await available(container, a.id) == 11


async def test_stop_finishes_gate_calls_already_made(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(5)
    held = reservation((product.id, 2))
    taking = asyncio.ensure_future(container.gate.take(held, None, ""))
    await asyncio.sleep(0)  # the call is queued for the next tick's batch
    gate = container.gate
    assert isinstance(gate, RedisStockGate)
    await gate.stop()  # shutting down must not drop it half-way
    assert taking.done() and taking.result().status is TakeStatus.TAKEN
    assert await available(container, product.id) == 3


async def test_pipeline_batch_sizes_are_observed(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(50)
    metric = "stockgate_gate_pipeline_batch_size"
    count_before = REGISTRY.get_sample_value(f"{metric}_count") or 0.0
    sum_before = REGISTRY.get_sample_value(f"{metric}_sum") or 0.0
    await asyncio.gather(
        *(container.gate.take(reservation((product.id, 1)), None, "") for _ in range(10))
    )
    assert (REGISTRY.get_sample_value(f"{metric}_count") or 0.0) - count_before == 1
    assert (REGISTRY.get_sample_value(f"{metric}_sum") or 0.0) - sum_before == 10
