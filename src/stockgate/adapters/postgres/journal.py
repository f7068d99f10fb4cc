"""Group commit: new reservations of one event-loop tick are written in one transaction.

Each buyer's request waits until its row is committed (durable before 201), but many
requests share a transaction, so PostgreSQL keeps pace with the gate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from stockgate.adapters.postgres.database import is_connection_error
from stockgate.domain.errors import StoreUnavailable
from stockgate.domain.reservation import Reservation

log = structlog.get_logger(__name__)

# Reservations, their lines and their `held` ledger entries (-quantity), all or nothing.
INSERT_BATCH = """
WITH new_reservations AS (
  INSERT INTO reservations (id, customer_id, status, created_at, expires_at)
  SELECT id, customer_id, 'active', created_at, expires_at
    FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::timestamptz[])
      AS t(id, customer_id, created_at, expires_at)
), new_lines AS (
  INSERT INTO reservation_lines (reservation_id, product_id, quantity)
  SELECT * FROM unnest($5::uuid[], $6::bigint[], $7::int[])
)
INSERT INTO stock_ledger (product_id, kind, quantity, reservation_id)
SELECT product_id, 'held', -quantity, reservation_id
  FROM unnest($5::uuid[], $6::bigint[], $7::int[]) AS t(reservation_id, product_id, quantity)
"""


@dataclass(slots=True)
class _Pending:
    reservation: Reservation
    future: asyncio.Future[None]


class GroupCommitJournal:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch: int,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._pending: list[_Pending] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def record(self, reservation: Reservation) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append(_Pending(reservation, future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        await future

    async def drain(self) -> None:
        """Wait for every write in flight (used on shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._write(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, batch: list[_Pending]) -> None:
        held = [r.reservation for r in batch]
        lines = [(r, line) for r in held for line in r.lines]
        try:
            async with self._engine.connect() as connection:
                raw = await connection.get_raw_connection()
                # One statement is one implicit transaction and one round trip.
                await raw.driver_connection.execute(  # type: ignore[union-attr]
                    INSERT_BATCH,
                    [r.id for r in held],
                    [r.customer_id for r in held],
                    [r.created_at for r in held],
                    [r.expires_at for r in held],
                    [r.id for r, _ in lines],
                    [line.product_id for _, line in lines],
                    [line.quantity for _, line in lines],
                )
        except Exception as exc:
            # Every request of the batch compensates and answers 503; none is half-written.
            if not is_connection_error(exc):
                log.error("journal.write_failed", batch=len(batch), error=repr(exc))
            error = StoreUnavailable("postgres")
            error.__cause__ = exc
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        self._on_batch(len(batch))
        for pending in batch:
            if not pending.future.done():
                pending.future.set_result(None)
