"""The HTTP API end to end: a real `stockgate api` process on real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from stockgate.bootstrap import Container
from stockgate.services.customers import CustomerTokens
from tests.conftest import MakeProduct, clients

PROBLEM = "application/problem+json"


async def new_customer(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post("/api/v1/customers")
    assert response.status_code == 201
    body = response.json()
    uuid.UUID(body["customer_id"])
    return {"Authorization": f"Bearer {body['token']}"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["title"] and body["detail"] and body["type"]
    return body


async def reservation_rows(container: Container, product_id: int) -> int:
    """Reservations ever made of one product (tests share a module's database)."""
    query = sa.text("SELECT count(*) FROM reservation_lines WHERE product_id = :id")
    async with clients(container).engine.connect() as connection:
        count = await connection.scalar(query, {"id": product_id})
    return int(count or 0)


async def test_health_readiness_metrics_and_docs(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}
        schema = (await client.get("/openapi.json")).json()
        assert "/api/v1/reservations" in schema["paths"]
        docs = await client.get("/docs")
        assert docs.status_code == 200 and "html" in docs.headers["content-type"]
        metrics = (await client.get("/metrics")).text
        assert "stockgate_http_request_duration_seconds_bucket" in metrics
        assert 'route="/healthz"' in metrics
        assert (await client.get("/healthz")).headers["x-request-id"]


async def test_unknown_route_and_method_are_problems(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        assert_problem(await client.get("/no/such/route"), 404, "not_found")
        assert_problem(await client.put("/api/v1/customers"), 405, "method_not_allowed")
        assert_problem(await client.get("/api/v1/products/999999"), 404, "product_not_found")
        beyond_bigint = "/api/v1/products/9223372036854775808"
        assert_problem(await client.get(beyond_bigint), 404, "product_not_found")


async def test_reserve_show_release_roundtrip(api_url: str, new_product: MakeProduct) -> None:
    product = await new_product(stock=5)
    async with httpx.AsyncClient(base_url=api_url) as client:
        buyer = await new_customer(client)
        body = {"items": [{"product_id": product.id, "quantity": 2}]}
        created = await client.post("/api/v1/reservations", json=body, headers=buyer)
        assert created.status_code == 201, created.text
        reservation = created.json()
        assert reservation["status"] == "active"
        assert reservation["items"] == [{"product_id": product.id, "quantity": 2}]
        shown = await client.get(f"/api/v1/products/{product.id}")
        assert shown.json()["available"] == 3
        path = f"/api/v1/reservations/{reservation['id']}"
        assert (await client.get(path, headers=buyer)).json()["id"] == reservation["id"]
        released = await client.delete(path, headers=buyer)
        assert released.status_code == 200 and released.json()["status"] == "released"
        assert (await client.get(f"/api/v1/products/{product.id}")).json()["available"] == 5
        again = await client.delete(path, headers=buyer)
        assert_problem(again, 409, "reservation_not_active")
        assert (await client.get(f"/api/v1/products/{product.id}")).json()["available"] == 5


async def test_sold_out_and_limit_answers_carry_the_facts(
    api_url: str, new_product: MakeProduct
) -> None:
    scarce = await new_product(stock=1)
    limited = await new_product(stock=10, limit=2)
    async with httpx.AsyncClient(base_url=api_url) as client:
        buyer = await new_customer(client)
        two = {"items": [{"product_id": scarce.id, "quantity": 2}]}
        problem = assert_problem(
            await client.post("/api/v1/reservations", json=two, headers=buyer), 409, "sold_out"
        )
        assert problem["product_id"] == scarce.id and problem["available"] == 1
        three = {"items": [{"product_id": limited.id, "quantity": 3}]}
        problem = assert_problem(
            await client.post("/api/v1/reservations", json=three, headers=buyer),
            409,
            "limit_exceeded",
        )
        assert problem["limit"] == 2


async def test_someone_elses_reservation_is_not_found(
    api_url: str, new_product: MakeProduct
) -> None:
    product = await new_product(stock=3)
    async with httpx.AsyncClient(base_url=api_url) as client:
        owner, stranger = await new_customer(client), await new_customer(client)
        body = {"items": [{"product_id": product.id, "quantity": 1}]}
        reservation = (await client.post("/api/v1/reservations", json=body, headers=owner)).json()
        path = f"/api/v1/reservations/{reservation['id']}"
        assert_problem(await client.get(path, headers=stranger), 404, "reservation_not_found")
        assert_problem(await client.delete(path, headers=stranger), 404, "reservation_not_found")
        assert (await client.get(f"/api/v1/products/{product.id}")).json()["available"] == 2
        assert (await client.get(path, headers=owner)).json()["status"] == "active"


async def test_idempotency_key_returns_the_original_reservation(
    api_url: str, new_product: MakeProduct, module_container: Container
) -> None:
    product = await new_product(stock=10)
    async with httpx.AsyncClient(base_url=api_url) as client:
        buyer = await new_customer(client)
        headers = {**buyer, "Idempotency-Key": "order-42"}
        body = {"items": [{"product_id": product.id, "quantity": 2}]}
        first = await client.post("/api/v1/reservations", json=body, headers=headers)
        second = await client.post("/api/v1/reservations", json=body, headers=headers)
        assert first.status_code == second.status_code == 201
        assert first.json()["id"] == second.json()["id"]
        other = {"items": [{"product_id": product.id, "quantity": 3}]}
        assert_problem(
            await client.post("/api/v1/reservations", json=other, headers=headers),
            409,
            "idempotency_key_reused",
        )
        assert (await client.get(f"/api/v1/products/{product.id}")).json()["available"] == 8
    assert await reservation_rows(module_container, product.id) == 1


async def test_retry_of_a_success_after_sold_out_gets_the_original_201(
    api_url: str, new_product: MakeProduct, module_container: Container
) -> None:
    product = await new_product(stock=1)
    body = {"items": [{"product_id": product.id, "quantity": 1}]}
    async with httpx.AsyncClient(base_url=api_url) as client:
        buyer = {**(await new_customer(client)), "Idempotency-Key": "checkout-7"}
        first = await client.post("/api/v1/reservations", json=body, headers=buyer)
        assert first.status_code == 201, first.text
        # Someone else finds it sold out, so the node now refuses it from its cache.
        late = await new_customer(client)
        sold_out = await client.post("/api/v1/reservations", json=body, headers=late)
        assert_problem(sold_out, 409, "sold_out")
        retry = await client.post("/api/v1/reservations", json=body, headers=buyer)
        assert retry.status_code == 201, retry.text
        assert retry.json() == first.json()
        # A new key of the late buyer is still refused.
        fresh = {**late, "Idempotency-Key": "another"}
        assert_problem(
            await client.post("/api/v1/reservations", json=body, headers=fresh), 409, "sold_out"
        )
    assert await reservation_rows(module_container, product.id) == 1


BAD_BODIES: list[tuple[str, bytes, int, str]] = [
    ("malformed", b'{"items": [', 400, "malformed_json"),
    ("not an object", b"[1, 2]", 422, "invalid_input"),
    ("no items key", b"{}", 422, "invalid_input"),
    ("empty items", b'{"items": []}', 422, "invalid_input"),
    ("string quantity", b'{"items": [{"product_id": PID, "quantity": "1"}]}', 422, "invalid_input"),
    ("float quantity", b'{"items": [{"product_id": PID, "quantity": 1.5}]}', 422, "invalid_input"),
    ("bool quantity", b'{"items": [{"product_id": PID, "quantity": true}]}', 422, "invalid_input"),
    ("zero quantity", b'{"items": [{"product_id": PID, "quantity": 0}]}', 422, "invalid_input"),
    ("negative", b'{"items": [{"product_id": PID, "quantity": -3}]}', 422, "invalid_input"),
    ("huge", b'{"items": [{"product_id": PID, "quantity": 99999999999}]}', 422, "invalid_input"),
    ("over max", b'{"items": [{"product_id": PID, "quantity": 101}]}', 422, "invalid_input"),
    (
        "unknown field",
        b'{"items": [{"product_id": PID, "quantity": 1, "x": 1}]}',
        422,
        "invalid_input",
    ),
    ("missing qty", b'{"items": [{"product_id": PID}]}', 422, "invalid_input"),
    ("product 0", b'{"items": [{"product_id": 0, "quantity": 1}]}', 422, "invalid_input"),
    (
        "unknown product",
        b'{"items": [{"product_id": 987654, "quantity": 1}]}',
        422,
        "unknown_product",
    ),
    (
        "duplicate product",
        b'{"items": [{"product_id": PID, "quantity": 1}, {"product_id": PID, "quantity": 1}]}',
        422,
        "invalid_input",
    ),
    (
        "51 lines",
        json.dumps({"items": [{"product_id": i, "quantity": 1} for i in range(1, 52)]}).encode(),
        422,
        "invalid_input",
    ),
    ("not utf-8", b'{"items": [\xff\xfe]}', 400, "malformed_json"),
]


@pytest.mark.parametrize(
    ("name", "raw", "status", "code"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
async def test_bad_reservation_input_is_refused_and_takes_nothing(
    api_url: str,
    new_product: MakeProduct,
    module_container: Container,
    name: str,
    raw: bytes,
    status: int,
    code: str,
) -> None:
    product = await new_product(stock=5)
    body = raw.replace(b"PID", str(product.id).encode())
    async with httpx.AsyncClient(base_url=api_url) as client:
        buyer = await new_customer(client)
        headers = {**buyer, "Content-Type": "application/json"}
        response = await client.post("/api/v1/reservations", content=body, headers=headers)
        assert_problem(response, status, code)
        assert (await client.get(f"/api/v1/products/{product.id}")).json()["available"] == 5
    assert await reservation_rows(module_container, product.id) == 0


async def test_missing_tampered_and_expired_tokens_get_401(
    api_url: str, new_product: MakeProduct, module_container: Container
) -> None:
    product = await new_product(stock=5)
    body = {"items": [{"product_id": product.id, "quantity": 1}]}
    secret = module_container.settings.secret_key.get_secret_value()
    expired = CustomerTokens(secret, ttl_seconds=60)
    expired._signer.get_timestamp = lambda: 1_000_000  # type: ignore[method-assign]  # long ago
    async with httpx.AsyncClient(base_url=api_url) as client:
        good = (await new_customer(client))["Authorization"]
        # A signature character that carries data (base64's last one may not).
        tampered = good[:-5] + ("A" if good[-5] != "A" else "B") + good[-4:]
        forged = "Bearer " + CustomerTokens("another-secret", 600).issue().token
        for headers in (
            {},
            {"Authorization": "Basic abc"},
            {"Authorization": "Bearer"},
            {"Authorization": tampered},
            {"Authorization": forged},
            {"Authorization": f"Bearer {expired.issue().token}"},
            {"Authorization": "Bearer " + "x" * 5000},
        ):
            response = await client.post("/api/v1/reservations", json=body, headers=headers)
            assert_problem(response, 401, "unauthorized")
        assert (await client.get(f"/api/v1/products/{product.id}")).json()["available"] == 5
    assert await reservation_rows(module_container, product.id) == 0


async def test_bad_idempotency_key_and_oversized_body(
    api_url: str, new_product: MakeProduct, module_container: Container
) -> None:
    product = await new_product(stock=5)
    body = {"items": [{"product_id": product.id, "quantity": 1}]}
    async with httpx.AsyncClient(base_url=api_url) as client:
        buyer = await new_customer(client)
        bad_key = {**buyer, "Idempotency-Key": "has space"}
        response = await client.post("/api/v1/reservations", json=body, headers=bad_key)
        assert_problem(response, 422, "invalid_input")
        big = b'{"items": [' + b" " * 70_000 + b"]}"  # just over the 64 KiB default
        response = await client.post(
            "/api/v1/reservations",
            content=big,
            headers={**buyer, "Content-Type": "application/json"},
        )
        assert_problem(response, 413, "body_too_large")
        assert_problem(
            await client.get("/api/v1/reservations/not-a-uuid", headers=buyer), 404, "not_found"
        )
    assert await reservation_rows(module_container, product.id) == 0


async def test_chunked_and_declared_length_bodies_reserve_on_one_connection(
    api_url: str, new_product: MakeProduct
) -> None:
    """The fast path reads a body by its Content-Length and stops there, and reads a chunked
    body (no length declared) to its end; the kept-alive connection serves the next request."""
    product = await new_product(stock=5)
    body = json.dumps({"items": [{"product_id": product.id, "quantity": 1}]}).encode()

    async def in_chunks() -> AsyncIterator[bytes]:
        yield body[:7]
        yield body[7:]

    async with httpx.AsyncClient(base_url=api_url) as client:
        buyer = {**await new_customer(client), "Content-Type": "application/json"}
        chunked = await client.post("/api/v1/reservations", content=in_chunks(), headers=buyer)
        assert chunked.request.headers["transfer-encoding"] == "chunked"
        assert chunked.status_code == 201, chunked.text
        for _ in range(3):
            declared = await client.post("/api/v1/reservations", content=body, headers=buyer)
            assert declared.request.headers["content-length"] == str(len(body))
            assert declared.status_code == 201, declared.text
        assert (await client.get(f"/api/v1/products/{product.id}")).json()["available"] == 1


async def test_a_length_beside_chunked_framing_does_not_cut_the_body(
    api_url: str, new_product: MakeProduct
) -> None:
    """The fast path trusts Content-Length to end the body; the server must not pass on one
    sent beside Transfer-Encoding, whose chunks frame the body (RFC 9112 6.3)."""
    product = await new_product(stock=5)
    async with httpx.AsyncClient(base_url=api_url) as client:
        buyer = await new_customer(client)
    body = json.dumps({"items": [{"product_id": product.id, "quantity": 2}]}).encode()
    first, rest = body[:7], body[7:]  # the first chunk is as long as the false length
    chunks = b"7\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (first, len(rest), rest)
    head = (
        "POST /api/v1/reservations HTTP/1.1\r\nHost: stockgate\r\nConnection: close\r\n"
        f"Authorization: {buyer['Authorization']}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n"
    ).encode()
    url = httpx.URL(api_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(head + chunks)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    status_line, _, rest_of_answer = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 201 Created", answer
    reservation = json.loads(rest_of_answer.partition(b"\r\n\r\n")[2])
    assert reservation["items"] == [{"product_id": product.id, "quantity": 2}]
