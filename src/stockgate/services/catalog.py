"""Catalog use cases: add and restock products, show them with what is available."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from stockgate.domain.errors import ProductNotFound, StoreUnavailable
from stockgate.domain.product import NewProduct, Product, check_restock_key, check_stock_amount
from stockgate.services.ports import StockChanges, StockGate, UnitOfWorkFactory

MAX_PRODUCT_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ProductView:
    product: Product
    available: int


async def add_product(
    new: NewProduct, *, uow_factory: UnitOfWorkFactory, gate: StockGate
) -> Product:
    async with uow_factory() as uow:
        product = await uow.products.add(new)  # writes the stock_added ledger entry too
        # Until the gate is loaded: a restock committed after ours but before the load would
        # find no counter, and the load from our snapshot would leave its units out.
        await uow.lock_stock(new.sku)
        totals = await uow.products.totals(product.id)
        await uow.commit()
        if totals is not None:
            await gate.load(totals)
    return product


@dataclass(frozen=True, slots=True)
class Restocked:
    product: Product
    key: str
    added: bool  # False: this key was applied before; nothing changed now
    gate_updated: bool  # False: committed, but the gate could not be told; the repair will


def new_restock_key() -> str:
    """A key for a restock whose operator gave none (printed, so a rerun can reuse it)."""
    return f"restock-{uuid.uuid4().hex}"


async def restock(
    sku: str,
    quantity: int,
    *,
    key: str,
    uow_factory: UnitOfWorkFactory,
    gate: StockGate,
    stock_changes: StockChanges | None = None,
) -> Restocked:
    """Add units to a product once per key: a rerun with the same key changes nothing, so an
    operator who does not know whether a restock went through runs it again (decision 0017)."""
    check_stock_amount(quantity, "restock quantity", minimum=1)
    check_restock_key(key)
    async with uow_factory() as uow:
        # Held across the commit and the gate call: a product's restocks reach the gate in the
        # order of their versions. Out of order, the gate would skip the older one as counted
        # already, and its units would wait for the reconciler.
        await uow.lock_stock(sku)
        added = await uow.products.restock(sku, quantity, key)
        await uow.commit()
        # Commit first, then the gate: a crash in between leaves drift the reconciler repairs;
        # the version makes a late or repeated adjustment a no-op once it has been counted
        # (so a rerun of a key whose gate call failed brings the gate up to date too).
        try:
            await gate.add_stock(added.product.id, quantity, added.version)
        except StoreUnavailable:
            # The restock is done: PostgreSQL has it. Failing here would make a careful
            # operator rerun it; the repair (reconcile) brings the gate up to date.
            return Restocked(added.product, key, added=added.new, gate_updated=False)
    if stock_changes is not None:
        stock_changes.changed([added.product.id])
    return Restocked(added.product, key, added=added.new, gate_updated=True)


async def list_products(*, uow_factory: UnitOfWorkFactory, gate: StockGate) -> list[ProductView]:
    async with uow_factory() as uow:
        products = await uow.products.list()
    return await _with_available(products, uow_factory=uow_factory, gate=gate)


async def get_product(
    product_id: int, *, uow_factory: UnitOfWorkFactory, gate: StockGate
) -> ProductView:
    if not 1 <= product_id <= MAX_PRODUCT_ID:  # beyond PostgreSQL's bigint: surely unknown
        raise ProductNotFound(product_id)
    async with uow_factory() as uow:
        product = await uow.products.get(product_id)
    if product is None:
        raise ProductNotFound(product_id)
    (view,) = await _with_available([product], uow_factory=uow_factory, gate=gate)
    return view


async def ensure_loaded(
    product_id: int, *, uow_factory: UnitOfWorkFactory, gate: StockGate
) -> bool:
    """Load a product into the gate from PostgreSQL; False when no such product exists."""
    async with uow_factory() as uow:
        totals = await uow.products.totals(product_id)
    if totals is None:
        return False
    await gate.load(totals)
    return True


async def _with_available(
    products: Sequence[Product], *, uow_factory: UnitOfWorkFactory, gate: StockGate
) -> list[ProductView]:
    available = await gate.available([p.id for p in products])
    missing = [pid for pid, count in available.items() if count is None]
    for product_id in missing:
        await ensure_loaded(product_id, uow_factory=uow_factory, gate=gate)
    if missing:
        available.update(await gate.available(missing))
    return [ProductView(p, max(available.get(p.id) or 0, 0)) for p in products]
