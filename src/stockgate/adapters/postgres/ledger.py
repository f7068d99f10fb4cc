"""Ledger repository: append-only rows, written in the same transaction as the movement."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from stockgate.adapters.postgres.tables import stock_ledger
from stockgate.domain.ledger import LedgerEntry


class PostgresLedger:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, entries: Sequence[LedgerEntry]) -> None:
        if entries:
            await self._connection.execute(stock_ledger.insert(), [ledger_row(e) for e in entries])


def ledger_row(entry: LedgerEntry) -> dict[str, object]:
    return {
        "product_id": entry.product_id,
        "kind": entry.kind.value,
        "quantity": entry.quantity,
        "reservation_id": entry.reservation_id,
    }
