"""Lua scripts of the gate, and the batcher that sends concurrent calls as one pipeline.

Every gate call of one event-loop tick goes to Redis in one pipeline (EVALSHA each),
because the client's per-call cost, not Redis, bounds a naive implementation
(docs/performance.md). NOSCRIPT (a restarted or flushed Redis) is answered by loading the
script and sending the call again.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha1
from importlib import resources
from typing import Any

import structlog
from hiredis import pack_command
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from stockgate.adapters.tick_batches import TickBatches
from stockgate.domain.errors import CorruptGateData, GateOutcomeUnknown, StoreUnavailable

log = structlog.get_logger(__name__)

Arg = str | int
# Short: a gate call takes well under a millisecond in Redis, and a take whose answer is lost
# holds its units until its compensation runs (GateOutcomeUnknown), so waiting long only makes
# buyers wait for a 503.
READ_TIMEOUT_SECONDS = 2.0
MAX_BATCH = 512  # calls per pipeline: bounds one write and the replies read after it


# Scripts that get the server's identity as their last argument (see ServerIdentities).
WITH_SERVER = frozenset({"take", "load"})
# How long a connection's identity is trusted before it is read again. A restart or a
# failover breaks the connection, and a new connection always reads it first; this bound is
# for a role change under a live connection (a master made a replica and promoted again).
SERVER_RECHECK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str
    with_server: bool = False

    @classmethod
    def named(cls, name: str) -> Script:
        source = resources.files(__package__).joinpath(f"{name}.lua").read_text()
        return cls(name, source, sha1(source.encode()).hexdigest(), name in WITH_SERVER)


@dataclass(frozen=True, slots=True)
class Scripts:
    take: Script
    give_back: Script
    load: Script
    add_stock: Script
    restore: Script
    set_total: Script
    convert: Script
    return_sold: Script
    cancel_take: Script

    @classmethod
    def read(cls) -> Scripts:
        return cls(**{name: Script.named(name) for name in cls.__dataclass_fields__})


@dataclass(slots=True)
class _Call:
    script: Script
    keys: Sequence[str]
    args: Sequence[Arg]
    future: asyncio.Future[Any]


class ScriptBatcher:
    """Runs scripts; calls made in the same event-loop tick share one pipeline."""

    def __init__(
        self,
        redis: Redis,
        *,
        max_batch: int = MAX_BATCH,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._redis = redis
        self._servers = ServerIdentities()
        self._batches = TickBatches(self._send, max_batch=max_batch)
        self._on_batch = on_batch

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._batches.add(_Call(script, keys, args, future))
        return await future

    async def drain(self) -> None:
        """Wait until every call made is sent and answered (shutdown)."""
        await self._batches.drain()

    async def _send(self, batch: list[_Call]) -> None:
        try:
            await self._send_batch(batch)
        except BaseException as exc:
            # Whatever went wrong (a bug, a value the packer refused, cancellation), every
            # caller of this batch gets an answer (503) instead of waiting forever; the
            # batcher itself keeps going, the next batch is a new task.
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("gate.batch_failed", batch=len(batch))
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise

    async def _send_batch(self, batch: list[_Call], *, reloaded: bool = False) -> None:
        if not reloaded:
            self._on_batch(len(batch))
        try:
            results = await self._round_trip(batch)
        except (RedisError, OSError, TimeoutError, _AfterSending) as exc:
            _fail(batch, exc)
            return
        retry: list[_Call] = []
        for call, result in zip(batch, results, strict=True):
            if call.future.done():
                continue
            if isinstance(result, NoScriptError) and not reloaded:
                retry.append(call)
            elif isinstance(result, Exception):
                _fail([call], result)
            else:
                call.future.set_result(result)
        if retry:
            try:
                for script in {call.script for call in retry}:
                    await self._redis.script_load(script.source)
            except (RedisError, OSError) as exc:
                _fail(retry, exc)
                return
            await self._send_batch(retry, reloaded=True)

    async def _round_trip(self, batch: list[_Call]) -> list[Any]:
        """One write of every EVALSHA, then their replies in order, on one connection.

        Done by hand rather than with redis-py's Pipeline, whose per-command packing was the
        largest cost of the gate in the profile (docs/performance.md); hiredis packs each
        command in C.
        """
        pool = self._redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]  # untyped in redis-py
        sent = False
        try:
            async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                server = await self._servers.of(connection)
                packed = b"".join(_evalsha(call, server) for call in batch)
                sent = True  # from here on, Redis may run the calls even if we fail
                await connection.send_packed_command(packed, check_health=False)
                results: list[Any] = []
                for _ in batch:
                    try:
                        results.append(await connection.read_response(timeout=math.inf))
                    except ResponseError as exc:  # a script's error: that call only
                        results.append(exc)
        except BaseException as exc:
            # Replies may still be in flight: never hand this connection to anyone else.
            await connection.disconnect(nowait=True)
            if sent and isinstance(exc, RedisError | OSError | TimeoutError):
                raise _AfterSending(exc) from exc
            raise
        finally:
            await pool.release(connection)
        return results


def _evalsha(call: _Call, server: bytes) -> bytes:
    command: tuple[bytes | str | int, ...] = (
        b"EVALSHA",
        call.script.sha,
        len(call.keys),
        *call.keys,
        *call.args,
    )
    if call.script.with_server:
        command += (server,)
    packed: bytes = pack_command(command)  # type: ignore[arg-type]  # the stub says a 1-tuple
    return packed


def _pack(*parts: bytes) -> bytes:
    packed: bytes = pack_command(parts)  # type: ignore[arg-type]  # the stub says a 1-tuple
    return packed


class _AfterSending(Exception):
    """Redis failed after the batch was sent: each call's outcome is unknown."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"redis failed after sending: {type(cause).__name__}")
        self.cause = cause


def _fail(calls: list[_Call], exc: BaseException) -> None:
    for call in calls:
        if not call.future.done():
            error: StoreUnavailable
            if isinstance(exc, _AfterSending):
                error = GateOutcomeUnknown(str(exc))
            else:
                error = redis_error(exc)
            error.__cause__ = exc
            call.future.set_exception(error)


def redis_error(exc: BaseException) -> StoreUnavailable:
    """What a Redis failure means to the caller: an outage, or damaged data.

    A plain error reply (WRONGTYPE, a failing script) is about the keys; its subclasses
    (READONLY, OOM, TRYAGAIN, MOVED, cluster down, ...) and connection errors are outages.
    """
    if type(exc) is ResponseError:
        return CorruptGateData(str(exc))
    return StoreUnavailable("redis", f"redis failed: {type(exc).__name__}")


class ServerIdentities:
    """Which Redis server each connection talks to: its run id and replication id.

    Redis cannot restore these from a snapshot: a restart gets a new run id, a promoted
    replica a new replication id. Each product's keys record the identity they were loaded
    under, and a take compares it with its connection's (decision 0014), so a gate that may
    have lost writes refuses takes until it is rebuilt from PostgreSQL. Read once per
    connection (on first use and after every reconnect, through redis-py's connect callback)
    and again when older than SERVER_RECHECK_SECONDS: no extra round trip for a batch
    otherwise.
    """

    def __init__(self) -> None:
        self._known: weakref.WeakKeyDictionary[Any, tuple[bytes, float]] = (
            weakref.WeakKeyDictionary()
        )

    async def of(self, connection: Any) -> bytes:
        known = self._known.get(connection)
        now = time.monotonic()
        if known is not None and now - known[1] < SERVER_RECHECK_SECONDS:
            return known[0]
        connection.register_connect_callback(self._forget)  # idempotent in redis-py
        await connection.send_packed_command(
            _pack(b"INFO", b"server") + _pack(b"INFO", b"replication"),
            check_health=False,
        )
        server_info = await connection.read_response(timeout=math.inf)
        replication_info = await connection.read_response(timeout=math.inf)
        identity = server_identity(server_info, replication_info)
        self._known[connection] = (identity, now)
        return identity

    def _forget(self, connection: Any) -> None:
        """Called by redis-py whenever the connection (re)connects: maybe another server."""
        self._known.pop(connection, None)


def server_identity(
    server_info: bytes | str | Mapping[str, Any], replication_info: bytes | str | Mapping[str, Any]
) -> bytes:
    """`run_id:master_replid` from INFO server and INFO replication (raw, or as redis-py
    parses them)."""
    fields: dict[str, Any] = {}
    for section in (server_info, replication_info):
        if isinstance(section, Mapping):
            fields.update(section)
            continue
        text = section.decode() if isinstance(section, bytes) else section
        for line in text.splitlines():
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return f"{fields.get('run_id', '')}:{fields.get('master_replid', '')}".encode()
