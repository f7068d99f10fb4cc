"""The stock ledger: one append-only entry per movement of available stock (invariant I4).

`quantity` is the signed change of *available* units, so for every product
sum(quantity) == stock - sold - held, which the reconciler checks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum


class LedgerKind(StrEnum):
    STOCK_ADDED = "stock_added"  # new product or restock: +n
    HELD = "held"  # reservation taken: -n
    RELEASED = "released"  # buyer gave a reservation back: +n
    EXPIRED = "expired"  # reservation ran out: +n
    REPAIRED = "repaired"  # reconciler gave back a reservation it could not restore: +n


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    product_id: int
    kind: LedgerKind
    quantity: int
    reservation_id: uuid.UUID | None = None
