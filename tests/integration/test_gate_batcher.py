"""The gate's per-tick batcher: every caller gets an answer, whatever goes wrong in a batch."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from stockgate.adapters.redis.keys import Keys
from stockgate.adapters.redis.scripts import Arg, ScriptBatcher, Scripts
from stockgate.bootstrap import Container
from stockgate.domain.errors import StoreUnavailable
from tests.conftest import clients


async def test_an_unexpected_error_in_a_batch_answers_every_waiter_and_the_batcher_goes_on(
    container: Container,
) -> None:
    batcher = ScriptBatcher(clients(container).redis)
    scripts = Scripts.read()
    keys = Keys(container.settings.redis_prefix)
    stock_key = [keys.stock(987_654)]
    good: list[Arg] = [1, 1, keys.restocked_channel, 987_654]
    # A value the command packer refuses: a bug, not an outage, raised inside the batch.
    unpackable = cast(list[Arg], [object(), 1, keys.restocked_channel, 987_654])

    async def both() -> tuple[Any, ...]:
        return await asyncio.gather(
            batcher.run(scripts.add_stock, stock_key, unpackable),
            batcher.run(scripts.add_stock, stock_key, good),  # same tick, same batch
            return_exceptions=True,
        )

    answers = await asyncio.wait_for(both(), timeout=5)
    assert [type(a) for a in answers] == [StoreUnavailable, StoreUnavailable]
    # The batcher still works: the next call is a new batch and is answered (-1: not loaded).
    assert await asyncio.wait_for(batcher.run(scripts.add_stock, stock_key, good), 5) == -1
