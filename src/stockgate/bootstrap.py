"""The composition root: builds clients, adapters and services. Nothing connects at import.

Entrypoints call `build()` inside their lifespan and `close()` on the way out; tests call it
with their own settings and URLs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import BlockingConnectionPool, Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from stockgate.adapters.clock import SystemClock
from stockgate.adapters.metrics import GATE_BATCH, GROUP_COMMIT_BATCH
from stockgate.adapters.postgres.database import create_engine
from stockgate.adapters.postgres.journal import GroupCommitJournal
from stockgate.adapters.postgres.unit_of_work import PostgresUnitOfWorkFactory
from stockgate.adapters.redis.gate import RedisStockGate
from stockgate.adapters.redis.keys import Keys
from stockgate.config import Settings
from stockgate.services.customers import CustomerTokens
from stockgate.services.ports import Clock
from stockgate.services.reserve import ReserveDeps


@dataclass(frozen=True, slots=True)
class StoreUrls:
    """Where PostgreSQL and Redis are: configured, or the embedded servers."""

    database_url: str
    redis_url: str


@dataclass(slots=True)
class Container:
    settings: Settings
    engine: AsyncEngine
    redis: Redis
    gate: RedisStockGate
    journal: GroupCommitJournal
    uow_factory: PostgresUnitOfWorkFactory
    clock: Clock
    tokens: CustomerTokens

    reserve_deps: ReserveDeps = field(init=False)

    def __post_init__(self) -> None:
        self.reserve_deps = ReserveDeps(
            gate=self.gate,
            journal=self.journal,
            uow_factory=self.uow_factory,
            clock=self.clock,
            hold_seconds=self.settings.hold_seconds,
            max_quantity=self.settings.max_quantity,
        )

    async def close(self) -> None:
        await self.journal.drain()
        await self.gate.stop()
        await self.redis.aclose()
        await self.engine.dispose()


def redis_client(url: str, *, max_connections: int = 64) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=15,
    )
    return Redis(connection_pool=pool)


async def build(settings: Settings, urls: StoreUrls, *, api_node: bool = False) -> Container:
    if settings.redis_cluster:
        raise SystemExit(
            "STOCKGATE_REDIS_CLUSTER=true is not supported by this version yet; "
            "point STOCKGATE_REDIS_URL at a single Redis (see docs/operations.md)"
        )
    engine = create_engine(urls.database_url, pool_size=settings.db_pool_size)
    redis = redis_client(urls.redis_url)
    gate = RedisStockGate(
        redis,
        Keys(settings.redis_prefix),
        sold_out_ttl=settings.sold_out_cache_seconds,
        on_batch=GATE_BATCH.observe,
    )
    journal = GroupCommitJournal(
        urls.database_url,
        pool_size=max(2, settings.db_pool_size // 2),
        max_batch=settings.group_commit_max_batch,
        on_batch=GROUP_COMMIT_BATCH.observe,
    )
    if api_node:
        # Workers need neither: only API nodes answer from the sold-out cache, and only
        # their first requests would wait for the journal to connect.
        await gate.start()
        await journal.open()
    return Container(
        settings=settings,
        engine=engine,
        redis=redis,
        gate=gate,
        journal=journal,
        uow_factory=PostgresUnitOfWorkFactory(engine),
        clock=SystemClock(),
        tokens=CustomerTokens(settings.secret_key.get_secret_value(), settings.token_ttl_seconds),
    )
