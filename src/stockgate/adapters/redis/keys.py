"""Redis key names. One product's keys share the hash tag {p:<id>}, so one slot in a cluster."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    def stock(self, product_id: int) -> str:
        return f"{self.prefix}:{{p:{product_id}}}:stock"

    def holds(self, product_id: int) -> str:
        return f"{self.prefix}:{{p:{product_id}}}:holds"

    def buyers(self, product_id: int) -> str:
        return f"{self.prefix}:{{p:{product_id}}}:buyers"

    def sales(self, product_id: int) -> str:
        """Reservation id -> units sold: what `convert` keys its idempotence on."""
        return f"{self.prefix}:{{p:{product_id}}}:sales"

    def product_with_sales(self, product_id: int) -> tuple[str, str, str, str]:
        return (*self.product(product_id), self.sales(product_id))

    def product(self, product_id: int) -> tuple[str, str, str]:
        return self.stock(product_id), self.holds(product_id), self.buyers(product_id)

    def idempotency(self, customer_id: uuid.UUID, key: str | None) -> str:
        return f"{self.prefix}:idem:{customer_id.hex}:{key or ''}"

    @property
    def restocked_channel(self) -> str:
        """Published when a product goes from sold out to available."""
        return f"{self.prefix}:restocked"
