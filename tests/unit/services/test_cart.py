"""The cart's services over fakes: refusals change nothing, and any sequence of adds, removals
and releases keeps every unit in exactly one place (gate, PostgreSQL and ledger agree)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockgate.domain.errors import (
    AlreadyInCart,
    InvalidInput,
    ReservationExpired,
    StockgateError,
)
from stockgate.domain.ledger import LedgerKind
from stockgate.domain.reservation import Reservation, ReservationLine, ReservationStatus
from stockgate.domain.stock import StockLevels
from stockgate.services.cart import add_items, remove_item
from tests.unit.conftest import World, make_world


def lines(*pairs: tuple[int, int]) -> tuple[ReservationLine, ...]:
    return tuple(ReservationLine(p, q) for p, q in pairs)


async def test_add_writes_held_entries_for_the_new_lines_only(world: World) -> None:
    a, b = await world.product(5), await world.product(5)
    cart = await world.reserve([(a.id, 1)])
    await add_items(cart.id, cart.customer_id, lines((b.id, 2)), world.deps)
    held = [e for _, e in world.db.data.ledger if e.kind is LedgerKind.HELD]
    assert [(e.product_id, e.quantity, e.reservation_id) for e in held] == [
        (a.id, 1, cart.id),
        (b.id, 2, cart.id),
    ]


async def test_refused_adds_change_nothing(world: World) -> None:
    a = await world.product(5)
    cart = await world.reserve([(a.id, 1)])
    before = (await world.available(a.id), list(world.db.data.ledger))
    for bad in (lines(), lines((a.id, 1)), lines((a.id + 99, 0))):
        with pytest.raises((AlreadyInCart, InvalidInput)):
            await add_items(cart.id, cart.customer_id, bad, world.deps)
    assert (await world.available(a.id), list(world.db.data.ledger)) == before


async def test_a_cart_past_its_expiry_is_refused_before_the_worker_ends_it(world: World) -> None:
    a, b = await world.product(5), await world.product(5)
    cart = await world.reserve([(a.id, 1)])
    world.clock.advance(601)
    with pytest.raises(ReservationExpired):
        await add_items(cart.id, cart.customer_id, lines((b.id, 1)), world.deps)
    with pytest.raises(ReservationExpired):
        await remove_item(cart.id, cart.customer_id, a.id, world.deps)
    assert await world.available(b.id) == 5


Step = tuple[str, int, int]  # (action, product index, quantity)

steps = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove", "new", "release"]),
        st.integers(0, 2),
        st.integers(1, 4),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(steps=steps, stocks=st.lists(st.integers(0, 6), min_size=3, max_size=3))
def test_any_sequence_of_cart_changes_keeps_every_unit_accounted_for(
    steps: Sequence[Step], stocks: list[int]
) -> None:
    asyncio.run(_play(steps, stocks))


async def _play(steps: Sequence[Step], stocks: list[int]) -> None:
    world = await make_world()
    products = [await world.product(stock, limit=5) for stock in stocks]
    buyer = uuid.uuid4()
    cart: Reservation | None = None
    for action, index, quantity in steps:
        product_id = products[index].id
        try:
            if action == "new" or cart is None or cart.status is not ReservationStatus.ACTIVE:
                cart = await world.reserve([(product_id, quantity)], buyer)
            elif action == "add":
                cart = await add_items(cart.id, buyer, lines((product_id, quantity)), world.deps)
            elif action == "remove":
                cart = await remove_item(cart.id, buyer, product_id, world.deps)
            else:
                cart = await world.release(cart.id, buyer)
        except StockgateError:
            pass  # sold out, limit, already in cart, not in cart: refused, nothing changed
        for product in products:
            totals = world.db.totals(product.id)
            assert totals is not None
            gate_held = sum(h.quantity for h in world.gate.holds.get(product.id, {}).values())
            available = await world.available(product.id)
            assert available is not None and available >= 0  # I1
            assert available + gate_held == product.stock  # nothing sold here: all unsold
            assert gate_held == totals.held  # the gate holds what PostgreSQL says
            assert totals.ledger == StockLevels(product.stock, held=totals.held)  # I4
            held_by_buyer = world.gate.buyers.get(product.id, {}).get(buyer, 0)
            assert held_by_buyer <= 5  # the per-customer limit
