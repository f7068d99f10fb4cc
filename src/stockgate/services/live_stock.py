"""Live stock: what a watcher is told when it starts watching products.

The updates themselves come from the StockChanges port (services mark changed products; the
feed sends their latest values). A client that starts (or restarts, after a reconnect) watching
gets the current values at once, from here.
"""

from __future__ import annotations

from collections.abc import Sequence

from stockgate.domain.errors import ProductNotFound
from stockgate.services.catalog import MAX_PRODUCT_ID, ensure_loaded
from stockgate.services.ports import StockGate, UnitOfWorkFactory

STOCK_EVENT = "stock"  # the event watchers get: {"product_id", "available"}


def room_of(product_id: int) -> str:
    """The Socket.IO room of a product's watchers."""
    return f"product:{product_id}"


class KnownProducts:
    """Product ids this node has seen in PostgreSQL. Products are never deleted (a trigger
    forbids it), so an id once known stays valid and a repeated watch costs no query."""

    def __init__(self, max_size: int = 100_000) -> None:
        self._ids: set[int] = set()
        self._max_size = max_size

    def __contains__(self, product_id: int) -> bool:
        return product_id in self._ids

    def add(self, product_id: int) -> None:
        if len(self._ids) >= self._max_size:
            self._ids.clear()  # bounded memory; they are looked up again when watched
        self._ids.add(product_id)


async def current_available(
    product_ids: Sequence[int],
    *,
    uow_factory: UnitOfWorkFactory,
    gate: StockGate,
    known: KnownProducts,
) -> dict[int, int]:
    """Available stock of each product now; raises ProductNotFound naming an unknown one."""
    for product_id in product_ids:
        if not 1 <= product_id <= MAX_PRODUCT_ID:
            raise ProductNotFound(product_id)
    unchecked = [pid for pid in product_ids if pid not in known]
    if unchecked:
        async with uow_factory() as uow:
            for product_id in unchecked:
                if await uow.products.get(product_id) is None:
                    raise ProductNotFound(product_id)
                known.add(product_id)
    levels = await gate.available(product_ids)
    missing = [pid for pid, count in levels.items() if count is None]
    for product_id in missing:  # a new product or a flushed Redis: build it from PostgreSQL
        await ensure_loaded(product_id, uow_factory=uow_factory, gate=gate)
    if missing:
        levels.update(await gate.available(missing))
    return {pid: max(levels.get(pid) or 0, 0) for pid in product_ids}
