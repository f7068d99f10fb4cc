"""Request limits on real Redis: shared by every node, under the key prefix, 429 facts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from stockgate.adapters.rate_limits import LibraryRateLimits, parse_limits, redis_storage
from stockgate.bootstrap import bootstrap, rate_limit_scopes
from stockgate.config import Settings
from stockgate.domain.errors import RateLimited
from stockgate.services.ports import HOLDS_PER_ADDRESS, HOLDS_PER_CUSTOMER


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def node(redis: Redis, prefix: str, **scopes: str) -> LibraryRateLimits:
    """One API node's limiter (its own storage object, as each process has)."""
    return LibraryRateLimits(
        redis_storage(redis, prefix), {s: parse_limits(text) for s, text in scopes.items()}
    )


async def test_nodes_share_one_count_and_refuse_with_retry_after(
    redis: Redis, redis_prefix: str
) -> None:
    a = node(redis, redis_prefix, holds="3/minute")
    b = node(redis, redis_prefix, holds="3/minute")
    await a.hit("holds", "203.0.113.1")
    await b.hit("holds", "203.0.113.1")
    await a.hit("holds", "203.0.113.1")
    with pytest.raises(RateLimited) as refused:
        await b.hit("holds", "203.0.113.1")
    assert refused.value.code == "rate_limited"
    assert 1 <= refused.value.facts["retry_after"] <= 60
    await a.hit("holds", "203.0.113.2")  # another client has its own count
    keys = [key.decode() async for key in redis.scan_iter(match="*LIMITER/holds*")]
    assert keys and all(key.startswith(f"{redis_prefix}:rl:") for key in keys)


async def test_several_windows_and_scopes_off(redis: Redis, redis_prefix: str) -> None:
    limits = node(redis, redis_prefix, burst="2/second;100/minute", open="off")
    await limits.hit("burst", "c")
    await limits.hit("burst", "c")
    with pytest.raises(RateLimited):
        await limits.hit("burst", "c")
    for _ in range(50):
        await limits.hit("open", "c")  # a scope without limits never refuses
    with pytest.raises(KeyError):
        await limits.hit("no-such-scope", "c")  # a typo is a bug, not "unlimited"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_unreachable_redis_lets_requests_through() -> None:
    down = Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        limits = node(down, "x", holds="1/minute")
        for _ in range(3):
            await limits.hit("holds", "c")  # no exception: the stores refuse the work anyway
    finally:
        await down.aclose()


async def test_bootstrap_limits_follow_the_settings(settings: Settings) -> None:
    on = settings.model_copy(
        update={"rate_limit_enabled": True, "rate_limit_holds_per_customer": "1/minute"}
    )
    scopes = rate_limit_scopes(on)
    assert [str(item) for item in scopes[HOLDS_PER_CUSTOMER]] == ["1 per 1 minute"]
    assert all(not items for items in rate_limit_scopes(settings).values())  # enabled=false
    container = await bootstrap(on)
    try:
        await container.rate_limits.hit(HOLDS_PER_CUSTOMER, "buyer")
        with pytest.raises(RateLimited):
            await container.rate_limits.hit(HOLDS_PER_CUSTOMER, "buyer")
        await container.rate_limits.hit(HOLDS_PER_ADDRESS, "buyer")
    finally:
        await container.close()


async def test_hits_of_one_tick_are_counted_exactly(redis: Redis, redis_prefix: str) -> None:
    # Concurrent hits share one pipeline; each is still counted once, in order.
    limits = node(redis, redis_prefix, holds="5/minute")
    outcomes = await asyncio.gather(
        *(limits.hit("holds", "same") for _ in range(12)), return_exceptions=True
    )
    assert sum(o is None for o in outcomes) == 5
    assert all(isinstance(o, RateLimited) for o in outcomes if o is not None)
    await limits.hit_all(("holds", "a"), ("holds", "b"))
