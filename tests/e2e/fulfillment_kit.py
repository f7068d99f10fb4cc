"""What the fulfillment end-to-end tests share: a merchant's webhook receiver that verifies
with the `standardwebhooks` library, worker processes, and paid orders made through the
repositories (as the payments stage leaves them)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from stockgate.bootstrap import Container
from stockgate.config import Settings
from stockgate.domain.order import Order, OrderStatus
from stockgate.domain.product import Product
from stockgate.domain.reservation import ReservationLine, ReservationStatus, ReserveRequest
from stockgate.services.ports import ConvertMode
from stockgate.services.reserve import reserve
from stockgate.supervisor import Supervisor, stockgate_command
from tests.e2e.conftest import env_for

MERCHANT_SECRET = "whsec_" + base64.b64encode(b"merchant-test-secret-0123456789").decode()


@dataclass
class Delivery:
    webhook_id: str
    valid: bool
    body: dict[str, Any]
    at: float


@dataclass
class Merchant:
    """A merchant's endpoint; `answer(n)`: (status, seconds to wait) for delivery n (from 0)."""

    answer: Callable[[int], tuple[int, float]] = lambda n: (200, 0.0)
    deliveries: list[Delivery] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/stockgate"

    def ids(self, valid_only: bool = True) -> list[str]:
        return [d.webhook_id for d in self.deliveries if d.valid or not valid_only]

    def for_order(self, order_id: uuid.UUID) -> list[Delivery]:
        return [
            d for d in self.deliveries if d.body.get("data", {}).get("order_id") == str(order_id)
        ]


@contextmanager
def running_merchant(given: Merchant | None = None) -> Iterator[Merchant]:
    merchant = given or Merchant()
    verifier = Webhook(MERCHANT_SECRET)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            try:
                parsed = verifier.verify(body, dict(self.headers.items()))
                valid = True
            except WebhookVerificationError:
                parsed, valid = json.loads(body or b"{}"), False
            with lock:
                number = len(merchant.deliveries)
                merchant.deliveries.append(
                    Delivery(self.headers.get("webhook-id", ""), valid, parsed, time.monotonic())
                )
            status, wait = merchant.answer(number)
            time.sleep(wait)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    merchant.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield merchant
    finally:
        server.shutdown()
        server.server_close()


def worker_env(settings: Settings, merchant: Merchant | None, **extra: str) -> dict[str, str]:
    values = {
        "STOCKGATE_LOG_LEVEL": "info",
        "STOCKGATE_LOG_FORMAT": "json",
        "STOCKGATE_RETRY_BACKOFF_SECONDS": "0.2",
        "STOCKGATE_RETRY_BACKOFF_MAX_SECONDS": "1",
        "STOCKGATE_JOB_LOCK_SECONDS": "2",
        "STOCKGATE_NOTIFY_TIMEOUT_SECONDS": "10",
    }
    if merchant is not None:
        values["STOCKGATE_MERCHANT_WEBHOOK_URL"] = merchant.url
        values["STOCKGATE_MERCHANT_WEBHOOK_SECRET"] = MERCHANT_SECRET
    values.update(extra)
    return env_for(settings, **values)


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    def lines(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == name]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def start_worker(
    env: dict[str, str], role: str, log_dir: Path, timeout: float = 120
) -> WorkerProcess:
    log_path = log_dir / f"worker-{role}-{secrets.token_hex(3)}.log"
    # Through the supervisor: a session of its own, and SIGTERM should this test process die.
    child = Supervisor().start(
        role, stockgate_command("worker", "--role", role), env=env, log=log_path
    )
    process = child.process
    worker = WorkerProcess(process, log_path)
    deadline = time.monotonic() + timeout
    while not worker.events("worker.started"):
        assert process.poll() is None, f"worker exited: {log_path.read_text()[-2000:]}"
        assert time.monotonic() < deadline, "worker did not start"
        time.sleep(0.05)
    return worker


@contextmanager
def workers(env: dict[str, str], log_dir: Path, *roles: str) -> Iterator[list[WorkerProcess]]:
    started = [start_worker(env, role, log_dir) for role in roles]
    try:
        yield started
    finally:
        for worker in started:
            if worker.process.poll() is None:
                worker.stop(signal.SIGKILL)


async def paid_order(
    container: Container, product: Product, *, quantity: int = 1, intent_id: str | None = None
) -> Order:
    """A paid order whose reservation is converted to a sale, with the gate showing it sold."""
    line = (ReservationLine(product.id, quantity),)
    reservation = await reserve(ReserveRequest(uuid.uuid4(), line), container.reserve_deps)
    now = container.clock.now()
    order = Order.for_reservation(reservation, [product], now=now)
    order = order.with_intent(intent_id or f"pi_test_{secrets.token_hex(6)}", None)
    order = order.mark_paid(now=now)
    async with container.uow_factory() as uow:
        await uow.orders.add(order)
        converted, entries = reservation.convert()
        await uow.reservations.move(converted, was=ReservationStatus.ACTIVE)
        await uow.ledger.add(entries)
        await uow.commit()
    await container.gate.convert(reservation, ConvertMode.HOLD)  # as the payments stage does
    return order


async def order_of(container: Container, order_id: uuid.UUID) -> Order:
    async with container.uow_factory() as uow:
        order = await uow.orders.get(order_id)
    assert order is not None
    return order


async def wait_for_status(
    container: Container, order_id: uuid.UUID, *statuses: OrderStatus, timeout: float = 20
) -> Order:
    deadline = time.monotonic() + timeout
    while True:
        order = await order_of(container, order_id)
        if order.status in statuses:
            return order
        assert time.monotonic() < deadline, f"order {order_id} stayed {order.status}"
        await asyncio.sleep(0.05)


async def fulfilled_moves(container: Container, order_id: uuid.UUID) -> int:
    """How many times the order's history says it became fulfilled."""
    async with container.uow_factory() as uow:
        history = await uow.orders.history(order_id)
    return sum(1 for e in history if e.kind == "status" and e.detail.get("after") == "fulfilled")
