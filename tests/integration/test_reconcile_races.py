"""The reconciler's repairs racing buyers and workers: a finished hold is never brought back."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from stockgate.adapters.redis.keys import Keys
from stockgate.bootstrap import Container
from stockgate.domain.reservation import Reservation, ReservationStatus
from stockgate.services.ports import GateHold, StockGate
from stockgate.services.reconcile import reconcile_product
from stockgate.services.reserve import release, reserve
from tests.conftest import MakeProduct, clients
from tests.integration.test_failures import LaterClock, request


class ReleaseBeforeRestore:
    """The real gate, except that just before a restore the buyer releases the reservation
    (given up to half a second: a release that must wait for a lock is left waiting)."""

    def __init__(self, container: Container, reservation: Reservation) -> None:
        self._gate = container.gate
        self._container = container
        self._reservation = reservation
        self.releasing: asyncio.Task[Reservation] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gate, name)

    async def restore(self, product_id: int, hold: GateHold) -> bool:
        self.releasing = asyncio.create_task(
            release(
                self._reservation.id,
                self._reservation.customer_id,
                journal=self._container.journal,
                uow_factory=self._container.uow_factory,
                gate=self._gate,
            )
        )
        await asyncio.wait([self.releasing], timeout=0.5)
        return await self._gate.restore(product_id, hold)


async def test_a_restore_racing_a_release_never_resurrects_the_released_hold(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=5)
    made = await reserve(request(product.id), container.reserve_deps)
    # Redis lost the hold (the counter still counts it: the repair's total fixes that).
    await clients(container).redis.hdel(
        Keys(container.settings.redis_prefix).holds(product.id), made.id.hex
    )
    racing = ReleaseBeforeRestore(container, made)
    await reconcile_product(
        product.id,
        uow_factory=container.uow_factory,
        gate=cast(StockGate, racing),
        clock=LaterClock(10),  # past RESTORE_MIN_AGE: the lost hold is found missing
        grace_seconds=30,
        fix=True,
    )
    assert racing.releasing is not None
    released = await asyncio.wait_for(racing.releasing, timeout=10)
    assert released.status is ReservationStatus.RELEASED
    state = await container.gate.state(product.id)
    assert made.id not in state.holds  # not held for a reservation that ended
    assert state.available == 5  # every unit is back on sale
