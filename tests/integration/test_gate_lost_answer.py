"""A take that Redis applied but whose answer was lost: canceled within seconds, never applied
twice. Redis is reached through a proxy of this test that can drop Redis's answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from stockgate.adapters.redis import scripts
from stockgate.bootstrap import Container
from stockgate.domain.errors import GateOutcomeUnknown
from stockgate.domain.reservation import Reservation
from stockgate.services.ports import TakeStatus
from stockgate.services.reserve import reserve
from tests.conftest import MakeProduct, delete_keys
from tests.integration.test_failures import request


class AnswerDroppingProxy:
    """Forwards every command to Redis; while `dropping`, Redis's answers are thrown away."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 6379
        self._path = parts.path
        self.dropping = False
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"redis://127.0.0.1:{port}{self._path}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self._host, self._port)

        async def commands() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()

        async def answers() -> None:
            while data := await up_reader.read(65536):
                if not self.dropping:
                    writer.write(data)
                    await writer.drain()

        with contextlib.suppress(Exception):
            await asyncio.wait(
                [asyncio.create_task(commands()), asyncio.create_task(answers())],
                return_when=asyncio.FIRST_COMPLETED,
            )
        for closing in (writer, up_writer):
            closing.close()


@pytest.fixture
async def proxy(redis_server_url: str, redis_prefix: str) -> AsyncIterator[AnswerDroppingProxy]:
    server = AnswerDroppingProxy(redis_server_url)
    await server.start()
    yield server
    await server.stop()
    delete_keys(redis_server_url, redis_prefix)


@pytest.fixture
def redis_url(proxy: AnswerDroppingProxy) -> str:
    return proxy.url


async def test_a_take_whose_answer_was_lost_is_canceled_and_its_units_come_back_in_seconds(
    container: Container,
    make_product: MakeProduct,
    proxy: AnswerDroppingProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scripts, "READ_TIMEOUT_SECONDS", 0.3)
    product = await make_product(stock=5)
    proxy.dropping = True  # Redis runs the take; its answer never arrives
    with pytest.raises(GateOutcomeUnknown):
        await reserve(request(product.id, 2), container.reserve_deps)
    proxy.dropping = False
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        state = await container.gate.state(product.id)
        if state.available == 5 and not state.holds:
            break  # every unit is back, well before the reconciler's grace period (30 s)
        assert asyncio.get_running_loop().time() < deadline, state
        await asyncio.sleep(0.1)
    await container.reserve_deps.cancellations.drain()
    async with container.uow_factory() as uow:
        totals = await uow.products.totals(product.id)
    assert totals is not None and list(totals.active) == []  # no row: nobody holds it


async def test_a_canceled_take_that_runs_late_is_refused(
    container: Container, make_product: MakeProduct
) -> None:
    product = await make_product(stock=5)
    made = request(product.id, 2)
    reservation = Reservation.new(made, now=container.clock.now(), hold_seconds=60)
    assert await container.gate.cancel_take(reservation, None) == 0  # not applied (yet)
    late = await container.gate.take(reservation, None, made.fingerprint())
    assert late.status is TakeStatus.CANCELED
    assert (await container.gate.state(product.id)).available == 5
