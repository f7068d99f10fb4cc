"""The stock ledger: one append-only entry per movement of stock (invariant I4).

An entry moves `quantity` units (never negative) of one product from one place to another
(see domain/stock.py: available, held, sold; `stock_added` brings new units in). What each
kind moves is defined here and nowhere else: `MOVES`. Summing a product's entries through it
gives the levels the ledger vouches for (`levels_from`), which the reconciler compares with
PostgreSQL's reservations and orders. The SQL that writes entries in batches
(adapters/postgres/journal.py) takes its kinds from here; a property test checks it writes
exactly what `Reservation.held_entries()` / `.release()` say.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from stockgate.domain.stock import StockLevels


class LedgerKind(StrEnum):
    STOCK_ADDED = "stock_added"  # new product or restock
    HELD = "held"  # reservation taken
    RELEASED = "released"  # buyer gave a reservation back
    EXPIRED = "expired"  # reservation ran out
    REPAIRED = "repaired"  # reconciler gave back a reservation it could not restore
    SOLD = "sold"  # a paid reservation's units
    REFUND_RETURNED = "refund_returned"  # a refund put sold units back on sale


class Place(StrEnum):
    OUTSIDE = "outside"  # not (yet) part of the stock
    AVAILABLE = "available"
    HELD = "held"
    SOLD = "sold"


# kind -> (from, to): the one definition of what every movement does.
MOVES: Mapping[LedgerKind, tuple[Place, Place]] = {
    LedgerKind.STOCK_ADDED: (Place.OUTSIDE, Place.AVAILABLE),
    LedgerKind.HELD: (Place.AVAILABLE, Place.HELD),
    LedgerKind.RELEASED: (Place.HELD, Place.AVAILABLE),
    LedgerKind.EXPIRED: (Place.HELD, Place.AVAILABLE),
    LedgerKind.REPAIRED: (Place.HELD, Place.AVAILABLE),
    LedgerKind.SOLD: (Place.HELD, Place.SOLD),
    LedgerKind.REFUND_RETURNED: (Place.SOLD, Place.AVAILABLE),
}


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    product_id: int
    kind: LedgerKind
    quantity: int  # units moved, >= 0
    reservation_id: uuid.UUID | None = None
    ref: str | None = None  # the movement's outside key: a restock key, a Stripe refund id


def levels_from(units_by_kind: Mapping[LedgerKind, int]) -> StockLevels:
    """The stock levels a product's ledger adds up to, from its units summed per kind."""
    net = {place: 0 for place in Place}
    for kind, units in units_by_kind.items():
        source, target = MOVES[kind]
        net[source] -= units
        net[target] += units
    return StockLevels(
        stock=net[Place.AVAILABLE] + net[Place.HELD] + net[Place.SOLD],
        held=net[Place.HELD],
        sold=net[Place.SOLD],
    )
