"""The payment outbox (table `payment_outbox`): provider calls made later, until done."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from stockgate.adapters.postgres.tables import payment_outbox
from stockgate.services.ports import OutboxItem, OutboxKind

MAX_ERROR_LENGTH = 2000


class PostgresOutbox:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(
        self, kind: OutboxKind, order_id: uuid.UUID, payment_intent_id: str, key: str
    ) -> None:
        await self._connection.execute(
            insert(payment_outbox)
            .values(
                kind=kind.value, order_id=order_id, payment_intent_id=payment_intent_id, key=key
            )
            .on_conflict_do_nothing(index_elements=[payment_outbox.c.key])
        )

    async def claim_due(self, *, limit: int) -> list[OutboxItem]:
        rows = await self._connection.execute(
            payment_outbox.select()
            .where(payment_outbox.c.done_at.is_(None))
            .where(payment_outbox.c.next_attempt_at <= sa.func.now())
            .order_by(payment_outbox.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [
            OutboxItem(
                row.id,
                OutboxKind(row.kind),
                row.order_id,
                row.payment_intent_id,
                row.key,
                row.attempts,
            )
            for row in rows
        ]

    async def done(self, item_id: int) -> None:
        await self._connection.execute(
            payment_outbox.update()
            .where(payment_outbox.c.id == item_id)
            .values(done_at=sa.func.now(), attempts=payment_outbox.c.attempts + 1)
        )

    async def retry_later(self, item_id: int, error: str, delay_seconds: float) -> None:
        await self._connection.execute(
            payment_outbox.update()
            .where(payment_outbox.c.id == item_id)
            .values(
                attempts=payment_outbox.c.attempts + 1,
                last_error=error[:MAX_ERROR_LENGTH],
                next_attempt_at=sa.func.now() + timedelta(seconds=delay_seconds),
            )
        )
