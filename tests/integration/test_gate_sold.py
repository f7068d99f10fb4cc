"""The gate's `sold` state against real Redis: convert, return_sold, load, and the repair of
sales (a sale PostgreSQL committed and Redis missed is finished, never given back)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockgate.adapters.redis.gate import RedisStockGate
from stockgate.adapters.redis.keys import Keys
from stockgate.bootstrap import Container, bootstrap, redis_client
from stockgate.config import Settings, StoreUrls
from stockgate.domain.product import NewProduct
from stockgate.domain.reservation import Reservation, ReservationLine, ReserveRequest
from stockgate.services.catalog import add_product
from stockgate.services.ports import ConvertMode, ConvertStatus, TakeStatus
from stockgate.services.reconcile import reconcile
from stockgate.services.reserve import reserve
from tests.conftest import MakeProduct, clients, delete_keys, drift

T = TypeVar("T")


def reservation(*lines: tuple[int, int], customer: uuid.UUID | None = None) -> Reservation:
    request = ReserveRequest(
        customer or uuid.uuid4(), tuple(ReservationLine(p, q) for p, q in lines)
    )
    return Reservation.new(request, now=datetime.now(UTC), hold_seconds=600)


async def test_convert_moves_held_units_to_sold_once(
    container: Container, make_product: MakeProduct
) -> None:
    a, b = await make_product(10), await make_product(5)
    gate = container.gate
    held = reservation((a.id, 3), (b.id, 2))
    assert (await gate.take(held, None, "")).status is TakeStatus.TAKEN
    assert await gate.convert(held, ConvertMode.HOLD) is ConvertStatus.CONVERTED
    assert await gate.convert(held, ConvertMode.HOLD) is ConvertStatus.ALREADY
    assert await gate.convert(held, ConvertMode.TAKE) is ConvertStatus.ALREADY
    state_a, state_b = await gate.state(a.id), await gate.state(b.id)
    assert (state_a.available, state_a.sold, dict(state_a.sales), state_a.holds) == (
        7,
        3,
        {held.id: 3},
        {},
    )
    assert (state_b.available, state_b.sold) == (3, 2)
    # Sold units never come back through a give-back (expiry, release, repair).
    assert await gate.give_back(held) == 0
    assert (await gate.state(a.id)).available == 7


async def test_convert_refuses_a_hold_that_was_given_back(
    container: Container, make_product: MakeProduct
) -> None:
    a = await make_product(10)
    gate = container.gate
    released = reservation((a.id, 4))
    await gate.take(released, None, "")
    await gate.give_back(released)
    assert await gate.convert(released, ConvertMode.HOLD) is ConvertStatus.REFUSED
    state = await gate.state(a.id)
    assert (state.available, state.sold) == (10, 0)


async def test_late_convert_takes_from_available_only_when_enough_is_left(
    container: Container, make_product: MakeProduct
) -> None:
    a, b = await make_product(5), await make_product(1)
    gate = container.gate
    late = reservation((a.id, 2), (b.id, 2))  # its hold expired long ago
    assert await gate.convert(late, ConvertMode.TAKE) is ConvertStatus.REFUSED
    assert [(await gate.state(p.id)).available for p in (a, b)] == [5, 1]  # all or nothing
    fits = reservation((a.id, 2), (b.id, 1))
    assert await gate.convert(fits, ConvertMode.TAKE) is ConvertStatus.CONVERTED
    assert [(await gate.state(p.id)).available for p in (a, b)] == [3, 0]
    assert (await gate.state(b.id)).sold == 1


async def test_return_sold_puts_units_back_once(
    container: Container, make_product: MakeProduct
) -> None:
    a = await make_product(4)
    gate = container.gate
    sale = reservation((a.id, 4))
    await gate.take(sale, None, "")
    await gate.convert(sale, ConvertMode.HOLD)
    assert (await gate.take(reservation((a.id, 1)), None, "")).status is TakeStatus.SOLD_OUT
    assert await gate.return_sold(sale) == 4
    assert await gate.return_sold(sale) == 0
    state = await gate.state(a.id)
    assert (state.available, state.sold, dict(state.sales)) == (4, 0, {})
    assert (await gate.take(reservation((a.id, 1)), None, "")).status is TakeStatus.TAKEN


async def _convert_in_postgres(container: Container, held: Reservation) -> None:
    async with container.uow_factory() as uow:
        current = await uow.reservations.get_for_update(held.id)
        assert current is not None
        converted, entries = current.convert()
        await uow.reservations.move(converted, was=current.status)
        await uow.ledger.add(entries)
        await uow.commit()


async def test_load_after_a_flush_keeps_sold_units_sold(
    container: Container, make_product: MakeProduct
) -> None:
    a = await make_product(6)
    held = await reserve(
        ReserveRequest(uuid.uuid4(), (ReservationLine(a.id, 4),)), _deps(container)
    )
    await _convert_in_postgres(container, held)
    await container.gate.convert(held, ConvertMode.HOLD)
    redis = clients(container).redis
    await redis.delete(*Keys(container.settings.redis_prefix).product_with_sales(a.id))
    report = await reconcile(
        uow_factory=container.uow_factory,
        gate=container.gate,
        clock=container.clock,
        grace_seconds=30,
        fix=True,
    )
    assert report.products[0].fixes == ["rebuilt"]
    state = await container.gate.state(a.id)
    assert (state.available, state.sold, dict(state.sales)) == (2, 4, {held.id: 4})
    # A convert repeated after the rebuild (a duplicate webhook) changes nothing.
    assert await container.gate.convert(held, ConvertMode.HOLD) is ConvertStatus.ALREADY
    assert (await drift(container)).leaked == 0


async def test_repair_finishes_a_sale_postgres_committed_and_never_returns_its_units(
    container: Container, make_product: MakeProduct
) -> None:
    a = await make_product(5)
    held = await reserve(
        ReserveRequest(uuid.uuid4(), (ReservationLine(a.id, 3),)), _deps(container)
    )
    await _convert_in_postgres(container, held)  # ... and the gate call never happened
    report = await reconcile(
        uow_factory=container.uow_factory,
        gate=container.gate,
        clock=container.clock,
        grace_seconds=0.001,  # even past any grace, a converted hold is not given back
        fix=True,
    )
    assert f"finished sale {held.id}" in report.products[0].fixes
    state = await container.gate.state(a.id)
    assert (state.available, state.sold, state.holds) == (2, 3, {})
    after = await drift(container)
    assert (after.leaked, after.oversold, after.drift_found) == (0, 0, 0)


async def test_repair_puts_back_a_lost_sale_and_returns_a_refunded_one(
    container: Container, make_product: MakeProduct
) -> None:
    a = await make_product(5)
    deps = _deps(container)
    kept = await reserve(ReserveRequest(uuid.uuid4(), (ReservationLine(a.id, 2),)), deps)
    refunded = await reserve(ReserveRequest(uuid.uuid4(), (ReservationLine(a.id, 1),)), deps)
    for sale in (kept, refunded):
        await _convert_in_postgres(container, sale)
        await container.gate.convert(sale, ConvertMode.HOLD)
    # The gate lost `kept`'s sale (a stale snapshot): its units look available there.
    keys = Keys(container.settings.redis_prefix)
    redis = clients(container).redis
    await redis.hdel(keys.sales(a.id), kept.id.hex)
    await redis.hincrby(keys.stock(a.id), "sold", -2)
    await redis.hincrby(keys.stock(a.id), "available", 2)
    # `refunded` was returned in PostgreSQL; the gate did not hear of it.
    async with container.uow_factory() as uow:
        current = await uow.reservations.get_for_update(refunded.id)
        assert current is not None
        returned, entries = current.return_units("re_test_1")
        await uow.reservations.move(returned, was=current.status)
        await uow.ledger.add(entries)
        await uow.commit()
    before = await drift(container)
    assert (before.oversold, before.leaked) == (2, 1)
    await reconcile(
        uow_factory=container.uow_factory,
        gate=container.gate,
        clock=container.clock,
        grace_seconds=30,
        fix=True,
    )
    state = await container.gate.state(a.id)
    assert (state.available, state.sold, dict(state.sales)) == (3, 2, {kept.id: 2})
    after = await drift(container)
    assert (after.leaked, after.oversold, after.drift_found) == (0, 0, 0)


def _deps(container: Container) -> Any:
    return container.reserve_deps


# --------------------------------------------------------------------------- property


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


operations = st.lists(
    st.tuples(
        st.sampled_from(["take", "give_back", "convert", "late", "return"]),
        st.integers(0, 5),  # which reservation
        st.integers(1, 4),  # quantity
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stock=st.integers(0, 8), ops=operations)
def test_gate_keeps_available_held_sold_equal_to_stock(
    database_url: str, redis_server_url: str, stock: int, ops: list[tuple[str, int, int]]
) -> None:
    prefix = "t" + secrets.token_hex(6)
    try:
        run(_example(database_url, redis_server_url, prefix, stock, ops))
    finally:
        delete_keys(redis_server_url, prefix)


async def _example(
    database_url: str, redis_url: str, prefix: str, stock: int, ops: list[tuple[str, int, int]]
) -> None:
    """Any order of takes, give-backs, conversions, late conversions and returns: the gate's
    numbers match a model, `available + held + sold == stock`, and nothing goes below zero."""
    settings_ = Settings(database_url=database_url, redis_url=redis_url, redis_prefix=prefix)
    container = await bootstrap(settings_, StoreUrls(database_url, redis_url))
    redis = redis_client(redis_url)
    try:
        product = await add_product(
            NewProduct(f"P-{secrets.token_hex(4)}", "p", 100, stock),
            uow_factory=container.uow_factory,
            gate=container.gate,
        )
        gate = RedisStockGate(redis, Keys(prefix), sold_out_ttl=0)
        reservations: dict[int, Reservation] = {}
        held: dict[int, int] = {}
        sold: dict[int, int] = {}
        for op, index, quantity in ops:
            r = reservations.setdefault(index, reservation((product.id, quantity)))
            units = r.lines[0].quantity
            free = stock - sum(held.values()) - sum(sold.values())
            if op == "take" and index not in held and index not in sold:
                taken = (await gate.take(r, None, "")).status is TakeStatus.TAKEN
                assert taken == (free >= units)
                if taken:
                    held[index] = units
            elif op == "give_back":
                assert await gate.give_back(r) == held.pop(index, 0)
            elif op in ("convert", "late"):
                mode = ConvertMode.HOLD if op == "convert" else ConvertMode.TAKE
                result = await gate.convert(r, mode)
                if index in sold:
                    assert result is ConvertStatus.ALREADY
                elif index in held:
                    assert result is ConvertStatus.CONVERTED
                    sold[index] = held.pop(index)
                elif mode is ConvertMode.TAKE and free >= units:
                    assert result is ConvertStatus.CONVERTED
                    sold[index] = units
                else:
                    assert result is ConvertStatus.REFUSED
            elif op == "return":
                assert await gate.return_sold(r) == sold.pop(index, 0)
            state = await gate.state(product.id)
            gate_held = sum(h.quantity for h in state.holds.values())
            assert state.available is not None and state.available >= 0
            assert (gate_held, state.sold) == (sum(held.values()), sum(sold.values()))
            assert state.available + gate_held + state.sold == stock
    finally:
        await redis.aclose()
        await container.close()
