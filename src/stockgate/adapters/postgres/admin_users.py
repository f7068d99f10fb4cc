"""Admin user repository (table `admin_users`): one statement per call, each its own transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from stockgate.adapters.postgres.database import is_connection_error
from stockgate.adapters.postgres.tables import admin_users
from stockgate.domain.admin_user import AdminUser
from stockgate.domain.errors import Conflict, StoreUnavailable

COLUMNS = (admin_users.c.id, admin_users.c.username, admin_users.c.created_at)


class PostgresAdminUsers:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, username: str, password_hash: str) -> AdminUser:
        statement = (
            admin_users.insert()
            .values(username=username, password_hash=password_hash)
            .returning(*COLUMNS)
        )
        try:
            async with self._engine.begin() as connection:
                row = (await connection.execute(statement)).one()
        except sa_exc.IntegrityError as exc:
            raise Conflict(f"an admin user named {username!r} already exists") from exc
        except Exception as exc:
            raise _unavailable_or(exc) from exc
        return _user(row)

    async def find(self, username: str) -> tuple[AdminUser, str] | None:
        statement = admin_users.select().where(admin_users.c.username == username)
        try:
            async with self._engine.connect() as connection:
                row = (await connection.execute(statement)).one_or_none()
        except Exception as exc:
            raise _unavailable_or(exc) from exc
        return None if row is None else (_user(row), str(row.password_hash))

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        statement = (
            admin_users.update()
            .where(admin_users.c.id == user_id)
            .values(password_hash=password_hash)
        )
        try:
            async with self._engine.begin() as connection:
                await connection.execute(statement)
        except Exception as exc:
            raise _unavailable_or(exc) from exc


def _unavailable_or(exc: Exception) -> Exception:
    return StoreUnavailable("postgres") if is_connection_error(exc) else exc


def _user(row: Any) -> AdminUser:
    return AdminUser(id=row.id, username=row.username, created_at=row.created_at)
