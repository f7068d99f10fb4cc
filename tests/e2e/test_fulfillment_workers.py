"""Fulfillment with real worker processes, real Redis and PostgreSQL, and a merchant endpoint
that verifies every notification with the `standardwebhooks` library."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from stockgate.bootstrap import Container
from stockgate.config import Settings
from stockgate.domain.order import OrderStatus
from tests.conftest import MakeProduct
from tests.e2e.fulfillment_kit import (
    Merchant,
    fulfilled_moves,
    order_of,
    paid_order,
    running_merchant,
    start_worker,
    wait_for_status,
    worker_env,
    workers,
)


async def test_paid_orders_are_fulfilled_with_one_valid_notification_each_despite_duplicates_and_a_restart(  # noqa: E501
    module_settings: Settings,
    module_container: Container,
    new_product: MakeProduct,
    tmp_path: Path,
) -> None:
    product = await new_product(stock=20)
    orders = [await paid_order(module_container, product) for _ in range(5)]
    queue = module_container.work_queue
    with running_merchant() as merchant:
        env = worker_env(module_settings, merchant)
        with workers(env, tmp_path, "fulfillment") as (first,):
            for order in orders:
                await queue.request_fulfillment(order.id)
                await queue.request_fulfillment(order.id)  # a duplicate request
            for order in orders:
                await wait_for_status(module_container, order.id, OrderStatus.FULFILLED)
            assert first.stop() == 0  # SIGTERM: a clean exit
        # The restart is `--role all` (what `stockgate up` runs): it takes fulfillment jobs too.
        with workers(env, tmp_path, "all") as (second,):
            for order in orders:  # asked again after a restart: the handler sees it is done
                await queue.request_fulfillment(order.id)
            await until_no_job_left(module_container)
            assert second.events("fulfillment.attempt")  # the second worker did run them
        for order in orders:
            mine = merchant.for_order(order.id)
            assert len(mine) == 1 and mine[0].valid, mine
            assert mine[0].body["type"] == "order.fulfilled"
            assert mine[0].body["data"]["amount_cents"] == order.amount_cents
            assert await fulfilled_moves(module_container, order.id) == 1
        assert len(set(merchant.ids())) == len(merchant.deliveries) == 5


async def until_no_job_left(container: Container, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        depth = {d.queue: d for d in await container.work_queue.depths()}["fulfillment"]
        if depth.waiting == depth.active == depth.delayed == 0:
            return
        assert time.monotonic() < deadline, depth
        await asyncio.sleep(0.05)


async def test_an_endpoint_down_for_a_while_gets_retries_then_the_order_is_fulfilled(
    module_settings: Settings,
    module_container: Container,
    new_product: MakeProduct,
    tmp_path: Path,
) -> None:
    product = await new_product(stock=5)
    order = await paid_order(module_container, product)
    merchant = Merchant(answer=lambda n: (503, 0.0) if n < 3 else (200, 0.0))
    with (
        running_merchant(merchant),
        workers(worker_env(module_settings, merchant), tmp_path, "fulfillment") as (worker,),
    ):
        await module_container.work_queue.request_fulfillment(order.id)
        done = await wait_for_status(module_container, order.id, OrderStatus.FULFILLED)
    assert done.fulfillment_attempts == 4
    assert [d.valid for d in merchant.deliveries] == [True] * 4
    assert len(set(merchant.ids())) == 1  # every retry carries the same webhook id
    gaps = [b.at - a.at for a, b in zip(merchant.deliveries, merchant.deliveries[1:], strict=False)]
    assert all(gap >= 0.09 for gap in gaps), gaps  # backoff (0.2 s, doubling, half random)
    assert [e["outcome"] for e in worker.events("fulfillment.attempt")] == [
        "retry",
        "retry",
        "retry",
        "fulfilled",
    ]


async def test_sigkill_mid_job_the_order_is_fulfilled_once_after_the_lock_runs_out(
    module_settings: Settings,
    module_container: Container,
    new_product: MakeProduct,
    tmp_path: Path,
) -> None:
    product = await new_product(stock=5)
    order = await paid_order(module_container, product)
    # The first delivery hangs: the worker is killed while it waits for the merchant.
    merchant = Merchant(answer=lambda n: (200, 60.0) if n == 0 else (200, 0.0))
    with running_merchant(merchant):
        env = worker_env(module_settings, merchant, STOCKGATE_NOTIFY_TIMEOUT_SECONDS="60")
        doomed = start_worker(env, "fulfillment", tmp_path)
        try:
            await module_container.work_queue.request_fulfillment(order.id)
            deadline = time.monotonic() + 10
            while not merchant.deliveries:
                assert time.monotonic() < deadline, "the job never reached the merchant"
                await asyncio.sleep(0.02)
            with workers(env, tmp_path, "fulfillment"):
                # Still mid-job: the doomed worker waits on the merchant, the spare is idle.
                assert len(merchant.deliveries) == 1
                assert (await order_of(module_container, order.id)).status is OrderStatus.PAID
                killed_at = time.monotonic()
                doomed.stop(signal.SIGKILL)
                await wait_for_status(module_container, order.id, OrderStatus.FULFILLED)
                recovery = time.monotonic() - killed_at
        finally:
            if doomed.process.poll() is None:
                doomed.stop(signal.SIGKILL)
    print(f"recovery after SIGKILL: {recovery:.2f} s (job lock 2 s)")
    assert recovery < 8, recovery  # seconds, not the 30 s of bullmq's default lock
    assert await fulfilled_moves(module_container, order.id) == 1
    assert len(set(merchant.ids())) == 1  # sent again after the kill, with the same id


async def test_sigterm_mid_job_finishes_it_and_exits_cleanly_and_waiting_jobs_stay(
    module_settings: Settings,
    module_container: Container,
    new_product: MakeProduct,
    tmp_path: Path,
) -> None:
    product = await new_product(stock=5)
    slow, waiting = await paid_order(module_container, product), None
    merchant = Merchant(answer=lambda n: (200, 1.0) if n == 0 else (200, 0.0))
    with running_merchant(merchant):
        env = worker_env(module_settings, merchant, STOCKGATE_JOB_CONCURRENCY="1")
        worker = start_worker(env, "fulfillment", tmp_path)
        await module_container.work_queue.request_fulfillment(slow.id)
        deadline = time.monotonic() + 10
        while not merchant.deliveries:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        waiting = await paid_order(module_container, product)
        assert worker.stop(signal.SIGTERM) == 0
        assert (await wait_for_status(module_container, slow.id, OrderStatus.FULFILLED)).status
        await module_container.work_queue.request_fulfillment(waiting.id)
        with workers(env, tmp_path, "fulfillment"):  # the next worker takes what was left
            await wait_for_status(module_container, waiting.id, OrderStatus.FULFILLED)
    assert worker.events("worker.stopped")
    assert await fulfilled_moves(module_container, slow.id) == 1
