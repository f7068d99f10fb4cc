"""Group commit: new reservations of one event-loop tick are written in one transaction.

Each buyer's request waits until its row is committed (durable before 201), but many
requests share a transaction, so PostgreSQL keeps pace with the gate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from stockgate.adapters.postgres.database import is_connection_error
from stockgate.adapters.postgres.ledger import ledger_row
from stockgate.adapters.postgres.tables import reservation_lines, reservations, stock_ledger
from stockgate.domain.errors import StoreUnavailable
from stockgate.domain.reservation import Reservation


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
        try:
            async with self._engine.begin() as connection:
                await connection.execute(
                    reservations.insert(),
                    [
                        {
                            "id": r.id,
                            "customer_id": r.customer_id,
                            "status": r.status.value,
                            "created_at": r.created_at,
                            "expires_at": r.expires_at,
                        }
                        for r in held
                    ],
                )
                await connection.execute(
                    reservation_lines.insert(),
                    [
                        {
                            "reservation_id": r.id,
                            "product_id": line.product_id,
                            "quantity": line.quantity,
                        }
                        for r in held
                        for line in r.lines
                    ],
                )
                await connection.execute(
                    stock_ledger.insert(),
                    [ledger_row(entry) for r in held for entry in r.held_entries()],
                )
        except Exception as exc:
            # Every request of the batch compensates and answers 503; none is half-written.
            error = StoreUnavailable("postgres")
            error.__cause__ = exc
            if not is_connection_error(exc):
                error = StoreUnavailable("postgres", f"writing reservations failed: {exc!r}")
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        self._on_batch(len(batch))
        for pending in batch:
            if not pending.future.done():
                pending.future.set_result(None)
