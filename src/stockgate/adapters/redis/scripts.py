"""Lua scripts of the gate, and the batcher that sends concurrent calls as one pipeline.

Every gate call of one event-loop tick goes to Redis in one pipeline (EVALSHA each),
because the client's per-call cost, not Redis, bounds a naive implementation
(docs/performance.md). NOSCRIPT (a restarted or flushed Redis) is answered by loading the
script and sending the call again.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from hashlib import sha1
from importlib import resources
from typing import Any

from hiredis import pack_command
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from stockgate.adapters.tick_batches import TickBatches
from stockgate.domain.errors import CorruptGateData, StoreUnavailable

Arg = str | int
READ_TIMEOUT_SECONDS = 5.0
MAX_BATCH = 512  # calls per pipeline: bounds one write and the replies read after it


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str

    @classmethod
    def named(cls, name: str) -> Script:
        source = resources.files(__package__).joinpath(f"{name}.lua").read_text()
        return cls(name, source, sha1(source.encode()).hexdigest())


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
        self._batches = TickBatches(self._send, max_batch=max_batch)
        self._on_batch = on_batch

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._batches.add(_Call(script, keys, args, future))
        return await future

    async def drain(self) -> None:
        """Wait until every call made is sent and answered (shutdown)."""
        await self._batches.drain()

    async def _send(self, batch: list[_Call], *, reloaded: bool = False) -> None:
        if not reloaded:
            self._on_batch(len(batch))
        try:
            results = await self._round_trip(batch)
        except (RedisError, OSError, TimeoutError) as exc:
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
            await self._send(retry, reloaded=True)

    async def _round_trip(self, batch: list[_Call]) -> list[Any]:
        """One write of every EVALSHA, then their replies in order, on one connection.

        Done by hand rather than with redis-py's Pipeline, whose per-command packing was the
        largest cost of the gate in the profile (docs/performance.md); hiredis packs each
        command in C.
        """
        pool = self._redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]  # untyped in redis-py
        try:
            packed = b"".join(_evalsha(call) for call in batch)
            async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                await connection.send_packed_command(packed, check_health=False)
                results: list[Any] = []
                for _ in batch:
                    try:
                        results.append(await connection.read_response(timeout=math.inf))
                    except ResponseError as exc:  # a script's error: that call only
                        results.append(exc)
        except BaseException:
            # Replies may still be in flight: never hand this connection to anyone else.
            await connection.disconnect(nowait=True)
            raise
        finally:
            await pool.release(connection)
        return results


def _evalsha(call: _Call) -> bytes:
    command = (b"EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)
    packed: bytes = pack_command(command)  # type: ignore[arg-type]  # the stub says a 1-tuple
    return packed


def _fail(calls: list[_Call], exc: BaseException) -> None:
    for call in calls:
        if not call.future.done():
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
