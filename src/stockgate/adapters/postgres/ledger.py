"""Ledger repository: append-only rows, written in the same transaction as the movement."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from stockgate.domain.ledger import LedgerEntry

# Any number of entries in one statement, built once: the release and expiry paths pay neither
# SQLAlchemy's per-call statement building nor one bound row per entry (executemany).
INSERT_ENTRIES = sa.text(
    """
    INSERT INTO stock_ledger (product_id, kind, quantity, reservation_id, ref)
    SELECT * FROM unnest(:product_ids, :kinds, :quantities, :reservation_ids, :refs)
    """
).bindparams(
    sa.bindparam("product_ids", type_=ARRAY(sa.BigInteger)),
    sa.bindparam("kinds", type_=ARRAY(sa.Text)),
    sa.bindparam("quantities", type_=ARRAY(sa.Integer)),
    sa.bindparam("reservation_ids", type_=ARRAY(UUID(as_uuid=True))),
    sa.bindparam("refs", type_=ARRAY(sa.Text)),
)


class PostgresLedger:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, entries: Sequence[LedgerEntry]) -> None:
        if not entries:
            return
        await self._connection.execute(
            INSERT_ENTRIES,
            {
                "product_ids": [e.product_id for e in entries],
                "kinds": [e.kind.value for e in entries],
                "quantities": [e.quantity for e in entries],
                "reservation_ids": [e.reservation_id for e in entries],
                "refs": [e.ref for e in entries],
            },
        )
