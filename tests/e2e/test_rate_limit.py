"""Request limits (STOCKGATE_RATE_LIMIT_*): counted in Redis, so shared by every API node;
the client address taken from X-Forwarded-For only behind trusted proxies."""

from __future__ import annotations

import httpx

from stockgate.config import Settings
from tests.conftest import MakeProduct
from tests.e2e.api_process import running_api
from tests.e2e.conftest import env_for

PATH = "/api/v1/reservations"


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert (body["code"], body["status"]) == ("rate_limited", 429)
    assert body["title"] and body["detail"] and body["type"]
    assert 0 < int(response.headers["retry-after"]) <= 60


async def test_limits_are_shared_by_two_api_nodes_and_take_nothing(
    module_settings: Settings, new_product: MakeProduct
) -> None:
    product = await new_product(stock=10)
    env = env_for(
        module_settings,
        STOCKGATE_RATE_LIMIT_ENABLED="true",
        STOCKGATE_RATE_LIMIT_CUSTOMERS="3/minute",
        STOCKGATE_RATE_LIMIT_HOLDS_PER_CUSTOMER="3/minute",
        STOCKGATE_RATE_LIMIT_HOLDS_PER_ADDRESS="5/minute",
    )
    body = {"items": [{"product_id": product.id, "quantity": 1}]}
    with running_api(env) as first, running_api(env) as second:
        async with (
            httpx.AsyncClient(base_url=first) as a,
            httpx.AsyncClient(base_url=second) as b,
        ):
            created = [
                await a.post("/api/v1/customers"),
                await b.post("/api/v1/customers"),
                await a.post("/api/v1/customers"),
                await b.post("/api/v1/customers"),  # the address's 4th, on another node
            ]
            assert [r.status_code for r in created] == [201, 201, 201, 429]
            assert_limited(created[3])
            buyer = {"Authorization": f"Bearer {created[0].json()['token']}"}
            other = {"Authorization": f"Bearer {created[1].json()['token']}"}
            answers = [
                await a.post(PATH, json=body, headers=buyer),
                await b.post(PATH, json=body, headers=buyer),
                await a.post(PATH, json=body, headers=buyer),
                await b.post(PATH, json=body, headers=buyer),  # the customer's 4th
            ]
            assert [r.status_code for r in answers] == [201, 201, 201, 429]
            assert_limited(answers[3])
            # Another customer has their own count, but shares the address's (5/minute).
            assert (await a.post(PATH, json=body, headers=other)).status_code == 201
            assert_limited(await b.post(PATH, json=body, headers=other))
            # A bad token counts against the address too (still limited, not 401).
            assert_limited(await a.post(PATH, json=body, headers={"Authorization": "Bearer x"}))
            shown = await a.get(f"/api/v1/products/{product.id}")
            assert shown.json()["available"] == 10 - 4  # nothing taken by a refused request


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(
    module_settings: Settings,
) -> None:
    limits = {
        "STOCKGATE_RATE_LIMIT_ENABLED": "true",
        "STOCKGATE_RATE_LIMIT_CUSTOMERS": "2/minute",
    }
    behind_proxy = env_for(module_settings, STOCKGATE_TRUSTED_PROXIES="127.0.0.0/8", **limits)
    with running_api(behind_proxy) as api:
        async with httpx.AsyncClient(base_url=api) as client:

            async def create(forwarded: str) -> int:
                headers = {"X-Forwarded-For": forwarded}
                return (await client.post("/api/v1/customers", headers=headers)).status_code

            assert [await create("203.0.113.1") for _ in range(3)] == [201, 201, 429]
            assert await create("203.0.113.2") == 201  # another buyer behind the same proxy
            # Forging a left-hand hop changes nothing: the proxy appended the real address.
            assert await create("198.51.100.99, 203.0.113.1") == 429
    # Not behind a trusted proxy: the header is ignored, the peer address is the client.
    direct = env_for(module_settings, **limits)
    with running_api(direct) as api:
        async with httpx.AsyncClient(base_url=api) as client:
            statuses = [
                (
                    await client.post(
                        "/api/v1/customers", headers={"X-Forwarded-For": f"192.0.2.{n}"}
                    )
                ).status_code
                for n in range(3)
            ]
            assert statuses == [201, 201, 429]
