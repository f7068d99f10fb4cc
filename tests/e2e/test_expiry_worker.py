"""Expiry with real worker processes: stock is back about a second after expires_at, once."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from stockgate.bootstrap import Container
from stockgate.config import Settings
from stockgate.domain.reservation import ReservationLine, ReserveRequest
from stockgate.services.reserve import reserve
from stockgate.supervisor import Supervisor, stockgate_command
from tests.conftest import MakeProduct, drift
from tests.e2e.conftest import env_for


async def test_two_expiry_workers_return_stock_within_a_second_exactly_once(
    module_settings: Settings,
    module_container: Container,
    new_product: MakeProduct,
    tmp_path: Path,
) -> None:
    product = await new_product(stock=40)
    env = env_for(module_settings, STOCKGATE_LOG_LEVEL="info", STOCKGATE_LOG_FORMAT="json")
    children = Supervisor()
    command = stockgate_command("worker", "--role", "expiry")
    workers = [
        children.start(f"worker {n}", command, env=env, log=tmp_path / f"worker{n}.log")
        for n in range(2)
    ]
    try:
        for worker in workers:  # the clock starts once both are polling, not while importing
            worker.wait_for_output("worker.started", timeout=60)
        deps = dataclasses.replace(module_container.reserve_deps, hold_seconds=2)
        line = (ReservationLine(product.id, 1),)
        held = await asyncio.gather(
            *(reserve(ReserveRequest(uuid.uuid4(), line), deps) for _ in range(40))
        )
        latest_expiry = max(r.expires_at for r in held)
        gate = module_container.gate
        assert (await gate.available([product.id]))[product.id] == 0
        while (await gate.available([product.id]))[product.id] != 40:
            assert datetime.now(UTC) < latest_expiry + timedelta(seconds=5), "stock not back"
            await asyncio.sleep(0.05)
        lag = (datetime.now(UTC) - latest_expiry).total_seconds()
        assert lag <= 1.5, f"stock came back {lag:.2f} s after the last expiry"
        time.sleep(0.5)  # both workers have had their turn: nothing may come back twice
        assert (await gate.available([product.id]))[product.id] == 40
    finally:
        killed = children.stop()
    assert killed == [] and [w.exit_code() for w in workers] == [0, 0]  # SIGTERM: a clean stop
    report = await drift(module_container)
    (mine,) = [p for p in report.products if p.product_id == product.id]
    assert mine.held == 0 and mine.leaked == 0 and mine.oversold == 0 and mine.ledger_ok
