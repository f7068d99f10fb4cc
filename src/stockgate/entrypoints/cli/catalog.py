"""Catalog commands: build a container, call the catalog service, return plain dicts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from stockgate.bootstrap import Container, bootstrap
from stockgate.config import Settings
from stockgate.domain.product import NewProduct
from stockgate.services import catalog

T = TypeVar("T")


async def with_container(settings: Settings, work: Callable[[Container], Awaitable[T]]) -> T:
    from stockgate.adapters.embedded.stores import embedded_stores

    with embedded_stores(settings) as urls:  # attaches to running stores, else starts them
        container = await bootstrap(settings, urls)
        try:
            return await work(container)
        finally:
            await container.close()


def as_dict(view: catalog.ProductView) -> dict[str, object]:
    p = view.product
    return {
        "id": p.id,
        "sku": p.sku,
        "name": p.name,
        "price_cents": p.price_cents,
        "currency": p.currency,
        "stock": p.stock,
        "available": view.available,
        "limit_per_customer": p.limit_per_customer,
    }


async def add(settings: Settings, new: NewProduct) -> dict[str, object]:
    async def work(c: Container) -> dict[str, object]:
        product = await catalog.add_product(new, uow_factory=c.uow_factory, gate=c.gate)
        return as_dict(
            await catalog.get_product(product.id, uow_factory=c.uow_factory, gate=c.gate)
        )

    return await with_container(settings, work)


async def restock(settings: Settings, sku: str, quantity: int, key: str) -> dict[str, object]:
    async def work(c: Container) -> dict[str, object]:
        done = await catalog.restock(
            sku,
            quantity,
            key=key,
            uow_factory=c.uow_factory,
            gate=c.gate,
            stock_changes=c.stock_changes,
        )
        if done.gate_updated:
            view = await catalog.get_product(
                done.product.id, uow_factory=c.uow_factory, gate=c.gate
            )
            shown = as_dict(view)
        else:  # Redis is down: what is available is not known right now
            shown = {**as_dict(catalog.ProductView(done.product, 0)), "available": None}
        return {
            **shown,
            "restock_key": done.key,
            "added": done.added,
            "gate_updated": done.gate_updated,
        }

    return await with_container(settings, work)


async def list_all(settings: Settings) -> list[dict[str, object]]:
    async def work(c: Container) -> list[dict[str, object]]:
        views = await catalog.list_products(uow_factory=c.uow_factory, gate=c.gate)
        return [as_dict(v) for v in views]

    return await with_container(settings, work)
