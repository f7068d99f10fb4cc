"""Order repository (tables `orders`, `order_lines`, `order_events`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from stockgate.adapters.postgres.tables import order_events, order_lines, orders
from stockgate.domain.order import Flag, Order, OrderLine, OrderStatus
from stockgate.services.ports import OrderEvent

_STATE_COLUMNS = (
    "status",
    "payment_intent_id",
    "client_secret",
    "flag",
    "failure_reason",
    "fulfillment_attempts",
    "paid_at",
    "fulfilled_at",
)


class PostgresOrders:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, order: Order) -> None:
        await self._connection.execute(
            orders.insert().values(
                id=order.id,
                reservation_id=order.reservation_id,
                customer_id=order.customer_id,
                amount_cents=order.amount_cents,
                currency=order.currency,
                created_at=order.created_at,
                **_state(order),
            )
        )
        await self._connection.execute(
            order_lines.insert(),
            [
                {
                    "order_id": order.id,
                    "product_id": line.product_id,
                    "quantity": line.quantity,
                    "unit_price_cents": line.unit_price_cents,
                }
                for line in order.lines
            ],
        )
        await self.record(order.id, "created", amount_cents=order.amount_cents)

    async def get(self, order_id: uuid.UUID, *, lock: bool = False) -> Order | None:
        return await self._one(orders.c.id == order_id, lock)

    async def for_reservation(
        self, reservation_id: uuid.UUID, *, lock: bool = False
    ) -> Order | None:
        return await self._one(orders.c.reservation_id == reservation_id, lock)

    async def for_intent(self, intent_id: str, *, lock: bool = False) -> Order | None:
        return await self._one(orders.c.payment_intent_id == intent_id, lock)

    async def save(self, order: Order) -> None:
        before = await self._connection.execute(
            sa.select(orders.c.status).where(orders.c.id == order.id)
        )
        was = before.scalar_one()
        await self._connection.execute(
            orders.update()
            .where(orders.c.id == order.id)
            .values(updated_at=sa.func.now(), **_state(order))
        )
        if was != order.status.value:
            await self.record(order.id, "status", before=was, after=order.status.value)

    async def with_status(
        self,
        statuses: Sequence[OrderStatus],
        *,
        created_before: datetime | None = None,
        after: uuid.UUID | None = None,
        limit: int = 100,
    ) -> list[Order]:
        query = orders.select().where(orders.c.status.in_([s.value for s in statuses]))
        if created_before is not None:
            query = query.where(orders.c.created_at < created_before)
        if after is not None:
            query = query.where(orders.c.id > after)
        rows = (await self._connection.execute(query.order_by(orders.c.id).limit(limit))).all()
        return await self._with_lines(rows)

    async def pending_for_reservations(self, reservation_ids: Sequence[uuid.UUID]) -> list[Order]:
        if not reservation_ids:
            return []
        rows = (
            await self._connection.execute(
                orders.select()
                .where(orders.c.reservation_id.in_(list(reservation_ids)))
                .where(orders.c.status == OrderStatus.PAYMENT_PENDING.value)
                .order_by(orders.c.id)
                .with_for_update(of=orders)
            )
        ).all()
        return await self._with_lines(rows)

    async def history(self, order_id: uuid.UUID) -> list[OrderEvent]:
        rows = await self._connection.execute(
            order_events.select()
            .where(order_events.c.order_id == order_id)
            .order_by(order_events.c.id)
        )
        return [OrderEvent(row.order_id, row.at, row.kind, row.detail) for row in rows]

    async def record(self, order_id: uuid.UUID, kind: str, **detail: Any) -> None:
        await self._connection.execute(
            order_events.insert().values(order_id=order_id, kind=kind, detail=detail)
        )

    async def _one(self, where: sa.ColumnElement[bool], lock: bool) -> Order | None:
        query = orders.select().where(where)
        if lock:
            query = query.with_for_update(of=orders)
        row = (await self._connection.execute(query)).one_or_none()
        if row is None:
            return None
        (order,) = await self._with_lines([row])
        return order

    async def _with_lines(self, rows: Sequence[Any]) -> list[Order]:
        if not rows:
            return []
        lines: dict[uuid.UUID, list[OrderLine]] = {row.id: [] for row in rows}
        found = await self._connection.execute(
            order_lines.select()
            .where(order_lines.c.order_id.in_(list(lines)))
            .order_by(order_lines.c.order_id, order_lines.c.product_id)
        )
        for line in found:
            lines[line.order_id].append(
                OrderLine(line.product_id, line.quantity, line.unit_price_cents)
            )
        return [_order(row, tuple(lines[row.id])) for row in rows]


def _state(order: Order) -> dict[str, Any]:
    values = {name: getattr(order, name) for name in _STATE_COLUMNS}
    values["status"] = order.status.value
    values["flag"] = order.flag.value if order.flag else None
    return values


def _order(row: Any, lines: tuple[OrderLine, ...]) -> Order:
    return Order(
        id=row.id,
        reservation_id=row.reservation_id,
        customer_id=row.customer_id,
        status=OrderStatus(row.status),
        lines=lines,
        amount_cents=row.amount_cents,
        currency=row.currency,
        created_at=row.created_at,
        payment_intent_id=row.payment_intent_id,
        client_secret=row.client_secret,
        flag=Flag(row.flag) if row.flag else None,
        failure_reason=row.failure_reason,
        fulfillment_attempts=row.fulfillment_attempts,
        paid_at=row.paid_at,
        fulfilled_at=row.fulfilled_at,
    )
