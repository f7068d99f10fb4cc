"""Redis loses recent writes (restart from a stale snapshot, FLUSHALL): no hold answered 201 is
voided, no unit is sold twice. Runs its own redis-server, which it restarts and flushes."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from stockgate.bootstrap import Container
from stockgate.domain.errors import SoldOut, StoreUnavailable
from stockgate.domain.reservation import Reservation, ReservationStatus
from stockgate.entrypoints.http.health import readiness
from stockgate.services.reserve import reserve
from stockgate.supervisor import free_port
from tests.conftest import MakeProduct
from tests.integration.test_failures import request, run_reconcile

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="needs a redis-server binary")


class PrivateRedis:
    """A redis-server of this test only: snapshots on demand, no AOF (it may lose writes)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self._process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def restart(self) -> None:
        """Stop without saving and start again: the server loads its last snapshot."""
        assert self._process is not None
        self._process.terminate()  # a SIGTERM without `save` configured writes nothing
        self._process.wait(timeout=10)
        self.start()

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(private_redis: PrivateRedis) -> str:
    return private_redis.url


async def buy_until_sold_out(container: Container, product_id: int) -> list[Reservation]:
    """Reserve one unit at a time until sold out; a 503 (rebuilding) is retried for 15 s."""
    granted: list[Reservation] = []
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        try:
            granted.append(await reserve(request(product_id), container.reserve_deps))
        except SoldOut:
            return granted
        except StoreUnavailable:
            assert asyncio.get_running_loop().time() < deadline, "still refused after 15 s"
            await asyncio.sleep(0.1)


async def statuses(container: Container, reservations: list[Reservation]) -> set[str]:
    found = set()
    async with container.uow_factory() as uow:
        for made in reservations:
            current = await uow.reservations.get(made.id)
            assert current is not None
            found.add(current.status.value)
    return found


async def test_a_redis_restarted_from_a_stale_snapshot_refuses_takes_until_rebuilt(
    container: Container, make_product: MakeProduct, private_redis: PrivateRedis
) -> None:
    product = await make_product(stock=10)
    before = [await reserve(request(product.id), container.reserve_deps) for _ in range(3)]
    private_redis.client().save()  # the snapshot: 3 held, 7 available
    after = [await reserve(request(product.id), container.reserve_deps) for _ in range(4)]
    private_redis.restart()  # Redis forgets the last 4 holds; PostgreSQL has them

    # The first take on the restarted server is refused (503) while the product is rebuilt.
    with pytest.raises(StoreUnavailable):
        for _ in range(3):  # the first may fail on the broken connection already
            await reserve(request(product.id), container.reserve_deps)
    rest = await buy_until_sold_out(container, product.id)

    assert len(rest) == 3  # 10 units: 7 answered before, 3 now; none sold twice
    answered = before + after + rest
    await run_reconcile(container, fix=True)
    # No reservation answered 201 was voided or ended by a repair.
    assert await statuses(container, answered) == {ReservationStatus.ACTIVE.value}
    report = await run_reconcile(container, fix=False)
    assert (report.oversold, report.leaked, report.drift_found) == (0, 0, 0)


async def test_a_flushed_redis_is_rebuilt_with_every_committed_hold(
    container: Container, make_product: MakeProduct, private_redis: PrivateRedis
) -> None:
    product = await make_product(stock=8, limit=2)
    held = [await reserve(request(product.id, 2), container.reserve_deps) for _ in range(2)]
    private_redis.client().flushall()
    rest = await buy_until_sold_out(container, product.id)
    assert len(rest) == 4  # 8 units: 4 held before the flush, 4 now
    await run_reconcile(container, fix=True)
    assert await statuses(container, held + rest) == {ReservationStatus.ACTIVE.value}
    report = await run_reconcile(container, fix=False)
    assert (report.oversold, report.leaked, report.drift_found) == (0, 0, 0)


async def test_readiness_warns_while_redis_can_evict_or_lose_gate_data(
    container: Container, private_redis: PrivateRedis
) -> None:
    client = private_redis.client()
    client.config_set("maxmemory-policy", "allkeys-lru")
    answer = await readiness(container.probe)
    assert answer.content["status"] == "ready"  # ready, with warnings
    warnings = answer.content["warnings"]
    assert any("maxmemory-policy is allkeys-lru" in w for w in warnings), warnings
    assert any("appendonly is off" in w for w in warnings), warnings
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("appendonly", "yes")
    client.config_set("appendfsync", "everysec")
    assert [w for w in await container.probe.warnings() if "appendfsync is everysec" in w]
    client.config_set("appendfsync", "always")
    assert await container.probe.warnings() == []
    assert "warnings" not in (await readiness(container.probe)).content
