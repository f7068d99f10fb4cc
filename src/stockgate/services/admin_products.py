"""Operators' product actions from the dashboard, each written to the audit log.

The stock arithmetic is the catalog's (services/catalog.py); this module adds who did it and
the record before and after, and the change of a product's terms (price, limit).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from stockgate.domain.errors import InvalidInput, ProductNotFound
from stockgate.domain.product import MAX_PRICE_CENTS, MAX_STOCK, NewProduct, Product
from stockgate.services import catalog
from stockgate.services.ports import AuditLog, StockChanges, StockGate, UnitOfWorkFactory


def product_record(product: Product) -> dict[str, Any]:
    return asdict(product)


async def create_product(
    actor: str, new: NewProduct, *, uow_factory: UnitOfWorkFactory, gate: StockGate, audit: AuditLog
) -> Product:
    product = await catalog.add_product(new, uow_factory=uow_factory, gate=gate)
    await audit.add(actor, "product.create", product.sku, after=product_record(product))
    return product


async def restock_product(
    actor: str,
    sku: str,
    quantity: int,
    key: str,
    *,
    uow_factory: UnitOfWorkFactory,
    gate: StockGate,
    audit: AuditLog,
    stock_changes: StockChanges | None = None,
) -> catalog.Restocked:
    """The catalog's keyed restock (a form sent twice, or a retry, adds nothing the second
    time), written to the audit log either way."""
    done = await catalog.restock(
        sku, quantity, key=key, uow_factory=uow_factory, gate=gate, stock_changes=stock_changes
    )
    product = done.product
    before = {
        **product_record(product),
        "stock": product.stock - quantity if done.added else product.stock,
    }
    await audit.add(
        actor,
        "product.restock",
        sku,
        before=before,
        after={**product_record(product), "quantity": quantity, "key": key, "added": done.added},
    )
    return done


async def change_terms(
    actor: str,
    product_id: int,
    *,
    price_cents: int,
    limit_per_customer: int | None,
    uow_factory: UnitOfWorkFactory,
    gate: StockGate,
    audit: AuditLog,
) -> Product:
    """New price for holds made from now on (existing holds and orders keep theirs) and the
    per-customer limit, which the gate applies to the next take."""
    if not 0 <= price_cents <= MAX_PRICE_CENTS:
        raise InvalidInput(f"price in cents must be between 0 and {MAX_PRICE_CENTS}")
    if limit_per_customer is not None and not 1 <= limit_per_customer <= MAX_STOCK:
        raise InvalidInput("limit per customer must be a positive integer, or empty for none")
    async with uow_factory() as uow:
        product = await uow.products.get(product_id)
        if product is None:
            raise ProductNotFound(product_id)
        # The stock lock orders this gate update with restocks and loads of the product.
        await uow.lock_stock(product.sku)
        before, after = await uow.products.set_terms(
            product_id, price_cents=price_cents, limit_per_customer=limit_per_customer
        )
        totals = await uow.products.totals(product_id)
        await uow.commit()
        if totals is not None and before.limit_per_customer != after.limit_per_customer:
            # The gate keeps the limit beside the counter; set_total rewrites it from this
            # snapshot (and the per-customer counts), as the reconciler's fix does.
            await gate.set_total(totals)
    await audit.add(
        actor,
        "product.terms",
        after.sku,
        before=product_record(before),
        after=product_record(after),
    )
    return after
