"""The PostgreSQL engine, and the one place where driver failures become StoreUnavailable."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# Failures that mean "PostgreSQL is not there right now", as opposed to a bug or bad data.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # the pool had no free connection in time
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    OSError,
    asyncio.TimeoutError,
)


def is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.DBAPIError) and isinstance(exc.orig, Exception):
        return is_connection_error(exc.orig) or isinstance(exc, sa_exc.OperationalError)
    cause = getattr(exc, "__cause__", None)
    return isinstance(exc, CONNECTION_ERRORS) or (
        cause is not None and isinstance(cause, CONNECTION_ERRORS)
    )


def is_lock_timeout(exc: BaseException) -> bool:
    """PostgreSQL gave up waiting for a lock (lock_timeout)."""
    return _caused_by(exc, asyncpg.LockNotAvailableError)


def is_missing_schema(exc: BaseException) -> bool:
    """An undefined table: the database was never migrated."""
    return _caused_by(exc, asyncpg.UndefinedTableError)


def _caused_by(exc: BaseException | None, error: type[BaseException]) -> bool:
    """`exc` or one of its causes is an `error` (SQLAlchemy wraps the driver's error)."""
    while exc is not None:
        if isinstance(exc, error):
            return True
        exc = exc.__cause__
    return False


def sqlalchemy_url(url: str) -> str:
    """postgresql://… as given by operators, with the asyncpg driver named for SQLAlchemy."""
    parts = urlsplit(url)
    scheme = "postgresql+asyncpg"
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def asyncpg_url(url: str) -> str:
    """The operator's URL as asyncpg takes it (it does not know SQLAlchemy's driver suffix)."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


def create_engine(url: str, *, pool_size: int) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        # A connection killed by a restart is replaced, not used. The reservation hot path
        # does not pay for this ping: the group-commit journal has its own asyncpg pool.
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"timeout": 5, "command_timeout": 10},
    )
