"""The cart endpoints of a real `stockgate api`: add lines, remove one, and clear 409/404/422
problems for everything that cannot change a cart (state unchanged each time)."""

from __future__ import annotations

import httpx

from tests.conftest import MakeProduct
from tests.e2e.test_http_api import assert_problem, new_customer


async def available(client: httpx.AsyncClient, product_id: int) -> int:
    response = await client.get(f"/api/v1/products/{product_id}")
    value: int = response.json()["available"]
    return value


async def test_cart_grows_and_shrinks_through_the_api(
    api_url: str, new_product: MakeProduct
) -> None:
    a, b, c = await new_product(stock=5), await new_product(stock=5), await new_product(stock=1)
    async with httpx.AsyncClient(base_url=api_url) as client:
        buyer = await new_customer(client)
        body = {"items": [{"product_id": a.id, "quantity": 1}]}
        cart = (await client.post("/api/v1/reservations", json=body, headers=buyer)).json()
        items = f"/api/v1/reservations/{cart['id']}/items"

        grown = await client.post(
            items, json={"items": [{"product_id": b.id, "quantity": 2}]}, headers=buyer
        )
        assert grown.status_code == 200, grown.text
        assert grown.json()["items"] == [
            {"product_id": a.id, "quantity": 1},
            {"product_id": b.id, "quantity": 2},
        ]
        assert grown.json()["expires_at"] == cart["expires_at"]
        assert await available(client, b.id) == 3

        again = await client.post(
            items, json={"items": [{"product_id": b.id, "quantity": 1}]}, headers=buyer
        )
        assert assert_problem(again, 409, "already_in_cart")["product_id"] == b.id
        sold_out = await client.post(
            items,
            json={"items": [{"product_id": c.id, "quantity": 2}]},
            headers=buyer,
        )
        assert assert_problem(sold_out, 409, "sold_out")["available"] == 1
        assert await available(client, b.id) == 3 and await available(client, c.id) == 1

        removed = await client.delete(f"{items}/{b.id}", headers=buyer)
        assert removed.status_code == 200, removed.text
        assert removed.json()["items"] == [{"product_id": a.id, "quantity": 1}]
        assert await available(client, b.id) == 5
        assert_problem(await client.delete(f"{items}/{b.id}", headers=buyer), 404, "item_not_found")

        last = await client.delete(f"{items}/{a.id}", headers=buyer)
        assert last.json()["status"] == "released" and last.json()["items"] == []
        ended = await client.post(
            items, json={"items": [{"product_id": b.id, "quantity": 1}]}, headers=buyer
        )
        assert_problem(ended, 409, "reservation_not_active")
        assert await available(client, a.id) == 5 and await available(client, b.id) == 5


async def test_bad_cart_requests_are_problems(api_url: str, new_product: MakeProduct) -> None:
    a = await new_product(stock=5)
    async with httpx.AsyncClient(base_url=api_url) as client:
        buyer, stranger = await new_customer(client), await new_customer(client)
        body = {"items": [{"product_id": a.id, "quantity": 1}]}
        cart = (await client.post("/api/v1/reservations", json=body, headers=buyer)).json()
        items = f"/api/v1/reservations/{cart['id']}/items"
        line = {"items": [{"product_id": a.id + 1000, "quantity": 1}]}

        assert_problem(await client.post(items, json=line), 401, "unauthorized")
        assert_problem(
            await client.post(items, json=line, headers=stranger), 404, "reservation_not_found"
        )
        assert_problem(
            await client.delete(f"{items}/{a.id}", headers=stranger), 404, "reservation_not_found"
        )
        invalid: list[object] = [
            {"items": []},
            {"items": [{"product_id": "1", "quantity": 1}]},
            {"items": [{"product_id": a.id, "quantity": 0}]},
            {"items": [{"product_id": a.id, "quantity": 1, "x": 1}]},
            [1, 2],
        ]
        for bad in invalid:
            assert_problem(await client.post(items, json=bad, headers=buyer), 422, "invalid_input")
        malformed = await client.post(
            items, content=b"{nope", headers={**buyer, "content-type": "application/json"}
        )
        assert_problem(malformed, 400, "malformed_json")
        assert_problem(await client.post(items, json=line, headers=buyer), 422, "unknown_product")
        assert_problem(
            await client.post("/api/v1/reservations/not-a-uuid/items", json=line, headers=buyer),
            404,
            "not_found",
        )
        assert_problem(
            await client.delete(f"{items}/not-a-number", headers=buyer), 404, "not_found"
        )
        shown = await client.get(f"/api/v1/reservations/{cart['id']}", headers=buyer)
        assert shown.json()["items"] == [{"product_id": a.id, "quantity": 1}]
        assert await available(client, a.id) == 4
