"""What operators read about orders (the CLI's `stockgate orders`, the admin pages): lists by
status and one order with its history. Changing orders: services/fulfill.py (retry) and
services/cancel.py (cancel with refund)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from stockgate.domain.order import Order, OrderStatus
from stockgate.services.fulfill import OrderNotFound
from stockgate.services.ports import OrderEvent, UnitOfWorkFactory


@dataclass(frozen=True, slots=True)
class OrderDetails:
    order: Order
    history: list[OrderEvent]


async def list_orders(
    uow_factory: UnitOfWorkFactory,
    statuses: Sequence[OrderStatus] = (),
    *,
    after: uuid.UUID | None = None,
    limit: int = 100,
) -> list[Order]:
    """Orders in these statuses (every status when none is given), oldest first."""
    async with uow_factory() as uow:
        return await uow.orders.with_status(
            list(statuses) or list(OrderStatus), after=after, limit=limit
        )


async def order_details(uow_factory: UnitOfWorkFactory, order_id: uuid.UUID) -> OrderDetails:
    async with uow_factory() as uow:
        order = await uow.orders.get(order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return OrderDetails(order, await uow.orders.history(order_id))
