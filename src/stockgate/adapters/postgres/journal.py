"""Group commit: new reservations of one event-loop tick are written in one transaction, and
so are the buyers' releases of one tick.

Each buyer's request waits until its row is committed (durable before 201), but many
requests share a transaction, so PostgreSQL keeps pace with the gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import msgspec
import structlog

from stockgate.adapters.postgres.database import asyncpg_url, is_connection_error
from stockgate.adapters.postgres.reservations import reservations_from_rows
from stockgate.adapters.tick_batches import TickBatches
from stockgate.domain.errors import StoreUnavailable, WriteOutcomeUnknown
from stockgate.domain.ledger import LedgerKind
from stockgate.domain.reservation import Reservation, ReservationStatus

log = structlog.get_logger(__name__)

# Reservations, their lines and their ledger entries, all or nothing. The entries are what
# Reservation.held_entries() says (kind $2 = held, one per line, its quantity): built here in
# SQL so the batch is one statement; tests/integration/test_rules_agree.py checks they match.
# The batch travels as one JSON parameter: msgspec encodes it in C, far cheaper on the API's
# event loop than asyncpg encoding seven typed arrays element by element.
# ON CONFLICT DO NOTHING: an id fenced as `void` (its hold was given back before this write
# arrived) is skipped with its lines and ledger entries; RETURNING names what was written.
INSERT_BATCH = """
WITH batch AS (
  SELECT * FROM json_to_recordset($1::json)
    AS t(id uuid, customer_id uuid, created_at timestamptz, expires_at timestamptz, lines json)
), new_reservations AS (
  INSERT INTO reservations (id, customer_id, status, created_at, expires_at)
  SELECT id, customer_id, 'active', created_at, expires_at FROM batch
  ON CONFLICT (id) DO NOTHING
  RETURNING id
), new_lines AS (
  SELECT batch.id AS reservation_id, line.product_id, line.quantity
    FROM batch
    JOIN new_reservations USING (id)
    CROSS JOIN json_to_recordset(batch.lines) AS line(product_id bigint, quantity int)
), written_lines AS (
  INSERT INTO reservation_lines (reservation_id, product_id, quantity)
  SELECT reservation_id, product_id, quantity FROM new_lines
), written_ledger AS (
  INSERT INTO stock_ledger (product_id, kind, quantity, reservation_id)
  SELECT product_id, $2, quantity, reservation_id FROM new_lines
)
SELECT id FROM new_reservations
"""

# The fence: claim ids whose write failed in an unknown way. An insert of the same id still
# running elsewhere makes this wait for it: committed, the id conflicts (it is durable);
# rolled back, the void row lands and the write can never commit afterwards.
VOID_BATCH = """
INSERT INTO reservations (id, customer_id, status, created_at, expires_at, ended_at)
SELECT id, customer_id, 'void', now(), now(), now()
  FROM unnest($1::uuid[], $2::uuid[]) AS t(id, customer_id)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

DURABLE = "SELECT id FROM reservations WHERE id = ANY($1::uuid[]) AND status <> 'void'"

# Buyers' releases: each (id, customer) pair whose reservation is still active ends with
# status $3, and each of its lines gets a ledger entry of kind $4 and the line's quantity
# (what Reservation.release() decides for one, here for a batch in one statement;
# tests/integration/test_rules_agree.py checks they match). Rows are
# locked in id order, so two batches naming the same reservations cannot deadlock; a row
# that stopped being active while we waited for its lock is skipped.
RELEASE_BATCH = """
WITH wanted AS (
  SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS w(id, customer_id)
), locked AS (
  SELECT r.id FROM reservations r JOIN wanted w USING (id, customer_id)
   WHERE r.status = 'active'
     -- One in checkout is released by the service, which cancels its payment first.
     AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.reservation_id = r.id)
   ORDER BY r.id
     FOR UPDATE OF r
), ended AS (
  UPDATE reservations r SET status = $3, ended_at = now()
    FROM locked WHERE r.id = locked.id
  RETURNING r.id, r.customer_id, r.status, r.created_at, r.expires_at
), ended_lines AS (
  SELECT l.reservation_id, l.product_id, l.quantity
    FROM reservation_lines l JOIN ended ON l.reservation_id = ended.id
), written_ledger AS (
  INSERT INTO stock_ledger (product_id, kind, quantity, reservation_id)
  SELECT product_id, $4, quantity, reservation_id FROM ended_lines
)
SELECT e.id, e.customer_id, e.status, e.created_at, e.expires_at, l.product_id, l.quantity
  FROM ended e JOIN ended_lines l ON l.reservation_id = e.id
 ORDER BY e.id, l.product_id
"""

ACQUIRE_TIMEOUT_SECONDS = 5.0


class _Line(msgspec.Struct):
    product_id: int
    quantity: int


class _Row(msgspec.Struct):
    id: uuid.UUID
    customer_id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    lines: list[_Line]


_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class _Pending:
    reservation: Reservation
    future: asyncio.Future[None]


@dataclass(slots=True)
class _PendingRelease:
    reservation_id: uuid.UUID
    customer_id: uuid.UUID
    future: asyncio.Future[Reservation | None]


class GroupCommitJournal:
    """Writes new reservations, and buyers' releases, in batches over its own asyncpg pool.

    The pool is the journal's own (not SQLAlchemy's) because the batch is one raw statement
    and its checkout is on the hot path; asyncpg replaces a connection that broke (a
    PostgreSQL restart, a killed backend) when it is released, so the journal recovers by
    itself. Its connections stay open once made: a drop begins with a burst, and connecting
    while it queues cost the first requests tens of milliseconds (docs/performance.md). API
    nodes `open()` it at start; when PostgreSQL is down then, the API starts anyway and the
    pool connects on first use.
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
        self._pool_created = asyncio.Lock()  # two first batches must not make two pools
        self._on_batch = on_batch
        self._batches = TickBatches(self._write, max_batch=max_batch)
        self._releases = TickBatches(self._write_releases, max_batch=max_batch)

    async def open(self) -> None:
        """Connect the whole pool now, before the first request needs it; never raises."""
        try:
            pool = await self._connections()
            taken = await asyncio.gather(
                *(pool.acquire() for _ in range(self._pool_size)), return_exceptions=True
            )
        except Exception as exc:  # down or refusing: the first batch will try again
            log.warning("journal.connect_deferred", error=repr(exc))
            return
        failed = [t for t in taken if isinstance(t, BaseException)]
        for connection in taken:
            if not isinstance(connection, BaseException):
                await pool.release(connection)
        if failed:
            log.warning("journal.connect_deferred", error=repr(failed[0]))

    async def record(self, reservation: Reservation) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._batches.add(_Pending(reservation, future))
        await future

    async def release(
        self, reservation_id: uuid.UUID, customer_id: uuid.UUID
    ) -> Reservation | None:
        """End the buyer's active reservation as released, its ledger entries with it; None
        when there is none such (unknown id, another buyer's, or not active any more)."""
        future: asyncio.Future[Reservation | None] = asyncio.get_running_loop().create_future()
        self._releases.add(_PendingRelease(reservation_id, customer_id, future))
        return await future

    async def drain(self) -> None:
        """Write what is queued, wait for every write in flight, close the pool (shutdown)."""
        while not (self._batches.idle and self._releases.idle):
            await asyncio.gather(self._batches.drain(), self._releases.drain())
        if self._pool is not None:
            await self._pool.close()

    async def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._pool_created:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._database_url,
                        # Connected by open() or on demand, then kept: no idle timeout.
                        # (Not min_size: its upkeep task logs a traceback every retry
                        # while PostgreSQL is down; a broken connection is replaced when
                        # it is next taken anyway.)
                        min_size=0,
                        max_size=self._pool_size,
                        max_inactive_connection_lifetime=0,
                        timeout=5,
                        command_timeout=10,
                        reset=_nothing_to_reset,
                    )
        return self._pool

    async def _write(self, batch: list[_Pending]) -> None:
        held = [pending.reservation for pending in batch]
        sent = False
        try:
            async with self._connection() as connection:
                sent = True
                # One statement is one implicit transaction and one round trip.
                batch_json = _encode([_row(r) for r in held]).decode()
                rows = await connection.fetch(INSERT_BATCH, batch_json, LedgerKind.HELD.value)
                written = {row[0] for row in rows}
                if len(written) < len(held):  # voided first, surely? Ask, it is rare and cheap.
                    missing = [r.id for r in held if r.id not in written]
                    written |= {row[0] for row in await connection.fetch(DURABLE, missing)}
                # Answer now: the rows are committed, and handing the connection back to the
                # pool must not delay anyone's 201.
                self._on_batch(len(batch))
                self._settle(batch, written, None)
        except Exception as exc:
            if all(pending.future.done() for pending in batch):
                # Failed handing the connection back, after every answer: nothing to settle,
                # and the pool replaces a broken connection by itself.
                return
            if not is_connection_error(exc):
                log.error("journal.write_failed", batch=len(batch), error=repr(exc))
            # Failed before the statement was sent: certainly not written. Failed after: the
            # commit may have happened with only its answer lost, so settle it with the fence.
            durable = await self._fence(held) if sent else set()
            self._settle(batch, durable, exc)

    async def _write_releases(self, batch: list[_PendingRelease]) -> None:
        try:
            async with self._connection() as connection:
                rows = await connection.fetch(
                    RELEASE_BATCH,
                    [pending.reservation_id for pending in batch],
                    [pending.customer_id for pending in batch],
                    ReservationStatus.RELEASED.value,
                    LedgerKind.RELEASED.value,
                )
                # Answer now, as _write does: a failure handing the connection back must not
                # turn a committed release into a 503.
                released = {(r.id, r.customer_id): r for r in reservations_from_rows(rows)}
                for pending in batch:
                    # Keyed by buyer too: another buyer naming the same id gets nothing. The
                    # same release twice in one batch: the first caller gets it, the other none.
                    key = (pending.reservation_id, pending.customer_id)
                    if not pending.future.done():
                        pending.future.set_result(released.pop(key, None))
        except Exception as exc:
            if all(pending.future.done() for pending in batch):
                return  # failed handing the connection back, after every answer
            # Committed or not, the stock stays held in the gate: the buyer may retry, and the
            # reconciler gives back the stock of a reservation that ended without its give-back.
            if not is_connection_error(exc):
                log.error("journal.release_failed", batch=len(batch), error=repr(exc))
            for pending in batch:
                if not pending.future.done():
                    error = StoreUnavailable("postgres")
                    error.__cause__ = exc
                    pending.future.set_exception(error)

    async def _fence(self, held: list[Reservation]) -> set[uuid.UUID] | None:
        """Void what did not land, so it never will; the ids that are durable, None: unknown."""
        ids = [r.id for r in held]
        try:
            async with self._connection() as connection:
                await connection.execute(VOID_BATCH, ids, [r.customer_id for r in held])
                rows = await connection.fetch(DURABLE, ids)
        except Exception as exc:
            log.warning("journal.outcome_unknown", batch=len(held), error=type(exc).__name__)
            return None
        return {row[0] for row in rows}

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection, waited for at most ACQUIRE_TIMEOUT_SECONDS: a batch may not
        wait out the reconcile grace before it is even sent. (asyncio.timeout, because
        asyncpg's own acquire timeout runs the wait in a task of its own.)
        """
        pool = await self._connections()
        async with asyncio.timeout(ACQUIRE_TIMEOUT_SECONDS):
            connection = await pool.acquire()
        try:
            yield connection
        finally:
            await pool.release(connection)

    def _settle(
        self, batch: list[_Pending], durable: set[uuid.UUID] | None, exc: BaseException | None
    ) -> None:
        for pending in batch:
            if pending.future.done():
                continue
            if durable is not None and pending.reservation.id in durable:
                pending.future.set_result(None)
                continue
            # Not durable and fenced (void): the caller gives its stock back, which is safe now.
            # Unknown: the reconciler fences it later; nobody may give the stock back on a guess.
            error: StoreUnavailable
            if durable is None:
                error = WriteOutcomeUnknown()
            elif exc is None:
                error = StoreUnavailable("postgres", "the hold was voided before it was written")
            else:
                error = StoreUnavailable("postgres")
            error.__cause__ = exc
            pending.future.set_exception(error)


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """The journal runs single autocommit statements and leaves no session state behind, so
    asyncpg's default reset on release (unlock, close cursors, unlisten, RESET ALL) would be a
    database round trip per batch for nothing."""


def _row(reservation: Reservation) -> _Row:
    return _Row(
        reservation.id,
        reservation.customer_id,
        reservation.created_at,
        reservation.expires_at,
        [_Line(line.product_id, line.quantity) for line in reservation.lines],
    )
