"""Expiry runs on PostgreSQL's clock: expires_at is written with it and compared with it."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from stockgate.bootstrap import Container
from stockgate.domain.reservation import ReservationLine, ReserveRequest
from stockgate.services.expire import expire_due
from stockgate.services.reserve import reserve
from tests.conftest import MakeProduct, clients, make_due


class SkewedClock:
    """A host whose clock is off by `seconds`."""

    def __init__(self, seconds: float) -> None:
        self._skew = timedelta(seconds=seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._skew


async def database_now(container: Container) -> datetime:
    async with clients(container).engine.connect() as connection:
        now: datetime = (await connection.execute(sa.text("SELECT now()"))).scalar_one()
    return now


async def test_a_hold_made_on_a_host_an_hour_behind_expires_by_the_database_clock(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=5)
    behind = replace(container.reserve_deps, clock=SkewedClock(-3600))
    made = await reserve(ReserveRequest(uuid.uuid4(), (ReservationLine(product.id, 1),)), behind)
    hold = timedelta(seconds=container.settings.hold_seconds)
    # The answer's expiry is the database's now + the hold, not the skewed host's.
    assert abs(made.expires_at - (await database_now(container) + hold)) < timedelta(seconds=5)
    async with container.uow_factory() as uow:
        stored = await uow.reservations.get(made.id)
    assert stored is not None and stored.expires_at == made.expires_at
    # A worker (whatever its own clock says) finds nothing due: the hold is not expired early.
    done = await expire_due(uow_factory=container.uow_factory, gate=container.gate)
    assert done.expired == 0
    # Past due by the database's clock: expired, and its stock is back.
    await make_due(container, [made.id])
    done = await expire_due(uow_factory=container.uow_factory, gate=container.gate)
    assert done.expired == 1
    assert (await container.gate.available([product.id]))[product.id] == 5
