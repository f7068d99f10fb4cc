"""The expiry worker on real stores: a give-back that fails after the commit is retried by the
worker itself on its next round, without waiting for the reconciler."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid

import pytest
from structlog.testing import capture_logs

from stockgate.bootstrap import Container
from stockgate.domain.errors import StoreUnavailable
from stockgate.domain.reservation import Reservation, ReservationLine, ReserveRequest
from stockgate.entrypoints.worker.main import expiry_loop
from stockgate.services.reserve import reserve
from tests.conftest import MakeProduct, drift


async def test_worker_gives_back_on_its_next_round_after_a_failed_give_back(
    container: Container, make_product: MakeProduct, monkeypatch: pytest.MonkeyPatch
) -> None:
    product = await make_product(stock=5)
    gate = container.gate
    real_give_back = gate.give_back
    failures: list[uuid.UUID] = []

    async def give_back_failing_once(
        reservation: Reservation, idempotency_key: str | None = None
    ) -> int:
        if not failures:  # Redis unreachable for a moment, right after the expiry's commit
            failures.append(reservation.id)
            raise StoreUnavailable("redis", "redis failed: ConnectionError")
        return await real_give_back(reservation, idempotency_key)

    monkeypatch.setattr(gate, "give_back", give_back_failing_once)
    deps = dataclasses.replace(container.reserve_deps, hold_seconds=1)
    held = await reserve(ReserveRequest(uuid.uuid4(), (ReservationLine(product.id, 2),)), deps)
    assert (await gate.available([product.id]))[product.id] == 3

    stop = asyncio.Event()
    with capture_logs() as logs:
        worker = asyncio.create_task(expiry_loop(container, stop))  # no maintenance worker
        try:
            deadline = time.monotonic() + 5  # the reconciler would take 30 s or more
            while (await gate.available([product.id]))[product.id] != 5:
                assert time.monotonic() < deadline, "stock not back without the reconciler"
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await worker

    assert failures == [held.id]
    events = [entry["event"] for entry in logs]
    assert "expiry.give_back_failed" in events and "expiry.given_back_on_retry" in events
    assert "expiry.give_back_left_to_reconciler" not in events
    async with container.uow_factory() as uow:
        stored = await uow.reservations.get(held.id)
    assert stored is not None and stored.status == "expired"
    report = await drift(container, gate)
    (mine,) = report.products
    assert (mine.held, mine.leaked, mine.oversold, mine.ledger_ok) == (0, 0, 0, True)
    assert (await gate.available([product.id]))[product.id] == 5  # given back exactly once
