"""Runs Alembic migrations programmatically (`stockgate migrate`, `stockgate up`, tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

import stockgate

MIGRATIONS = Path(stockgate.__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


async def upgrade_async(database_url: str) -> None:
    """Alembic's env.py runs its own event loop, so give it a thread."""
    await asyncio.to_thread(upgrade, database_url)
