"""Read-only queries of the admin dashboard. Each is bounded: large tables are paged by key."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from stockgate.adapters.postgres.database import is_connection_error
from stockgate.adapters.postgres.tables import orders, stock_ledger, webhook_events
from stockgate.domain.errors import StoreUnavailable
from stockgate.domain.ledger import MOVES, Place
from stockgate.domain.product import Product
from stockgate.services.ports import LedgerRow, OrderSummary, ProductActivity, WebhookRow

# One pass per figure for all products (GROUP BY), each on an index: held through the partial
# index of active reservations; the last minute's holds and orders through their time-ordered
# (UUIDv7) primary keys, so the cost follows the last minute's activity, not the sale's size.
# Sold is what the ledger's movements into and out of "sold" add up to (I4), read through its
# (product_id, kind) index: about 4x cheaper than joining every converted reservation, and it
# still grows with the sale (~0.1 s at 200k sold units), so the page reads it every few seconds.
ACTIVITY_SQL = sa.text(
    """
    WITH held AS (
      SELECT l.product_id, sum(l.quantity) AS units FROM reservations r
        JOIN reservation_lines l ON l.reservation_id = r.id
       WHERE r.status = 'active' GROUP BY l.product_id),
    sold AS (
      SELECT product_id,
             sum(CASE WHEN kind = ANY(:into_sold) THEN quantity ELSE -quantity END) AS units
        FROM stock_ledger WHERE kind = ANY(:sold_kinds) GROUP BY product_id),
    recent AS (
      SELECT product_id, count(*) AS n FROM reservation_lines
       WHERE reservation_id >= :since_id GROUP BY product_id),
    paid AS (
      SELECT ol.product_id, count(*) AS n FROM orders o
        JOIN order_lines ol ON ol.order_id = o.id
       WHERE o.id >= :orders_since_id AND o.paid_at >= :since GROUP BY ol.product_id)
    SELECT p.id, p.sku, p.name, p.price_cents, p.currency, p.stock, p.limit_per_customer,
           coalesce(held.units, 0) AS held, coalesce(sold.units, 0) AS sold,
           coalesce(recent.n, 0) AS holds_last_minute, coalesce(paid.n, 0) AS paid_last_minute
      FROM products p
      LEFT JOIN held ON held.product_id = p.id
      LEFT JOIN sold ON sold.product_id = p.id
      LEFT JOIN recent ON recent.product_id = p.id
      LEFT JOIN paid ON paid.product_id = p.id
     ORDER BY p.id
    """
).bindparams(
    sa.bindparam("into_sold", type_=ARRAY(sa.Text)),
    sa.bindparam("sold_kinds", type_=ARRAY(sa.Text)),
    sa.bindparam("since_id", type_=UUID(as_uuid=True)),
    sa.bindparam("orders_since_id", type_=UUID(as_uuid=True)),
)
INTO_SOLD = [kind.value for kind, (_, to) in MOVES.items() if to is Place.SOLD]
OUT_OF_SOLD = [kind.value for kind, (source, _) in MOVES.items() if source is Place.SOLD]
# An order is paid while its hold lasts (extended while the payment is in flight); orders
# created this long before the window are not looked at for "paid in the last minute".
PAID_LOOKBACK = timedelta(hours=2)


def first_id_at(moment: datetime) -> uuid.UUID:
    """The smallest UUIDv7 made at or after `moment` (its 48 high bits are Unix milliseconds)."""
    return uuid.UUID(int=int(moment.timestamp() * 1000) << 80)


class PostgresAdminViews:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._engine.connect() as connection:
                yield connection
        except Exception as exc:
            if is_connection_error(exc):
                raise StoreUnavailable("postgres") from exc
            raise

    async def activity(self, *, since: datetime) -> list[ProductActivity]:
        async with self._connect() as connection:
            rows = (
                await connection.execute(
                    ACTIVITY_SQL,
                    {
                        "since": since,
                        "into_sold": INTO_SOLD,
                        "sold_kinds": INTO_SOLD + OUT_OF_SOLD,
                        "since_id": first_id_at(since),
                        "orders_since_id": first_id_at(since - PAID_LOOKBACK),
                    },
                )
            ).all()
        return [
            ProductActivity(
                product=Product(
                    id=row.id,
                    sku=row.sku,
                    name=row.name,
                    price_cents=row.price_cents,
                    currency=row.currency,
                    stock=row.stock,
                    limit_per_customer=row.limit_per_customer,
                ),
                held=int(row.held),
                sold=int(row.sold),
                holds_last_minute=int(row.holds_last_minute),
                paid_last_minute=int(row.paid_last_minute),
            )
            for row in rows
        ]

    async def orders(
        self,
        *,
        status: str | None,
        search: uuid.UUID | None,
        before: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[OrderSummary]:
        query = (
            sa.select(
                orders.c.id,
                orders.c.customer_id,
                orders.c.status,
                orders.c.amount_cents,
                orders.c.currency,
                orders.c.created_at,
            )
            .order_by(orders.c.created_at.desc(), orders.c.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(orders.c.status == status)
        if search is not None:
            query = query.where(sa.or_(orders.c.id == search, orders.c.customer_id == search))
        if before is not None:
            query = query.where(sa.tuple_(orders.c.created_at, orders.c.id) < sa.tuple_(*before))
        async with self._connect() as connection:
            rows = (await connection.execute(query)).all()
        return [
            OrderSummary(
                id=row.id,
                customer_id=row.customer_id,
                status=row.status,
                amount_cents=row.amount_cents,
                currency=row.currency,
                created_at=row.created_at,
            )
            for row in rows
        ]

    async def ledger_for(self, reservation_id: uuid.UUID) -> list[LedgerRow]:
        query = (
            sa.select(stock_ledger)
            .where(stock_ledger.c.reservation_id == reservation_id)
            .order_by(stock_ledger.c.id)
            .limit(500)
        )
        async with self._connect() as connection:
            rows = (await connection.execute(query)).all()
        return [
            LedgerRow(
                id=row.id,
                product_id=row.product_id,
                kind=row.kind,
                quantity=row.quantity,
                reservation_id=row.reservation_id,
                ref=row.ref,
                created_at=row.created_at,
            )
            for row in rows
        ]

    async def webhook_events(
        self,
        *,
        before: tuple[datetime, str] | None,
        unprocessed_only: bool,
        payment_intent_id: str | None = None,
        limit: int,
    ) -> list[WebhookRow]:
        columns = [c for c in webhook_events.c if c.name != "payload"]
        query = (
            sa.select(*columns)
            .order_by(webhook_events.c.received_at.desc(), webhook_events.c.id.desc())
            .limit(limit)
        )
        if unprocessed_only:
            query = query.where(webhook_events.c.processed_at.is_(None))
        if before is not None:
            query = query.where(
                sa.tuple_(webhook_events.c.received_at, webhook_events.c.id) < sa.tuple_(*before)
            )
        if payment_intent_id is not None:
            obj = webhook_events.c.payload["data"]["object"]
            query = query.where(
                sa.or_(
                    obj["id"].astext == payment_intent_id,
                    obj["payment_intent"].astext == payment_intent_id,
                )
            )
        async with self._connect() as connection:
            rows = (await connection.execute(query)).all()
        return [_webhook_row(row) for row in rows]

    async def webhook_event(self, event_id: str) -> WebhookRow | None:
        query = sa.select(webhook_events).where(webhook_events.c.id == event_id)
        async with self._connect() as connection:
            row = (await connection.execute(query)).one_or_none()
        return None if row is None else _webhook_row(row, payload=row.payload)


def _webhook_row(row: Any, payload: Any = None) -> WebhookRow:
    return WebhookRow(
        id=row.id,
        type=row.type,
        received_at=row.received_at,
        processed_at=row.processed_at,
        outcome=row.outcome,
        attempts=row.attempts,
        last_error=row.last_error,
        payload=payload or {},
    )
