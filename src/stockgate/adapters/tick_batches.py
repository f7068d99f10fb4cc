"""Batches of one event-loop tick: what callers add while a batch is open is sent together.

Used by the gate's script pipeline and the group-commit journal. A batch opens with its first
item and gets its sending task at once; the task's first step runs after the callbacks already
due in this tick, so everything added until then rides along, and it closes the batch as it
starts. A batch holds at most `max_batch` items; the next item opens another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TickBatches(Generic[T]):
    def __init__(self, send: Callable[[list[T]], Awaitable[None]], *, max_batch: int) -> None:
        self._send = send
        self._max_batch = max_batch
        self._open: list[T] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, item: T) -> None:
        if self._open is None or len(self._open) >= self._max_batch:
            self._open = []
            task = asyncio.get_running_loop().create_task(self._run(self._open))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._open.append(item)

    @property
    def idle(self) -> bool:
        """Nothing queued or being sent."""
        return not self._tasks

    async def drain(self) -> None:
        """Wait until every batch is sent, also those opened meanwhile (shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, batch: list[T]) -> None:
        if self._open is batch:
            self._open = None  # closed: what comes next opens a new batch
        await self._send(batch)
