"""Live stock hears about payments: units a refund returns are published to watchers.

The buyer's steps and the webhook relay are those of test_payments.py (same fixtures: the
in-process API, the fake Stripe). What watchers would get is read where every API node reads
it: the Socket.IO Redis channel under the test's key prefix.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from stockgate.adapters.embedded.fake_stripe import FakeStripe
from stockgate.bootstrap import Container
from stockgate.config import Settings
from tests.conftest import MakeProduct
from tests.fake_stripe_server import WebhookReceiver, confirm_intent, refunded_charge, stripe_event
from tests.integration.test_payments import (  # noqa: F401  # fixtures, used by name
    Client,
    buyer,
    checkout,
    client,
    hold,
    post_event,
    receiver,
    relay,
    settings,
    wait_for_status,
)


class Channel:
    """The `stock` events published on the Socket.IO channel, as every API node sees them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def wait_for(self, product_id: int, available: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e == {"product_id": product_id, "available": available} for e in self.events):
            assert time.monotonic() < deadline, (product_id, available, self.events)
            await asyncio.sleep(0.02)


@pytest.fixture
async def channel(settings: Settings) -> AsyncIterator[Channel]:  # noqa: F811
    assert settings.redis_url is not None
    redis = Redis.from_url(settings.redis_url)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(f"{settings.redis_prefix}:socketio")
    heard = Channel()

    async def listen() -> None:
        async for message in pubsub.listen():
            data = json.loads(message["data"])
            if data.get("method") == "emit" and data.get("event") == "stock":
                heard.events.append(data["data"][0])

    task = asyncio.get_running_loop().create_task(listen())
    try:
        yield heard
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        await redis.aclose()


async def test_a_hold_and_a_refund_that_returns_units_reach_the_channel(
    client: Client,  # noqa: F811
    container: Container,
    make_product: MakeProduct,
    receiver: WebhookReceiver,  # noqa: F811
    fake_stripe: FakeStripe,
    channel: Channel,
) -> None:
    product = await make_product(stock=3, price_cents=700)
    auth = await buyer(client)
    started = await checkout(client, auth, await hold(client, auth, (product.id, 2)))
    await channel.wait_for(product.id, 1)  # the hold, through the API's feed
    intent_id = started["payment_intent_id"]
    await confirm_intent(fake_stripe, intent_id)
    await relay(client, container, receiver, intent_id, "payment_intent.succeeded")
    await wait_for_status(client, auth, started["order_id"], "paid")
    charge = refunded_charge(intent_id, 1400, refund_ids=("re_live_stock",))
    refund = stripe_event("charge.refunded", charge)
    answer = await post_event(client, container, fake_stripe.webhook_secret, refund)
    assert answer.status_code == 200
    await wait_for_status(client, auth, started["order_id"], "refunded")
    # Applied by this process (as a worker would): its write-only manager publishes.
    await channel.wait_for(product.id, 3)
