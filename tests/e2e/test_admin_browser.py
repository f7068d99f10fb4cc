"""The admin dashboard in headless Debian Chromium: log in, restock and watch the live
overview rise, replay a webhook event. Screenshots go to test-artifacts/admin/."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import stripe
from playwright.async_api import Browser, Page, expect

from stockgate.adapters.embedded.fake_stripe import SECRET_KEY, FakeStripe
from stockgate.bootstrap import Container
from stockgate.config import Settings
from stockgate.domain.order import Order
from stockgate.domain.product import Product
from stockgate.domain.reservation import ReservationLine, ReservationStatus, ReserveRequest
from stockgate.services.admins import create_admin
from stockgate.services.ports import ConvertMode, ConvertStatus, PaymentEvent
from stockgate.services.reserve import reserve
from tests.conftest import MakeProduct, clients
from tests.e2e.api_process import STOCKGATE, running_api
from tests.e2e.browser import ARTIFACTS, CHROMIUM, chromium
from tests.e2e.conftest import env_for
from tests.fake_stripe_server import WebhookReceiver, confirm_intent, payments_for

PASSWORD = "correct horse battery"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian chromium is not installed (apt-get install chromium)",
)


@pytest.fixture(scope="module")
def merchant() -> Iterator[WebhookReceiver]:
    """The merchant's endpoint for order notifications; tests make it fail or succeed."""
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def admin_env(
    module_settings: Settings, fake_stripe: FakeStripe, merchant: WebhookReceiver
) -> dict[str, str]:
    return env_for(
        module_settings,
        STOCKGATE_STRIPE_SECRET_KEY=SECRET_KEY,
        STOCKGATE_STRIPE_API_BASE=fake_stripe.api_base,
        STOCKGATE_STRIPE_WEBHOOK_SECRET=fake_stripe.webhook_secret,
        STOCKGATE_MERCHANT_WEBHOOK_URL=merchant.url,
        STOCKGATE_MERCHANT_WEBHOOK_SECRET="whsec_" + base64.b64encode(b"m" * 24).decode(),
    )


@pytest.fixture(scope="module")
def admin_api(admin_env: dict[str, str]) -> Iterator[str]:
    with running_api(admin_env) as url:
        yield url


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def page(browser: Browser, admin_api: str) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=admin_api)
    opened = await context.new_page()
    try:
        yield opened
    finally:
        await context.close()


@pytest.fixture
async def admin(module_container: Container) -> str:
    name = f"ops-{secrets.token_hex(4)}"
    await create_admin(name, PASSWORD, users=module_container.admin_users)
    return name


def shot(name: str) -> str:
    (ARTIFACTS / "admin").mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / "admin" / f"{name}.png")


async def log_in(page: Page, admin: str) -> None:
    await page.goto("/admin/products")  # anonymous: sent to the login page first
    await expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    await page.get_by_label("Name").fill(admin)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.screenshot(path=shot("01-login"))
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(re.compile(r"/admin/products$"))


async def test_log_in_restock_and_see_storefront_and_overview_stock_rise(
    page: Page,
    browser: Browser,
    admin_api: str,
    admin: str,
    new_product: MakeProduct,
    module_container: Container,
) -> None:
    product = await new_product(stock=7)
    await log_in(page, admin)

    # A buyer's storefront, open before the restock (its own browser context: no admin cookie).
    buyer = await (await browser.new_context(base_url=admin_api)).new_page()
    await buyer.goto("/")
    on_sale = buyer.locator(f'li[data-product-id="{product.id}"] .available')
    await expect(on_sale).to_have_text("7")

    overview = await page.context.new_page()
    await overview.goto("/admin")
    available = overview.locator(f'tr[data-sku="{product.sku}"] td.available')
    await expect(available).to_have_text("7")
    await overview.screenshot(path=shot("02-overview-before"))

    row = page.locator(f'tr[data-sku="{product.sku}"]')
    await row.get_by_label(f"Units to add for {product.sku}").fill("5")
    await row.get_by_role("button", name="Restock").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Restocked {product.sku} by 5")
    await expect(page.locator(f'tr[data-sku="{product.sku}"] td.stock')).to_have_text("12")
    await page.screenshot(path=shot("03-products-restocked"))

    # The overview page was not reloaded: its figures refresh on their own.
    await expect(available).to_have_text("12", timeout=10_000)
    await overview.screenshot(path=shot("04-overview-after"))
    # The buyer's page was not reloaded either: live stock (Socket.IO, or its polling fallback).
    await expect(on_sale).to_have_text("12", timeout=15_000)
    await buyer.screenshot(path=shot("04b-storefront-after"))
    await buyer.context.close()
    assert (await module_container.gate.available([product.id]))[product.id] == 12


async def test_replay_a_webhook_event(
    page: Page, admin: str, module_container: Container, admin_env: dict[str, str]
) -> None:
    event_id = f"evt_{secrets.token_hex(8)}"
    intent_id = f"pi_{secrets.token_hex(6)}"
    payload = {
        "id": event_id,
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": intent_id,
                "object": "payment_intent",
                "amount": 1500,
                "currency": "usd",
                "status": "succeeded",
                "metadata": {"order_id": str(uuid.uuid4())},
            }
        },
    }
    event = PaymentEvent(
        id=event_id,
        type="payment_intent.succeeded",
        created=int(time.time()),
        payment_intent_id=intent_id,
        payload=payload,
    )
    async with module_container.uow_factory() as uow:
        assert await uow.inbox.add(event)
        await uow.inbox.processed(event_id, "no such order")
        await uow.commit()

    await log_in(page, admin)
    await page.goto("/admin/webhooks")
    event_row = page.locator(f'tr[data-event="{event_id}"]')
    await expect(event_row.locator("td.status")).to_contain_text("processed")
    await event_row.get_by_role("link", name=event_id).click()
    await expect(page.locator("pre")).to_contain_text("payment_intent.succeeded")
    await page.screenshot(path=shot("05-webhook-event"))
    await page.get_by_role("button", name="Replay…").click()
    await expect(page.get_by_text(f"Apply webhook event {event_id} again?")).to_be_visible()
    await page.screenshot(path=shot("06-webhook-confirm"))
    await page.get_by_role("button", name="Yes, do it").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Replaying {event_id}")
    await page.screenshot(path=shot("07-webhook-replayed"))

    query = sa.text("SELECT processed_at FROM webhook_events WHERE id = :id")
    audit = sa.text("SELECT action FROM audit_log WHERE actor = :a AND target = :t")
    async with clients(module_container).engine.connect() as connection:
        assert (await connection.execute(query, {"id": event_id})).scalar_one() is None
        actions = (await connection.execute(audit, {"a": admin, "t": event_id})).scalars().all()
    assert actions == ["webhook.replay"]
    # Replay asked a payments worker to apply it now (none runs here: the job waits).
    depths = {d.queue: d for d in await module_container.work_queue.depths()}
    assert depths["payments"].waiting + depths["payments"].delayed >= 1

    await page.get_by_role("link", name="Queues").click()
    await expect(page.locator('tr[data-queue="payments"]')).to_be_visible()
    await page.screenshot(path=shot("07b-queues"))

    # A worker applies the replayed event: no order has this payment, so it is acknowledged.
    log = (ARTIFACTS / "admin" / "replay-worker.log").open("w")
    worker = subprocess.Popen(
        [STOCKGATE, "worker", "--role", "fulfillment"],
        env=admin_env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        await page.goto(f"/admin/webhooks/{event_id}")
        status = page.locator("#event-status")
        for _ in range(60):  # the worker's start takes seconds on a busy machine
            if "ignored: no order" in (await status.inner_text()):
                break
            await asyncio.sleep(0.5)
            await page.reload()
        await expect(status).to_have_text("processed: ignored: no order")
        await page.screenshot(path=shot("07c-webhook-applied-again"))
    finally:
        worker.terminate()
        worker.wait(10)
        log.close()


async def failed_paid_order(
    container: Container, product: Product, fake: FakeStripe, quantity: int = 2
) -> Order:
    """A paid order whose fulfillment gave up: held, paid on the fake Stripe, sold (ledger and
    gate), then marked fulfillment_failed, as the payment and fulfillment workers leave it."""
    request = ReserveRequest(uuid.uuid4(), (ReservationLine(product.id, quantity),))
    reservation = await reserve(request, container.reserve_deps)
    now = container.clock.now()
    order = Order.for_reservation(reservation, [product], now=now)
    payments = payments_for(fake)
    try:
        intent = await payments.create_intent(
            order_id=order.id,
            amount_cents=order.amount_cents,
            currency=order.currency,
            customer_id=order.customer_id,
        )
        assert (await confirm_intent(fake, intent.id))["status"] == "succeeded"
    finally:
        await payments.close()
    async with container.uow_factory() as uow:
        converted, entries = reservation.convert()
        await uow.reservations.move(converted, was=ReservationStatus.ACTIVE)
        await uow.ledger.add(entries)
        order = order.with_intent(intent.id, None).mark_paid(now=now)
        order = order.mark_fulfillment_failed("merchant endpoint answered 500")
        await uow.orders.add(order)
        await uow.commit()
    # The gate sells the held units, as the payment worker does once the order is paid.
    assert await container.gate.convert(reservation, ConvertMode.HOLD) is ConvertStatus.CONVERTED
    return order


async def open_failed_order(page: Page, order: Order) -> None:
    await page.get_by_role("link", name="Failed fulfillment").click()
    await page.get_by_role("link", name=str(order.id)).click()
    await expect(page.locator("#order-status")).to_have_text("fulfillment_failed")


async def test_retry_a_failed_fulfillment(
    page: Page,
    admin: str,
    new_product: MakeProduct,
    module_container: Container,
    fake_stripe: FakeStripe,
    merchant: WebhookReceiver,
) -> None:
    product = await new_product(stock=10)
    order = await failed_paid_order(module_container, product, fake_stripe)
    await log_in(page, admin)
    await open_failed_order(page, order)
    await page.screenshot(path=shot("08-failed-order"))

    merchant.status = 500  # still down: the retry fails and says so
    await page.get_by_role("button", name="Retry fulfillment").click()
    await expect(page.get_by_role("status")).to_contain_text("failed again")
    await expect(page.locator("#order-status")).to_have_text("fulfillment_failed")

    merchant.status = 200
    await page.get_by_role("button", name="Retry fulfillment").click()
    await expect(page.get_by_role("status")).to_contain_text("fulfilled")
    await expect(page.locator("#order-status")).to_have_text("fulfilled")
    await page.screenshot(path=shot("09-order-fulfilled"))
    delivery = await merchant.wait_for(lambda body: str(order.id) in json.dumps(body))
    assert delivery.headers.get("webhook-signature")

    audit = sa.text("SELECT after FROM audit_log WHERE actor = :a AND action = 'order.retry'")
    async with clients(module_container).engine.connect() as connection:
        rows = (await connection.execute(audit, {"a": admin})).scalars().all()
    assert [row.get("status", "error") for row in rows] == ["error", "fulfilled"]


async def test_cancel_with_refund_returns_the_money_and_the_stock(
    page: Page,
    admin: str,
    new_product: MakeProduct,
    module_container: Container,
    fake_stripe: FakeStripe,
) -> None:
    product = await new_product(stock=10)
    order = await failed_paid_order(module_container, product, fake_stripe, quantity=3)
    gate = module_container.gate
    assert (await gate.available([product.id]))[product.id] == 7
    await log_in(page, admin)
    await open_failed_order(page, order)

    await page.get_by_role("button", name="Cancel with refund…").click()
    await expect(page.get_by_text("refund the whole payment")).to_be_visible()
    await page.screenshot(path=shot("10-cancel-confirm"))
    await page.get_by_role("button", name="Yes, do it").click()
    await expect(page.get_by_role("status")).to_contain_text("refunded")
    await expect(page.locator("#order-status")).to_have_text("refunded")
    await expect(page.get_by_role("cell", name="refund_returned")).to_be_visible()
    await page.screenshot(path=shot("11-order-refunded"))

    # The money: one refund of the whole payment on the fake Stripe server.
    client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": fake_stripe.api_base})
    assert order.payment_intent_id is not None
    refunds = await client.v1.refunds.list_async({"payment_intent": order.payment_intent_id})
    assert [r.amount for r in refunds.data] == [order.amount_cents]
    # The stock: back on sale in the gate, and written down in the ledger.
    assert (await gate.available([product.id]))[product.id] == 10
    ledger = sa.text(
        "SELECT kind, quantity FROM stock_ledger WHERE reservation_id = :r ORDER BY id"
    )
    async with clients(module_container).engine.connect() as connection:
        rows = (await connection.execute(ledger, {"r": order.reservation_id})).all()
    assert [(r.kind, r.quantity) for r in rows] == [
        ("held", 3),
        ("sold", 3),
        ("refund_returned", 3),
    ]
