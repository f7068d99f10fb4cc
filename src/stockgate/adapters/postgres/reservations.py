"""Reservation repository: reads, expiry claims and status changes (inserts go via the journal)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from stockgate.adapters.postgres.tables import reservation_lines, reservations
from stockgate.domain.errors import ReservationNotActive
from stockgate.domain.reservation import Reservation, ReservationLine, ReservationStatus

# The statements of the release and expiry paths are built once: building a SQLAlchemy
# statement and its cache key per call cost more CPU than the round trip it makes
# (docs/performance.md). A reservation and its lines come back in one query.
_WITH_LINES = (
    sa.select(reservations, reservation_lines.c.product_id, reservation_lines.c.quantity)
    .select_from(
        reservations.outerjoin(
            reservation_lines, reservation_lines.c.reservation_id == reservations.c.id
        )
    )
    .order_by(reservations.c.id, reservation_lines.c.product_id)
)
_ANY_OF_IDS = sa.any_(sa.bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))
LOAD = _WITH_LINES.where(reservations.c.id == sa.bindparam("id"))
# Lock the reservation row alone, then LOAD in a new statement: a statement that waited for
# the lock re-reads the locked row but joins lines from its old snapshot, so lines another
# transaction added to the cart meanwhile would be missed (READ COMMITTED).
LOCK = sa.select(reservations.c.id).where(reservations.c.id == sa.bindparam("id")).with_for_update()
LOAD_MANY = _WITH_LINES.where(reservations.c.id == _ANY_OF_IDS)
# Only an active reservation ends: a status already final is never overwritten.
END = (
    reservations.update()
    .where(reservations.c.id == _ANY_OF_IDS)
    .where(reservations.c.status == ReservationStatus.ACTIVE)
    .values(status=sa.bindparam("new_status"), ended_at=sa.func.now())
)


class PostgresReservations:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def get(self, reservation_id: uuid.UUID) -> Reservation | None:
        found = await self._load(LOAD, {"id": reservation_id})
        return found[0] if found else None

    async def get_for_update(self, reservation_id: uuid.UUID) -> Reservation | None:
        await self._connection.execute(LOCK, {"id": reservation_id})
        found = await self._load(LOAD, {"id": reservation_id})
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
        return await self._load(LOAD_MANY, {"ids": ids})

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
        """Record each reservation's final status; one statement per status in the batch."""
        by_status: dict[str, list[uuid.UUID]] = defaultdict(list)
        for reservation in ended:
            by_status[reservation.status.value].append(reservation.id)
        for status, ids in by_status.items():
            await self._connection.execute(END, {"ids": ids, "new_status": status})

    async def move(self, reservation: Reservation, *, was: ReservationStatus) -> None:
        moved = await self._connection.execute(
            reservations.update()
            .where(reservations.c.id == reservation.id)
            .where(reservations.c.status == was.value)
            .values(
                status=reservation.status.value,
                expires_at=reservation.expires_at,
                ended_at=None if reservation.status is ReservationStatus.ACTIVE else sa.func.now(),
            )
            .returning(reservations.c.id)
        )
        if moved.first() is None:
            raise ReservationNotActive(f"reservation {reservation.id} is no longer {was}")

    async def add_lines(self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]) -> None:
        await self._connection.execute(
            reservation_lines.insert(),
            [
                {
                    "reservation_id": reservation_id,
                    "product_id": li.product_id,
                    "quantity": li.quantity,
                }
                for li in lines
            ],
        )

    async def remove_line(self, reservation_id: uuid.UUID, product_id: int) -> None:
        await self._connection.execute(
            reservation_lines.delete()
            .where(reservation_lines.c.reservation_id == reservation_id)
            .where(reservation_lines.c.product_id == product_id)
        )

    async def _load(self, query: sa.Select[Any], params: dict[str, Any]) -> list[Reservation]:
        return reservations_from_rows((await self._connection.execute(query, params)).mappings())


def reservations_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[Reservation]:
    """Reservations from rows of one line each, in order (a void one has a single row whose
    line columns are NULL). Also reads the journal's release batch."""
    found: dict[uuid.UUID, tuple[Mapping[str, Any], list[ReservationLine]]] = {}
    for row in rows:
        _, lines = found.setdefault(row["id"], (row, []))
        if row["product_id"] is not None:
            lines.append(ReservationLine(row["product_id"], row["quantity"]))
    return [
        Reservation(
            id=row["id"],
            customer_id=row["customer_id"],
            lines=tuple(lines),
            status=ReservationStatus(row["status"]),
            created_at=row["created_at"],
            expires_at=row["expires_at"],
        )
        for row, lines in found.values()
    ]
