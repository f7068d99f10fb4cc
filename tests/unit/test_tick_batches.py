"""TickBatches: what is added in one event-loop tick is sent as one batch."""

from __future__ import annotations

import asyncio

from stockgate.adapters.tick_batches import TickBatches


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def send(self, batch: list[int]) -> None:
        self.batches.append(list(batch))
        await asyncio.sleep(0.01)  # a round trip


async def test_items_of_one_tick_share_a_batch_and_later_ones_open_the_next() -> None:
    sent = Recorder()
    batches = TickBatches(sent.send, max_batch=100)
    for item in range(5):
        batches.add(item)
    await asyncio.sleep(0)  # the batch's task starts and closes it
    batches.add(5)
    await batches.drain()
    assert sent.batches == [[0, 1, 2, 3, 4], [5]]


async def test_a_full_batch_is_closed_and_the_rest_opens_another() -> None:
    sent = Recorder()
    batches = TickBatches(sent.send, max_batch=3)
    for item in range(7):
        batches.add(item)
    await batches.drain()
    assert sent.batches == [[0, 1, 2], [3, 4, 5], [6]]


async def test_drain_waits_for_batches_opened_while_draining() -> None:
    sent = Recorder()
    batches: TickBatches[int]

    async def send_then_follow_up(batch: list[int]) -> None:
        await sent.send(batch)
        if batch == [1]:
            batches.add(2)  # e.g. a compensation after a failed write

    batches = TickBatches(send_then_follow_up, max_batch=10)
    batches.add(1)
    await batches.drain()
    assert sent.batches == [[1], [2]]
