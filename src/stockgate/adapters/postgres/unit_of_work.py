"""Unit of work: one transaction that rolls back unless commit() ran, and the product stock
locks that outlive it until the unit of work closes."""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Self

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from stockgate.adapters.postgres.database import (
    is_connection_error,
    is_lock_timeout,
    is_missing_schema,
)
from stockgate.adapters.postgres.inbox import PostgresInbox
from stockgate.adapters.postgres.ledger import PostgresLedger
from stockgate.adapters.postgres.orders import PostgresOrders
from stockgate.adapters.postgres.outbox import PostgresOutbox
from stockgate.adapters.postgres.products import PostgresProducts
from stockgate.adapters.postgres.reservations import PostgresReservations
from stockgate.domain.errors import RestockInProgress, SchemaMissing, StoreUnavailable
from stockgate.services.ports import PaymentProvider

# Session-level advisory locks, keyed (namespace, product id): they survive the commit, so a
# gate call made after it is covered too. Taking the lock through the SKU finds the product
# (also one this transaction just inserted); ids beyond 2**31 share keys, which only serializes.
STOCK_LOCK_NAMESPACE = 0x5347534B  # "SGSK"
LOCK_STOCK = sa.text(
    "SELECT pg_advisory_lock(:namespace, (id % 2147483648)::int) FROM products WHERE sku = :sku"
)
UNLOCK_STOCK = sa.text("SELECT pg_advisory_unlock_all()")
# How long a restock waits for one still being applied (its gate call may be stuck on an
# unreachable Redis) before it gives up with a clear answer instead of an outage. Keep it under
# the statement timeout (database.py, 10 s), which would otherwise end the wait first.
STOCK_LOCK_WAIT_SECONDS = 5.0


class PostgresUnitOfWork:
    products: PostgresProducts
    reservations: PostgresReservations
    ledger: PostgresLedger
    orders: PostgresOrders
    inbox: PostgresInbox
    outbox: PostgresOutbox

    def __init__(self, engine: AsyncEngine, payments: PaymentProvider | None = None) -> None:
        self._engine = engine
        self._payments = payments
        self._connection: AsyncConnection | None = None
        self._locked = False

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
        self.orders = PostgresOrders(self._connection)
        self.inbox = PostgresInbox(self._connection, self._payments)
        self.outbox = PostgresOutbox(self._connection)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._connection is not None
        try:
            try:
                if self._connection.in_transaction():
                    await self._connection.rollback()
                if self._locked:
                    await self._connection.execute(UNLOCK_STOCK)
                    await self._connection.rollback()
            except BaseException:
                if self._locked:  # the lock may still be held: end the session, which frees it
                    with contextlib.suppress(Exception):
                        await self._connection.invalidate()
                raise
            finally:
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

    async def lock_stock(self, sku: str) -> None:
        assert self._connection is not None
        wait_ms = round(STOCK_LOCK_WAIT_SECONDS * 1000)
        await self._connection.execute(sa.text(f"SET LOCAL lock_timeout = {wait_ms}"))
        self._locked = True  # before the wait: a cancelled wait may still have taken the lock
        try:
            await self._connection.execute(
                LOCK_STOCK, {"namespace": STOCK_LOCK_NAMESPACE, "sku": sku}
            )
        except sa_exc.DBAPIError as exc:
            if not is_lock_timeout(exc):
                raise
            raise RestockInProgress(
                f"another restock of {sku} is still being applied; try again shortly"
            ) from exc
        # The bound is for this wait only, not for the rest of the transaction.
        await self._connection.execute(sa.text("SET LOCAL lock_timeout TO DEFAULT"))


class PostgresUnitOfWorkFactory:
    def __init__(self, engine: AsyncEngine, payments: PaymentProvider | None = None) -> None:
        self._engine = engine
        self._payments = payments  # parses stored webhook events

    def __call__(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self._engine, self._payments)
