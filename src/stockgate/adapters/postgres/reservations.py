"""Reservation repository: reads, expiry claims and status changes (inserts go via the journal)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from stockgate.adapters.postgres.tables import reservation_lines, reservations
from stockgate.domain.reservation import Reservation, ReservationLine, ReservationStatus


class PostgresReservations:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def get(self, reservation_id: uuid.UUID) -> Reservation | None:
        found = await self._load(reservations.c.id == reservation_id, for_update=False)
        return found[0] if found else None

    async def get_for_update(self, reservation_id: uuid.UUID) -> Reservation | None:
        found = await self._load(reservations.c.id == reservation_id, for_update=True)
        return found[0] if found else None

    async def claim_due(self, now: datetime, limit: int) -> list[Reservation]:
        # SKIP LOCKED: several expiry workers share the work without waiting on each other.
        due = (
            sa.select(reservations.c.id)
            .where(reservations.c.status == ReservationStatus.ACTIVE)
            .where(reservations.c.expires_at <= now)
            .order_by(reservations.c.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list((await self._connection.execute(due)).scalars())
        if not ids:
            return []
        return await self._load(reservations.c.id.in_(ids), for_update=False)

    async def void(self, reservation_id: uuid.UUID, customer_id: uuid.UUID) -> ReservationStatus:
        # Waits for an insert of the same id still in flight (the unique index): if it
        # commits, the id conflicts and is real; if not, the void row makes it impossible.
        fenced = await self._connection.execute(
            insert(reservations)
            .values(
                id=reservation_id,
                customer_id=customer_id,
                status=ReservationStatus.VOID,
                created_at=sa.func.now(),
                expires_at=sa.func.now(),
                ended_at=sa.func.now(),
            )
            .on_conflict_do_nothing(index_elements=[reservations.c.id])
            .returning(reservations.c.id)
        )
        if fenced.first() is not None:
            return ReservationStatus.VOID
        # A new statement, a new snapshot (READ COMMITTED): it sees the row the insert above
        # conflicted with.
        status: str = (
            await self._connection.execute(
                sa.select(reservations.c.status).where(reservations.c.id == reservation_id)
            )
        ).scalar_one()
        return ReservationStatus(status)

    async def end(self, ended: Sequence[Reservation]) -> None:
        if not ended:
            return
        await self._connection.execute(
            reservations.update()
            .where(reservations.c.id == sa.bindparam("reservation_id"))
            .where(reservations.c.status == ReservationStatus.ACTIVE)
            .values(status=sa.bindparam("new_status"), ended_at=sa.func.now()),
            [{"reservation_id": r.id, "new_status": r.status.value} for r in ended],
        )

    async def _load(self, condition: Any, *, for_update: bool) -> list[Reservation]:
        query = sa.select(reservations).where(condition)
        if for_update:
            query = query.with_for_update()
        rows = list(await self._connection.execute(query))
        if not rows:
            return []
        lines: dict[uuid.UUID, list[ReservationLine]] = defaultdict(list)
        line_rows = await self._connection.execute(
            sa.select(reservation_lines)
            .where(reservation_lines.c.reservation_id.in_([row.id for row in rows]))
            .order_by(reservation_lines.c.product_id)
        )
        for line in line_rows:
            lines[line.reservation_id].append(ReservationLine(line.product_id, line.quantity))
        return [
            Reservation(
                id=row.id,
                customer_id=row.customer_id,
                lines=tuple(lines[row.id]),
                status=ReservationStatus(row.status),
                created_at=row.created_at,
                expires_at=row.expires_at,
            )
            for row in rows
        ]
