"""Product repository: the catalog, restocks and the per-product totals the gate is built from."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from stockgate.adapters.postgres.tables import products, stock_ledger
from stockgate.domain.errors import (
    DuplicateSku,
    ProductNotFound,
    RestockInProgress,
    RestockKeyReused,
)
from stockgate.domain.ledger import LedgerKind, levels_from
from stockgate.domain.product import NewProduct, Product
from stockgate.domain.reservation import Reservation, ReservationLine, ReservationStatus
from stockgate.services.ports import ProductTotals, StockAdded

# One statement, so one snapshot: stock, sold, active reservations and the ledger agree.
TOTALS_SQL = sa.text(
    """
    SELECT p.id, p.sku, p.name, p.price_cents, p.currency, p.stock, p.limit_per_customer,
      (SELECT coalesce(sum(l.quantity), 0) FROM reservation_lines l
         JOIN reservations r ON r.id = l.reservation_id
        WHERE l.product_id = p.id AND r.status = 'converted') AS sold,
      (SELECT coalesce(max(g.id), 0) FROM stock_ledger g
        WHERE g.product_id = p.id AND g.kind = 'stock_added') AS stock_version,
      (SELECT coalesce(json_object_agg(g.kind, g.units), '{}') FROM (
         SELECT kind, sum(quantity) AS units FROM stock_ledger
          WHERE product_id = p.id GROUP BY kind) g) AS ledger_units,
      (SELECT coalesce(json_agg(json_build_array(
                r.id, r.customer_id, l.quantity, r.created_at, r.expires_at)), '[]')
         FROM reservation_lines l JOIN reservations r ON r.id = l.reservation_id
        WHERE l.product_id = p.id AND r.status = 'active') AS active,
      (SELECT coalesce(json_agg(json_build_array(s.customer_id, s.units)), '[]') FROM (
         SELECT r.customer_id, sum(l.quantity) AS units FROM reservation_lines l
           JOIN reservations r ON r.id = l.reservation_id
          WHERE l.product_id = p.id AND r.status = 'converted'
          GROUP BY r.customer_id) s) AS sold_by_customer,
      (SELECT coalesce(json_agg(json_build_array(r.id, l.quantity)), '[]')
         FROM reservation_lines l JOIN reservations r ON r.id = l.reservation_id
        WHERE l.product_id = p.id AND r.status = 'converted') AS sales
    FROM products p WHERE p.id = :product_id
    """
)


class PostgresProducts:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, product: NewProduct) -> Product:
        try:
            async with self._connection.begin_nested():
                row = (
                    await self._connection.execute(
                        products.insert()
                        .values(
                            sku=product.sku,
                            name=product.name,
                            price_cents=product.price_cents,
                            currency=product.currency,
                            stock=product.stock,
                            limit_per_customer=product.limit_per_customer,
                        )
                        .returning(*products.c)
                    )
                ).one()
        except sa_exc.IntegrityError as exc:
            raise DuplicateSku(product.sku) from exc
        await self._stock_added(row.id, product.stock)
        return _product(row)

    async def restock(self, sku: str, quantity: int, key: str) -> StockAdded:
        found = (
            await self._connection.execute(products.select().where(products.c.sku == sku))
        ).one_or_none()
        if found is None:
            raise ProductNotFound(sku)
        earlier = (
            await self._connection.execute(
                sa.select(stock_ledger.c.id, stock_ledger.c.quantity).where(
                    stock_ledger.c.product_id == found.id,
                    stock_ledger.c.kind == LedgerKind.STOCK_ADDED,
                    stock_ledger.c.ref == key,
                )
            )
        ).one_or_none()
        if earlier is not None:
            if earlier.quantity != quantity:
                raise RestockKeyReused(
                    f"restock key {key!r} added {earlier.quantity} units to {sku}, not "
                    f"{quantity}; use a new key for a new restock"
                )
            return StockAdded(_product(found), int(earlier.id), new=False)
        row = (
            await self._connection.execute(
                products.update()
                .where(products.c.id == found.id)
                .values(stock=products.c.stock + quantity)
                .returning(*products.c)
            )
        ).one()
        try:
            version = await self._stock_added(row.id, quantity, ref=key)
        except sa_exc.IntegrityError as exc:
            # The unique (product, kind, ref) index: the same key is being applied right now
            # by someone who did not take the product's stock lock first.
            raise RestockInProgress(f"a restock of {sku} with key {key!r} is in progress") from exc
        return StockAdded(_product(row), version, new=True)

    async def _stock_added(self, product_id: int, quantity: int, *, ref: str | None = None) -> int:
        return int(
            (
                await self._connection.execute(
                    stock_ledger.insert()
                    .values(
                        product_id=product_id,
                        kind=LedgerKind.STOCK_ADDED,
                        quantity=quantity,
                        ref=ref,
                    )
                    .returning(stock_ledger.c.id)
                )
            ).scalar_one()
        )

    async def get(self, product_id: int) -> Product | None:
        row = (
            await self._connection.execute(products.select().where(products.c.id == product_id))
        ).one_or_none()
        return None if row is None else _product(row)

    async def list(self) -> list[Product]:
        rows = await self._connection.execute(products.select().order_by(products.c.id))
        return [_product(row) for row in rows]

    async def totals(self, product_id: int) -> ProductTotals | None:
        row = (await self._connection.execute(TOTALS_SQL, {"product_id": product_id})).one_or_none()
        if row is None:
            return None
        return ProductTotals(
            product=_product(row),
            sold=int(row.sold),
            stock_version=int(row.stock_version),
            ledger=levels_from(
                {LedgerKind(kind): int(units) for kind, units in _object(row.ledger_units).items()}
            ),
            active=[_active(product_id, item) for item in _json(row.active)],
            sold_by_customer={uuid.UUID(c): int(units) for c, units in _json(row.sold_by_customer)},
            sales={uuid.UUID(r): int(units) for r, units in _json(row.sales)},
        )

    async def set_terms(
        self, product_id: int, *, price_cents: int, limit_per_customer: int | None
    ) -> tuple[Product, Product]:
        before = (
            await self._connection.execute(
                products.select().where(products.c.id == product_id).with_for_update()
            )
        ).one_or_none()
        if before is None:
            raise ProductNotFound(product_id)
        after = (
            await self._connection.execute(
                products.update()
                .where(products.c.id == product_id)
                .values(price_cents=price_cents, limit_per_customer=limit_per_customer)
                .returning(*products.c)
            )
        ).one()
        return _product(before), _product(after)


def _product(row: Any) -> Product:
    return Product(
        id=row.id,
        sku=row.sku,
        name=row.name,
        price_cents=row.price_cents,
        currency=row.currency,
        stock=row.stock,
        limit_per_customer=row.limit_per_customer,
    )


def _json(value: Any) -> list[Any]:
    return json.loads(value) if isinstance(value, str) else list(value)


def _object(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


def _active(product_id: int, item: list[Any]) -> Reservation:
    """A reservation as seen from one product: only that product's line."""
    reservation_id, customer_id, quantity, created_at, expires_at = item
    return Reservation(
        id=uuid.UUID(reservation_id),
        customer_id=uuid.UUID(customer_id),
        lines=(ReservationLine(product_id, int(quantity)),),
        status=ReservationStatus.ACTIVE,
        created_at=datetime.fromisoformat(created_at),
        expires_at=datetime.fromisoformat(expires_at),
    )
