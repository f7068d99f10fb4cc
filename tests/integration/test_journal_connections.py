"""The journal's pool: an API node connects it before its first request, and starts all the
same when PostgreSQL is down."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from stockgate.adapters.postgres.journal import GroupCommitJournal
from stockgate.bootstrap import bootstrap
from stockgate.config import Settings, StoreUrls
from stockgate.domain.errors import StoreUnavailable, WriteOutcomeUnknown
from stockgate.domain.reservation import Reservation, ReservationLine, ReserveRequest

NOWHERE = "postgresql://postgres@127.0.0.1:1/nowhere"


async def backends(admin: asyncpg.Connection) -> int:
    """Connections to the test's own database, the counting one left out."""
    count: int = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return count


async def test_an_api_node_connects_its_journal_before_the_first_request(
    settings: Settings, store_urls: StoreUrls, database_url: str
) -> None:
    admin = await asyncpg.connect(database_url)
    try:
        before = await backends(admin)
        node = await bootstrap(settings, store_urls, api_node=True)
        try:
            # The whole pool, with no reservation made yet.
            assert await backends(admin) == before + max(2, settings.db_pool_size // 2)
        finally:
            await node.close()
        # A closed connection's backend leaves pg_stat_activity a moment later.
        async with asyncio.timeout(5):
            while await backends(admin) != before:
                await asyncio.sleep(0.02)
        worker = await bootstrap(settings, store_urls)  # not an API node: connects on first use
        try:
            assert await backends(admin) == before
        finally:
            await worker.close()
    finally:
        await admin.close()


async def test_journal_opened_while_postgres_is_down_starts_and_answers_unavailable() -> None:
    journal = GroupCommitJournal(NOWHERE, pool_size=2, max_batch=64)
    try:
        async with asyncio.timeout(10):
            await journal.open()  # the API starts: nothing raised
        reservation = Reservation.new(
            ReserveRequest(uuid.uuid4(), (ReservationLine(1, 1),)),
            now=datetime.now(UTC),
            hold_seconds=60,
        )
        with pytest.raises(StoreUnavailable) as failed:
            await journal.record(reservation)
        assert not isinstance(failed.value, WriteOutcomeUnknown)  # never sent
    finally:
        await journal.drain()
