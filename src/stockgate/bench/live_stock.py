"""`stockgate bench live-stock`: Socket.IO watchers of one product while it is reserved hard.

The reserve load (wrk, `reserve.lua`) runs twice on the same stack: first with nobody watching,
then with `WATCHERS` WebSocket clients watching the product. Every hold changes the product's
available stock, thousands of times a second; the API coalesces them into at most one `stock`
event per interval. Figures: the reserve load side by side (requests/s, p99, API CPU) and the
delivery latency of the events, change -> client.

Latency: while the load runs, a sampler reads the product's available count from Redis every
`SAMPLE_SECONDS`; under a reserve-only load it only goes down, so the moment a value was first
reached is the first sample at or below it. An event carrying that value, received at `t`, was
delivered `t - that moment` after the change (too low by at most one sample period).

The watchers speak the Socket.IO protocol (Engine.IO v4, WebSocket only) over aiohttp, a few
lines per message, so 1,000 of them fit beside the load in one process.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import psutil

from stockgate.bench.scenarios import Goal, Plan, Reserve, Target, register

WATCHERS = 1000
CONNECT_CONCURRENCY = 50
SAMPLE_SECONDS = 0.002


@dataclass(slots=True)
class Watcher:
    received: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, available)
    task: asyncio.Task[None] | None = None


class Watchers:
    """WebSocket clients speaking just enough Socket.IO to watch one product."""

    def __init__(self, base_url: str, product_id: int) -> None:
        self._url = base_url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self._product_id = product_id
        self._session: Any = None
        self.watchers: list[Watcher] = []
        self.failed = 0

    async def connect(self, count: int) -> None:
        try:
            import aiohttp  # the dev dependencies' WebSocket client
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise RuntimeError("bench live-stock needs aiohttp (uv sync installs it)") from exc
        # No connection limit: each watcher keeps its connection (aiohttp allows 100 by default).
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one() -> None:
            async with limit:
                watcher = Watcher()
                try:
                    ws = await self._session.ws_connect(self._url, timeout=10)
                    await self._handshake(ws)
                except Exception:
                    self.failed += 1
                    return
                watcher.task = asyncio.get_running_loop().create_task(self._read(ws, watcher))
                self.watchers.append(watcher)

        await asyncio.gather(*(one() for _ in range(count)))

    async def _handshake(self, ws: Any) -> None:
        opened = await ws.receive_str(timeout=10)  # 0{"sid":...}
        assert opened.startswith("0"), opened
        await ws.send_str("40")  # connect to the default namespace
        while not (await ws.receive_str(timeout=10)).startswith("40"):
            pass
        await ws.send_str("420" + json.dumps(["watch", {"product_ids": [self._product_id]}]))
        while True:
            message = await ws.receive_str(timeout=10)
            if message.startswith("430"):
                (answer,) = json.loads(message[3:])
                assert answer["ok"], answer
                return

    async def _read(self, ws: Any, watcher: Watcher) -> None:
        received = watcher.received
        with contextlib.suppress(Exception):
            async for message in ws:
                data = message.data
                if data == "2":  # the server's ping
                    await ws.send_str("3")
                elif data.startswith('42["stock"'):
                    received.append((time.monotonic(), json.loads(data[2:])[1]["available"]))

    async def close(self) -> None:
        for watcher in self.watchers:
            if watcher.task is not None:
                watcher.task.cancel()
        await asyncio.gather(
            *(w.task for w in self.watchers if w.task is not None), return_exceptions=True
        )
        if self._session is not None:
            await self._session.close()


async def sample(target: Target, product_id: int, seconds: float) -> list[tuple[float, int]]:
    """(monotonic time, available) every SAMPLE_SECONDS for `seconds`."""
    gate = target.container.gate
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = (await gate.available([product_id]))[product_id]
        if value is not None:
            samples.append((time.monotonic(), value))
        await asyncio.sleep(SAMPLE_SECONDS)
    return samples


def latencies_ms(samples: list[tuple[float, int]], watchers: list[Watcher]) -> list[float]:
    """Per event received during the sampling: ms since its value was first seen in Redis."""
    if not samples:
        return []
    start, end = samples[0][0], samples[-1][0]
    # Values only go down: as keys of a bisect, their negatives go up.
    keys = [-value for _, value in samples]
    found = []
    for watcher in watchers:
        for received_at, value in watcher.received:
            if not start <= received_at <= end:
                continue
            index = bisect.bisect_left(keys, -value)
            if index < len(samples):
                found.append(max(0.0, (received_at - samples[index][0]) * 1000))
    return found


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class LiveStock(Reserve):
    name = "live-stock"
    description = (
        f"the reserve load twice: without watchers, then with {WATCHERS} Socket.IO clients "
        "watching the product (delivery latency change -> client, messages per client)"
    )
    goals: ClassVar[tuple[Goal, ...]] = (
        Goal("delivery_p99_ms", "<=", 250.0),
        Goal("messages_per_client_per_second", "<=", 11.0),
    )
    baseline = True
    watchers = WATCHERS

    async def setup(self, target: Target) -> Plan:
        plan = await super().setup(target)
        (product_id,) = plan.stock
        crowd = Watchers(target.base_url, product_id)

        async def prepare() -> None:
            await crowd.connect(self.watchers)

        async def beside() -> dict[str, object]:
            started = time.monotonic()
            own = psutil.Process()
            cpu_before = sum(own.cpu_times()[:2])
            try:
                samples = await sample(target, product_id, target.load_seconds)
            finally:
                await asyncio.sleep(0.3)  # the last events in flight
                await crowd.close()
            elapsed = time.monotonic() - started
            # The watchers share the machine with the API: their CPU is part of the picture.
            bench_cpu = sum(own.cpu_times()[:2]) - cpu_before
            delays = latencies_ms(samples, crowd.watchers)
            events = sum(len(w.received) for w in crowd.watchers)
            clients = len(crowd.watchers)
            figures: dict[str, object] = {
                "watchers": clients,
                "watchers_failed_to_connect": crowd.failed,
                "watchers_cpu_cores": round(bench_cpu / elapsed, 2),
                "stock_events_received": events,
                "messages_per_client_per_second": round(events / max(clients, 1) / elapsed, 2),
                "stock_changes_per_second": round((samples[0][1] - samples[-1][1]) / elapsed, 1)
                if samples
                else 0,
            }
            if delays:
                figures["delivery_p50_ms"] = round(statistics.median(delays), 1)
                figures["delivery_p99_ms"] = round(percentile(delays, 0.99), 1)
                figures["delivery_max_ms"] = round(max(delays), 1)
            return figures

        plan.prepare = prepare
        plan.beside = beside
        return plan


register(LiveStock())
