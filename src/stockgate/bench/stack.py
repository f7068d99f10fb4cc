"""The stack under load: its own (fresh database, own Redis prefix, API and worker child
processes on a free port) or one already running at --url. Also measures server CPU time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import psutil
from pydantic import SecretStr
from redis.asyncio import Redis

from stockgate.adapters.postgres.migrate import upgrade_async
from stockgate.config import Settings, StoreUrls, weak_secret_key

HEALTH_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class StackFailed(RuntimeError):
    pass


@dataclass(slots=True)
class Stack:
    base_url: str
    settings: Settings  # what the API under load runs with (prefix, hold length, URLs)
    urls: StoreUrls
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    server_pids: list[int] = field(default_factory=list)  # --url: whoever listens on the port

    store_pids: list[int] = field(default_factory=list)  # PostgreSQL and Redis on this machine

    def server_cpu_seconds(self) -> float:
        """User + system time of the server processes and their children (granian workers)."""
        return cpu_seconds([p.pid for p in self.processes] or self.server_pids)

    def store_cpu_seconds(self) -> float:
        """The same for PostgreSQL (with its backends) and Redis, when they run here."""
        return cpu_seconds(self.store_pids)

    def api_worker_pids(self) -> list[int]:
        """The processes that serve requests (granian's workers), for a profiler."""
        pids: list[int] = []
        for process in self.processes[:1]:
            with contextlib.suppress(psutil.Error):
                children = psutil.Process(process.pid).children(recursive=True)
                pids += [c.pid for c in children] or [process.pid]
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


def _child_env(settings: Settings, database_url: str, redis_url: str, port: int) -> dict[str, str]:
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
        STOCKGATE_RATE_LIMIT_ENABLED="false",
        STOCKGATE_LOG_LEVEL="warning",  # measure the hot path, not per-request log lines
        STOCKGATE_LOG_FORMAT="json",
        STOCKGATE_EXPIRY_POLL_SECONDS=str(settings.expiry_poll_seconds),
    )
    return env


def _spawn(args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        # A session of its own: stopping the group also stops granian's worker processes.
        return subprocess.Popen(
            [sys.executable, "-m", "stockgate.entrypoints.cli.main", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        # Whatever the group leader left behind (a worker that ignored SIGTERM) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


async def wait_healthy(base_url: str, processes: Sequence[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    async with httpx.AsyncClient(timeout=1.0) as client:
        while time.monotonic() < deadline:
            for process in processes:
                if process.poll() is not None:
                    raise StackFailed(f"a stack process exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{base_url}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise StackFailed(f"{base_url}/healthz did not answer 200 within {HEALTH_TIMEOUT_S:.0f} s")


@contextlib.asynccontextmanager
async def own_stack(
    settings: Settings, urls: StoreUrls, workdir: Path, *, with_worker: bool
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
        env = _child_env(settings, database_url, urls.redis_url, port)
        stack = Stack(
            base_url=f"http://127.0.0.1:{port}",
            settings=settings,
            urls=StoreUrls(database_url, urls.redis_url),
        )
        try:
            stack.processes.append(_spawn(["api"], env, workdir / "api.log"))
            if with_worker:
                stack.processes.append(
                    _spawn(["worker", "--role", "all"], env, workdir / "worker.log")
                )
            try:
                await wait_healthy(stack.base_url, stack.processes)
            except StackFailed as exc:
                raise StackFailed(f"{exc}\n{_tails(workdir)}") from exc
            yield stack
        finally:
            await asyncio.to_thread(_stop, stack.processes)
            await delete_prefix(urls.redis_url, settings.redis_prefix)


def _tails(workdir: Path) -> str:
    return "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
        for log in sorted(workdir.glob("*.log"))
    )


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
