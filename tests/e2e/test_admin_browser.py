"""The admin dashboard in headless Debian Chromium: log in, restock and watch the live
overview rise, replay a webhook event. Screenshots go to test-artifacts/admin/."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.async_api import Browser, Page, async_playwright, expect

from stockgate.bootstrap import Container
from stockgate.config import Settings
from stockgate.services.admins import create_admin
from stockgate.services.ports import PaymentEvent
from tests.conftest import MakeProduct, clients
from tests.e2e.api_process import running_api
from tests.e2e.browser import CHROMIUM, CHROMIUM_FLAGS, artifacts_dir
from tests.e2e.conftest import env_for

PASSWORD = "correct horse battery"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian chromium is not installed (apt-get install chromium)",
)


@pytest.fixture(scope="module")
def admin_api(module_settings: Settings) -> Iterator[str]:
    with running_api(env_for(module_settings)) as url:
        yield url


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


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
    return str(artifacts_dir("admin") / f"{name}.png")


async def log_in(page: Page, admin: str) -> None:
    await page.goto("/admin/products")  # anonymous: sent to the login page first
    await expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    await page.get_by_label("Name").fill(admin)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.screenshot(path=shot("01-login"))
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(re.compile(r"/admin/products$"))


async def test_log_in_restock_and_see_the_live_overview_rise(
    page: Page, admin: str, new_product: MakeProduct, module_container: Container
) -> None:
    product = await new_product(stock=7)
    await log_in(page, admin)

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
    assert (await module_container.gate.available([product.id]))[product.id] == 12


async def test_replay_a_webhook_event(page: Page, admin: str, module_container: Container) -> None:
    event_id = f"evt_{secrets.token_hex(8)}"
    event = PaymentEvent(
        id=event_id,
        type="payment_intent.succeeded",
        created=int(time.time()),
        payment_intent_id=f"pi_{secrets.token_hex(6)}",
        order_id=uuid.uuid4(),
        payload={"id": event_id, "type": "payment_intent.succeeded", "data": {"object": {}}},
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
