"""The Stripe adapter against the real fake Stripe server (localstripe), through the SDK."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import stripe

from stockgate.adapters.embedded.fake_stripe import SECRET_KEY, FakeStripe
from stockgate.adapters.stripe import StripePayments
from stockgate.adapters.stripe.payments import intent_idempotency_key
from stockgate.domain.errors import (
    InvalidWebhook,
    PaymentIntentNotFound,
    PaymentProviderUnavailable,
    PaymentStateConflict,
)
from stockgate.services.ports import PaymentIntent
from stockgate.supervisor import free_port
from tests.fake_stripe_server import (
    DECLINED_CARD,
    WebhookReceiver,
    about,
    confirm_intent,
    events_of,
    payments_for,
    running_fake_stripe,
    signed_webhook,
)


@pytest.fixture
async def payments(fake_stripe: FakeStripe) -> AsyncIterator[StripePayments]:
    adapter = payments_for(fake_stripe)
    yield adapter
    await adapter.close()


@pytest.fixture
def receiver(fake_stripe: FakeStripe) -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        # One id for every test: registering again replaces the previous test's receiver.
        fake_stripe.register_webhook(receiver.url, webhook_id="test-stripe-payments")
        yield receiver


async def new_intent(payments: StripePayments, amount_cents: int = 2500) -> PaymentIntent:
    return await payments.create_intent(
        order_id=uuid.uuid4(), amount_cents=amount_cents, currency="usd", customer_id=uuid.uuid4()
    )


async def paid_intent(payments: StripePayments, fake: FakeStripe) -> PaymentIntent:
    intent = await new_intent(payments)
    await confirm_intent(fake, intent.id)
    return await payments.get_intent(intent.id)


# --------------------------------------------------------------------------- PaymentIntents


async def test_created_intent_names_its_order_and_awaits_the_buyers_card(
    payments: StripePayments,
) -> None:
    order_id = uuid.uuid4()
    created = await payments.create_intent(
        order_id=order_id, amount_cents=1999, currency="EUR", customer_id=uuid.uuid4()
    )
    assert created.status == "requires_payment_method"
    assert (created.amount_cents, created.currency, created.order_id) == (1999, "eur", order_id)
    assert created.client_secret and created.client_secret.startswith(created.id)
    assert await payments.get_intent(created.id) == created


async def test_creating_twice_for_one_order_sends_one_idempotency_key(
    fake_stripe: FakeStripe,
) -> None:
    # Real Stripe answers a repeated key with the first intent; the fake ignores keys, so what
    # can be checked here is that the adapter sends the same key for the same order.
    keys: list[str | None] = []

    class Recording(stripe.HTTPXClient):
        async def request_async(
            self, method: str, url: str, headers: Any, post_data: Any = None
        ) -> Any:
            keys.append(headers.get("Idempotency-Key"))
            return await super().request_async(method, url, headers, post_data)

    adapter = payments_for(fake_stripe, http_client=Recording(timeout=2.0))
    order_id, customer_id = uuid.uuid4(), uuid.uuid4()
    for order in (order_id, order_id, uuid.uuid4()):
        await adapter.create_intent(
            order_id=order, amount_cents=500, currency="usd", customer_id=customer_id
        )
    await adapter.close()
    assert keys[0] == keys[1] == intent_idempotency_key(order_id)
    assert keys[2] not in (None, keys[0])


async def test_unknown_intent_is_not_found(payments: StripePayments) -> None:
    with pytest.raises(PaymentIntentNotFound):
        await payments.get_intent("pi_doesnotexist")


async def test_good_card_makes_the_intent_succeed(
    payments: StripePayments, fake_stripe: FakeStripe
) -> None:
    intent = await new_intent(payments)
    assert (await confirm_intent(fake_stripe, intent.id))["status"] == "succeeded"
    assert (await payments.get_intent(intent.id)).status == "succeeded"


async def test_declined_card_leaves_the_intent_payable_and_a_retry_succeeds(
    payments: StripePayments, fake_stripe: FakeStripe
) -> None:
    intent = await new_intent(payments)
    declined = await confirm_intent(fake_stripe, intent.id, DECLINED_CARD)
    assert declined["last_payment_error"]["code"] == "card_declined"
    assert (await payments.get_intent(intent.id)).status == "requires_payment_method"
    await confirm_intent(fake_stripe, intent.id)
    assert (await payments.get_intent(intent.id)).status == "succeeded"
    assert [e["type"] for e in await events_of(fake_stripe, intent.id)] == [
        "payment_intent.payment_failed",
        "payment_intent.succeeded",
    ]


async def test_canceling_twice_returns_the_canceled_intent(payments: StripePayments) -> None:
    intent = await new_intent(payments)
    first = await payments.cancel_intent(intent.id)
    second = await payments.cancel_intent(intent.id)
    assert first.status == second.status == "canceled"
    assert second.id == intent.id


async def test_canceling_a_succeeded_intent_is_a_state_conflict(
    payments: StripePayments, fake_stripe: FakeStripe
) -> None:
    intent = await paid_intent(payments, fake_stripe)
    with pytest.raises(PaymentStateConflict) as refused:
        await payments.cancel_intent(intent.id)
    assert refused.value.status == "succeeded"


async def test_canceling_an_unknown_intent_is_not_found(payments: StripePayments) -> None:
    with pytest.raises(PaymentIntentNotFound):
        await payments.cancel_intent("pi_doesnotexist")


# --------------------------------------------------------------------------- refunds


async def refund_count(intent_id: str, fake: FakeStripe) -> int:
    client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": fake.api_base})
    page = await client.v1.refunds.list_async({"payment_intent": intent_id})
    return len(page.data)


async def test_refunding_twice_with_one_key_makes_one_refund(
    payments: StripePayments, fake_stripe: FakeStripe
) -> None:
    intent = await paid_intent(payments, fake_stripe)
    first = await payments.refund(intent.id, key=f"refund-{intent.id}", reason="late_payment")
    again = await payments.refund(intent.id, key=f"refund-{intent.id}", reason="late_payment")
    assert first == again
    assert (first.payment_intent_id, first.amount_cents, first.status) == (
        intent.id,
        intent.amount_cents,
        "succeeded",
    )
    assert await refund_count(intent.id, fake_stripe) == 1


async def test_refunding_a_refunded_payment_with_another_key_refunds_nothing_more(
    payments: StripePayments, fake_stripe: FakeStripe
) -> None:
    intent = await paid_intent(payments, fake_stripe)
    first = await payments.refund(intent.id, key="by-admin", reason="admin_cancel")
    assert await payments.refund(intent.id, key="by-sweeper", reason="late_payment") == first
    assert await refund_count(intent.id, fake_stripe) == 1


@pytest.mark.parametrize("state", ["requires_payment_method", "canceled"])
async def test_refunding_an_unpaid_intent_is_a_state_conflict(
    payments: StripePayments, state: str
) -> None:
    intent = await new_intent(payments)
    if state == "canceled":
        await payments.cancel_intent(intent.id)
    with pytest.raises(PaymentStateConflict) as refused:
        await payments.refund(intent.id, key=f"refund-{intent.id}", reason="test")
    assert refused.value.status == state


# --------------------------------------------------------------------------- webhooks


async def test_fake_sends_a_verifiable_succeeded_event_naming_the_order(
    payments: StripePayments, fake_stripe: FakeStripe, receiver: WebhookReceiver
) -> None:
    intent = await new_intent(payments, amount_cents=4200)
    await confirm_intent(fake_stripe, intent.id)
    delivery = await receiver.wait_for(about(intent.id, "payment_intent.succeeded"))
    event = payments.verify_event(delivery.body, delivery.signature)
    assert event.type == "payment_intent.succeeded"
    assert event.id.startswith("evt_")
    assert (event.payment_intent_id, event.order_id) == (intent.id, intent.order_id)
    assert (event.amount_cents, event.currency) == (4200, "usd")
    assert event.payload == json.loads(delivery.body)


async def test_fake_sends_payment_failed_for_a_declined_card(
    payments: StripePayments, fake_stripe: FakeStripe, receiver: WebhookReceiver
) -> None:
    intent = await new_intent(payments)
    await confirm_intent(fake_stripe, intent.id, DECLINED_CARD)
    delivery = await receiver.wait_for(about(intent.id, "payment_intent.payment_failed"))
    event = payments.verify_event(delivery.body, delivery.signature)
    assert (event.payment_intent_id, event.order_id) == (intent.id, intent.order_id)
    assert event.payload["data"]["object"]["status"] == "requires_payment_method"


async def delivered(
    payments: StripePayments, fake: FakeStripe, receiver: WebhookReceiver
) -> tuple[bytes, str]:
    intent = await new_intent(payments)
    await confirm_intent(fake, intent.id)
    delivery = await receiver.wait_for(about(intent.id, "payment_intent.succeeded"))
    assert delivery.signature is not None
    return delivery.body, delivery.signature


async def test_tampered_webhook_is_refused(
    payments: StripePayments, fake_stripe: FakeStripe, receiver: WebhookReceiver
) -> None:
    body, signature = await delivered(payments, fake_stripe, receiver)
    payments.verify_event(body, signature)  # the untouched one passes
    tampered = body.replace(b'"amount": 2500', b'"amount": 1')
    assert tampered != body
    with pytest.raises(InvalidWebhook):
        payments.verify_event(tampered, signature)


async def test_webhook_signed_with_another_secret_is_refused(
    fake_stripe: FakeStripe, receiver: WebhookReceiver
) -> None:
    mine = payments_for(fake_stripe)
    other = payments_for(fake_stripe, webhook_secret="whsec_someone_else")
    body, signature = await delivered(mine, fake_stripe, receiver)
    with pytest.raises(InvalidWebhook):
        other.verify_event(body, signature)
    await mine.close()
    await other.close()


async def test_replayed_webhook_with_an_old_signature_is_refused(
    payments: StripePayments, fake_stripe: FakeStripe, receiver: WebhookReceiver
) -> None:
    body, _ = await delivered(payments, fake_stripe, receiver)
    event = json.loads(body)
    _, recent = signed_webhook(event, fake_stripe.webhook_secret, timestamp=int(time.time()) - 280)
    payments.verify_event(json.dumps(event).encode(), recent)  # within the 300 s tolerance
    stale_body, stale = signed_webhook(
        event, fake_stripe.webhook_secret, timestamp=int(time.time()) - 301
    )
    with pytest.raises(InvalidWebhook, match="Stripe-Signature"):
        payments.verify_event(stale_body, stale)


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"id": "evt_1"}', b"\xff\xfe"])
def test_signed_body_that_is_not_an_event_is_refused(
    payments: StripePayments, fake_stripe: FakeStripe, body: bytes
) -> None:
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode("latin-1"), fake_stripe.webhook_secret
    )
    with pytest.raises(InvalidWebhook):
        payments.verify_event(body, header)


# --------------------------------------------------------------------------- outages


def closed_port() -> int:
    return free_port()  # nothing listens there once the probe socket is closed


async def test_unreachable_stripe_is_unavailable_within_the_deadline() -> None:
    adapter = StripePayments(
        secret_key=SECRET_KEY,
        webhook_secret=None,
        api_base=f"http://127.0.0.1:{closed_port()}",
        timeout_seconds=0.5,
        max_network_retries=2,
    )
    started = time.monotonic()
    with pytest.raises(PaymentProviderUnavailable):
        await new_intent(adapter)
    assert time.monotonic() - started <= adapter.deadline_seconds
    await adapter.close()


async def test_silent_stripe_is_unavailable_within_the_deadline() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        adapter = StripePayments(
            secret_key=SECRET_KEY,
            webhook_secret=None,
            api_base=f"http://127.0.0.1:{silent.getsockname()[1]}",
            timeout_seconds=0.5,
            max_network_retries=1,
        )
        started = time.monotonic()
        with pytest.raises(PaymentProviderUnavailable):
            await adapter.get_intent("pi_anything")
        elapsed = time.monotonic() - started
        await adapter.close()
    assert 1.0 <= elapsed <= adapter.deadline_seconds + 0.5  # two attempts of 0.5 s, one pause


async def test_server_errors_are_retried_with_the_same_key_then_unavailable() -> None:
    with WebhookReceiver(status=500) as failing_api:
        adapter = StripePayments(
            secret_key=SECRET_KEY,
            webhook_secret=None,
            api_base=failing_api.url.removesuffix("/webhook"),
            timeout_seconds=1.0,
            max_network_retries=2,
        )
        order_id = uuid.uuid4()
        with pytest.raises(PaymentProviderUnavailable):
            await adapter.create_intent(
                order_id=order_id, amount_cents=100, currency="usd", customer_id=uuid.uuid4()
            )
        await adapter.close()
    keys = [attempt.headers.get("idempotency-key") for attempt in failing_api.deliveries]
    assert keys == [intent_idempotency_key(order_id)] * 3


async def test_intents_survive_a_restart_of_the_fake() -> None:
    with running_fake_stripe() as fake:
        adapter = payments_for(fake, timeout_seconds=0.5, max_network_retries=0)
        intent = await new_intent(adapter)
        fake.stop()
        with pytest.raises(PaymentProviderUnavailable):
            await adapter.get_intent(intent.id)
        fake.start()
        assert await adapter.get_intent(intent.id) == intent
        await adapter.close()
