"""A hypothesis state machine drives the engine against real PostgreSQL and Redis.

Rules: reserve, release, expire, restock, and three kinds of crash followed by
`reconcile --fix`. After every step: I1 (sold + held <= stock, the gate never negative),
I4 (the ledger sums to stock - sold - held), and the model's active reservations are
PostgreSQL's. When no crash is pending the gate must agree with PostgreSQL exactly (I2);
after a crash, one reconcile with fix must leave nothing leaked or oversold.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from stockgate.adapters.clock import SystemClock
from stockgate.adapters.postgres.tables import reservation_lines, reservations
from stockgate.adapters.redis.keys import Keys
from stockgate.bootstrap import Container, bootstrap
from stockgate.config import Settings, StoreUrls
from stockgate.domain.errors import LimitExceeded, SoldOut
from stockgate.domain.product import NewProduct, Product
from stockgate.domain.reservation import Reservation, ReservationLine, ReserveRequest
from stockgate.services.catalog import add_product, new_restock_key, restock
from stockgate.services.expire import expire_due
from stockgate.services.reconcile import ReconcileReport, reconcile
from stockgate.services.reserve import release, reserve
from tests.conftest import clients, delete_keys

T = TypeVar("T")

CUSTOMERS = [uuid.UUID(int=i + 1) for i in range(3)]


class LaterClock:
    """The system clock moved ahead, so the reconciler treats every hold as old enough."""

    def __init__(self, seconds: float) -> None:
        self._ahead = timedelta(seconds=seconds)

    def now(self) -> datetime:
        return SystemClock().now() + self._ahead


class EngineMachine(RuleBasedStateMachine):
    database_url: str
    redis_url: str

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.prefix = "t" + secrets.token_hex(6)
        self.container: Container | None = None
        self.products: list[Product] = []
        self.active: dict[uuid.UUID, Reservation] = {}
        self.crashed = False

    def run(self, coroutine: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coroutine)

    @property
    def c(self) -> Container:
        assert self.container is not None
        return self.container

    @initialize(stocks=st.lists(st.integers(0, 8), min_size=1, max_size=3), limit=st.booleans())
    def start(self, stocks: list[int], limit: bool) -> None:
        settings_ = Settings(
            database_url=self.database_url,
            redis_url=self.redis_url,
            redis_prefix=self.prefix,
            rate_limit_enabled=False,
            hold_seconds=600,
            sold_out_cache_seconds=0,
        )
        self.container = self.run(
            bootstrap(settings_, StoreUrls(self.database_url, self.redis_url))
        )
        for i, stock in enumerate(stocks):
            new = NewProduct(
                sku=f"SM-{self.prefix}-{i}",
                name="state machine",
                price_cents=100,
                stock=stock,
                limit_per_customer=4 if limit and i == 0 else None,
            )
            self.products.append(
                self.run(add_product(new, uow_factory=self.c.uow_factory, gate=self.c.gate))
            )

    def teardown(self) -> None:
        if self.container is not None:
            self.run(self.container.close())
        self.loop.close()
        delete_keys(self.redis_url, self.prefix)

    # ------------------------------------------------------------------ rules

    @precondition(lambda self: self.products)
    @rule(data=st.data(), customer=st.sampled_from(CUSTOMERS))
    def reserve(self, data: st.DataObject, customer: uuid.UUID) -> None:
        chosen = data.draw(
            st.lists(
                st.sampled_from(self.products), min_size=1, max_size=3, unique_by=lambda p: p.id
            )
        )
        lines = tuple(ReservationLine(p.id, data.draw(st.integers(1, 3))) for p in chosen)
        try:
            made = self.run(reserve(ReserveRequest(customer, lines), self.c.reserve_deps))
        except (SoldOut, LimitExceeded):
            return
        self.active[made.id] = made

    @precondition(lambda self: self.active)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        chosen = data.draw(st.sampled_from(list(self.active)))
        reservation = self.active.pop(chosen)
        self.run(
            release(
                chosen,
                reservation.customer_id,
                journal=self.c.journal,
                uow_factory=self.c.uow_factory,
                gate=self.c.gate,
            )
        )

    @precondition(lambda self: self.active)
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        chosen = data.draw(st.sampled_from(list(self.active)))

        async def make_due() -> int:
            async with clients(self.c).engine.begin() as connection:
                await connection.execute(
                    reservations.update()
                    .where(reservations.c.id == chosen)
                    .values(expires_at=sa.func.now() - sa.text("interval '1 second'"))
                )
            done = await expire_due(
                uow_factory=self.c.uow_factory, gate=self.c.gate, clock=self.c.clock
            )
            return done.expired

        assert self.run(make_due()) == 1
        del self.active[chosen]

    @precondition(lambda self: self.products)
    @rule(data=st.data(), quantity=st.integers(1, 5))
    def restock(self, data: st.DataObject, quantity: int) -> None:
        product = data.draw(st.sampled_from(self.products))
        done = self.run(
            restock(
                product.sku,
                quantity,
                key=new_restock_key(),
                uow_factory=self.c.uow_factory,
                gate=self.c.gate,
            )
        )
        updated = done.product
        self.products = [updated if p.id == updated.id else p for p in self.products]

    @rule()
    def crash_redis_loses_everything(self) -> None:
        delete_keys(self.redis_url, self.prefix)
        self.crashed = True
        self.reconcile_and_check_quiet()

    @precondition(lambda self: self.active)
    @rule(data=st.data())
    def crash_redis_loses_one_hold(self, data: st.DataObject) -> None:
        chosen = self.active[data.draw(st.sampled_from(list(self.active)))]
        line = data.draw(st.sampled_from(chosen.lines))
        self.run(
            clients(self.c).redis.hdel(
                Keys(self.c.settings.redis_prefix).holds(line.product_id), chosen.id.hex
            )
        )
        self.crashed = True
        self.reconcile_and_check_quiet()

    @precondition(lambda self: self.products)
    @rule(data=st.data(), customer=st.sampled_from(CUSTOMERS))
    def crash_between_gate_and_commit(self, data: st.DataObject, customer: uuid.UUID) -> None:
        product = data.draw(st.sampled_from(self.products))
        request = ReserveRequest(customer, (ReservationLine(product.id, 1),))
        orphan = Reservation.new(request, now=self.c.clock.now(), hold_seconds=600)
        self.run(self.c.gate.take(orphan, None, request.fingerprint()))  # never journaled
        self.crashed = True
        self.reconcile_and_check_quiet()

    def reconcile_and_check_quiet(self) -> None:
        fixed = self.reconcile(fix=True)
        assert fixed.fixed
        after = self.reconcile(fix=False)
        assert (after.leaked, after.oversold) == (0, 0), after
        # A reservation the reconciler had to end (no stock to restore it) is no longer active.
        self.active = {rid: r for rid, r in self.active.items() if rid in self.postgres_active()}
        self.crashed = False

    def reconcile(self, *, fix: bool) -> ReconcileReport:
        return self.run(
            reconcile(
                uow_factory=self.c.uow_factory,
                gate=self.c.gate,
                clock=LaterClock(10),
                grace_seconds=1,
                fix=fix,
            )
        )

    def postgres_active(self) -> set[uuid.UUID]:
        async def ids() -> set[uuid.UUID]:
            async with clients(self.c).engine.connect() as connection:
                # Only this example's products: earlier examples share the database.
                rows = await connection.execute(
                    sa.select(reservations.c.id)
                    .join(reservation_lines)
                    .where(reservations.c.status == "active")
                    .where(reservation_lines.c.product_id.in_([p.id for p in self.products]))
                    .distinct()
                )
                return {row.id for row in rows}

        return self.run(ids())

    # ------------------------------------------------------------------ invariants

    @invariant()
    def invariants_hold(self) -> None:
        if self.container is None:
            return
        assert set(self.active) == self.postgres_active()
        for product in self.products:

            async def read(pid: int = product.id) -> Any:
                state = await self.c.gate.state(pid)
                async with self.c.uow_factory() as uow:
                    totals = await uow.products.totals(pid)
                return state, totals

            state, totals = self.run(read())
            assert totals is not None
            stock = totals.product.stock
            assert totals.sold + totals.held <= stock  # I1 in PostgreSQL
            assert totals.ledger == totals.levels  # I4
            if state.available is not None:
                assert state.available >= 0  # I1 in the gate
            if not self.crashed and state.available is not None:
                # I2: the gate agrees with PostgreSQL exactly, hold by hold.
                expected = {
                    r.id: sum(li.quantity for li in r.lines if li.product_id == product.id)
                    for r in totals.active
                }
                assert {rid: h.quantity for rid, h in state.holds.items()} == expected
                assert state.available == stock - totals.sold - totals.held


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_engine_state_machine(database_url: str, redis_url: str) -> None:
    EngineMachine.database_url = database_url
    EngineMachine.redis_url = redis_url
    run_state_machine = EngineMachine.TestCase
    run_state_machine.settings = settings(
        max_examples=25,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    run_state_machine().runTest()
