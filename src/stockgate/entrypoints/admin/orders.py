"""Orders: filter by status, search by order or customer id, and one order in detail."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect

from stockgate.domain.errors import NotificationFailed
from stockgate.domain.order import OrderStatus
from stockgate.entrypoints.admin.forms import Form, parse_uuid
from stockgate.entrypoints.admin.paging import PAGE_SIZE, cursor, parse_uuid_cursor
from stockgate.entrypoints.admin.web import render, session_of, state_of
from stockgate.services.admin_operations import cancel_order, retry_order
from stockgate.services.order_admin import order_details


@get("/orders", include_in_schema=False)
async def orders_page(request: Request[Any, Any, Any]) -> Response[str]:
    params = request.query_params
    status = params.get("status") or None
    if status is not None and status not in set(OrderStatus):
        status = None
    raw_search = (params.get("q") or "").strip()[:100]
    search = parse_uuid(raw_search)
    message = None
    if raw_search and search is None:
        message = "Search takes a whole order id or customer id (a UUID)."
    rows = []
    if message is None:
        rows = await state_of(request).container.admin_views.orders(
            status=status,
            search=search,
            before=parse_uuid_cursor(params.get("before")),
            limit=PAGE_SIZE + 1,
        )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render(
        "orders.html",
        200 if message is None else 422,
        session=session_of(request),
        page="orders",
        rows=rows,
        statuses=list(OrderStatus),
        status=status,
        q=raw_search,
        message=message,
        next_cursor=cursor(rows[-1].created_at, rows[-1].id) if more and rows else None,
    )


@get("/orders/{order_id:uuid}", include_in_schema=False)
async def order_page(request: Request[Any, Any, Any], order_id: uuid.UUID) -> Response[str]:
    container = state_of(request).container
    details = await order_details(container.uow_factory, order_id)
    order, history = details.order, details.history
    ledger = await container.admin_views.ledger_for(order.reservation_id)
    events = []
    if order.payment_intent_id:
        events = await container.admin_views.webhook_events(
            before=None,
            unprocessed_only=False,
            payment_intent_id=order.payment_intent_id,
            limit=100,
        )
    return render(
        "order.html",
        session=session_of(request),
        page="orders",
        order=order,
        history=history,
        ledger=ledger,
        events=events,
        failed=order.status == OrderStatus.FULFILLMENT_FAILED,
        notice=NOTICES.get(request.query_params.get("done") or ""),
    )


@post("/orders/{order_id:uuid}/retry", include_in_schema=False, status_code=303)
async def retry(request: Request[Any, Any, Any], order_id: uuid.UUID) -> Response[Any]:
    container = state_of(request).container
    try:
        await retry_order(
            session_of(request).username,
            order_id,
            deps=container.fulfill_deps,
            audit=container.audit,
        )
    except NotificationFailed:
        return Redirect(f"/admin/orders/{order_id}?done=retry_failed", status_code=303)
    return Redirect(f"/admin/orders/{order_id}?done=retried", status_code=303)


@post("/orders/{order_id:uuid}/cancel", include_in_schema=False, status_code=303)
async def cancel(request: Request[Any, Any, Any], order_id: uuid.UUID) -> Response[Any]:
    form = Form.of(await request.form())
    if form.values.get("confirm") != "yes":
        return render(
            "confirm.html",
            200,
            session=session_of(request),
            page="orders",
            action=f"/admin/orders/{order_id}/cancel",
            question=(
                f"Cancel order {order_id}, refund the whole payment to the buyer and put its "
                "units back on sale?"
            ),
            fields={},
            back=f"/admin/orders/{order_id}",
        )
    container = state_of(request).container
    await cancel_order(
        session_of(request).username, order_id, deps=container.cancel_deps, audit=container.audit
    )
    return Redirect(f"/admin/orders/{order_id}?done=canceled", status_code=303)


NOTICES = {
    "retried": "Fulfillment retried: the order is fulfilled.",
    "retry_failed": "The retry failed again; the order stays in fulfillment_failed (see history).",
    "canceled": "Canceled: the payment was refunded and the units are back on sale.",
}


ORDER_ROUTES = [orders_page, order_page, retry, cancel]
