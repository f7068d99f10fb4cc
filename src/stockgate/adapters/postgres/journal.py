"""Group commit: new reservations of one event-loop tick are written in one transaction.

Each buyer's request waits until its row is committed (durable before 201), but many
requests share a transaction, so PostgreSQL keeps pace with the gate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import structlog

from stockgate.adapters.postgres.database import asyncpg_url, is_connection_error
from stockgate.domain.errors import StoreUnavailable, WriteOutcomeUnknown
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
    """Writes new reservations in batches over its own asyncpg pool.

    The pool is the journal's own (not SQLAlchemy's) because the batch is one raw statement
    and its checkout is on the hot path; asyncpg replaces a connection that broke (a
    PostgreSQL restart, a killed backend) when it is released, so the journal recovers by
    itself. The pool connects lazily: the API starts even while PostgreSQL is down.
    """

    def __init__(
        self,
        database_url: str,
        *,
        pool_size: int,
        max_batch: int,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._database_url = asyncpg_url(database_url)
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
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
        """Write what is queued, wait for every write in flight, close the pool (shutdown)."""
        self._flush()  # a record queued for the next tick must not wait forever
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()

    async def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self._database_url,
                min_size=0,
                max_size=self._pool_size,
                timeout=5,
                command_timeout=10,
            )
        return self._pool

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
        sent = False
        try:
            pool = await self._connections()
            async with pool.acquire() as connection:
                sent = True
                # One statement is one implicit transaction and one round trip.
                await connection.execute(
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
            if not is_connection_error(exc):
                log.error("journal.write_failed", batch=len(batch), error=repr(exc))
            # Failed before the statement was sent: certainly not written, the callers give
            # the stock back. Failed after: the commit may have happened with only its answer
            # lost, so look before anyone gives back stock that is rightly held.
            committed = await self._committed(held) if sent else False
            self._settle(batch, committed, exc)
            return
        self._on_batch(len(batch))
        self._settle(batch, True, None)

    async def _committed(self, held: list[Reservation]) -> bool | None:
        """Whether the batch (one statement: all or none) is in PostgreSQL; None: cannot tell."""
        try:
            pool = await self._connections()
            async with pool.acquire() as connection:
                found = await connection.fetchval(
                    "SELECT count(*) FROM reservations WHERE id = $1", held[0].id
                )
        except Exception as exc:
            log.warning("journal.outcome_unknown", batch=len(held), error=type(exc).__name__)
            return None
        return bool(found)

    def _settle(
        self, batch: list[_Pending], committed: bool | None, exc: BaseException | None
    ) -> None:
        for pending in batch:
            if pending.future.done():
                continue
            if committed:
                pending.future.set_result(None)
                continue
            error: StoreUnavailable = (
                WriteOutcomeUnknown() if committed is None else StoreUnavailable("postgres")
            )
            error.__cause__ = exc
            pending.future.set_exception(error)
