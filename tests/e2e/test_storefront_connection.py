"""Connection lost and restored on the storefront: the API goes away under an open page (the
page says so), stock changes meanwhile, the API comes back on the same address (the page says
so and shows the current stock at once)."""

from __future__ import annotations

import uuid

from playwright.async_api import expect

from stockgate.bootstrap import Container
from stockgate.config import Settings
from stockgate.domain.reservation import ReservationLine, ReserveRequest
from stockgate.services.reserve import reserve
from tests.conftest import MakeProduct
from tests.e2e.api_process import free_port, running_api
from tests.e2e.browser import chromium, open_tab
from tests.e2e.conftest import env_for

WAIT_MS = 15_000


async def test_page_tells_connection_lost_then_restored_with_current_stock(
    module_settings: Settings, module_container: Container, new_product: MakeProduct
) -> None:
    product = await new_product(stock=6, name="Comeback")
    env = env_for(module_settings)
    port = free_port()
    async with chromium() as browser:
        with running_api(env, port=port) as url:
            tab = await open_tab(browser, url)
            badge = tab.page.locator("#connection")
            await expect(badge).to_have_text("Live stock.", timeout=WAIT_MS)
            seen = tab.page.locator(f'.product[data-product-id="{product.id}"] .available')
            await expect(seen).to_have_text("6", timeout=WAIT_MS)
        await expect(badge).to_contain_text("Connection lost", timeout=WAIT_MS)
        await tab.screenshot("storefront-connection-lost")
        # Someone else buys while this page is cut off.
        request = ReserveRequest(uuid.uuid4(), (ReservationLine(product.id, 4),))
        await reserve(request, module_container.reserve_deps)
        with running_api(env, port=port):
            await expect(badge).to_contain_text("Connection restored", timeout=WAIT_MS)
            await expect(seen).to_have_text("2", timeout=WAIT_MS)
            await tab.screenshot("storefront-connection-restored")
        # While the API was gone the page's requests failed; that is what it reported.
        errors = [e for e in tab.errors if "ERR_CONNECTION_REFUSED" not in e]
        errors = [e for e in errors if "WebSocket connection to" not in e]
        assert errors == []
