"""Canceling takes whose answer was lost, until Redis says what became of them.

When Redis fails after a take was sent (a timeout, a connection cut), the take may or may not
have been applied. The buyer gets 503 at once; the units must not stay held until the
reconciler's grace period (30 s or more). A cancel is sent and retried until Redis answers it:
it gives the units back if the take ran, and marks the reservation so a take still queued in
Redis is refused when it runs (decision 0014, issue 18 case 6).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from stockgate.domain.errors import StoreUnavailable
from stockgate.domain.reservation import Reservation
from stockgate.services.ports import StockGate

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 0.05
MAX_RETRY_SECONDS = 1.0
GIVE_UP_SECONDS = 600.0  # then the reconciler's orphan repair returns the units


class TakeCancellations:
    """Cancels in flight in this process, retried with backoff until answered."""

    def __init__(self) -> None:
        self._running: dict[uuid.UUID, asyncio.Task[int]] = {}

    def __len__(self) -> int:
        return len(self._running)

    def start(self, reservation: Reservation, idempotency_key: str | None, gate: StockGate) -> None:
        if reservation.id in self._running:
            return
        task = asyncio.get_running_loop().create_task(
            cancel_until_known(reservation, idempotency_key, gate)
        )
        self._running[reservation.id] = task
        task.add_done_callback(lambda done: self._finished(reservation.id, done))

    async def drain(self) -> None:
        """Wait for every cancel in flight (shutdown, tests)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    def _finished(self, reservation_id: uuid.UUID, task: asyncio.Task[int]) -> None:
        self._running.pop(reservation_id, None)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("canceling take %s failed", reservation_id, exc_info=exc)


async def cancel_until_known(
    reservation: Reservation, idempotency_key: str | None, gate: StockGate
) -> int:
    """Cancel the take; retried while Redis fails. Returns the units given back."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + GIVE_UP_SECONDS
    pause = FIRST_RETRY_SECONDS
    while True:
        try:
            return await gate.cancel_take(reservation, idempotency_key)
        except StoreUnavailable:
            if loop.time() + pause > give_up:
                raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_RETRY_SECONDS)
