"""HTTP handlers of the money path: checkout, the buyer's order, paying it, Stripe webhooks."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import structlog
from litestar import Request, Response, get, post
from litestar.background_tasks import BackgroundTask

from stockgate.domain.errors import InvalidWebhook, StockgateError
from stockgate.domain.order import Order
from stockgate.entrypoints.http.schemas import decode_body
from stockgate.entrypoints.http.state import api, customer_of
from stockgate.services.checkout import checkout, get_order, pay_with
from stockgate.services.payment_events import apply_event, record_webhook
from stockgate.services.payments import PaymentDeps

log = structlog.get_logger(__name__)


class CheckoutOut(msgspec.Struct):
    order_id: uuid.UUID
    payment_intent_id: str | None
    client_secret: str | None
    amount_cents: int
    currency: str
    status: str

    @classmethod
    def of(cls, order: Order) -> CheckoutOut:
        return cls(
            order.id,
            order.payment_intent_id,
            order.client_secret,
            order.amount_cents,
            order.currency,
            order.status.value,
        )


class OrderItemOut(msgspec.Struct):
    product_id: int
    quantity: int
    unit_price_cents: int


class OrderOut(msgspec.Struct):
    id: uuid.UUID
    status: str
    items: list[OrderItemOut]
    amount_cents: int
    currency: str
    reservation_id: uuid.UUID
    payment_intent_id: str | None
    client_secret: str | None
    flagged: bool
    failure_reason: str | None
    created_at: str
    paid_at: str | None
    fulfilled_at: str | None

    @classmethod
    def of(cls, order: Order) -> OrderOut:
        return cls(
            id=order.id,
            status=order.status.value,
            items=[
                OrderItemOut(line.product_id, line.quantity, line.unit_price_cents)
                for line in order.lines
            ],
            amount_cents=order.amount_cents,
            currency=order.currency,
            reservation_id=order.reservation_id,
            payment_intent_id=order.payment_intent_id,
            client_secret=order.client_secret,
            flagged=order.flag is not None,
            failure_reason=order.failure_reason,
            created_at=order.created_at.isoformat(),
            paid_at=order.paid_at.isoformat() if order.paid_at else None,
            fulfilled_at=order.fulfilled_at.isoformat() if order.fulfilled_at else None,
        )


class PaymentMethodIn(msgspec.Struct, forbid_unknown_fields=True):
    payment_method: str


class PaymentOut(msgspec.Struct):
    order_id: uuid.UUID
    payment_intent_id: str
    payment_status: str  # Stripe's PaymentIntent status; the order follows by webhook


def _deps(request: Request[Any, Any, Any]) -> PaymentDeps:
    return api(request).container.payment_deps


@post(
    "/api/v1/reservations/{reservation_id:uuid}/checkout",
    tags=["orders"],
    summary="Create the order and its Stripe PaymentIntent (the same answer if repeated).",
    status_code=201,
)
async def checkout_reservation(
    request: Request[Any, Any, Any], reservation_id: uuid.UUID
) -> CheckoutOut:
    customer_id = customer_of(request, api(request))
    return CheckoutOut.of(await checkout(reservation_id, customer_id, _deps(request)))


@get("/api/v1/orders/{order_id:uuid}", tags=["orders"], summary="The buyer's own order.")
async def show_order(request: Request[Any, Any, Any], order_id: uuid.UUID) -> OrderOut:
    customer_id = customer_of(request, api(request))
    return OrderOut.of(await get_order(order_id, customer_id, _deps(request)))


@post(
    "/api/v1/orders/{order_id:uuid}/payment-method",
    tags=["orders"],
    summary="Pay the order with a payment method from Stripe.js (or a test card's name).",
    status_code=200,
)
async def pay_order(request: Request[Any, Any, Any], order_id: uuid.UUID) -> PaymentOut:
    customer_id = customer_of(request, api(request))
    data = decode_body(await request.body(), PaymentMethodIn)
    intent = await pay_with(order_id, customer_id, data.payment_method, _deps(request))
    return PaymentOut(order_id, intent.id, intent.status)


@post(
    "/api/v1/stripe/webhook",
    tags=["payments"],
    summary="Stripe webhooks: verified, stored, then applied (400 on a bad signature).",
    status_code=200,
)
async def stripe_webhook(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    deps = _deps(request)
    payments = deps.provider()  # 503 payments_unconfigured
    body = await request.body()
    event = payments.verify_event(body, request.headers.get("stripe-signature"))
    added = await record_webhook(event, deps)  # committed before the 2xx; down: 503
    answer = {"received": True, "duplicate": not added}
    if not added:
        return Response(answer, status_code=200)
    if deps.queue is not None:
        try:
            await deps.queue.request_event_processing(event.id)
            return Response(answer, status_code=200)
        except Exception as exc:  # stored already: the sweep applies it
            log.warning("webhook.enqueue_failed", event_id=event.id, error=repr(exc))
    # No job queue: applied right after the answer, in this process (the sweep catches up on
    # whatever fails here).
    return Response(answer, status_code=200, background=BackgroundTask(_apply, event.id, deps))


async def _apply(event_id: str, deps: PaymentDeps) -> None:
    try:
        await apply_event(event_id, deps)
    except StockgateError as exc:
        log.warning("webhook.apply_failed", event_id=event_id, code=exc.code, error=exc.detail)
    except Exception:  # a background task must not die silently; the sweep retries it
        log.exception("webhook.apply_crashed", event_id=event_id)


ROUTES = [checkout_reservation, show_order, pay_order, stripe_webhook]
__all__ = ["ROUTES", "InvalidWebhook"]
