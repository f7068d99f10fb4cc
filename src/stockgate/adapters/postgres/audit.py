"""The audit log (table `audit_log`): append-only rows of what operators did."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from stockgate.adapters.postgres.database import is_connection_error
from stockgate.adapters.postgres.tables import audit_log
from stockgate.domain.errors import StoreUnavailable
from stockgate.services.ports import AuditEntry


class PostgresAuditLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(
        self,
        actor: str,
        action: str,
        target: str | None,
        *,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> None:
        statement = audit_log.insert().values(
            actor=actor,
            action=action,
            target=target,
            before=None if before is None else dict(before),
            after=None if after is None else dict(after),
        )
        try:
            async with self._engine.begin() as connection:
                await connection.execute(statement)
        except Exception as exc:
            if is_connection_error(exc):
                raise StoreUnavailable("postgres") from exc
            raise

    async def recent(self, *, limit: int, before_id: int | None = None) -> list[AuditEntry]:
        query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(audit_log.c.id < before_id)
        try:
            async with self._engine.connect() as connection:
                rows = (await connection.execute(query)).all()
        except Exception as exc:
            if is_connection_error(exc):
                raise StoreUnavailable("postgres") from exc
            raise
        return [
            AuditEntry(
                id=row.id,
                at=row.at,
                actor=row.actor,
                action=row.action,
                target=row.target,
                before=row.before,
                after=row.after,
            )
            for row in rows
        ]
