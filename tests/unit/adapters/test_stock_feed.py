"""The stock feed: marks are free, flushes coalesce per product and send the latest value."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockgate.adapters.realtime.stock_feed import StockFeed
from stockgate.domain.errors import StoreUnavailable
from tests.unit.conftest import World


class RecordingEmitter:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str | None]] = []

    async def emit(
        self, event: str, data: Any, namespace: str | None = None, room: str | None = None
    ) -> None:
        self.sent.append((event, data, room))

    def values(self, product_id: int) -> list[int]:
        return [d["available"] for _, d, _ in self.sent if d["product_id"] == product_id]


async def test_many_changes_between_flushes_send_one_update_with_the_latest_value(
    world: World,
) -> None:
    product = await world.product(stock=50)
    emitter = RecordingEmitter()
    feed = StockFeed(world.gate, emitter)
    for _ in range(20):
        await world.reserve([(product.id, 1)])
        feed.changed([product.id])
    assert emitter.sent == []  # marking sends nothing
    await feed.flush()
    assert emitter.sent == [
        ("stock", {"product_id": product.id, "available": 30}, f"product:{product.id}")
    ]
    assert await feed.flush(settle=False) == {}  # nothing marked since


async def test_each_product_gets_its_own_room(world: World) -> None:
    first, second = await world.product(stock=5), await world.product(stock=7)
    emitter = RecordingEmitter()
    feed = StockFeed(world.gate, emitter)
    feed.changed([first.id, second.id, first.id])
    await feed.flush()
    assert sorted((room, data["available"]) for _, data, room in emitter.sent) == sorted(
        [(f"product:{first.id}", 5), (f"product:{second.id}", 7)]
    )


async def test_a_burst_is_sent_at_most_once_per_interval_and_settles_on_the_last_value(
    world: World,
) -> None:
    product = await world.product(stock=1000)
    emitter = RecordingEmitter()
    feed = StockFeed(world.gate, emitter, interval=0.05, settle=0.15)
    feed.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() - started < 0.5:  # about 0.5 s of changes, one every few ms
            await world.reserve([(product.id, 1)])
            feed.changed([product.id])
            await asyncio.sleep(0.002)
        left = await world.available(product.id)
        assert left is not None
        await asyncio.sleep(0.4)  # the last interval, then the settle send
    finally:
        await feed.close()
    seen = emitter.values(product.id)
    assert len(seen) * 5 < 1000 - left  # far fewer messages than changes
    assert len(seen) <= 0.5 / 0.05 + 3
    assert seen[-1] == left
    assert seen[-2] == left  # the settle send repeats the value once things are quiet


async def test_first_change_after_a_quiet_spell_is_sent_at_once(world: World) -> None:
    product = await world.product(stock=3)
    emitter = RecordingEmitter()
    feed = StockFeed(world.gate, emitter, interval=5.0)  # a long interval: only wake-up counts
    feed.start()
    try:
        feed.changed([product.id])
        for _ in range(100):
            if emitter.sent:
                break
            await asyncio.sleep(0.01)
        assert emitter.values(product.id) == [3]
    finally:
        await feed.close()


async def test_close_sends_what_is_still_marked(world: World) -> None:
    product = await world.product(stock=4)
    emitter = RecordingEmitter()
    feed = StockFeed(world.gate, emitter)
    feed.changed([product.id])
    await feed.close()  # never started: a CLI command's container
    assert emitter.values(product.id) == [4]


async def test_unloaded_products_are_not_sent(world: World) -> None:
    emitter = RecordingEmitter()
    feed = StockFeed(world.gate, emitter)
    feed.changed([424242])
    assert await feed.flush() == {}
    assert emitter.sent == []


class DownGate:
    async def available(self, product_ids: Any) -> dict[int, int | None]:
        raise StoreUnavailable("redis")


async def test_when_redis_is_down_the_marks_are_kept_for_the_next_flush(world: World) -> None:
    product = await world.product(stock=2)
    emitter = RecordingEmitter()
    feed = StockFeed(DownGate(), emitter)  # type: ignore[arg-type]  # only available() is used
    feed.changed([product.id])
    with pytest.raises(StoreUnavailable):
        await feed.flush()
    feed._gate = world.gate  # Redis is back
    await feed.flush()
    assert emitter.values(product.id) == [2]


class DictGate:
    """Only what the feed reads: available counts by product id."""

    def __init__(self) -> None:
        self.levels: dict[int, int] = {}

    async def available(self, product_ids: Any) -> dict[int, int | None]:
        return {pid: self.levels.get(pid) for pid in product_ids}


steps = st.lists(
    st.one_of(
        st.tuples(st.just("move"), st.integers(1, 3), st.integers(-5, 5)),
        st.tuples(st.just("flush"), st.just(0), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_after_any_changes_the_last_event_of_each_product_is_its_value(
    plan: list[tuple[str, int, int]],
) -> None:
    async def run() -> None:
        gate = DictGate()
        emitter = RecordingEmitter()
        feed = StockFeed(gate, emitter)  # type: ignore[arg-type]  # only available() is used
        for kind, product_id, delta in plan:
            if kind == "move":
                gate.levels[product_id] = max(0, gate.levels.get(product_id, 10) + delta)
                feed.changed([product_id])
            else:
                await feed.flush()
        await feed.close()
        for product_id, value in gate.levels.items():
            assert emitter.values(product_id)[-1] == value
        sent = [d["product_id"] for _, d, _ in emitter.sent]
        flushes = sum(1 for kind, _, _ in plan if kind == "flush") + 1
        for product_id in gate.levels:  # coalesced: at most one event per product per flush
            assert sent.count(product_id) <= flushes

    asyncio.run(run())
