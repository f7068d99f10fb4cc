"""Alembic migrations build the schema from an empty database, and are idempotent."""

from __future__ import annotations

import asyncpg

from stockgate.adapters.postgres.migrate import upgrade_async
from stockgate.adapters.postgres.tables import metadata


async def tables(url: str) -> set[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row["tablename"] for row in rows}
    finally:
        await connection.close()


async def test_upgrade_from_empty_database_creates_every_table(empty_database_url: str) -> None:
    assert await tables(empty_database_url) == set()
    await upgrade_async(empty_database_url)
    assert set(metadata.tables) | {"alembic_version"} <= await tables(empty_database_url)
    await upgrade_async(empty_database_url)  # at head already: nothing to do, no error
