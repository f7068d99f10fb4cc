"""Unit-test wiring: the services over in-memory fakes of every port."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from stockgate.bootstrap import Container, bootstrap
from stockgate.config import load_settings
from stockgate.domain.product import NewProduct, Product
from stockgate.domain.reservation import Reservation, ReservationLine, ReserveRequest
from stockgate.services.catalog import add_product
from stockgate.services.reserve import ReserveDeps, release, reserve
from tests.fakes import (
    FakeAdminSessions,
    FakeAdminUsers,
    FakeAdminViews,
    FakeAuditLog,
    FakeClock,
    FakeDatabase,
    FakeGate,
    FakeJobRunner,
    FakeJournal,
    FakeLoginThrottle,
    FakeProbe,
    FakeUnitOfWorkFactory,
    FakeWorkQueue,
    RecordingStockChanges,
)


@dataclass
class World:
    """The services as bootstrap wires them, over in-memory fakes of every port."""

    container: Container
    clock: FakeClock
    db: FakeDatabase
    gate: FakeGate
    journal: FakeJournal
    uow_factory: FakeUnitOfWorkFactory
    stock_changes: RecordingStockChanges

    @property
    def deps(self) -> ReserveDeps:
        return self.container.reserve_deps

    async def product(self, stock: int = 10, limit: int | None = None) -> Product:
        sku = f"SKU-{uuid.uuid4().hex[:8]}"
        new = NewProduct(
            sku=sku, name="Thing", price_cents=500, stock=stock, limit_per_customer=limit
        )
        return await add_product(new, uow_factory=self.uow_factory, gate=self.gate)

    async def reserve(
        self,
        lines: Sequence[tuple[int, int]],
        customer_id: uuid.UUID | None = None,
        key: str | None = None,
    ) -> Reservation:
        request = ReserveRequest(
            customer_id or uuid.uuid4(),
            tuple(ReservationLine(pid, qty) for pid, qty in lines),
            idempotency_key=key,
        )
        return await reserve(request, self.deps)

    async def release(self, reservation_id: uuid.UUID, customer_id: uuid.UUID) -> Reservation:
        return await release(
            reservation_id,
            customer_id,
            journal=self.journal,
            uow_factory=self.uow_factory,
            gate=self.gate,
            stock_changes=self.stock_changes,
        )

    async def available(self, product_id: int) -> int | None:
        return (await self.gate.available([product_id]))[product_id]


async def make_world(**settings: object) -> World:
    clock = FakeClock()
    db = FakeDatabase(clock)
    gate, journal, uow_factory = FakeGate(clock), FakeJournal(db), FakeUnitOfWorkFactory(db)
    stock_changes = RecordingStockChanges()
    container = await bootstrap(
        load_settings(hold_seconds=600, max_quantity=100, **settings),
        clock=clock,
        uow_factory=uow_factory,
        gate=gate,
        journal=journal,
        admin_users=FakeAdminUsers(),
        probe=FakeProbe(),
        admin_sessions=FakeAdminSessions(),
        login_throttle=FakeLoginThrottle(),
        audit=FakeAuditLog(),
        admin_views=FakeAdminViews(db),
        stock_changes=stock_changes,
        work_queue=FakeWorkQueue(),
        job_runner=FakeJobRunner,
    )
    return World(container, clock, db, gate, journal, uow_factory, stock_changes)


@pytest.fixture
async def world() -> World:
    return await make_world()
