"""Paying on the storefront in real Chromium: `stockgate api`, `stockgate worker --role all` and
the fake Stripe server (its Stripe.js stand-in in the page, its webhooks to the API).

One buyer fills a cart and pays with a test card while a second page sees the stock drop; a
declined card shows the error and keeps the cart (also after a reload, with the payment form
offered again)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import expect

from stockgate.adapters.embedded.fake_stripe import FakeStripe
from stockgate.config import Settings
from tests.conftest import MakeProduct
from tests.e2e.api_process import running_api, running_workers
from tests.e2e.browser import Tab, chromium, open_tab
from tests.e2e.conftest import env_for
from tests.e2e.test_storefront import add, assert_no_console_errors
from tests.fake_stripe_server import running_fake_stripe

WAIT_MS = 20_000
GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"


@pytest.fixture(scope="module")
def shop(module_settings: Settings) -> Iterator[str]:
    with running_fake_stripe() as fake:
        yield from _stack(module_settings, fake)


def _stack(settings: Settings, fake: FakeStripe) -> Iterator[str]:
    env = env_for(settings, **fake.environment())
    with running_api(env) as url:
        fake.register_webhook(f"{url}/api/v1/stripe/webhook", webhook_id="storefront")
        with running_workers(env, "all"):
            yield url


async def pay_with(tab: Tab, number: str) -> None:
    card = tab.page.locator("#card-element")
    await card.get_by_label("number").fill(number)
    await card.get_by_label("exp month").fill("12")
    await card.get_by_label("exp year").fill("34")
    await card.get_by_label("cvc").fill("123")
    await tab.page.get_by_role("button", name="Pay now").click()


async def test_buyer_pays_with_a_test_card_while_another_page_sees_the_stock_drop(
    shop: str, new_product: MakeProduct
) -> None:
    hoodie = await new_product(stock=5, name="Hoodie")
    cap = await new_product(stock=4, name="Cap")
    async with chromium() as browser:
        buyer = await open_tab(browser, shop)
        watcher = await open_tab(browser, shop)
        seen = watcher.page.locator(f'.product[data-product-id="{hoodie.id}"] .available')
        await expect(seen).to_have_text("5", timeout=WAIT_MS)

        await add(buyer, hoodie, 2)
        await expect(buyer.page.locator("#cart-lines li")).to_have_count(1, timeout=WAIT_MS)
        await add(buyer, cap, 1)
        await expect(buyer.page.locator("#cart-lines li")).to_have_count(2, timeout=WAIT_MS)
        await expect(seen).to_have_text("3", timeout=WAIT_MS)

        await buyer.page.get_by_role("button", name="Checkout").click()
        await expect(buyer.page.locator("#payment")).to_be_visible(timeout=WAIT_MS)
        await expect(buyer.page.locator("#payment-amount")).to_have_text("45.00 USD")
        await buyer.screenshot("storefront-checkout")
        await pay_with(buyer, GOOD_CARD)
        await expect(buyer.page.locator("#order-status")).to_have_text("fulfilled", timeout=WAIT_MS)
        await expect(buyer.page.locator("#cart-empty")).to_be_visible()
        await buyer.screenshot("storefront-order-fulfilled")
        await expect(seen).to_have_text("3")  # sold: the units do not come back
        await watcher.screenshot("storefront-watcher-after-sale")
        assert_no_console_errors(buyer, shop)
        assert_no_console_errors(watcher, shop)
    async with httpx.AsyncClient(base_url=shop) as client:
        shown = (await client.get(f"/api/v1/products/{cap.id}")).json()
        assert shown["available"] == 3


async def test_declined_card_shows_the_error_and_keeps_the_cart(
    shop: str, new_product: MakeProduct
) -> None:
    product = await new_product(stock=3, name="Sneakers")
    async with chromium() as browser:
        buyer = await open_tab(browser, shop)
        await add(buyer, product, 1)
        await expect(buyer.page.locator("#cart-lines li")).to_have_count(1, timeout=WAIT_MS)
        await buyer.page.get_by_role("button", name="Checkout").click()
        await expect(buyer.page.locator("#payment")).to_be_visible(timeout=WAIT_MS)
        await pay_with(buyer, DECLINED_CARD)
        await expect(buyer.page.locator("#message")).to_contain_text(
            "card was declined", timeout=WAIT_MS
        )
        await expect(buyer.page.locator("#cart-lines li")).to_have_count(1)
        await buyer.screenshot("storefront-card-declined")

        await buyer.page.reload()  # the cart and the pending order survive a reload
        await expect(buyer.page.locator("#cart-lines li")).to_have_count(1, timeout=WAIT_MS)
        await expect(buyer.page.locator("#payment")).to_be_visible(timeout=WAIT_MS)
        await expect(buyer.page.locator("#order-status")).to_have_text("payment pending")
        async with httpx.AsyncClient(base_url=shop) as client:
            shown = (await client.get(f"/api/v1/products/{product.id}")).json()
            assert shown["available"] == 2  # still held for the buyer
        # The declined attempt's 402 is the API's answer, which the page explained.
        buyer.errors[:] = [e for e in buyer.errors if "status of 402" not in e]
        assert_no_console_errors(buyer, shop)
