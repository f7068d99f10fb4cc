"""A hold expiring on screen: the countdown reaches zero, the buyer is told, the cart empties,
and another buyer's page shows the stock back. A real API (4-second holds) and a real expiry
worker process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import expect

from stockgate.config import Settings
from tests.conftest import MakeProduct
from tests.e2e.api_process import running_api, running_workers
from tests.e2e.browser import chromium, open_tab
from tests.e2e.conftest import env_for
from tests.e2e.test_storefront import add, assert_no_console_errors

HOLD_SECONDS = 4


@pytest.fixture(scope="module")
def short_hold_url(module_settings: Settings) -> Iterator[str]:
    env = env_for(module_settings, STOCKGATE_HOLD_SECONDS=str(HOLD_SECONDS))
    with running_workers(env, "expiry"), running_api(env) as url:
        yield url


async def test_hold_expires_on_screen_and_stock_comes_back_on_the_other_page(
    short_hold_url: str, new_product: MakeProduct
) -> None:
    product = await new_product(stock=3, name="Fleeting")
    async with chromium() as browser:
        buyer = await open_tab(browser, short_hold_url)
        watcher = await open_tab(browser, short_hold_url)
        stock_seen = watcher.page.locator(f'.product[data-product-id="{product.id}"] .available')
        await expect(stock_seen).to_have_text("3", timeout=10_000)

        await add(buyer, product, 3)
        await expect(buyer.page.locator("#cart-lines li")).to_have_count(1, timeout=10_000)
        await expect(stock_seen).to_have_text("0", timeout=10_000)
        sold_out = watcher.page.locator(f'.product[data-product-id="{product.id}"] button')
        await expect(sold_out).to_have_text("Sold out")
        await watcher.screenshot("storefront-watcher-sold-out")

        await expect(buyer.page.locator("#message")).to_contain_text(
            "hold expired", timeout=(HOLD_SECONDS + 5) * 1000
        )
        await expect(buyer.page.locator("#cart-empty")).to_be_visible()
        await buyer.screenshot("storefront-hold-expired")
        await expect(stock_seen).to_have_text("3", timeout=10_000)
        await watcher.screenshot("storefront-watcher-stock-back")
        assert_no_console_errors(buyer, short_hold_url)
        assert_no_console_errors(watcher, short_hold_url)
