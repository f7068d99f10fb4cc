"""A Socket.IO watcher for tests and the bench: connects, watches, records `stock` events."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import socketio


class Watcher:
    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.updates: list[tuple[float, dict[str, Any]]] = []  # (monotonic time, payload)
        self.client.on("stock", self._on_stock)

    async def _on_stock(self, data: dict[str, Any]) -> None:
        self.updates.append((time.monotonic(), data))

    async def connect(self, url: str, *, auth: dict[str, Any] | None = None) -> None:
        await self.client.connect(url, transports=["websocket"], auth=auth, wait_timeout=10)

    async def call(self, event: str, *data: Any) -> Any:
        payload: Any = data if len(data) != 1 else data[0]
        if not data:
            return await self.client.call(event, timeout=5)
        return await self.client.call(event, payload, timeout=5)

    async def watch(self, *product_ids: int) -> dict[str, Any]:
        answer: dict[str, Any] = await self.call("watch", {"product_ids": list(product_ids)})
        return answer

    def values(self, product_id: int) -> list[int]:
        return [int(u["available"]) for _, u in self.updates if u["product_id"] == product_id]

    async def wait_for(self, product_id: int, available: int, timeout: float = 5.0) -> None:
        """Until the latest update of the product says `available`."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.values(product_id)
            if seen and seen[-1] == available:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"product {product_id}: wanted {available}, saw {seen}")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.client.disconnect()


def levels(answer: dict[str, Any]) -> dict[int, int]:
    """A watch ack's values by product id."""
    assert answer["ok"] is True, answer
    return {int(s["product_id"]): int(s["available"]) for s in answer["stock"]}
