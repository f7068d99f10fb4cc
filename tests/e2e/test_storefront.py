"""The storefront at `/` in real headless Chromium against a real `stockgate api`: the cart on
screen (add with a quantity, countdown, reload keeps it, remove a line, release all), clear
messages for sold out and limit reached, a phone-sized screen used by keyboard, security
headers, and no console errors. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import expect

from stockgate.domain.product import Product
from tests.conftest import MakeProduct
from tests.e2e.browser import Tab, chromium, open_tab

WAIT_MS = 10_000


async def add(tab: Tab, product: Product, quantity: int) -> None:
    item = tab.page.locator(f'.product[data-product-id="{product.id}"]')
    await item.get_by_label("Quantity").fill(str(quantity))
    await item.get_by_role("button", name="Add to cart").click()


async def available_on(tab: Tab, product: Product) -> str:
    item = tab.page.locator(f'.product[data-product-id="{product.id}"] .available')
    return await item.inner_text()


# Chromium logs every 4xx answer as a console error; a 409 is how the API says "sold out",
# "limit reached" or "already in the cart", which the page shows as a message.
EXPECTED_REFUSAL = "the server responded with a status of 409 (Conflict)"


def assert_no_console_errors(tab: Tab, api_url: str) -> None:
    assert [e for e in tab.errors if EXPECTED_REFUSAL not in e] == []


async def test_page_answers_with_security_headers_and_serves_its_packages(
    api_url: str, new_product: MakeProduct
) -> None:
    await new_product(stock=3, name="<b>Bold</b> & co")
    async with httpx.AsyncClient(base_url=api_url) as client:
        page = await client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        for path in (
            "/static/vendor/htmx/htmx.min.js",
            "/static/vendor/socket.io/socket.io.min.js",
            "/static/storefront/app.js",
            "/static/storefront/app.css",
        ):
            served = await client.get(path)
            assert served.status_code == 200, path
            assert served.headers["x-content-type-options"] == "nosniff"
        assert (await client.get("/static/vendor/htmx/../../../pyproject.toml")).status_code == 404
        catalog = (await client.get("/storefront/catalog")).text
        assert "&lt;b&gt;Bold&lt;/b&gt; &amp; co" in catalog and "<b>Bold" not in catalog


async def test_cart_on_screen_survives_a_reload_and_explains_refusals(
    api_url: str, new_product: MakeProduct
) -> None:
    shirt = await new_product(stock=10, limit=3, name="Drop shirt")
    poster = await new_product(stock=2, name="Poster")
    async with chromium() as browser:
        tab = await open_tab(browser, api_url)
        page = tab.page
        await expect(page.locator(".product")).not_to_have_count(0, timeout=WAIT_MS)

        await add(tab, shirt, 2)
        await expect(page.locator("#cart-lines li")).to_have_count(1, timeout=WAIT_MS)
        await expect(page.locator("#cart-lines")).to_contain_text("2 × Drop shirt")
        await expect(page.locator("#countdown")).to_have_text(re.compile(r"^\d+:\d\d$"))
        await add(tab, poster, 3)  # more than there is
        await expect(page.locator("#message")).to_contain_text("Only 2 of Poster left")
        await add(tab, shirt, 1)
        await expect(page.locator("#message")).to_contain_text("already in your cart")
        await add(tab, poster, 2)
        await expect(page.locator("#cart-lines li")).to_have_count(2, timeout=WAIT_MS)
        await tab.screenshot("storefront-cart-desktop")

        await page.reload()
        await expect(page.locator("#cart-lines li")).to_have_count(2, timeout=WAIT_MS)
        await page.get_by_role("button", name="Remove Drop shirt").click()
        await expect(page.locator("#cart-lines li")).to_have_count(1, timeout=WAIT_MS)
        await add(tab, shirt, 3)
        await expect(page.locator("#cart-lines li")).to_have_count(2, timeout=WAIT_MS)

        other = await open_tab(browser, api_url)  # another buyer: the limit is per customer
        await add(other, shirt, 3)
        await expect(other.page.locator("#cart-lines li")).to_have_count(1, timeout=WAIT_MS)
        await other.page.get_by_role("button", name="Release all").click()
        await expect(other.page.locator("#cart-empty")).to_be_visible(timeout=WAIT_MS)
        await expect(other.page.locator("#message")).to_contain_text("back on sale")

        await page.get_by_role("button", name="Release all").click()
        await expect(page.locator("#cart-empty")).to_be_visible(timeout=WAIT_MS)
        async with httpx.AsyncClient(base_url=api_url) as client:
            for product, stock in ((shirt, 10), (poster, 2)):
                shown = (await client.get(f"/api/v1/products/{product.id}")).json()
                assert shown["available"] == stock
        assert_no_console_errors(tab, api_url)
        assert_no_console_errors(other, api_url)


async def test_limit_reached_is_explained(api_url: str, new_product: MakeProduct) -> None:
    limited = await new_product(stock=10, limit=2, name="Limited")
    other = await new_product(stock=10, name="Other")
    async with chromium() as browser:
        tab = await open_tab(browser, api_url)
        await expect(tab.page.locator(".product")).not_to_have_count(0, timeout=WAIT_MS)
        await add(tab, other, 1)
        await expect(tab.page.locator("#cart-lines li")).to_have_count(1, timeout=WAIT_MS)
        await add(tab, limited, 3)
        await expect(tab.page.locator("#message")).to_contain_text(
            "Limit reached: at most 2 of Limited per customer", timeout=WAIT_MS
        )
        await tab.screenshot("storefront-limit-reached")
        assert_no_console_errors(tab, api_url)


async def test_phone_sized_screen_works_by_keyboard(api_url: str, new_product: MakeProduct) -> None:
    product = await new_product(stock=5, name="Phone case")
    async with chromium() as browser:
        tab = await open_tab(browser, api_url, phone=True)
        page = tab.page
        item = page.locator(f'.product[data-product-id="{product.id}"]')
        await expect(item).to_be_visible(timeout=WAIT_MS)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
        quantity = item.get_by_label("Quantity")
        await quantity.focus()
        await page.keyboard.press("Control+A")
        await page.keyboard.type("2")
        await page.keyboard.press("Tab")  # to the Add button
        focused = await page.evaluate("document.activeElement.textContent")
        assert focused == "Add to cart"
        await page.keyboard.press("Enter")
        await expect(page.locator("#cart-lines")).to_contain_text("2 × Phone case", timeout=WAIT_MS)
        box = await page.get_by_role("button", name="Checkout").bounding_box()
        assert box is not None and box["height"] >= 44  # a finger-sized target
        await tab.screenshot("storefront-phone")
        assert_no_console_errors(tab, api_url)
