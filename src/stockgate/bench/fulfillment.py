"""Fulfillment figures: paid -> fulfilled lag at a steady rate, and recovery after SIGKILL.

    python -m stockgate.bench.fulfillment [--rate 50] [--duration 20] [--workers 1] [--json]

Real processes on real stores: a fresh migrated database of its own and a Redis key prefix of
its own (STOCKGATE_DATABASE_URL / STOCKGATE_REDIS_URL, default the local servers), `stockgate
worker --role fulfillment` child processes, and a local merchant endpoint that answers 200.
Paid orders are written as the payments stage leaves them (order paid, reservation converted,
in one transaction), then the fulfillment job is asked for, `--rate` orders a second for
`--duration` seconds. Lag = fulfilled_at - paid_at, both stamped by PostgreSQL-bound clocks
of this machine. Recovery: a worker is SIGKILLed while its job waits on the merchant; the time
until the order is fulfilled by another worker, `--kills` times. Figures in
docs/performance.md. Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import signal
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from stockgate.bench.stack import delete_prefix, fresh_database
from stockgate.bootstrap import Container, bootstrap
from stockgate.config import Settings, StoreUrls
from stockgate.domain.order import Order, OrderStatus
from stockgate.domain.product import NewProduct, Product
from stockgate.domain.reservation import ReservationLine, ReservationStatus, ReserveRequest
from stockgate.services.catalog import add_product
from stockgate.services.ports import ConvertMode
from stockgate.services.reserve import reserve
from stockgate.supervisor import Child, StartFailed, Supervisor, stockgate_command

SECRET = "whsec_" + base64.b64encode(b"bench-merchant-secret-0123456789").decode()


@contextmanager
def merchant(hang: Callable[[bytes], bool]) -> Iterator[str]:
    """A merchant endpoint answering 200; a request for which `hang(body)` is true waits 60 s."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if hang(body):
                time.sleep(60)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def start_worker(children: Supervisor, env: dict[str, str], log_dir: Path) -> Child:
    log = log_dir / f"worker-{secrets.token_hex(3)}.log"
    command = stockgate_command("worker", "--role", "fulfillment")
    worker = children.start("fulfillment worker", command, env=env, log=log)
    try:
        worker.wait_for_output("worker.started", timeout=60)
    except StartFailed as exc:
        raise RuntimeError(f"worker did not start: {exc}\n{worker.output(last=2000)}") from exc
    return worker


async def paid_order(
    container: Container, product: Product, *, doomed: dict[str, Any] | None = None
) -> Order:
    line = (ReservationLine(product.id, 1),)
    reservation = await reserve(ReserveRequest(uuid.uuid4(), line), container.reserve_deps)
    now = container.clock.now()
    order = Order.for_reservation(reservation, [product], now=now)
    order = order.with_intent(f"pi_bench_{secrets.token_hex(6)}", None).mark_paid(now=now)
    async with container.uow_factory() as uow:
        await uow.orders.add(order)
        converted, entries = reservation.convert()
        await uow.reservations.move(converted, was=ReservationStatus.ACTIVE)
        await uow.ledger.add(entries)
        await uow.commit()
    await container.gate.convert(reservation, ConvertMode.HOLD)  # as the payments stage does
    if doomed is not None:
        doomed["order"] = order.id
    await container.work_queue.request_fulfillment(order.id)
    return order


async def until_fulfilled(container: Container, ids: list[uuid.UUID], within: float) -> list[Order]:
    deadline = time.monotonic() + within
    while True:
        async with container.uow_factory() as uow:
            found = [await uow.orders.get(i) for i in ids]
        orders = [o for o in found if o is not None]
        if all(o.status is OrderStatus.FULFILLED for o in orders) or time.monotonic() > deadline:
            return orders
        await asyncio.sleep(0.1)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure(args: argparse.Namespace) -> dict[str, object]:
    base = Settings()
    database = base.database_url or "postgresql://postgres@127.0.0.1:5432/postgres"
    redis_url = base.redis_url or "redis://127.0.0.1:6379/0"
    run_id = secrets.token_hex(4)
    doomed: dict[str, Any] = {"order": None, "seen": threading.Event()}

    def hang(body: bytes) -> bool:
        """The first delivery of the doomed order hangs: its worker is killed meanwhile."""
        order = doomed["order"]
        if order is None or str(order).encode() not in body or doomed["seen"].is_set():
            return False
        doomed["seen"].set()
        return True

    async with fresh_database(database, f"fl_{run_id}") as url:
        settings = base.model_copy(
            update={"database_url": url, "redis_url": redis_url, "redis_prefix": f"bfl{run_id}"}
        )
        container = await bootstrap(settings, StoreUrls(url, redis_url))
        log_dir = Path(tempfile.mkdtemp(prefix="stockgate-bench-fulfillment-"))
        children = Supervisor()
        workers: list[Child] = []
        try:
            with merchant(hang) as hook:
                env = dict(os.environ)
                env.update(
                    STOCKGATE_DATABASE_URL=url,
                    STOCKGATE_REDIS_URL=redis_url,
                    STOCKGATE_REDIS_PREFIX=settings.redis_prefix,
                    STOCKGATE_SECRET_KEY=secrets.token_urlsafe(48),
                    STOCKGATE_MERCHANT_WEBHOOK_URL=hook,
                    STOCKGATE_MERCHANT_WEBHOOK_SECRET=SECRET,
                    STOCKGATE_LOG_FORMAT="json",
                    STOCKGATE_LOG_LEVEL="info",
                    # The doomed delivery must outlast the spare worker's start.
                    STOCKGATE_NOTIFY_TIMEOUT_SECONDS="60",
                )
                env.setdefault("STOCKGATE_JOB_LOCK_SECONDS", str(args.lock_seconds))
                workers = [start_worker(children, env, log_dir) for _ in range(args.workers)]
                new = NewProduct(sku=f"BENCH-{run_id}", name="Bench", price_cents=100, stock=10**8)
                product = await add_product(
                    new, uow_factory=container.uow_factory, gate=container.gate
                )
                ids: list[uuid.UUID] = []
                interval = 1 / args.rate
                started = time.monotonic()
                for n in range(int(args.rate * args.duration)):
                    await asyncio.sleep(max(0.0, started + n * interval - time.monotonic()))
                    ids.append((await paid_order(container, product)).id)
                orders = await until_fulfilled(container, ids, within=60)
                lags = [
                    (o.fulfilled_at - o.paid_at).total_seconds() * 1000
                    for o in orders
                    if o.fulfilled_at and o.paid_at
                ]
                recoveries = []
                for _ in range(args.kills):
                    doomed["order"], doomed["seen"] = None, threading.Event()
                    order = await paid_order(container, product, doomed=doomed)
                    # A worker has it and waits on the merchant; a spare one starts meanwhile.
                    await asyncio.to_thread(doomed["seen"].wait, 60)
                    spare = start_worker(children, env, log_dir)
                    async with container.uow_factory() as uow:
                        still = await uow.orders.get(order.id)
                    assert still is not None and still.status is OrderStatus.PAID
                    victims = [w for w in workers if w.exit_code() is None]
                    killed_at = time.monotonic()
                    for victim in victims:  # whichever took it: every other worker is spare
                        os.kill(victim.pid, signal.SIGKILL)
                        victim.process.wait()
                    await until_fulfilled(container, [order.id], within=120)
                    recoveries.append(time.monotonic() - killed_at)
                    workers = [spare]
        finally:
            children.stop()
            await container.close()
            await delete_prefix(redis_url, settings.redis_prefix)
    return {
        "scenario": "fulfillment",
        "rate_per_second": args.rate,
        "duration_seconds": args.duration,
        "workers": args.workers,
        "orders": len(ids),
        "fulfilled": len(lags),
        "lag_p50_ms": round(statistics.median(lags), 1) if lags else None,
        "lag_p99_ms": round(percentile(lags, 0.99), 1) if lags else None,
        "lag_max_ms": round(max(lags), 1) if lags else None,
        "job_lock_seconds": args.lock_seconds,
        "sigkill_recovery_seconds": [round(r, 2) for r in recoveries],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="paid orders per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=1, help="fulfillment worker processes")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILL recoveries to time")
    parser.add_argument("--lock-seconds", type=float, default=5.0, help="job lock")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = asyncio.run(measure(args))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
