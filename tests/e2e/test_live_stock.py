"""Live stock over Socket.IO against real API processes: every change reaches the watchers."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from stockgate.bootstrap import Container
from stockgate.config import Settings
from stockgate.domain.reservation import ReservationLine, ReserveRequest
from stockgate.services.catalog import restock
from stockgate.services.reserve import reserve
from tests.conftest import MakeProduct
from tests.e2e.api_process import STOCKGATE, running_api
from tests.e2e.conftest import env_for
from tests.e2e.live_stock_client import Watcher, levels


@pytest.fixture
async def watcher(api_url: str) -> AsyncIterator[Watcher]:
    client = Watcher()
    await client.connect(api_url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture(scope="module")
def second_api_url(module_settings: Settings) -> Iterator[str]:
    """Another API process on the same stores (two nodes behind a load balancer)."""
    with running_api(env_for(module_settings)) as url:
        yield url


def hold_over_http(base: str, product_id: int, quantity: int) -> dict[str, object]:
    with httpx.Client(base_url=base, timeout=10) as http:
        token = http.post("/api/v1/customers").json()["token"]
        answer = http.post(
            "/api/v1/reservations",
            json={"items": [{"product_id": product_id, "quantity": quantity}]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 201, answer.text
        body: dict[str, object] = answer.json()
        body["token"] = token
        return body


async def test_watch_answers_current_value_then_a_hold_elsewhere_is_seen(
    api_url: str, watcher: Watcher, new_product: MakeProduct
) -> None:
    product = await new_product(stock=10)
    assert levels(await watcher.watch(product.id)) == {product.id: 10}
    await asyncio.to_thread(hold_over_http, api_url, product.id, 3)
    await watcher.wait_for(product.id, 7)


async def test_release_and_restock_from_another_process_reach_the_watcher(
    api_url: str, watcher: Watcher, new_product: MakeProduct, module_container: Container
) -> None:
    product = await new_product(stock=5)
    await watcher.watch(product.id)
    held = await asyncio.to_thread(hold_over_http, api_url, product.id, 2)
    await watcher.wait_for(product.id, 3)
    with httpx.Client(base_url=api_url, timeout=10) as http:
        answer = http.delete(
            f"/api/v1/reservations/{held['id']}",
            headers={"Authorization": f"Bearer {held['token']}"},
        )
        assert answer.status_code == 200, answer.text
    await watcher.wait_for(product.id, 5)
    # This test process is not an API node: its write-only manager publishes through Redis.
    c = module_container
    await restock(
        product.sku,
        4,
        key=f"live-{product.id}",
        uow_factory=c.uow_factory,
        gate=c.gate,
        stock_changes=c.stock_changes,
    )
    await watcher.wait_for(product.id, 9)


async def test_restock_command_reaches_the_watcher(
    module_settings: Settings, watcher: Watcher, new_product: MakeProduct
) -> None:
    product = await new_product(stock=1)
    await watcher.watch(product.id)
    done = await asyncio.to_thread(
        subprocess.run,
        [STOCKGATE, "products", "restock", product.sku, "6"],
        env=env_for(module_settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    await watcher.wait_for(product.id, 7)


async def test_expiry_by_the_worker_gives_the_watcher_its_stock_back(
    module_settings: Settings,
    module_container: Container,
    watcher: Watcher,
    new_product: MakeProduct,
) -> None:
    product = await new_product(stock=4)
    await watcher.watch(product.id)
    worker = subprocess.Popen(
        [STOCKGATE, "worker", "--role", "expiry"],
        env=env_for(module_settings, STOCKGATE_LOG_LEVEL="info", STOCKGATE_LOG_FORMAT="json"),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stderr is not None
        while "worker.started" not in worker.stderr.readline():
            assert worker.poll() is None, "worker exited"
        short = dataclasses.replace(module_container.reserve_deps, hold_seconds=1)
        await reserve(ReserveRequest(uuid.uuid4(), (ReservationLine(product.id, 3),)), short)
        await watcher.wait_for(product.id, 1)
        await watcher.wait_for(product.id, 4, timeout=6)  # expired about a second later
    finally:
        worker.terminate()
        assert worker.wait(10) == 0


async def test_a_burst_of_changes_arrives_coalesced_with_the_last_value_right(
    module_container: Container, watcher: Watcher, new_product: MakeProduct
) -> None:
    product = await new_product(stock=1000)
    await watcher.watch(product.id)
    deps = module_container.reserve_deps
    line = (ReservationLine(product.id, 1),)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(10):  # 300 holds in ten waves, each wave one gate pipeline
        await asyncio.gather(
            *(reserve(ReserveRequest(uuid.uuid4(), line), deps) for _ in range(30))
        )
    elapsed = loop.time() - started
    await watcher.wait_for(product.id, 700)
    await asyncio.sleep(0.8)  # the settle send, then nothing more
    seen = watcher.values(product.id)
    # One update per 100 ms interval at most (plus the first at once and the settle send).
    assert len(seen) <= elapsed / 0.1 + 3, (len(seen), elapsed)
    assert len(seen) < 300 / 5
    assert seen[-1] == 700
    assert seen == sorted(seen, reverse=True)  # only holds: values never go back up


async def test_a_change_through_one_api_node_reaches_a_watcher_of_another(
    api_url: str, second_api_url: str, new_product: MakeProduct
) -> None:
    product = await new_product(stock=8)
    on_second = Watcher()
    await on_second.connect(second_api_url)
    try:
        assert levels(await on_second.watch(product.id)) == {product.id: 8}
        await asyncio.to_thread(hold_over_http, api_url, product.id, 5)
        await on_second.wait_for(product.id, 3)
    finally:
        await on_second.close()


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "1",
        [1, 2],
        {},
        {"product_ids": []},
        {"product_ids": "1"},
        {"product_ids": ["1"]},
        {"product_ids": [True]},
        {"product_ids": [1.5]},
        {"product_ids": [-1]},
        {"product_ids": [2**70]},
        {"product_ids": [1], "extra": 1},
        {"product_ids": list(range(1, 200))},
        {"product_ids": [987654321]},
    ],
)
async def test_invalid_watch_gets_an_error_ack_and_the_connection_lives_on(
    watcher: Watcher, new_product: MakeProduct, payload: object
) -> None:
    answer = await watcher.call("watch", payload)
    assert answer["ok"] is False
    assert answer["error"]["code"] in {"invalid_input", "product_not_found"}
    product = await new_product(stock=2)
    assert levels(await watcher.watch(product.id)) == {product.id: 2}


async def test_unknown_events_and_argument_shapes_get_an_error_ack(watcher: Watcher) -> None:
    assert (await watcher.call("sell_everything", {"x": 1}))["error"]["code"] == "unknown_event"
    assert (await watcher.call("watch"))["error"]["code"] == "invalid_input"
    assert (await watcher.call("watch", {"product_ids": [1]}, 2))["error"]["code"] == (
        "invalid_input"
    )


async def test_unwatch_stops_the_updates(
    api_url: str, watcher: Watcher, new_product: MakeProduct
) -> None:
    product, other = await new_product(stock=5), await new_product(stock=5)
    await watcher.watch(product.id, other.id)
    assert await watcher.call("unwatch", {"product_ids": [product.id]}) == {"ok": True}
    await asyncio.to_thread(hold_over_http, api_url, product.id, 1)
    await asyncio.to_thread(hold_over_http, api_url, other.id, 1)
    await watcher.wait_for(other.id, 4)
    assert watcher.values(product.id) == []


async def test_a_client_that_reconnects_gets_the_current_value_at_once(
    api_url: str, new_product: MakeProduct
) -> None:
    product = await new_product(stock=6)
    auth = {"product_ids": [product.id]}
    first = Watcher()
    await first.connect(api_url, auth=auth)
    await first.wait_for(product.id, 6)  # sent on connect, no watch needed
    await first.close()
    await asyncio.to_thread(hold_over_http, api_url, product.id, 2)  # while disconnected
    again = Watcher()
    await again.connect(api_url, auth=auth)
    try:
        await again.wait_for(product.id, 4, timeout=2)
    finally:
        await again.close()


async def test_connect_with_a_bad_auth_list_is_told_why_and_stays_usable(
    api_url: str, new_product: MakeProduct
) -> None:
    client = Watcher()
    errors: list[object] = []
    client.client.on("watch_error", errors.append)
    await client.connect(api_url, auth={"product_ids": ["x"]})
    try:
        for _ in range(100):
            if errors:
                break
            await asyncio.sleep(0.02)
        assert errors and errors[0]["code"] == "invalid_input"  # type: ignore[index]
        product = await new_product(stock=3)
        assert levels(await client.watch(product.id)) == {product.id: 3}
    finally:
        await client.close()
