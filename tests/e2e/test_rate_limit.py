"""Per-client limits on customer creation and reservations (STOCKGATE_RATE_LIMIT_*)."""

from __future__ import annotations

import asyncio
import time

import httpx

from stockgate.config import Settings
from tests.conftest import MakeProduct
from tests.e2e.api_process import running_api
from tests.e2e.conftest import env_for


async def test_limits_answer_429_with_retry_after_and_take_nothing(
    module_settings: Settings, new_product: MakeProduct
) -> None:
    product = await new_product(stock=10)
    env = env_for(
        module_settings,
        STOCKGATE_RATE_LIMIT_ENABLED="true",
        STOCKGATE_RATE_LIMIT_PER_MINUTE="3",
    )
    with running_api(env) as api:
        # The window is a wall-clock minute: do not straddle its end.
        if time.time() % 60 > 50:
            await asyncio.sleep(61 - time.time() % 60)
        async with httpx.AsyncClient(base_url=api) as client:
            created = [await client.post("/api/v1/customers") for _ in range(4)]
            assert [r.status_code for r in created] == [201, 201, 201, 429]
            limited = created[3]
            assert limited.headers["content-type"].startswith("application/problem+json")
            assert limited.json()["code"] == "rate_limited"
            assert 0 < int(limited.headers["retry-after"]) <= 60
            buyer = {"Authorization": f"Bearer {created[0].json()['token']}"}
            body = {"items": [{"product_id": product.id, "quantity": 1}]}
            answers = [
                await client.post("/api/v1/reservations", json=body, headers=buyer)
                for _ in range(4)
            ]
            assert [r.status_code for r in answers] == [201, 201, 201, 429]
            assert answers[3].json()["code"] == "rate_limited"
            assert int(answers[3].headers["retry-after"]) > 0
            other = {"Authorization": f"Bearer {created[1].json()['token']}"}
            # Limits are per customer: someone else is not affected.
            assert (
                await client.post("/api/v1/reservations", json=body, headers=other)
            ).status_code == 201
            shown = await client.get(f"/api/v1/products/{product.id}")
            assert shown.json()["available"] == 6
