"""Expiry with real worker processes: stock is back about a second after expires_at, once."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

from stockgate.bootstrap import Container
from stockgate.config import Settings
from stockgate.domain.reservation import ReservationLine, ReserveRequest
from stockgate.services.reserve import reserve
from tests.conftest import MakeProduct, drift
from tests.e2e.api_process import STOCKGATE
from tests.e2e.conftest import env_for


async def test_two_expiry_workers_return_stock_within_a_second_exactly_once(
    module_settings: Settings, module_container: Container, new_product: MakeProduct
) -> None:
    product = await new_product(stock=40)
    env = env_for(module_settings, STOCKGATE_LOG_LEVEL="info", STOCKGATE_LOG_FORMAT="json")
    workers = [
        subprocess.Popen(
            [STOCKGATE, "worker", "--role", "expiry"], env=env, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:  # the clock starts once both are polling, not while importing
            assert worker.stderr is not None
            while "worker.started" not in worker.stderr.readline():
                assert worker.poll() is None, "worker exited"
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
        for worker in workers:
            worker.terminate()
        for worker in workers:
            assert worker.wait(10) == 0  # SIGTERM is a clean stop
    report = await drift(module_container)
    (mine,) = [p for p in report.products if p.product_id == product.id]
    assert mine.held == 0 and mine.leaked == 0 and mine.oversold == 0 and mine.ledger_ok
