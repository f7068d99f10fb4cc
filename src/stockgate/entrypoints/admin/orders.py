"""Orders: filter by status, search by order or customer id, and one order in detail."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, Response, get

from stockgate.domain.errors import NotFound
from stockgate.domain.order import OrderStatus
from stockgate.entrypoints.admin.forms import parse_uuid
from stockgate.entrypoints.admin.paging import PAGE_SIZE, cursor, parse_uuid_cursor
from stockgate.entrypoints.admin.web import render, session_of, state_of


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
    async with container.uow_factory() as uow:
        order = await uow.orders.get(order_id)
        history = await uow.orders.history(order_id) if order is not None else []
    if order is None:
        raise NotFound(f"no order {order_id}")
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
    )


ORDER_ROUTES = [orders_page, order_page]
