"""The composition root: the only place that builds engines, clients, adapters and services.

Every entrypoint (the HTTP app's lifespan, the workers, each CLI command, `up`, the bench)
calls `bootstrap(settings, urls)` when it starts and `await container.close()` on its way out;
nothing connects at import. The container is typed by the ports of `services/ports.py`, so
the rest of the code sees what a port promises, not which adapter is behind it.

Tests pass their own implementation of any port as a keyword argument: what is given is not
built, and when every store-backed port is given, no store is touched at all (unit tests
build the container from in-memory fakes this way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from stockgate.adapters.clock import SystemClock
from stockgate.adapters.metrics import (
    GATE_BATCH,
    GROUP_COMMIT_BATCH,
    STOCK_UPDATES_SENT,
    observe_job,
)
from stockgate.adapters.notify.email import SmtpMailer
from stockgate.adapters.notify.webhook import StandardWebhookNotifier
from stockgate.adapters.postgres.admin_users import PostgresAdminUsers
from stockgate.adapters.postgres.admin_views import PostgresAdminViews
from stockgate.adapters.postgres.audit import PostgresAuditLog
from stockgate.adapters.postgres.database import create_engine
from stockgate.adapters.postgres.journal import GroupCommitJournal
from stockgate.adapters.postgres.unit_of_work import PostgresUnitOfWorkFactory
from stockgate.adapters.probe import StoresProbe
from stockgate.adapters.queue.bull import BullJobRunner, BullWorkQueue, QueueSettings
from stockgate.adapters.rate_limits import (
    LibraryRateLimits,
    memory_storage,
    parse_limits,
    redis_storage,
)
from stockgate.adapters.realtime.stock_feed import StockFeed
from stockgate.adapters.redis.admin_sessions import RedisAdminSessions
from stockgate.adapters.redis.gate import RedisStockGate
from stockgate.adapters.redis.keys import Keys
from stockgate.adapters.redis.login_throttle import RedisLoginThrottle
from stockgate.adapters.stripe.payments import StripePayments
from stockgate.config import Settings, StoreUrls
from stockgate.services.admin_auth import AuthDeps, SessionPolicy
from stockgate.services.cancel import CancelDeps
from stockgate.services.customers import CustomerTokens
from stockgate.services.fulfill import FulfillDeps
from stockgate.services.payments import PaymentDeps
from stockgate.services.ports import (
    CUSTOMERS_PER_ADDRESS,
    HOLDS_PER_ADDRESS,
    HOLDS_PER_CUSTOMER,
    AdminSessions,
    AdminUsers,
    AdminViews,
    AuditLog,
    Clock,
    JobRunner,
    LoginThrottle,
    Mailer,
    MerchantNotifier,
    PaymentProvider,
    RateLimits,
    ReservationJournal,
    StockChanges,
    StockGate,
    StoreProbe,
    UnitOfWorkFactory,
    WorkQueue,
)
from stockgate.services.rebuild import GateRebuilds
from stockgate.services.reserve import ReserveDeps

Closer = Callable[[], Awaitable[None]]


log = structlog.get_logger(__name__)
CLOSE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class StoreClients:
    """The raw clients bootstrap made. Only adapters use them; tests may, to break things."""

    engine: AsyncEngine
    redis: Redis
    socketio: Any  # socketio.AsyncRedisManager: read-write on API nodes, else write-only


@dataclass(slots=True)
class Container:
    settings: Settings
    clock: Clock
    uow_factory: UnitOfWorkFactory
    gate: StockGate
    journal: ReservationJournal
    admin_users: AdminUsers
    probe: StoreProbe
    tokens: CustomerTokens
    stock_changes: StockChanges
    rate_limits: RateLimits
    work_queue: WorkQueue
    # Makes the worker side of the queue (only worker processes call it).
    job_runner: Callable[[], JobRunner]
    # Admin dashboard
    admin_sessions: AdminSessions
    login_throttle: LoginThrottle
    audit: AuditLog
    admin_views: AdminViews
    payments: PaymentProvider | None = None  # None: no Stripe configured (checkout answers 503)
    notifier: MerchantNotifier | None = None  # None: no merchant webhook configured
    mailer: Mailer | None = None  # None: no SMTP configured
    stores: StoreClients | None = None  # None when every store-backed port was given
    _closers: list[Closer] = field(default_factory=list)

    reserve_deps: ReserveDeps = field(init=False)
    auth_deps: AuthDeps = field(init=False)
    fulfill_deps: FulfillDeps = field(init=False)
    cancel_deps: CancelDeps = field(init=False)
    payment_deps: PaymentDeps = field(init=False)

    def __post_init__(self) -> None:
        self.reserve_deps = ReserveDeps(
            gate=self.gate,
            journal=self.journal,
            uow_factory=self.uow_factory,
            clock=self.clock,
            hold_seconds=self.settings.hold_seconds,
            max_quantity=self.settings.max_quantity,
            rebuilds=GateRebuilds(self.settings.gate_rebuild_settle_seconds),
            stock_changes=self.stock_changes,
        )
        self.auth_deps = AuthDeps(
            users=self.admin_users,
            sessions=self.admin_sessions,
            throttle=self.login_throttle,
            audit=self.audit,
            clock=self.clock,
            policy=SessionPolicy(
                idle_seconds=self.settings.admin_session_idle_seconds,
                max_seconds=self.settings.admin_session_max_seconds,
            ),
        )
        self.fulfill_deps = FulfillDeps(
            uow_factory=self.uow_factory,
            clock=self.clock,
            notifier=self.notifier,
            mailer=self.mailer,
            merchant_email=self.settings.merchant_email,
            max_attempts=self.settings.fulfillment_attempts,
        )
        self.cancel_deps = CancelDeps(
            uow_factory=self.uow_factory,
            gate=self.gate,
            payments=self.payments,
            stock_changes=self.stock_changes,
        )
        self.payment_deps = PaymentDeps(
            uow_factory=self.uow_factory,
            gate=self.gate,
            payments=self.payments,
            queue=self.work_queue,
            clock=self.clock,
            hold_seconds=self.settings.hold_seconds,
            payment_hold_seconds=self.settings.payment_hold_seconds,
            stock_changes=self.stock_changes,
        )

    async def close(self) -> None:
        """Finish what is in flight, then close what bootstrap opened (in reverse order).

        Each closer gets CLOSE_SECONDS: a client library that never finishes closing must not
        keep a command or a worker from exiting (it is logged, and the next one runs)."""
        while self._closers:
            closer = self._closers.pop()
            try:
                await asyncio.wait_for(closer(), CLOSE_SECONDS)
            except TimeoutError:
                log.warning(
                    "container.close_timed_out", closer=getattr(closer, "__qualname__", "?")
                )


async def bootstrap(
    settings: Settings,
    urls: StoreUrls | None = None,
    *,
    api_node: bool = False,
    clock: Clock | None = None,
    uow_factory: UnitOfWorkFactory | None = None,
    gate: StockGate | None = None,
    journal: ReservationJournal | None = None,
    admin_users: AdminUsers | None = None,
    probe: StoreProbe | None = None,
    admin_sessions: AdminSessions | None = None,
    login_throttle: LoginThrottle | None = None,
    audit: AuditLog | None = None,
    admin_views: AdminViews | None = None,
    stock_changes: StockChanges | None = None,
    rate_limits: RateLimits | None = None,
    work_queue: WorkQueue | None = None,
    job_runner: Callable[[], JobRunner] | None = None,
    payments: PaymentProvider | None = None,
    notifier: MerchantNotifier | None = None,
    mailer: Mailer | None = None,
) -> Container:
    """Build the container. `urls`: where the stores are (default: the configured URLs, else
    the running embedded servers). `api_node`: also warm up what only API nodes use."""
    closers: list[Closer] = []
    stores: StoreClients | None = None
    # Before the stores: the unit of work parses stored webhook events with it.
    payments = payments or _payments(settings, closers)
    admin_ports = (admin_sessions, login_throttle, audit, admin_views)
    if None in (
        uow_factory,
        gate,
        journal,
        admin_users,
        probe,
        work_queue,
        job_runner,
        *admin_ports,
        stock_changes,
    ):
        urls = urls or _resolve(settings)
        stores = _connect(settings, urls, closers, api_node=api_node)
        if gate is None:
            gate = await _gate(settings, stores.redis, closers, api_node=api_node)
        if journal is None:
            journal = await _journal(settings, urls.database_url, closers, api_node=api_node)
        uow_factory = uow_factory or PostgresUnitOfWorkFactory(stores.engine, payments)
        admin_users = admin_users or PostgresAdminUsers(stores.engine)
        probe = probe or StoresProbe(stores.engine, stores.redis)
        admin_sessions = admin_sessions or RedisAdminSessions(stores.redis, settings.redis_prefix)
        login_throttle = login_throttle or _login_throttle(settings, stores.redis)
        audit = audit or PostgresAuditLog(stores.engine)
        admin_views = admin_views or PostgresAdminViews(stores.engine)
        queue_settings = _queue_settings(settings, urls.redis_url)
        if work_queue is None:
            bull_queue = BullWorkQueue(queue_settings)
            closers.append(bull_queue.close)
            work_queue = bull_queue
        if job_runner is None:
            job_runner = lambda: BullJobRunner(queue_settings, observe=observe_job)  # noqa: E731
        stock_changes = stock_changes or _stock_feed(settings, gate, stores, closers)
    assert uow_factory and gate and journal and admin_users and probe  # all given or all built
    if rate_limits is None:
        storage = (
            memory_storage()
            if stores is None
            else redis_storage(stores.redis, settings.redis_prefix)
        )
        rate_limits = LibraryRateLimits(storage, rate_limit_scopes(settings))
    assert work_queue and job_runner and stock_changes
    assert admin_sessions and login_throttle and audit and admin_views
    notifier = notifier or _notifier(settings, closers)
    mailer = mailer or _mailer(settings)
    return Container(
        settings=settings,
        clock=clock or SystemClock(),
        uow_factory=uow_factory,
        gate=gate,
        journal=journal,
        admin_users=admin_users,
        probe=probe,
        tokens=CustomerTokens(settings.secret_key.get_secret_value(), settings.token_ttl_seconds),
        admin_sessions=admin_sessions,
        login_throttle=login_throttle,
        audit=audit,
        admin_views=admin_views,
        stock_changes=stock_changes,
        rate_limits=rate_limits,
        work_queue=work_queue,
        job_runner=job_runner,
        payments=payments,
        notifier=notifier,
        mailer=mailer,
        stores=stores,
        _closers=closers,
    )


def _login_throttle(settings: Settings, redis: Redis) -> LoginThrottle:
    return RedisLoginThrottle(
        redis,
        settings.redis_prefix,
        max_failures={
            "account": settings.admin_login_max_failures,
            "address": settings.admin_login_max_failures_per_address,
        },
        window_seconds=settings.admin_login_window_seconds,
    )


def rate_limit_scopes(settings: Settings) -> dict[str, tuple[Any, ...]]:
    """Each limit scope and its limits; STOCKGATE_RATE_LIMIT_ENABLED=false turns off the
    buyer-facing ones (an admin login throttle, added here, stays on regardless)."""
    on = settings.rate_limit_enabled
    return {
        CUSTOMERS_PER_ADDRESS: parse_limits(settings.rate_limit_customers) if on else (),
        HOLDS_PER_ADDRESS: parse_limits(settings.rate_limit_holds_per_address) if on else (),
        HOLDS_PER_CUSTOMER: parse_limits(settings.rate_limit_holds_per_customer) if on else (),
    }


def _resolve(settings: Settings) -> StoreUrls:
    from stockgate.adapters.embedded.stores import resolve  # only when no URLs are given

    return resolve(settings)


def _connect(
    settings: Settings, urls: StoreUrls, closers: list[Closer], *, api_node: bool
) -> StoreClients:
    engine = create_engine(urls.database_url, pool_size=settings.db_pool_size)
    redis = redis_client(urls.redis_url)
    # Imported here: python-socketio loads all of its clients too (seconds on a busy host),
    # which commands that never connect (`--help`, the `api` supervisor) need not pay.
    from stockgate.adapters.realtime.fanout import close_manager, redis_manager

    # API nodes listen for the events other processes publish; the rest only publish.
    manager = redis_manager(urls.redis_url, settings.redis_prefix, write_only=not api_node)
    closers.append(engine.dispose)  # closed last: the others may still need them
    closers.append(redis.aclose)

    async def close_socketio() -> None:
        await close_manager(manager)

    closers.append(close_socketio)
    return StoreClients(engine, redis, manager)


def _stock_feed(
    settings: Settings, gate: StockGate, stores: StoreClients, closers: list[Closer]
) -> StockChanges:
    feed = StockFeed(
        gate,
        stores.socketio,
        interval=settings.live_stock_interval_seconds,
        on_flush=STOCK_UPDATES_SENT.inc,
    )
    feed.start()
    closers.append(feed.close)  # before the gate and Redis close: it sends what is marked
    return feed


def _payments(settings: Settings, closers: list[Closer]) -> PaymentProvider | None:
    if settings.stripe_secret_key is None:
        return None
    webhook_secret = settings.stripe_webhook_secret
    payments = StripePayments(
        secret_key=settings.stripe_secret_key.get_secret_value(),
        webhook_secret=webhook_secret.get_secret_value() if webhook_secret else None,
        api_base=settings.stripe_api_base,
        timeout_seconds=settings.stripe_timeout_seconds,
        max_network_retries=settings.stripe_max_network_retries,
    )
    closers.append(payments.close)
    return payments


def _notifier(settings: Settings, closers: list[Closer]) -> MerchantNotifier | None:
    secret = settings.merchant_webhook_secret
    if not settings.merchant_webhook_url or secret is None:
        return None
    notifier = StandardWebhookNotifier(
        settings.merchant_webhook_url,
        secret.get_secret_value(),
        timeout_seconds=settings.notify_timeout_seconds,
    )
    closers.append(notifier.close)
    return notifier


def _mailer(settings: Settings) -> Mailer | None:
    if not settings.smtp_url:
        return None
    return SmtpMailer(
        settings.smtp_url, settings.smtp_from, timeout_seconds=settings.notify_timeout_seconds
    )


def _queue_settings(settings: Settings, redis_url: str) -> QueueSettings:
    return QueueSettings(
        redis_url=redis_url,
        prefix=settings.redis_prefix,
        attempts=settings.fulfillment_attempts,
        backoff_seconds=settings.retry_backoff_seconds,
        backoff_max_seconds=settings.retry_backoff_max_seconds,
        lock_seconds=settings.job_lock_seconds,
        stalled_check_seconds=max(0.5, settings.job_lock_seconds / 2),
        concurrency=settings.job_concurrency,
        keep_failed_seconds=settings.keep_failed_jobs_seconds,
    )


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


async def _gate(
    settings: Settings, redis: Redis, closers: list[Closer], *, api_node: bool
) -> StockGate:
    gate = RedisStockGate(
        redis,
        Keys(settings.redis_prefix),
        sold_out_ttl=settings.sold_out_cache_seconds,
        on_batch=GATE_BATCH.observe,
    )
    if api_node:
        # Only API nodes answer from the sold-out cache, so only they follow restocks.
        await gate.start()
    closers.append(gate.stop)  # finishes every gate call made, a give-back included
    return gate


async def _journal(
    settings: Settings, database_url: str, closers: list[Closer], *, api_node: bool
) -> ReservationJournal:
    journal = GroupCommitJournal(
        database_url,
        pool_size=max(2, settings.db_pool_size // 2),
        max_batch=settings.group_commit_max_batch,
        on_batch=GROUP_COMMIT_BATCH.observe,
    )
    if api_node:
        # Workers never write reservations; an API node's first requests would otherwise
        # wait for the journal's connections (docs/performance.md).
        await journal.open()
    closers.append(journal.drain)
    return journal
