"""The money path against real PostgreSQL, Redis and the fake Stripe server, through the SDK.

The HTTP API runs in-process (Litestar's test client, real lifespan and stores); Stripe is
localstripe. Webhooks the fake sends are received by a local receiver and relayed byte for
byte (signature included) to the API's webhook endpoint, as a tunnel would. Every scenario
ends with `assert_invariants`: oversold 0, leaked 0, the ledger sums to the numbers, and
every succeeded payment is paid or refunded.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from stockgate.adapters.embedded.fake_stripe import SECRET_KEY, FakeStripe
from stockgate.adapters.postgres.tables import orders, payment_outbox, reservations, webhook_events
from stockgate.adapters.redis.keys import Keys
from stockgate.bootstrap import Container, bootstrap
from stockgate.config import Settings, StoreUrls
from stockgate.domain.errors import StoreUnavailable
from stockgate.domain.order import OrderStatus
from stockgate.entrypoints.http.app import create_app
from stockgate.services.expire import expire_due
from stockgate.services.payment_events import apply_event
from stockgate.services.payment_tasks import drain_outbox, settle_stuck_orders
from stockgate.services.payments import PaymentDeps
from stockgate.services.ports import ConvertMode, ConvertStatus
from stockgate.services.reconcile import reconcile
from stockgate.supervisor import free_port
from tests.conftest import MakeProduct, clients, drift
from tests.fake_stripe_server import (
    DECLINED_CARD,
    WebhookReceiver,
    about,
    confirm_intent,
    dispute,
    refunded_charge,
    signed_webhook,
    stripe_event,
)

Client = AsyncTestClient[Any]


@pytest.fixture
def settings(settings: Settings, fake_stripe: FakeStripe) -> Settings:
    return changed(
        settings,
        {
            "stripe_secret_key": SECRET_KEY,
            "stripe_api_base": fake_stripe.api_base,
            "stripe_webhook_secret": fake_stripe.webhook_secret,
            "stripe_timeout_seconds": 2.0,
        },
    )


@pytest.fixture
def receiver(fake_stripe: FakeStripe) -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        fake_stripe.register_webhook(receiver.url, webhook_id="test-payments")
        yield receiver


@pytest.fixture
async def client(settings: Settings, store_urls: StoreUrls) -> AsyncIterator[Client]:
    app = create_app(settings, store_urls)
    async with api_client(app) as client:
        yield client


def api_client(app: object) -> Client:
    """A test client of the whole ASGI app (the reservation fast path in front of Litestar)."""
    return AsyncTestClient(app=app)


def changed(settings: Settings, changes: dict[str, Any]) -> Settings:
    """The settings with `changes`, validated as if read from the environment."""
    return Settings(**(settings.model_dump() | changes))


# --------------------------------------------------------------------------- buyer's steps


async def buyer(client: Client) -> dict[str, str]:
    answer = await client.post("/api/v1/customers")
    assert answer.status_code == 201
    return {"Authorization": f"Bearer {answer.json()['token']}"}


async def hold(client: Client, auth: dict[str, str], *lines: tuple[int, int]) -> str:
    items = [{"product_id": p, "quantity": q} for p, q in lines]
    answer = await client.post("/api/v1/reservations", json={"items": items}, headers=auth)
    assert answer.status_code == 201, answer.text
    reservation_id: str = answer.json()["id"]
    return reservation_id


async def checkout(client: Client, auth: dict[str, str], reservation_id: str) -> dict[str, Any]:
    answer = await client.post(f"/api/v1/reservations/{reservation_id}/checkout", headers=auth)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def order_of(client: Client, auth: dict[str, str], order_id: str) -> dict[str, Any]:
    answer = await client.get(f"/api/v1/orders/{order_id}", headers=auth)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def relay(
    client: Client,
    container: Container,
    receiver: WebhookReceiver,
    intent_id: str,
    event_type: str,
) -> dict[str, Any]:
    """The fake's webhook about `intent_id`, posted to the API as Stripe would, then applied
    as the worker's job for it would (tests/e2e/test_payment_workers.py runs real workers)."""
    delivery = await receiver.wait_for(about(intent_id, event_type), timeout=10)
    answer = await client.post(
        "/api/v1/stripe/webhook",
        content=delivery.body,
        headers={"Stripe-Signature": delivery.signature or "", "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    await apply_event(delivery.event["id"], container.payment_deps)
    return delivery.event


async def wait_for_status(
    client: Client, auth: dict[str, str], order_id: str, status: str, timeout: float = 10
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        order = await order_of(client, auth, order_id)
        if order["status"] == status or time.monotonic() > deadline:
            assert order["status"] == status, order
            return order
        await asyncio.sleep(0.05)


async def post_event(
    client: Client, container: Container, secret: str, event: dict[str, Any], **sign: Any
) -> Any:
    """Post a signed event; once stored (200), apply it as the worker's job would."""
    body, signature = signed_webhook(event, secret, **sign)
    answer = await client.post(
        "/api/v1/stripe/webhook",
        content=body,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )
    if answer.status_code == 200:
        await apply_event(event["id"], container.payment_deps)
    return answer


# --------------------------------------------------------------------------- invariants


async def assert_invariants(container: Container, fake: FakeStripe) -> None:
    """Oversold 0, leaked 0, ledger sums to the numbers; every succeeded payment of an order
    ended paid (or later) or refunded (I1-I4)."""
    found = await drift(container)
    assert (found.oversold, found.leaked) == (0, 0), found
    assert all(p.ledger_ok for p in found.products), found
    payments = PaymentDeps.provider(container.payment_deps)
    async with container.uow_factory() as uow:
        every = await uow.orders.with_status(list(OrderStatus), limit=1000)
    for order in every:
        if order.payment_intent_id is None:
            continue
        intent = await payments.get_intent(order.payment_intent_id)
        if intent.status == "succeeded":
            assert (
                order.status
                in (
                    OrderStatus.PAID,
                    OrderStatus.FULFILLED,
                    OrderStatus.REFUNDED,
                )
                or order.flag is not None
            ), order


async def pg_scalar(container: Container, query: Any) -> Any:
    async with clients(container).engine.connect() as connection:
        return (await connection.execute(query)).scalar()


async def expire_now(container: Container, reservation_id: str) -> None:
    """Make a reservation due, then run one expiry round (as the expiry worker would)."""
    async with clients(container).engine.begin() as connection:
        await connection.execute(
            reservations.update()
            .where(reservations.c.id == uuid.UUID(reservation_id))
            .values(expires_at=sa.func.now() - sa.text("interval '1 second'"))
        )
    done = await expire_due(
        uow_factory=container.uow_factory, gate=container.gate, clock=container.clock
    )
    assert done.expired == 1


# --------------------------------------------------------------------------- happy path


async def test_hold_checkout_pay_webhook_paid_and_stock_sold_everywhere(
    client: Client,
    container: Container,
    make_product: MakeProduct,
    receiver: WebhookReceiver,
    fake_stripe: FakeStripe,
) -> None:
    product = await make_product(stock=5, price_cents=1250)
    auth = await buyer(client)
    reservation_id = await hold(client, auth, (product.id, 2))
    first = await checkout(client, auth, reservation_id)
    assert first["status"] == "payment_pending"
    assert (first["amount_cents"], first["currency"]) == (2500, "usd")
    assert first["client_secret"].startswith(first["payment_intent_id"])
    assert await checkout(client, auth, reservation_id) == first  # repeatable
    paid = await client.post(
        f"/api/v1/orders/{first['order_id']}/payment-method",
        json={"payment_method": "pm_card_visa"},
        headers=auth,
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["payment_status"] == "succeeded"
    await relay(client, container, receiver, first["payment_intent_id"], "payment_intent.succeeded")
    order = await wait_for_status(client, auth, first["order_id"], "paid")
    assert order["items"] == [{"product_id": product.id, "quantity": 2, "unit_price_cents": 1250}]
    state = await container.gate.state(product.id)
    assert (state.available, state.sold, state.holds) == (3, 2, {})
    async with container.uow_factory() as uow:
        totals = await uow.products.totals(product.id)
    assert totals is not None
    assert (totals.sold, totals.ledger.sold, totals.ledger.held) == (2, 2, 0)
    await assert_invariants(container, fake_stripe)


async def test_declined_card_then_retry_and_success(
    client: Client,
    container: Container,
    make_product: MakeProduct,
    receiver: WebhookReceiver,
    fake_stripe: FakeStripe,
) -> None:
    product = await make_product(stock=3)
    auth = await buyer(client)
    started = await checkout(client, auth, await hold(client, auth, (product.id, 1)))
    declined = await client.post(
        f"/api/v1/orders/{started['order_id']}/payment-method",
        json={"payment_method": DECLINED_CARD},
        headers=auth,
    )
    assert declined.status_code == 402, declined.text
    assert declined.json()["code"] == "payment_declined"
    await relay(
        client, container, receiver, started["payment_intent_id"], "payment_intent.payment_failed"
    )
    await asyncio.sleep(0.2)
    assert (await order_of(client, auth, started["order_id"]))["status"] == "payment_pending"
    await confirm_intent(fake_stripe, started["payment_intent_id"])  # the buyer tries again
    await relay(
        client, container, receiver, started["payment_intent_id"], "payment_intent.succeeded"
    )
    await wait_for_status(client, auth, started["order_id"], "paid")
    await assert_invariants(container, fake_stripe)


# --------------------------------------------------------------------------- webhooks


async def test_same_event_three_times_concurrently_applies_once(
    client: Client,
    container: Container,
    make_product: MakeProduct,
    receiver: WebhookReceiver,
    fake_stripe: FakeStripe,
) -> None:
    product = await make_product(stock=4)
    auth = await buyer(client)
    started = await checkout(client, auth, await hold(client, auth, (product.id, 2)))
    await confirm_intent(fake_stripe, started["payment_intent_id"])
    delivery = await receiver.wait_for(
        about(started["payment_intent_id"], "payment_intent.succeeded"), timeout=10
    )
    headers = {"Stripe-Signature": delivery.signature or "", "Content-Type": "application/json"}
    answers = await asyncio.gather(
        *(
            client.post("/api/v1/stripe/webhook", content=delivery.body, headers=headers)
            for _ in range(3)
        )
    )
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert sorted(a.json()["duplicate"] for a in answers) == [False, True, True]
    # Applied by three workers at once, as a sweep racing the job would.
    applied = await asyncio.gather(
        *(apply_event(delivery.event["id"], container.payment_deps) for _ in range(3))
    )
    assert [a for a in applied if a is not None] in ([], ["paid"])
    await wait_for_status(client, auth, started["order_id"], "paid")
    sold = await pg_scalar(
        container,
        sa.text(
            "SELECT sum(quantity) FROM stock_ledger WHERE kind = 'sold' AND product_id = :p"
        ).bindparams(p=product.id),
    )
    assert sold == 2
    assert (await container.gate.state(product.id)).sold == 2
    await assert_invariants(container, fake_stripe)


async def test_out_of_order_events_never_undo_a_payment(
    client: Client,
    container: Container,
    make_product: MakeProduct,
    receiver: WebhookReceiver,
    fake_stripe: FakeStripe,
) -> None:
    product = await make_product(stock=2)
    auth = await buyer(client)
    started = await checkout(client, auth, await hold(client, auth, (product.id, 1)))
    intent_id = started["payment_intent_id"]
    await confirm_intent(fake_stripe, intent_id)
    await relay(client, container, receiver, intent_id, "payment_intent.succeeded")
    await wait_for_status(client, auth, started["order_id"], "paid")
    secret = fake_stripe.webhook_secret
    obj = {"id": intent_id, "object": "payment_intent", "amount": 1000, "currency": "usd"}
    for late_type in ("payment_intent.payment_failed", "payment_intent.canceled"):
        answer = await post_event(client, container, secret, stripe_event(late_type, obj))
        assert answer.status_code == 200
    await asyncio.sleep(0.3)
    assert (await order_of(client, auth, started["order_id"]))["status"] == "paid"
    assert (await container.gate.state(product.id)).sold == 1
    await assert_invariants(container, fake_stripe)


async def test_bad_stale_and_malformed_webhooks_are_refused_and_not_stored(
    client: Client, container: Container, fake_stripe: FakeStripe
) -> None:
    event = stripe_event("payment_intent.succeeded", {"id": "pi_x", "object": "payment_intent"})
    wrong = await post_event(client, container, "whsec_wrong", event)
    stale = await post_event(
        client, container, fake_stripe.webhook_secret, event, timestamp=int(time.time()) - 600
    )
    unsigned = await client.post("/api/v1/stripe/webhook", content=b"{}")
    body, signature = signed_webhook({"not": "an event"}, fake_stripe.webhook_secret)
    malformed = await client.post(
        "/api/v1/stripe/webhook", content=body, headers={"Stripe-Signature": signature}
    )
    for answer in (wrong, stale, unsigned, malformed):
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "invalid_webhook"
    assert await pg_scalar(container, sa.select(sa.func.count()).select_from(webhook_events)) == 0


async def test_unknown_type_and_unknown_order_are_stored_and_acknowledged(
    client: Client, container: Container, fake_stripe: FakeStripe
) -> None:
    secret = fake_stripe.webhook_secret
    unknown_type = stripe_event("customer.created", {"id": "cus_1", "object": "customer"})
    unknown_order = stripe_event(
        "payment_intent.succeeded",
        {"id": "pi_not_ours", "object": "payment_intent", "amount": 5, "currency": "usd"},
    )
    for event in (unknown_type, unknown_order):
        assert (await post_event(client, container, secret, event)).status_code == 200
    deadline = time.monotonic() + 5
    while True:
        async with container.uow_factory() as uow:
            stored = {e.event.id: e for e in await uow.inbox.recent(limit=10)}
        if all(s.processed_at for s in stored.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert stored[unknown_type["id"]].outcome == "ignored"
    assert stored[unknown_order["id"]].outcome == "ignored: no order"


async def test_amount_mismatch_is_flagged_and_never_paid(
    client: Client,
    container: Container,
    make_product: MakeProduct,
    receiver: WebhookReceiver,
    fake_stripe: FakeStripe,
) -> None:
    product = await make_product(stock=2)
    auth = await buyer(client)
    started = await checkout(client, auth, await hold(client, auth, (product.id, 1)))
    # The order says one amount, the PaymentIntent another (tampering, a bug).
    async with clients(container).engine.begin() as connection:
        await connection.execute(
            orders.update()
            .where(orders.c.id == uuid.UUID(started["order_id"]))
            .values(amount_cents=999)
        )
    await confirm_intent(fake_stripe, started["payment_intent_id"])
    await relay(
        client, container, receiver, started["payment_intent_id"], "payment_intent.succeeded"
    )
    deadline = time.monotonic() + 5
    while not (order := await order_of(client, auth, started["order_id"]))["flagged"]:
        assert time.monotonic() < deadline, order
        await asyncio.sleep(0.05)
    assert order["status"] == "payment_pending"
    assert (await container.gate.state(product.id)).sold == 0
    await assert_invariants(container, fake_stripe)


# --------------------------------------------------------------------------- expiry, late


async def test_expiry_with_a_pending_intent_cancels_it_through_the_outbox(
    client: Client, container: Container, make_product: MakeProduct, fake_stripe: FakeStripe
) -> None:
    product = await make_product(stock=3)
    auth = await buyer(client)
    reservation_id = await hold(client, auth, (product.id, 3))
    started = await checkout(client, auth, reservation_id)
    await expire_now(container, reservation_id)
    assert (await order_of(client, auth, started["order_id"]))["status"] == "expired"
    assert (await container.gate.state(product.id)).available == 3  # stock back at once
    done = await drain_outbox(container.payment_deps)
    assert (done.done, done.failed) == (1, 0)
    intent = await PaymentDeps.provider(container.payment_deps).get_intent(
        started["payment_intent_id"]
    )
    assert intent.status == "canceled"
    await assert_invariants(container, fake_stripe)


async def test_expiry_is_not_blocked_by_a_stripe_outage(
    settings: Settings,
    store_urls: StoreUrls,
    client: Client,
    container: Container,
    make_product: MakeProduct,
    fake_stripe: FakeStripe,
) -> None:
    product = await make_product(stock=2)
    auth = await buyer(client)
    reservation_id = await hold(client, auth, (product.id, 2))
    started = await checkout(client, auth, reservation_id)
    # Stripe goes away: nothing answers on its address.
    down = changed(
        settings,
        {"stripe_api_base": f"http://127.0.0.1:{free_port()}", "stripe_timeout_seconds": 0.5},
    )
    cut_off = await bootstrap(down, store_urls)
    try:
        await expire_now(cut_off, reservation_id)
        assert (await cut_off.gate.state(product.id)).available == 2
        failed = await drain_outbox(cut_off.payment_deps)
        assert (failed.done, failed.failed) == (0, 1)
    finally:
        await cut_off.close()
    # Back: the outbox item is retried (made due now) and the intent canceled.
    async with clients(container).engine.begin() as connection:
        await connection.execute(payment_outbox.update().values(next_attempt_at=sa.func.now()))
    assert (await drain_outbox(container.payment_deps)).done == 1
    intent = await PaymentDeps.provider(container.payment_deps).get_intent(
        started["payment_intent_id"]
    )
    assert intent.status == "canceled"
    await assert_invariants(container, fake_stripe)


async def test_late_payment_with_stock_left_is_kept(
    client: Client,
    container: Container,
    make_product: MakeProduct,
    receiver: WebhookReceiver,
    fake_stripe: FakeStripe,
) -> None:
    product = await make_product(stock=5)
    auth = await buyer(client)
    reservation_id = await hold(client, auth, (product.id, 2))
    started = await checkout(client, auth, reservation_id)
    await expire_now(container, reservation_id)
    await confirm_intent(fake_stripe, started["payment_intent_id"])  # before the cancel ran
    await relay(
        client, container, receiver, started["payment_intent_id"], "payment_intent.succeeded"
    )
    await wait_for_status(client, auth, started["order_id"], "paid")
    state = await container.gate.state(product.id)
    assert (state.available, state.sold) == (3, 2)
    # The outbox's cancel now meets a succeeded intent: done, nothing undone.
    assert (await drain_outbox(container.payment_deps)).done == 1
    assert (await order_of(client, auth, started["order_id"]))["status"] == "paid"
    await assert_invariants(container, fake_stripe)


async def test_late_payment_without_stock_is_refunded_automatically(
    client: Client,
    container: Container,
    make_product: MakeProduct,
    receiver: WebhookReceiver,
    fake_stripe: FakeStripe,
) -> None:
    product = await make_product(stock=2)
    auth = await buyer(client)
    reservation_id = await hold(client, auth, (product.id, 2))
    started = await checkout(client, auth, reservation_id)
    await expire_now(container, reservation_id)
    other = await buyer(client)
    await hold(client, other, (product.id, 2))  # the stock went to someone else
    await confirm_intent(fake_stripe, started["payment_intent_id"])
    await relay(
        client, container, receiver, started["payment_intent_id"], "payment_intent.succeeded"
    )
    order = await wait_for_status(client, auth, started["order_id"], "refunded")
    assert "late payment" in order["failure_reason"]
    await drain_outbox(container.payment_deps)
    # A duplicate of the event (and the stuck task) refunds nothing twice.
    await relay(
        client, container, receiver, started["payment_intent_id"], "payment_intent.succeeded"
    )
    await drain_outbox(container.payment_deps)
    listed = await _refunds(fake_stripe, started["payment_intent_id"])
    assert len(listed) == 1 and listed[0]["amount"] == started["amount_cents"]
    state = await container.gate.state(product.id)
    assert (state.available, state.sold) == (0, 0)
    await assert_invariants(container, fake_stripe)


async def _refunds(fake: FakeStripe, intent_id: str) -> list[dict[str, Any]]:
    import httpx

    async with httpx.AsyncClient(
        base_url=fake.api_base, headers={"Authorization": f"Bearer {SECRET_KEY}"}
    ) as api:
        answer = await api.get("/v1/refunds", params={"payment_intent": intent_id})
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


async def test_a_webhook_that_never_arrives_is_settled_by_the_stuck_order_task(
    client: Client, container: Container, make_product: MakeProduct, fake_stripe: FakeStripe
) -> None:
    product = await make_product(stock=2)
    auth = await buyer(client)
    started = await checkout(client, auth, await hold(client, auth, (product.id, 1)))
    await confirm_intent(fake_stripe, started["payment_intent_id"])  # no webhook relayed
    report = await settle_stuck_orders(container.payment_deps, older_than_seconds=0)
    assert "paid" in report.outcomes
    assert (await order_of(client, auth, started["order_id"]))["status"] == "paid"
    assert (await container.gate.state(product.id)).sold == 1
    await assert_invariants(container, fake_stripe)


# --------------------------------------------------------------------------- Redis lost


class FlushingGate:
    """The real gate, but Redis loses the product's keys just before the sale reaches it."""

    def __init__(self, container: Container, product_id: int) -> None:
        self._gate = container.gate
        self._container = container
        self._product_id = product_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gate, name)

    async def convert(self, reservation: Any, mode: ConvertMode) -> ConvertStatus:
        keys = Keys(self._container.settings.redis_prefix)
        await clients(self._container).redis.delete(*keys.product_with_sales(self._product_id))
        raise StoreUnavailable("redis")


async def test_redis_flushed_between_payment_and_conversion_is_repaired(
    client: Client, container: Container, make_product: MakeProduct, fake_stripe: FakeStripe
) -> None:
    product = await make_product(stock=3)
    auth = await buyer(client)
    started = await checkout(client, auth, await hold(client, auth, (product.id, 2)))
    await confirm_intent(fake_stripe, started["payment_intent_id"])
    deps = container.payment_deps
    flushing = PaymentDeps(
        uow_factory=deps.uow_factory,
        gate=FlushingGate(container, product.id),
        payments=deps.payments,
        queue=None,
        clock=deps.clock,
        hold_seconds=deps.hold_seconds,
        payment_hold_seconds=deps.payment_hold_seconds,
    )
    with pytest.raises(StoreUnavailable):
        await settle_stuck_orders(flushing, older_than_seconds=0)
    assert (await order_of(client, auth, started["order_id"]))["status"] == "paid"
    await reconcile(
        uow_factory=container.uow_factory,
        gate=container.gate,
        clock=container.clock,
        grace_seconds=30,
        fix=True,
    )
    state = await container.gate.state(product.id)
    assert (state.available, state.sold, state.holds) == (1, 2, {})
    # No unit returned, none sold twice: only one is left to take.
    other = await buyer(client)
    refused = await client.post(
        "/api/v1/reservations",
        json={"items": [{"product_id": product.id, "quantity": 2}]},
        headers=other,
    )
    assert refused.status_code == 409
    await assert_invariants(container, fake_stripe)


# --------------------------------------------------------------------------- refunds, disputes


async def test_refund_in_stripe_returns_unfulfilled_units_once_and_dispute_flags(
    client: Client,
    container: Container,
    make_product: MakeProduct,
    receiver: WebhookReceiver,
    fake_stripe: FakeStripe,
) -> None:
    product = await make_product(stock=2, price_cents=700)
    auth = await buyer(client)
    started = await checkout(client, auth, await hold(client, auth, (product.id, 2)))
    intent_id = started["payment_intent_id"]
    await confirm_intent(fake_stripe, intent_id)
    await relay(client, container, receiver, intent_id, "payment_intent.succeeded")
    await wait_for_status(client, auth, started["order_id"], "paid")
    secret = fake_stripe.webhook_secret
    charge = refunded_charge(intent_id, 1400, refund_ids=("re_test_full",))
    refund_event = stripe_event("charge.refunded", charge)
    assert (await post_event(client, container, secret, refund_event)).status_code == 200
    order = await wait_for_status(client, auth, started["order_id"], "refunded")
    assert order["failure_reason"]
    # Replayed under another event id (Stripe retries with the same id; a replay by an
    # operator may not): the refund id keeps the units from coming back twice.
    again = stripe_event("charge.refunded", charge)
    assert (await post_event(client, container, secret, again)).status_code == 200
    await asyncio.sleep(0.3)
    state = await container.gate.state(product.id)
    assert (state.available, state.sold) == (2, 0)
    returned = await pg_scalar(
        container,
        sa.text(
            "SELECT sum(quantity) FROM stock_ledger"
            " WHERE kind = 'refund_returned' AND product_id = :p"
        ).bindparams(p=product.id),
    )
    assert returned == 2
    disputed = stripe_event("charge.dispute.created", dispute(intent_id, 1400))
    assert (await post_event(client, container, secret, disputed)).status_code == 200
    deadline = time.monotonic() + 5
    while not (await order_of(client, auth, started["order_id"]))["flagged"]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await assert_invariants(container, fake_stripe)


# --------------------------------------------------------------------------- checkout edges


async def test_release_in_checkout_cancels_the_payment_first_and_refuses_once_paid(
    client: Client, container: Container, make_product: MakeProduct, fake_stripe: FakeStripe
) -> None:
    product = await make_product(stock=4)
    auth = await buyer(client)
    first = await hold(client, auth, (product.id, 1))
    started = await checkout(client, auth, first)
    released = await client.delete(f"/api/v1/reservations/{first}", headers=auth)
    assert released.status_code == 200, released.text
    assert (await order_of(client, auth, started["order_id"]))["status"] == "canceled"
    intent = await PaymentDeps.provider(container.payment_deps).get_intent(
        started["payment_intent_id"]
    )
    assert intent.status == "canceled"
    second = await hold(client, auth, (product.id, 2))
    paying = await checkout(client, auth, second)
    await confirm_intent(fake_stripe, paying["payment_intent_id"])  # webhook not yet applied
    refused = await client.delete(f"/api/v1/reservations/{second}", headers=auth)
    assert refused.status_code == 409
    assert refused.json()["code"] == "payment_in_progress"
    assert (await container.gate.state(product.id)).available == 2  # the hold is intact
    await settle_stuck_orders(container.payment_deps, older_than_seconds=0)
    await assert_invariants(container, fake_stripe)


async def test_checkout_refuses_foreign_released_and_unknown_reservations(
    client: Client, container: Container, make_product: MakeProduct, fake_stripe: FakeStripe
) -> None:
    product = await make_product(stock=4)
    auth, stranger = await buyer(client), await buyer(client)
    mine = await hold(client, auth, (product.id, 1))
    foreign = await client.post(f"/api/v1/reservations/{mine}/checkout", headers=stranger)
    assert foreign.status_code == 404
    unknown = await client.post(f"/api/v1/reservations/{uuid.uuid4()}/checkout", headers=auth)
    assert unknown.status_code == 404
    assert (await client.delete(f"/api/v1/reservations/{mine}", headers=auth)).status_code == 200
    released = await client.post(f"/api/v1/reservations/{mine}/checkout", headers=auth)
    assert released.status_code == 409
    assert released.json()["code"] == "reservation_not_active"
    paid = await checkout(client, auth, await hold(client, auth, (product.id, 1)))
    assert (
        await client.get(f"/api/v1/orders/{paid['order_id']}", headers=stranger)
    ).status_code == 404
    bad = await client.post(
        f"/api/v1/orders/{paid['order_id']}/payment-method",
        json={"payment_method": "4242 4242 4242 4242"},
        headers=auth,
    )
    assert bad.status_code == 422
    assert (await client.post("/api/v1/reservations/x/checkout", headers=auth)).status_code in (
        400,
        404,
    )
    await assert_invariants(container, fake_stripe)


async def test_checkout_with_stripe_unreachable_is_503_and_the_hold_intact(
    settings: Settings, store_urls: StoreUrls, make_product: MakeProduct, container: Container
) -> None:
    product = await make_product(stock=2)
    down = changed(
        settings,
        {"stripe_api_base": f"http://127.0.0.1:{free_port()}", "stripe_timeout_seconds": 0.5},
    )
    app = create_app(down, store_urls)
    async with api_client(app) as cut_off:
        auth = await buyer(cut_off)
        reservation_id = await hold(cut_off, auth, (product.id, 2))
        answer = await cut_off.post(f"/api/v1/reservations/{reservation_id}/checkout", headers=auth)
        assert answer.status_code == 503, answer.text
        assert answer.json()["code"] == "payments_unavailable"
        shown = await cut_off.get(f"/api/v1/reservations/{reservation_id}", headers=auth)
        assert shown.json()["status"] == "active"
    assert (await container.gate.state(product.id)).available == 0


async def test_checkout_without_stripe_is_503_payments_unconfigured(
    settings: Settings, store_urls: StoreUrls, make_product: MakeProduct
) -> None:
    product = await make_product(stock=2)
    bare = changed(
        settings,
        {"stripe_secret_key": None, "stripe_webhook_secret": None, "stripe_api_base": None},
    )
    app = create_app(bare, store_urls)
    async with api_client(app) as plain:
        auth = await buyer(plain)
        reservation_id = await hold(plain, auth, (product.id, 1))
        answer = await plain.post(f"/api/v1/reservations/{reservation_id}/checkout", headers=auth)
        assert answer.status_code == 503
        assert answer.json()["code"] == "payments_unconfigured"
        hook = await plain.post("/api/v1/stripe/webhook", content=b"{}")
        assert hook.status_code == 503


async def test_hostile_input_on_the_payment_endpoints_is_a_4xx_problem(
    client: Client, container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=2)
    auth = await buyer(client)
    started = await checkout(client, auth, await hold(client, auth, (product.id, 1)))
    path = f"/api/v1/orders/{started['order_id']}/payment-method"
    answers = [
        await client.post(path, content=b"{not json", headers=auth),
        await client.post(path, json={"payment_method": 42}, headers=auth),
        await client.post(path, json={"payment_method": "pm_x", "extra": 1}, headers=auth),
        await client.post(path, json={}, headers=auth),
        await client.post(path, json={"payment_method": "pm_" + "a" * 500}, headers=auth),
        await client.post(path, json={"payment_method": "pm_card_visa"}),  # no token
        await client.post(f"/api/v1/reservations/{uuid.uuid4()}/checkout"),  # no token
        await client.get("/api/v1/orders/not-a-uuid", headers=auth),
        await client.post(
            "/api/v1/stripe/webhook", content=b"\xff\xfe", headers={"Stripe-Signature": "t=1,v1=x"}
        ),
    ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert {"type", "title", "status", "detail", "code"} <= answer.json().keys()
    assert (await order_of(client, auth, started["order_id"]))["status"] == "payment_pending"
