"""Load scenarios: what each one sets up, which wrk script it runs, and what it checks after.

Adding a scenario: subclass `Scenario`, give it a `name`, a `script` (a file in `lua/`),
`setup()` and, when it needs more than the default consistency check, `check()`; then
`register()` it. The CLI and the results files pick it up by name.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import httpx
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from stockgate.bench.wrk import WrkResult
from stockgate.bootstrap import Container
from stockgate.config import Settings
from stockgate.domain.product import NewProduct
from stockgate.services.catalog import add_product
from stockgate.services.reconcile import ProductReport, reconcile_product

TOKEN_CONCURRENCY = 32


@dataclass(slots=True)
class Target:
    """What a scenario works against: the API's URL and direct access to its stores."""

    base_url: str
    settings: Settings
    container: Container
    http: httpx.AsyncClient
    workdir: Path
    run_id: str
    load_seconds: float = 0.0  # how long each load runs (--duration)


@dataclass(slots=True)
class Plan:
    script: str  # a file in stockgate/bench/lua/, without .lua
    args: list[str] = field(default_factory=list)
    stock: dict[int, int] = field(default_factory=dict)  # product id -> stock at start
    # Runs beside the load (e.g. the expiry probe); its figures go into the result.
    beside: Callable[[], Coroutine[None, None, dict[str, object]]] | None = None
    # Runs just before the measured load, after the baseline one (e.g. connect watchers).
    prepare: Callable[[], Coroutine[None, None, None]] | None = None


@dataclass(slots=True)
class Outcome:
    oversold: int = 0
    leaked: int = 0
    problems: list[str] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Goal:
    """A figure the docs report against: `value <op> bound`; missing one does not fail a run."""

    key: str
    op: str  # ">=" or "<=" or "=="
    bound: float

    def met(self, value: float) -> bool:
        if self.op == ">=":
            return value >= self.bound
        if self.op == "<=":
            return value <= self.bound
        return value == self.bound


class Scenario:
    name: ClassVar[str]
    script: ClassVar[str]
    description: ClassVar[str]
    needs_worker: ClassVar[bool] = False  # own stack: also run `stockgate worker --role all`
    needs_stripe: ClassVar[bool] = False  # own stack: a fake Stripe sending webhooks to the API
    hold_seconds: ClassVar[int | None] = None  # own stack: STOCKGATE_HOLD_SECONDS
    # Also run the same load first without `prepare` and `beside`: figures `baseline_*`.
    baseline: ClassVar[bool] = False
    goals: ClassVar[tuple[Goal, ...]] = ()

    async def setup(self, target: Target) -> Plan:
        raise NotImplementedError

    async def check(
        self, target: Target, plan: Plan, load: WrkResult, beside: dict[str, object]
    ) -> Outcome:
        await asyncio.sleep(0.5)  # let reservations answered at the very end settle
        return await consistency(target, plan.stock)


SCENARIOS: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    SCENARIOS[scenario.name] = scenario
    return scenario


# --- building blocks -------------------------------------------------------------------


async def create_products(
    target: Target,
    stocks: Sequence[int],
    *,
    limit_per_customer: int | None = None,
    tag: str = "",
) -> dict[int, int]:
    created: dict[int, int] = {}
    for index, stock in enumerate(stocks):
        product = await add_product(
            NewProduct(
                sku=f"bench-{target.run_id}{tag}-{index}",
                name=f"bench {target.run_id}{tag} #{index}",
                price_cents=1000,
                stock=stock,
                limit_per_customer=limit_per_customer,
            ),
            uow_factory=target.container.uow_factory,
            gate=target.container.gate,
        )
        created[product.id] = stock
    return created


async def create_tokens(target: Target, count: int) -> list[str]:
    """Guest customers through the API, as buyers get them (needs rate limits off)."""
    gate = asyncio.Semaphore(TOKEN_CONCURRENCY)

    async def one() -> str:
        async with gate:
            response = await target.http.post("/api/v1/customers")
        if response.status_code != 201:
            raise RuntimeError(
                f"POST /api/v1/customers answered {response.status_code}: {response.text[:200]}"
                " (is STOCKGATE_RATE_LIMIT_ENABLED=false on the target?)"
            )
        token: str = response.json()["token"]
        return token

    return list(await asyncio.gather(*(one() for _ in range(count))))


def write_tokens(target: Target, tokens: Iterable[str]) -> Path:
    path = target.workdir / "tokens.txt"
    path.write_text("".join(f"{t}\n" for t in tokens))
    return path


async def consistency(target: Target, stock: dict[int, int]) -> Outcome:
    """Reconcile (report only) the scenario's products: what the gate lost or gave twice."""
    outcome = Outcome()
    for report in await reconcile_reports(target, stock):
        outcome.oversold += report.oversold
        outcome.leaked += report.leaked
        if not report.ledger_ok:
            outcome.problems.append(f"product {report.product_id}: ledger does not sum up")
    if outcome.leaked or outcome.oversold:
        outcome.problems.append(f"leaked {outcome.leaked}, oversold {outcome.oversold} units")
    return outcome


async def reconcile_reports(target: Target, stock: dict[int, int]) -> list[ProductReport]:
    container = target.container
    reports = []
    for product_id in stock:
        report = await reconcile_product(
            product_id,
            uow_factory=container.uow_factory,
            gate=container.gate,
            clock=container.clock,
            grace_seconds=target.settings.reconcile_grace_seconds,
            fix=False,
        )
        if report is not None:
            reports.append(report)
    return reports


# --- the scenarios ---------------------------------------------------------------------


class Ceiling(Scenario):
    name = "ceiling"
    script = "ceiling"
    description = "GET /healthz: the hello-world reference of the same stack"

    async def setup(self, target: Target) -> Plan:
        return Plan(self.script)

    async def check(
        self, target: Target, plan: Plan, load: WrkResult, beside: dict[str, object]
    ) -> Outcome:
        return Outcome()


class Reserve(Scenario):
    name = "reserve"
    script = "reserve"
    description = "one product with huge stock, 2000 buyers in turn, 1 unit per reservation"
    goals: ClassVar[tuple[Goal, ...]] = (
        Goal("ratio_to_ceiling", ">=", 0.3),
        Goal("p99_ms", "<=", 25.0),
    )
    buyers = 2000
    stock = 100_000_000

    async def setup(self, target: Target) -> Plan:
        stock = await create_products(target, [self.stock])
        tokens = write_tokens(target, await create_tokens(target, self.buyers))
        return Plan(self.script, [str(tokens), str(next(iter(stock)))], stock)

    async def check(
        self, target: Target, plan: Plan, load: WrkResult, beside: dict[str, object]
    ) -> Outcome:
        outcome = await super().check(target, plan, load, beside)
        held = sum(r.held for r in await reconcile_reports(target, plan.stock))
        created = load.count(201)
        outcome.figures["reservations_created"] = created
        outcome.figures["units_held"] = held
        if held < created:  # a 201 must mean a durable reservation
            outcome.problems.append(f"{created} reservations answered 201, {held} units held")
        return outcome


class SoldOut(Reserve):
    name = "sold-out"
    description = "one product with stock 0: every reservation is refused with 409"
    goals = (Goal("ratio_to_ceiling", ">=", 0.6),)
    stock = 0

    async def check(
        self, target: Target, plan: Plan, load: WrkResult, beside: dict[str, object]
    ) -> Outcome:
        outcome = await super().check(target, plan, load, beside)
        if load.count(201):
            outcome.problems.append(f"{load.count(201)} reservations of a sold-out product")
        return outcome


class FlashSale(Scenario):
    name = "flash-sale"
    script = "flash_sale"
    description = (
        "20 products x 50 units, limit 2 per buyer, 2000 buyers, 1-3 lines per reservation; "
        "half the reservations released with DELETE, the rest left to expire (3 s holds)"
    )
    needs_worker = True
    hold_seconds = 3
    goals = (
        Goal("oversold", "==", 0),
        Goal("leaked", "==", 0),
        Goal("stock_back_after_expiry_ms", "<=", 1000.0),
    )
    products = 20
    units = 50
    limit = 2
    buyers = 2000
    release_share = 0.5
    probes = 3

    async def setup(self, target: Target) -> Plan:
        stock = await create_products(
            target, [self.units] * self.products, limit_per_customer=self.limit
        )
        # One-unit products of their own for the expiry probes (the load never touches them).
        probe_products = list(await create_products(target, [1] * self.probes, tag="-probe"))
        tokens = await create_tokens(target, self.buyers + self.probes)
        path = write_tokens(target, tokens[: self.buyers])
        probe_tokens = tokens[self.buyers :]
        args = [str(path), ",".join(map(str, stock)), str(self.release_share), "42"]

        async def beside() -> dict[str, object]:
            delays = await asyncio.gather(
                *(
                    expiry_probe(target, product_id, token, start=0.5 + 0.5 * i)
                    for i, (product_id, token) in enumerate(
                        zip(probe_products, probe_tokens, strict=True)
                    )
                )
            )
            measured = [d for d in delays if d is not None]
            return {
                "stock_back_after_expiry_ms": round(max(measured), 1) if measured else None,
                "stock_back_after_expiry_samples_ms": [round(d, 1) for d in measured],
            }

        stock.update(dict.fromkeys(probe_products, 1))
        return Plan(self.script, args, stock, beside)

    async def check(
        self, target: Target, plan: Plan, load: WrkResult, beside: dict[str, object]
    ) -> Outcome:
        # Every reservation left behind expires within hold_seconds of the load's end.
        await asyncio.sleep(target.settings.hold_seconds + 2)
        outcome = await consistency(target, plan.stock)
        shown = {
            p["id"]: p["available"] for p in (await target.http.get("/api/v1/products")).json()
        }
        missing = {pid: (shown.get(pid), units) for pid, units in plan.stock.items()}
        not_back = {pid: v for pid, v in missing.items() if v[0] != v[1]}
        for pid, (available, units) in sorted(not_back.items()):
            outcome.problems.append(f"product {pid}: {available} of {units} available after expiry")
        outcome.figures["all_stock_back"] = not not_back
        outcome.figures["released"] = load.kinds.get("release:200", 0)
        outcome.figures["limit_or_sold_out"] = load.kinds.get("reserve:409", 0)
        if beside.get("stock_back_after_expiry_ms") is None:
            outcome.problems.append("the expiry probe measured nothing")
        return outcome


class Checkout(Reserve):
    """Checkouts paid with a test card at a steady rate, beside the reserve load."""

    name = "checkout"
    description = (
        "reserve load (as `reserve`) plus 10 buyers a second doing hold -> checkout -> pay with"
        " a test card against the fake Stripe; checkout latency, webhook received -> order paid"
    )
    needs_worker = True
    needs_stripe = True
    goals = (Goal("checkout_p99_ms", "<=", 500.0), Goal("unpaid_orders", "==", 0))
    checkouts = 100
    per_second = 10.0

    async def setup(self, target: Target) -> Plan:
        plan = await super().setup(target)
        paying = await create_products(target, [self.checkouts], tag="-checkout")
        tokens = await create_tokens(target, self.checkouts)
        (product_id,) = paying

        async def beside() -> dict[str, object]:
            return await checkout_load(target, product_id, tokens, self.per_second)

        plan.stock.update(paying)
        plan.beside = beside
        return plan


async def checkout_load(
    target: Target, product_id: int, tokens: list[str], per_second: float
) -> dict[str, object]:
    """Start one buyer every 1/per_second s; each holds one unit, checks out (timed) and pays
    with a test card. Then wait for every order to be paid and read, from PostgreSQL, how long
    each took from its webhook's arrival to `paid`."""

    async def buyer(token: str) -> tuple[float, str] | None:
        auth = {"Authorization": f"Bearer {token}"}
        held = await target.http.post(
            "/api/v1/reservations",
            json={"items": [{"product_id": product_id, "quantity": 1}]},
            headers=auth,
        )
        if held.status_code != 201:
            return None
        started = time.perf_counter()
        answer = await target.http.post(
            f"/api/v1/reservations/{held.json()['id']}/checkout", headers=auth
        )
        took = (time.perf_counter() - started) * 1000
        if answer.status_code != 201:
            return None
        order_id: str = answer.json()["order_id"]
        paid = await target.http.post(
            f"/api/v1/orders/{order_id}/payment-method",
            json={"payment_method": "pm_card_visa"},
            headers=auth,
        )
        return (took, order_id) if paid.status_code == 200 else None

    tasks = []
    for token in tokens:
        tasks.append(asyncio.create_task(buyer(token)))
        await asyncio.sleep(1 / per_second)
    done = [r for r in await asyncio.gather(*tasks, return_exceptions=True) if isinstance(r, tuple)]
    order_ids = [order_id for _, order_id in done]
    lags = await _webhook_to_paid(target, order_ids, wait_s=60.0)
    checkout_ms = sorted(took for took, _ in done)
    return {
        "checkouts": len(done),
        "checkout_failed": len(tokens) - len(done),
        "checkout_p50_ms": _percentile(checkout_ms, 50),
        "checkout_p99_ms": _percentile(checkout_ms, 99),
        "webhook_to_paid_p50_ms": _percentile(lags, 50),
        "webhook_to_paid_p99_ms": _percentile(lags, 99),
        "unpaid_orders": len(order_ids) - len(lags),
    }


WEBHOOK_TO_PAID = sa.text(
    """
    SELECT extract(epoch FROM (o.paid_at - w.received_at)) * 1000
      FROM orders o JOIN webhook_events w
        ON w.type = 'payment_intent.succeeded'
       AND w.payload -> 'data' -> 'object' ->> 'id' = o.payment_intent_id
     WHERE o.id = ANY(:ids) AND o.paid_at IS NOT NULL
    """
).bindparams(sa.bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))


async def _webhook_to_paid(target: Target, order_ids: list[str], *, wait_s: float) -> list[float]:
    stores = target.container.stores
    assert stores is not None
    ids = [uuid.UUID(i) for i in order_ids]
    deadline = time.monotonic() + wait_s
    while True:
        async with stores.engine.connect() as connection:
            lags = sorted(
                float(v)
                for v in (await connection.execute(WEBHOOK_TO_PAID, {"ids": ids})).scalars()
            )
        if len(lags) >= len(ids) or time.monotonic() > deadline:
            return lags
        await asyncio.sleep(0.25)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, round(q / 100 * (len(values) - 1)))
    return round(values[index], 1)


async def expiry_probe(
    target: Target, product_id: int, token: str, *, start: float
) -> float | None:
    """Reserve the only unit, then watch the gate: ms from expires_at until it is back."""
    await asyncio.sleep(start)
    response = await target.http.post(
        "/api/v1/reservations",
        json={"items": [{"product_id": product_id, "quantity": 1}]},
        headers={"Authorization": f"Bearer {token}"},
    )
    if response.status_code != 201:
        return None
    expires_at = datetime.fromisoformat(response.json()["expires_at"])
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    deadline = time.monotonic() + target.settings.hold_seconds + 30
    while time.monotonic() < deadline:
        available = (await target.container.gate.available([product_id]))[product_id]
        if available == 1:
            return (datetime.now(UTC) - expires_at).total_seconds() * 1000
        await asyncio.sleep(0.01)
    return None


for _scenario in (Ceiling(), Reserve(), SoldOut(), FlashSale(), Checkout()):
    register(_scenario)
