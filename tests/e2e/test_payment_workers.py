"""The money path with real processes: `stockgate api`, `stockgate worker --role all` and the
fake Stripe server sending its webhooks to the API.

hold -> checkout -> pay with a test card (the API's payment-method endpoint, through the SDK)
-> the fake's payment_intent.succeeded webhook -> stored -> a bullmq job applied by the worker
-> paid -> fulfilled. And a webhook that never arrives: the worker's stuck-order task settles
the order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from stockgate.adapters.embedded.fake_stripe import FakeStripe
from stockgate.bootstrap import Container
from stockgate.config import Settings
from tests.conftest import MakeProduct, drift
from tests.e2e.api_process import running_api, running_workers
from tests.e2e.conftest import env_for
from tests.fake_stripe_server import confirm_intent, running_fake_stripe


@pytest.fixture(scope="module")
def own_fake_stripe() -> Iterator[FakeStripe]:
    with running_fake_stripe() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(
    module_settings: Settings, own_fake_stripe: FakeStripe, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = env_for(
        module_settings,
        **own_fake_stripe.environment(),
        STOCKGATE_PAYMENTS_INTERVAL_SECONDS="0.5",
        STOCKGATE_STUCK_ORDER_SECONDS="1",
    )
    with running_api(env) as url:
        own_fake_stripe.register_webhook(f"{url}/api/v1/stripe/webhook", webhook_id="e2e")
        with running_workers(env, "all") as workers:
            yield url
        assert [w.exit_code() for w in workers] == [0]  # SIGTERM: a clean stop


def buyer(api: httpx.Client) -> dict[str, str]:
    answer = api.post("/api/v1/customers")
    assert answer.status_code == 201
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def checkout(api: httpx.Client, auth: dict[str, str], product_id: int, quantity: int) -> Any:
    held = api.post(
        "/api/v1/reservations",
        json={"items": [{"product_id": product_id, "quantity": quantity}]},
        headers=auth,
    )
    assert held.status_code == 201, held.text
    started = api.post(f"/api/v1/reservations/{held.json()['id']}/checkout", headers=auth)
    assert started.status_code == 201, started.text
    return started.json()


def wait_for(api: httpx.Client, auth: dict[str, str], order_id: str, status: str) -> Any:
    deadline = time.monotonic() + 20
    while True:
        order = api.get(f"/api/v1/orders/{order_id}", headers=auth).json()
        if order["status"] == status:
            return order
        assert time.monotonic() < deadline, order
        time.sleep(0.1)


async def test_pay_with_a_test_card_then_webhook_job_paid_and_fulfilled(
    stack: str, module_container: Container, new_product: MakeProduct
) -> None:
    product = await new_product(stock=5)
    with httpx.Client(base_url=stack, timeout=10) as api:
        auth = buyer(api)
        started = checkout(api, auth, product.id, 2)
        paid = api.post(
            f"/api/v1/orders/{started['order_id']}/payment-method",
            json={"payment_method": "pm_card_visa"},
            headers=auth,
        )
        assert paid.status_code == 200, paid.text
        wait_for(api, auth, started["order_id"], "fulfilled")
        shown = api.get(f"/api/v1/products/{product.id}").json()
        assert shown["available"] == 3
    state = await module_container.gate.state(product.id)
    assert (state.sold, state.holds) == (2, {})
    report = await drift(module_container)
    (mine,) = [p for p in report.products if p.product_id == product.id]
    assert (mine.sold, mine.leaked, mine.oversold, mine.ledger_ok) == (2, 0, 0, True)


async def test_a_lost_webhook_is_settled_by_the_workers_stuck_order_task(
    stack: str,
    own_fake_stripe: FakeStripe,
    module_container: Container,
    new_product: MakeProduct,
) -> None:
    product = await new_product(stock=3)
    with httpx.Client(base_url=stack, timeout=10) as api:
        auth = buyer(api)
        # The fake is told no URL for a while: its events for this payment go nowhere.
        own_fake_stripe.register_webhook("http://127.0.0.1:9/nowhere", webhook_id="e2e")
        try:
            started = checkout(api, auth, product.id, 1)
            await confirm_intent(own_fake_stripe, started["payment_intent_id"])
            time.sleep(2)  # the fake has sent (and lost) its events by now
        finally:
            own_fake_stripe.register_webhook(f"{stack}/api/v1/stripe/webhook", webhook_id="e2e")
        wait_for(api, auth, started["order_id"], "fulfilled")
    assert (await module_container.gate.state(product.id)).sold == 1
