"""Unit of work: one transaction that rolls back unless commit() ran."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from stockgate.adapters.postgres.database import is_connection_error, is_missing_schema
from stockgate.adapters.postgres.ledger import PostgresLedger
from stockgate.adapters.postgres.products import PostgresProducts
from stockgate.adapters.postgres.reservations import PostgresReservations
from stockgate.domain.errors import SchemaMissing, StoreUnavailable


class PostgresUnitOfWork:
    products: PostgresProducts
    reservations: PostgresReservations
    ledger: PostgresLedger

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None

    async def __aenter__(self) -> Self:
        try:
            self._connection = await self._engine.connect()
            await self._connection.begin()
        except Exception as exc:
            if self._connection is not None:
                await self._connection.close()
            if is_connection_error(exc):
                raise StoreUnavailable("postgres") from exc
            raise
        self.products = PostgresProducts(self._connection)
        self.reservations = PostgresReservations(self._connection)
        self.ledger = PostgresLedger(self._connection)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._connection is not None
        try:
            if self._connection.in_transaction():
                await self._connection.rollback()
            await self._connection.close()
        except Exception as close_error:  # the connection died; the pool replaces it
            if exc is None and is_connection_error(close_error):
                raise StoreUnavailable("postgres") from close_error
        if exc is None or isinstance(exc, StoreUnavailable):
            return
        if is_missing_schema(exc):
            raise SchemaMissing() from exc
        if is_connection_error(exc):
            raise StoreUnavailable("postgres") from exc

    async def commit(self) -> None:
        assert self._connection is not None
        await self._connection.commit()


class PostgresUnitOfWorkFactory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def __call__(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self._engine)
