"""The webhook inbox (table `webhook_events`): events stored before they are acknowledged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from stockgate.adapters.postgres.tables import webhook_events
from stockgate.services.ports import InboxEvent, PaymentEvent, PaymentProvider

MAX_ERROR_LENGTH = 2000


class PostgresInbox:
    def __init__(self, connection: AsyncConnection, parse: PaymentProvider | None) -> None:
        self._connection = connection
        self._payments = parse

    async def add(self, event: PaymentEvent) -> bool:
        added = await self._connection.execute(
            insert(webhook_events)
            .values(id=event.id, type=event.type, payload=dict(event.payload))
            .on_conflict_do_nothing(index_elements=[webhook_events.c.id])
            .returning(webhook_events.c.id)
        )
        return added.first() is not None

    async def get(self, event_id: str, *, lock: bool = False) -> InboxEvent | None:
        query = webhook_events.select().where(webhook_events.c.id == event_id)
        if lock:
            query = query.with_for_update(skip_locked=True)
        row = (await self._connection.execute(query)).one_or_none()
        return None if row is None else self._stored(row)

    async def processed(self, event_id: str, outcome: str) -> None:
        await self._update(event_id, processed_at=sa.func.now(), outcome=outcome, last_error=None)

    async def failed(self, event_id: str, error: str) -> None:
        await self._update(event_id, last_error=error[:MAX_ERROR_LENGTH])

    async def reopen(self, event_id: str) -> bool:
        reopened = await self._connection.execute(
            webhook_events.update()
            .where(webhook_events.c.id == event_id)
            .values(processed_at=None, outcome=None)
            .returning(webhook_events.c.id)
        )
        return reopened.first() is not None

    async def unprocessed(self, *, received_before: datetime, limit: int) -> list[str]:
        rows = await self._connection.execute(
            sa.select(webhook_events.c.id)
            .where(webhook_events.c.processed_at.is_(None))
            .where(webhook_events.c.received_at < received_before)
            .order_by(webhook_events.c.received_at)
            .limit(limit)
        )
        return list(rows.scalars())

    async def recent(
        self, *, limit: int, before: datetime | None = None, unprocessed_only: bool = False
    ) -> list[InboxEvent]:
        query = webhook_events.select()
        if before is not None:
            query = query.where(webhook_events.c.received_at < before)
        if unprocessed_only:
            query = query.where(webhook_events.c.processed_at.is_(None))
        query = query.order_by(webhook_events.c.received_at.desc()).limit(limit)
        return [self._stored(row) for row in await self._connection.execute(query)]

    async def _update(self, event_id: str, **values: Any) -> None:
        await self._connection.execute(
            webhook_events.update()
            .where(webhook_events.c.id == event_id)
            .values(attempts=webhook_events.c.attempts + 1, **values)
        )

    def _stored(self, row: Any) -> InboxEvent:
        if self._payments is not None:
            event = self._payments.parse_event(row.payload)
        else:  # no provider configured: the raw event, unparsed
            event = PaymentEvent(id=row.id, type=row.type, created=0, payload=row.payload)
        return InboxEvent(
            event=event,
            received_at=row.received_at,
            processed_at=row.processed_at,
            outcome=row.outcome,
            attempts=row.attempts,
            last_error=row.last_error,
        )
