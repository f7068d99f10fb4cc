"""HTTP handlers: thin — parse, call a service, shape the answer."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stockgate.adapters import metrics
from stockgate.domain.errors import Unauthorized
from stockgate.entrypoints.http.health import readiness
from stockgate.entrypoints.http.payments import ROUTES as PAYMENT_ROUTES
from stockgate.entrypoints.http.schemas import (
    CustomerOut,
    ProductOut,
    ReservationIn,
    ReservationOut,
    decode_body,
)
from stockgate.entrypoints.http.state import api, client_address, customer_of, limit_holds
from stockgate.services import cart, catalog
from stockgate.services.ports import CUSTOMERS_PER_ADDRESS, HOLDS_PER_ADDRESS
from stockgate.services.reserve import get_reservation, release


@get("/healthz", tags=["operations"], summary="The process is alive.")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["operations"], summary="PostgreSQL and Redis are reachable (else 503).")
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    return await readiness(api(request).container.probe)


@get("/metrics", tags=["operations"], summary="Prometheus metrics.", include_in_schema=True)
async def metrics_endpoint() -> Response[bytes]:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@get("/openapi.json", include_in_schema=False)
async def openapi_schema(request: Request[Any, Any, Any]) -> Response[bytes]:
    schema = request.app.openapi_schema.to_schema()
    return Response(msgspec.json.encode(schema), media_type="application/vnd.oai.openapi+json")


@post("/api/v1/customers", tags=["customers"], summary="Create a guest customer and its token.")
async def create_customer(request: Request[Any, Any, Any]) -> CustomerOut:
    state = api(request)
    await state.container.rate_limits.hit(CUSTOMERS_PER_ADDRESS, client_address(request, state))
    issued = state.container.tokens.issue()
    return CustomerOut(str(issued.customer_id), issued.token)


@get("/api/v1/products", tags=["products"], summary="All products with what is available now.")
async def list_products(request: Request[Any, Any, Any]) -> list[ProductOut]:
    container = api(request).container
    views = await catalog.list_products(uow_factory=container.uow_factory, gate=container.gate)
    return [ProductOut.of(view) for view in views]


@get("/api/v1/products/{product_id:int}", tags=["products"], summary="One product.")
async def get_product(request: Request[Any, Any, Any], product_id: int) -> ProductOut:
    container = api(request).container
    view = await catalog.get_product(
        product_id, uow_factory=container.uow_factory, gate=container.gate
    )
    return ProductOut.of(view)


@get("/api/v1/reservations/{reservation_id:uuid}", tags=["reservations"], summary="Own only.")
async def show_reservation(
    request: Request[Any, Any, Any], reservation_id: uuid.UUID
) -> ReservationOut:
    state = api(request)
    reservation = await get_reservation(
        reservation_id, customer_of(request, state), uow_factory=state.container.uow_factory
    )
    return ReservationOut.of(reservation)


@delete(
    "/api/v1/reservations/{reservation_id:uuid}",
    tags=["reservations"],
    summary="Give a reservation back; its stock is available again.",
    status_code=200,
)
async def release_reservation(
    request: Request[Any, Any, Any], reservation_id: uuid.UUID
) -> ReservationOut:
    state = api(request)
    container = state.container
    released = await release(
        reservation_id,
        customer_of(request, state),
        journal=container.journal,
        uow_factory=container.uow_factory,
        gate=container.gate,
        stock_changes=container.stock_changes,
        payments=container.payments,
    )
    metrics.HOLDS_RELEASED.inc()
    return ReservationOut.of(released)


@post(
    "/api/v1/reservations/{reservation_id:uuid}/items",
    tags=["reservations"],
    summary="Add products to an active reservation (the cart): all lines or none.",
    description=(
        "Same gate call and per-customer limits as a new reservation. 409 `already_in_cart` "
        "for a product the reservation holds (remove the line, then add it again), "
        "`reservation_expired`, `reservation_in_checkout` or `reservation_not_active` when it "
        "can no longer change, `sold_out` / `limit_exceeded` as for a new reservation."
    ),
    status_code=200,
)
async def add_reservation_items(
    request: Request[Any, Any, Any], reservation_id: uuid.UUID
) -> ReservationOut:
    state = api(request)
    client = client_address(request, state)
    try:
        customer_id = customer_of(request, state)
    except Unauthorized:
        await state.container.rate_limits.hit(HOLDS_PER_ADDRESS, client)
        raise
    await limit_holds(state, client, customer_id)
    data = decode_body(await request.body(), ReservationIn)
    grown = await cart.add_items(
        reservation_id, customer_id, data.lines(), state.container.reserve_deps
    )
    return ReservationOut.of(grown)


@delete(
    "/api/v1/reservations/{reservation_id:uuid}/items/{product_id:int}",
    tags=["reservations"],
    summary="Give back one line of an active reservation; removing the last line releases it.",
    status_code=200,
)
async def remove_reservation_item(
    request: Request[Any, Any, Any], reservation_id: uuid.UUID, product_id: int
) -> ReservationOut:
    state = api(request)
    smaller = await cart.remove_item(
        reservation_id, customer_of(request, state), product_id, state.container.reserve_deps
    )
    return ReservationOut.of(smaller)


ROUTES = [
    healthz,
    readyz,
    metrics_endpoint,
    openapi_schema,
    create_customer,
    list_products,
    get_product,
    show_reservation,
    release_reservation,
    add_reservation_items,
    remove_reservation_item,
    *PAYMENT_ROUTES,
]
