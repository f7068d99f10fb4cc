"""The OpenAPI description of `POST /api/v1/reservations`, which only the fast path serves.

The endpoint has one implementation (fast_path.py → reservation_answer.py) and no Litestar
route, so Litestar cannot describe it; this module adds it to the app's OpenAPI document
with the same msgspec types the handler encodes. tests/e2e/test_reservation_contract.py
sends every documented case to the running API and validates each answer against this
description, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.enums import ParamType
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    PathItem,
    Reference,
    RequestBody,
    Schema,
)

from stockgate.entrypoints.http.fast_path import PATH
from stockgate.entrypoints.http.problems import PROBLEM
from stockgate.entrypoints.http.schemas import ReservationIn, ReservationOut

COMPONENTS = "#/components/schemas/{name}"


class Problem(msgspec.Struct):
    """application/problem+json (RFC 9457) with a stable machine `code`."""

    type: str
    title: str
    status: int
    detail: str
    code: str


class SoldOutProblem(Problem):
    product_id: int
    available: int


class LimitExceededProblem(Problem):
    product_id: int
    limit: int
    already: int


class UnknownProductProblem(Problem):
    product_id: int


class InvalidInputProblem(Problem):
    """`errors` lists each invalid field when the body's shape was wrong."""


class RateLimitedProblem(Problem):
    retry_after: int


class UnavailableProblem(Problem):
    store: str


def _json(name: str) -> Reference:
    return Reference(ref=COMPONENTS.format(name=name))


def _problem(description: str, *names: str, retry_after: bool = False) -> OpenAPIResponse:
    schema: Reference | Schema = (
        _json(names[0]) if len(names) == 1 else Schema(any_of=[_json(n) for n in names])
    )
    headers: dict[str, OpenAPIHeader | Reference] | None = None
    if retry_after:
        seconds = Schema(type=OpenAPIType.INTEGER)
        headers = {"Retry-After": OpenAPIHeader(description="Seconds to wait.", schema=seconds)}
    return OpenAPIResponse(
        description=description,
        content={PROBLEM: OpenAPIMediaType(schema=schema)},
        headers=headers,
    )


RESPONSES: dict[str, OpenAPIResponse | Reference] = {
    "201": OpenAPIResponse(
        description="Every item is held until `expires_at`. A repeat with the same "
        "Idempotency-Key answers with the original reservation.",
        content={"application/json": OpenAPIMediaType(schema=_json("ReservationOut"))},
    ),
    "400": _problem("`malformed_json`: the body is not JSON.", "Problem"),
    "401": _problem("`unauthorized`: no valid customer token.", "Problem"),
    "409": _problem(
        "`sold_out` (nothing was taken), `limit_exceeded` (the product's per-customer limit), "
        "`idempotency_key_reused` (the key named a different request) or "
        "`request_in_progress` (the original request with this key is still being written).",
        "SoldOutProblem",
        "LimitExceededProblem",
        "Problem",
    ),
    "413": _problem("`body_too_large`: over STOCKGATE_MAX_BODY_BYTES.", "Problem"),
    "422": _problem(
        '`invalid_input` (quantities, item count, types; strict: "2" is not 2) or '
        "`unknown_product`.",
        "InvalidInputProblem",
        "UnknownProductProblem",
    ),
    "429": _problem("`rate_limited`.", "RateLimitedProblem", retry_after=True),
    "503": _problem(
        "`unavailable`: a store is down. Nothing is taken, unless the write's outcome was "
        "unknown: then the reservation either exists or is given back by the reconciler.",
        "UnavailableProblem",
    ),
}


def describe_reservations(openapi: OpenAPI) -> None:
    """Add the endpoint and the schemas it uses to the app's OpenAPI document."""
    _, components = msgspec.json.schema_components(
        [
            ReservationIn,
            ReservationOut,
            Problem,
            SoldOutProblem,
            LimitExceededProblem,
            UnknownProductProblem,
            InvalidInputProblem,
            RateLimitedProblem,
            UnavailableProblem,
        ],
        ref_template=COMPONENTS,
    )
    assert openapi.components is not None
    # Raw JSON schemas: litestar serializes dictionaries as they are.
    schemas: dict[str, Any] = openapi.components.schemas
    schemas.update(components)
    operation = Operation(
        tags=["reservations"],
        summary="Hold every item or none, for STOCKGATE_HOLD_SECONDS.",
        description="Takes every line or none, within each product's per-customer limit. "
        "Send `Authorization: Bearer <token>` from POST /api/v1/customers.",
        operation_id="CreateReservation",
        parameters=[
            Parameter(
                name="Idempotency-Key",
                param_in=ParamType.HEADER,
                required=False,
                description="1-200 visible ASCII characters; a repeat returns the original.",
                schema=Schema(type=OpenAPIType.STRING),
            )
        ],
        request_body=RequestBody(
            required=True,
            content={"application/json": OpenAPIMediaType(schema=_json("ReservationIn"))},
        ),
        responses=RESPONSES,
    )
    openapi.paths = openapi.paths or {}
    openapi.paths[PATH] = PathItem(post=operation)
