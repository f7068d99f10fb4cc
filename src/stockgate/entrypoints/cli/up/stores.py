"""The stores `up` runs on: configured URLs, else the embedded PostgreSQL and Valkey."""

from __future__ import annotations

from stockgate.adapters.postgres.migrate import upgrade
from stockgate.config import Settings, StoreUrls
from stockgate.entrypoints.cli.up.terminal import say


def prepare_stores(settings: Settings, urls: StoreUrls) -> None:
    """Say where the stores are and bring the database schema up to date."""
    say(
        f"stores: PostgreSQL {_where(settings.database_url, 'postgres', settings)}, "
        f"Redis {_where(settings.redis_url, 'valkey', settings)}"
    )
    upgrade(urls.database_url)


def _where(configured: str | None, name: str, settings: Settings) -> str:
    return "configured" if configured else f"embedded ({settings.data_dir.resolve() / name})"
