"""The stack under load: its own (fresh database, own Redis prefix, API and worker child
processes on a free port) or one already running at --url. Also measures server CPU time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil
from pydantic import SecretStr
from redis.asyncio import Redis

from stockgate.adapters.embedded.fake_stripe import FakeStripe
from stockgate.adapters.postgres.migrate import upgrade_async
from stockgate.config import Settings, StoreUrls, weak_secret_key
from stockgate.supervisor import StartFailed, Supervisor, free_port, stockgate_command

HEALTH_TIMEOUT_S = 30.0


class StackFailed(RuntimeError):
    """The stack did not start; the message ends with the end of its processes' logs."""


@dataclass(slots=True)
class Stack:
    base_url: str
    settings: Settings  # what the API under load runs with (prefix, hold length, URLs)
    urls: StoreUrls
    children: Supervisor = field(default_factory=Supervisor)
    server_pids: list[int] = field(default_factory=list)  # --url: whoever listens on the port

    store_pids: list[int] = field(default_factory=list)  # PostgreSQL and Redis on this machine

    def server_cpu_seconds(self) -> float:
        """User + system time of the server processes and their children (granian workers)."""
        return cpu_seconds([c.pid for c in self.children.children] or self.server_pids)

    def store_cpu_seconds(self) -> float:
        """The same for PostgreSQL (with its backends) and Redis, when they run here."""
        return cpu_seconds(self.store_pids)

    def api_worker_pids(self) -> list[int]:
        """The processes that serve requests (granian's workers), for a profiler."""
        pids: list[int] = []
        for api in self.children.children[:1]:
            with contextlib.suppress(psutil.Error):
                workers = psutil.Process(api.pid).children(recursive=True)
                pids += [w.pid for w in workers] or [api.pid]
        return pids


def cpu_seconds(roots: Sequence[int]) -> float:
    total = 0.0
    seen: set[int] = set()
    for pid in roots:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                if process.pid in seen:
                    continue
                seen.add(process.pid)
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system
    return total


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _plain(url: str) -> str:
    """asyncpg wants postgresql://, not SQLAlchemy's postgresql+asyncpg://."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


@contextlib.asynccontextmanager
async def fresh_database(database_url: str, run_id: str) -> AsyncIterator[str]:
    """A migrated database of its own for one run, dropped afterwards.

    A run of its own keeps other stacks' expiry workers (which claim due reservations of the
    whole database) away from this run's reservations, and this run's away from theirs.
    """
    name = f"stockgate_bench_{run_id}"
    admin_url = _plain(_with_database(database_url, "postgres"))
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(database_url, name)
    try:
        await upgrade_async(url)
        yield url
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def delete_prefix(redis_url: str, prefix: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await redis.unlink(*batch)
                batch = []
        if batch:
            await redis.unlink(*batch)
    finally:
        await redis.aclose()


# With --rate-limits: every limit counted in Redis, none ever reached by a bench's load.
UNREACHABLE_LIMIT = "1000000000/minute"


def _child_env(
    settings: Settings, database_url: str, redis_url: str, port: int, *, rate_limits: bool
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKGATE_")}
    env.update(
        STOCKGATE_DATABASE_URL=database_url,
        STOCKGATE_REDIS_URL=redis_url,
        STOCKGATE_REDIS_PREFIX=settings.redis_prefix,
        STOCKGATE_HTTP_HOST="127.0.0.1",
        STOCKGATE_HTTP_PORT=str(port),
        STOCKGATE_HTTP_WORKERS=str(settings.http_workers),
        STOCKGATE_HOLD_SECONDS=str(settings.hold_seconds),
        STOCKGATE_SECRET_KEY=settings.secret_key.get_secret_value(),
        # Limits off: one address creates thousands of buyers (--rate-limits: counted only).
        STOCKGATE_RATE_LIMIT_ENABLED="true" if rate_limits else "false",
        STOCKGATE_RATE_LIMIT_CUSTOMERS=UNREACHABLE_LIMIT,
        STOCKGATE_RATE_LIMIT_HOLDS_PER_ADDRESS=UNREACHABLE_LIMIT,
        STOCKGATE_RATE_LIMIT_HOLDS_PER_CUSTOMER=UNREACHABLE_LIMIT,
        STOCKGATE_LOG_LEVEL="warning",  # measure the hot path, not per-request log lines
        STOCKGATE_LOG_FORMAT="json",
        STOCKGATE_EXPIRY_POLL_SECONDS=str(settings.expiry_poll_seconds),
    )
    return env


@contextlib.asynccontextmanager
async def own_stack(
    settings: Settings,
    urls: StoreUrls,
    workdir: Path,
    *,
    with_worker: bool,
    rate_limits: bool = False,
    with_stripe: bool = False,
) -> AsyncIterator[Stack]:
    """Fresh database and Redis prefix, `stockgate api` (and `worker --role all`) on a free
    port; everything is stopped and removed on the way out, also on Ctrl-C."""
    run_id = uuid.uuid4().hex[:10]
    settings = settings.model_copy(update={"redis_prefix": f"bench{run_id}"})
    if weak_secret_key(settings.secret_key.get_secret_value()) is not None:
        # `api` refuses the built-in key; a throw-away stack can sign with a throw-away one.
        settings = settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(48))})
    async with fresh_database(urls.database_url, run_id) as database_url:
        settings = settings.model_copy(
            update={"database_url": database_url, "redis_url": urls.redis_url}
        )
        port = free_port()
        env = _child_env(settings, database_url, urls.redis_url, port, rate_limits=rate_limits)
        fake_stripe = None
        if with_stripe:  # its own fake Stripe, sending webhooks to this stack's API
            fake_stripe = FakeStripe(
                free_port(), workdir / "fake-stripe.log", state_dir=workdir / "stripe", fresh=True
            )
            await asyncio.to_thread(fake_stripe.start)
            env.update(fake_stripe.environment())
        stack = Stack(
            base_url=f"http://127.0.0.1:{port}",
            settings=settings,
            urls=StoreUrls(database_url, urls.redis_url),
        )
        children = stack.children
        try:
            # Started from the event loop's thread: see stockgate.supervisor on die-with-parent.
            children.start("api", stockgate_command("api"), env=env, log=workdir / "api.log")
            if with_worker:
                worker = stockgate_command("worker", "--role", "all")
                children.start("worker", worker, env=env, log=workdir / "worker.log")
            url = f"{stack.base_url}/healthz"
            try:
                await asyncio.to_thread(children.wait_healthy, url, timeout=HEALTH_TIMEOUT_S)
            except StartFailed as exc:
                tails = "\n".join(f"--- {c.name}\n{c.output()}" for c in children.children)
                raise StackFailed(f"{exc}\n{tails}") from exc
            if fake_stripe is not None:
                webhook = f"{stack.base_url}/api/v1/stripe/webhook"
                await asyncio.to_thread(fake_stripe.register_webhook, webhook)
            yield stack
        finally:
            await asyncio.to_thread(children.stop)
            if fake_stripe is not None:
                await asyncio.to_thread(fake_stripe.stop)
            await delete_prefix(urls.redis_url, settings.redis_prefix)


def store_pids(urls: StoreUrls) -> list[int]:
    """PostgreSQL's and Redis's listening processes when they run on this machine."""
    pids: list[int] = []
    for url, default_port in ((urls.database_url, 5432), (urls.redis_url, 6379)):
        parts = urlsplit(url)
        if parts.hostname in {"127.0.0.1", "localhost", "::1"}:
            pids += listeners(url, default_port)
    return pids


def listeners(url: str, default_port: int = 80) -> list[int]:
    """Pids listening on the URL's port on this machine (for CPU figures); may be empty."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else default_port)
    with contextlib.suppress(psutil.Error, OSError):
        return sorted(
            {
                c.pid
                for c in psutil.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
            }
        )
    return []
