"""The documented `POST /api/v1/reservations` is what the fast path answers, case by case.

The endpoint's only implementation is the raw ASGI fast path; its OpenAPI description is
written separately (entrypoints/http/reservation_docs.py). Every answer below, success and
each kind of error, must have a documented status and validate against the documented schema
for it (jsonschema, with the document's own components).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from stockgate.config import Settings
from tests.conftest import MakeProduct
from tests.e2e.api_process import free_port, running_api
from tests.e2e.conftest import env_for

PATH = "/api/v1/reservations"


DOCUMENT = "urn:stockgate:openapi"


class Contract:
    """The documented operation, and a validator for its schemas (refs into the document)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.operation = document["paths"][PATH]["post"]
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(DOCUMENT, resource)
        self.checked: set[str] = set()

    def validate(self, schema: dict[str, Any], instance: Any) -> None:
        absolute = json.loads(json.dumps(schema).replace('"#/', f'"{DOCUMENT}#/'))
        jsonschema.Draft202012Validator(absolute, registry=self.registry).validate(instance)

    def check(self, answer: httpx.Response) -> None:
        status = str(answer.status_code)
        documented = self.operation["responses"]
        assert status in documented, f"{status} is not documented: {answer.text}"
        ((media_type, content),) = documented[status]["content"].items()
        assert answer.headers["content-type"].startswith(media_type)
        self.validate(content["schema"], answer.json())
        if "Retry-After" in (documented[status].get("headers") or {}):
            assert int(answer.headers["retry-after"]) > 0
        self.checked.add(status)

    def check_request(self, body: Any) -> None:
        self.validate(self.operation["requestBody"]["content"]["application/json"]["schema"], body)


async def _customer(client: httpx.AsyncClient) -> dict[str, str]:
    token = (await client.post("/api/v1/customers")).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def _items(product_id: int, quantity: int = 1) -> dict[str, Any]:
    return {"items": [{"product_id": product_id, "quantity": quantity}]}


async def test_every_answer_of_the_fast_path_matches_the_openapi_document(
    api_url: str, new_product: MakeProduct
) -> None:
    plenty = await new_product(stock=100, limit=2)
    none_left = await new_product(stock=0)
    async with httpx.AsyncClient(base_url=api_url) as client:
        contract = Contract((await client.get("/openapi.json")).json())
        buyer = await _customer(client)
        body = _items(plenty.id)
        contract.check_request(body)  # the documented request is the one we send

        post = client.post
        taken = await post(PATH, json=body, headers={**buyer, "Idempotency-Key": "k1"})
        assert taken.status_code == 201
        contract.check(taken)
        again = await post(PATH, json=body, headers={**buyer, "Idempotency-Key": "k1"})
        assert again.status_code == 201 and again.json()["id"] == taken.json()["id"]
        contract.check(again)

        cases: list[tuple[int, str, httpx.Response]] = [
            (400, "malformed_json", await post(PATH, content=b"{", headers=buyer)),
            (401, "unauthorized", await post(PATH, json=body)),
            (401, "unauthorized", await post(PATH, json=body, headers={"Authorization": "x"})),
            (409, "sold_out", await post(PATH, json=_items(none_left.id), headers=buyer)),
            (409, "limit_exceeded", await post(PATH, json=_items(plenty.id, 2), headers=buyer)),
            (
                409,
                "idempotency_key_reused",
                await post(
                    PATH, json=_items(plenty.id, 2), headers={**buyer, "Idempotency-Key": "k1"}
                ),
            ),
            (413, "body_too_large", await post(PATH, content=b" " * 70_000, headers=buyer)),
            (
                422,
                "invalid_input",
                await post(
                    PATH,
                    json={"items": [{"product_id": plenty.id, "quantity": "2"}]},
                    headers=buyer,
                ),
            ),
            (422, "invalid_input", await post(PATH, json={"items": []}, headers=buyer)),
            (422, "invalid_input", await post(PATH, json=[1, 2], headers=buyer)),
            (422, "unknown_product", await post(PATH, json=_items(2**61), headers=buyer)),
            (
                422,
                "invalid_input",
                await post(PATH, json=body, headers={**buyer, "Idempotency-Key": "has spaces"}),
            ),
        ]
        for status, code, answer in cases:
            assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
            contract.check(answer)
        assert (await client.get(f"/api/v1/products/{plenty.id}")).json()["available"] == 99
    assert contract.checked >= {"201", "400", "401", "409", "413", "422"}


async def test_rate_limited_and_unavailable_answers_match_the_openapi_document(
    module_settings: Settings, new_product: MakeProduct, redis_server_url: str
) -> None:
    product = await new_product(stock=10)
    limited = env_for(
        module_settings,
        STOCKGATE_RATE_LIMIT_ENABLED="true",
        STOCKGATE_RATE_LIMIT_HOLDS_PER_CUSTOMER="1/minute",
    )
    with running_api(limited) as api:
        async with httpx.AsyncClient(base_url=api) as client:
            contract = Contract((await client.get("/openapi.json")).json())
            buyer = await _customer(client)
            answers = [await client.post(PATH, json=_items(product.id), headers=buyer)]
            answers.append(await client.post(PATH, json=_items(product.id), headers=buyer))
            assert [a.status_code for a in answers] == [201, 429]
            contract.check(answers[1])
    # Redis unreachable: the gate cannot take anything.
    gone = env_for(module_settings, STOCKGATE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with running_api(gone) as api:
        async with httpx.AsyncClient(base_url=api, timeout=15) as client:
            buyer = await _customer(client)
            down = await client.post(PATH, json=_items(product.id), headers=buyer)
            assert down.status_code == 503 and down.json()["code"] == "unavailable"
            contract.check(down)


@pytest.mark.parametrize("status", ["201", "400", "401", "409", "413", "422", "429", "503"])
async def test_each_documented_status_names_its_codes(api_url: str, status: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        operation = (await client.get("/openapi.json")).json()["paths"][PATH]["post"]
    assert operation["responses"][status]["description"]
