"""Reserve through the real container: PostgreSQL and Redis agree on every unit."""

from __future__ import annotations

import uuid

import pytest

from stockgate.bootstrap import Container
from stockgate.domain.errors import SoldOut
from stockgate.domain.reservation import ReservationLine, ReserveRequest
from stockgate.services.reserve import reserve
from tests.conftest import MakeProduct


async def test_reserve_holds_stock_in_gate_and_postgres(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=5)
    request = ReserveRequest(uuid.uuid4(), (ReservationLine(product.id, 2),))
    reservation = await reserve(request, container.reserve_deps)
    assert (await container.gate.available([product.id]))[product.id] == 3
    async with container.uow_factory() as uow:
        stored = await uow.reservations.get(reservation.id)
    assert stored is not None and stored.lines == request.lines
    with pytest.raises(SoldOut):
        await reserve(
            ReserveRequest(uuid.uuid4(), (ReservationLine(product.id, 4),)), container.reserve_deps
        )
