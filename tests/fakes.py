"""In-memory fakes of the ports in stockgate.services.ports, for fast unit tests (no I/O).

FakeGate follows the Lua scripts in adapters/redis/*.lua line by line in meaning, so a
service test against it says what the real gate would do; tests/integration/test_gate.py
checks the real scripts against the same expectations.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from stockgate.adapters.stripe.events import event_from
from stockgate.domain.admin_user import AdminUser
from stockgate.domain.errors import (
    Conflict,
    DuplicateSku,
    InvalidWebhook,
    NotificationFailed,
    PaymentDeclined,
    PaymentIntentNotFound,
    PaymentProviderUnavailable,
    PaymentStateConflict,
    ProductNotFound,
    ReservationNotActive,
    RestockKeyReused,
    StoreUnavailable,
)
from stockgate.domain.ledger import LedgerEntry, LedgerKind, levels_from
from stockgate.domain.order import Order, OrderStatus
from stockgate.domain.product import NewProduct, Product
from stockgate.domain.reservation import Reservation, ReservationLine, ReservationStatus
from stockgate.domain.stock import StockLevels
from stockgate.services.ports import (
    AdminSession,
    AuditEntry,
    ConvertMode,
    ConvertStatus,
    EmailMessage,
    GateHold,
    GateState,
    InboxEvent,
    JobHandle,
    LedgerRow,
    OrderEvent,
    OrderNotification,
    OrderSummary,
    OutboxItem,
    OutboxKind,
    PaymentEvent,
    PaymentIntent,
    ProductActivity,
    ProductTotals,
    QueueDepth,
    Refund,
    Schedule,
    StockAdded,
    TakeResult,
    TakeStatus,
    WebhookRow,
)


class FakeClock:
    def __init__(self, now: datetime | None = None) -> None:
        self.current = now or datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


# --------------------------------------------------------------------------- the gate


@dataclass
class _Counter:
    available: int
    limit: int
    version: int
    sold: int = 0


class FakeGate:
    """The Redis gate's semantics, in dictionaries."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.counters: dict[int, _Counter] = {}
        self.holds: dict[int, dict[uuid.UUID, GateHold]] = {}
        self.sales: dict[int, dict[uuid.UUID, int]] = {}
        self.buyers: dict[int, dict[uuid.UUID, int]] = {}
        self.idempotency: dict[tuple[uuid.UUID, str], tuple[uuid.UUID, str]] = {}
        self.sold_out: set[int] = set()
        self.canceled: set[uuid.UUID] = set()  # takes canceled after their answer was lost
        self.fail: bool = False  # True: every call raises StoreUnavailable("redis")
        self.calls: list[str] = []

    def _check(self, name: str) -> None:
        self.calls.append(name)
        if self.fail:
            raise StoreUnavailable("redis")

    def flush(self) -> None:
        """What FLUSHALL does to the real gate."""
        self.counters.clear()
        self.holds.clear()
        self.sales.clear()
        self.buyers.clear()
        self.idempotency.clear()

    def known_sold_out(self, product_id: int) -> bool:
        return product_id in self.sold_out

    async def take(
        self, reservation: Reservation, idempotency_key: str | None, fingerprint: str
    ) -> TakeResult:
        self._check("take")
        if reservation.id in self.canceled:
            return TakeResult(TakeStatus.CANCELED, product_id=reservation.lines[0].product_id)
        customer = reservation.customer_id
        if idempotency_key and (customer, idempotency_key) in self.idempotency:
            original, original_fingerprint = self.idempotency[(customer, idempotency_key)]
            return TakeResult(
                TakeStatus.DUPLICATE, reservation_id=original, fingerprint=original_fingerprint
            )
        for line in reservation.lines:
            counter = self.counters.get(line.product_id)
            if counter is None:
                return TakeResult(TakeStatus.NOT_LOADED, product_id=line.product_id)
            if counter.available < line.quantity:
                if counter.available <= 0:
                    self.sold_out.add(line.product_id)
                return TakeResult(
                    TakeStatus.SOLD_OUT, product_id=line.product_id, available=counter.available
                )
            if counter.limit > 0:
                already = self.buyers.get(line.product_id, {}).get(customer, 0)
                if already + line.quantity > counter.limit:
                    return TakeResult(
                        TakeStatus.LIMIT_EXCEEDED,
                        product_id=line.product_id,
                        limit=counter.limit,
                        already=already,
                    )
        now_ms = int(self.clock.now().timestamp() * 1000)
        for line in reservation.lines:
            self.counters[line.product_id].available -= line.quantity
            self.holds.setdefault(line.product_id, {})[reservation.id] = GateHold(
                reservation.id, customer, line.quantity, now_ms, idempotency_key
            )
            buyers = self.buyers.setdefault(line.product_id, {})
            buyers[customer] = buyers.get(customer, 0) + line.quantity
        if idempotency_key:
            self.idempotency[(customer, idempotency_key)] = (reservation.id, fingerprint)
        return TakeResult(TakeStatus.TAKEN)

    async def cancel_take(self, reservation: Reservation, idempotency_key: str | None) -> int:
        self._check("cancel_take")
        self.canceled.add(reservation.id)
        return await self.give_back(reservation, idempotency_key)

    async def give_back(self, reservation: Reservation, idempotency_key: str | None = None) -> int:
        self._check("give_back")
        returned = 0
        for line in reservation.lines:
            self.sold_out.discard(line.product_id)
            hold = self.holds.get(line.product_id, {}).pop(reservation.id, None)
            if hold is None:
                continue
            counter = self.counters.get(line.product_id)
            if counter is None:  # HINCRBY on a missing hash creates it, as Redis would
                counter = self.counters[line.product_id] = _Counter(0, 0, 0)
            counter.available += hold.quantity
            buyers = self.buyers.setdefault(line.product_id, {})
            left = buyers.get(hold.customer_id, 0) - hold.quantity
            if left <= 0:
                buyers.pop(hold.customer_id, None)
            else:
                buyers[hold.customer_id] = left
            returned += hold.quantity
        if idempotency_key:
            key = (reservation.customer_id, idempotency_key)
            original = self.idempotency.get(key)
            if original is not None and original[0] == reservation.id:
                del self.idempotency[key]
        return returned

    async def available(self, product_ids: Sequence[int]) -> dict[int, int | None]:
        self._check("available")
        return {
            pid: (self.counters[pid].available if pid in self.counters else None)
            for pid in product_ids
        }

    async def add_stock(self, product_id: int, quantity: int, version: int) -> None:
        self._check("add_stock")
        self.sold_out.discard(product_id)
        counter = self.counters.get(product_id)
        if counter is None or counter.version >= version:
            return
        counter.available += quantity
        counter.version = version

    async def load(self, totals: ProductTotals) -> bool:
        self._check("load")
        product = totals.product
        self.sold_out.discard(product.id)
        if product.id in self.counters:
            return False
        holds: dict[uuid.UUID, GateHold] = {}
        buyers: dict[uuid.UUID, int] = {}
        for reservation in totals.active:
            for line in reservation.lines:
                if line.product_id != product.id:
                    continue
                taken_ms = int(reservation.created_at.timestamp() * 1000)
                holds[reservation.id] = GateHold(
                    reservation.id, reservation.customer_id, line.quantity, taken_ms
                )
                buyers[reservation.customer_id] = (
                    buyers.get(reservation.customer_id, 0) + line.quantity
                )
        for customer_id, units in totals.sold_by_customer.items():
            buyers[customer_id] = buyers.get(customer_id, 0) + units
        self.holds[product.id] = holds
        self.buyers[product.id] = buyers
        self.sales[product.id] = dict(totals.sales)
        self.counters[product.id] = _Counter(
            product.stock - totals.sold - totals.held,
            product.limit_per_customer or 0,
            totals.stock_version,
            sum(totals.sales.values()),
        )
        return True

    async def state(self, product_id: int) -> GateState:
        self._check("state")
        counter = self.counters.get(product_id)
        return GateState(
            product_id,
            None if counter is None else counter.available,
            0 if counter is None else counter.version,
            dict(self.holds.get(product_id, {})),
            dict(self.sales.get(product_id, {})),
            0 if counter is None else counter.sold,
        )

    async def restore(self, product_id: int, hold: GateHold) -> bool:
        self._check("restore")
        holds = self.holds.setdefault(product_id, {})
        if hold.reservation_id in holds:
            return True
        counter = self.counters.get(product_id)
        if counter is None or counter.available < hold.quantity:
            return False
        counter.available -= hold.quantity
        holds[hold.reservation_id] = hold
        buyers = self.buyers.setdefault(product_id, {})
        buyers[hold.customer_id] = buyers.get(hold.customer_id, 0) + hold.quantity
        return True

    async def set_total(self, totals: ProductTotals) -> int | None:
        self._check("set_total")
        product = totals.product
        counter = self.counters.get(product.id)
        if counter is None or counter.version > totals.stock_version:
            return None
        self.sold_out.discard(product.id)
        holds = self.holds.get(product.id, {})
        held = sum(h.quantity for h in holds.values())
        buyers: dict[uuid.UUID, int] = {}
        for hold in holds.values():
            buyers[hold.customer_id] = buyers.get(hold.customer_id, 0) + hold.quantity
        for customer_id, units in totals.sold_by_customer.items():
            buyers[customer_id] = buyers.get(customer_id, 0) + units
        self.buyers[product.id] = buyers
        correction = product.stock - (counter.available + held + counter.sold)
        counter.available += correction
        counter.version = totals.stock_version
        counter.limit = product.limit_per_customer or 0
        return correction

    async def convert(self, reservation: Reservation, mode: ConvertMode) -> ConvertStatus:
        self._check("convert")
        sources: list[str] = []
        for line in reservation.lines:
            counter = self.counters.get(line.product_id)
            if reservation.id in self.sales.get(line.product_id, {}):
                sources.append("sold")
            elif reservation.id in self.holds.get(line.product_id, {}):
                sources.append("hold")
            elif counter is None:
                return ConvertStatus.NOT_LOADED
            elif mode is ConvertMode.HOLD or (
                mode is ConvertMode.TAKE and counter.available < line.quantity
            ):
                return ConvertStatus.REFUSED
            else:
                sources.append("available")
        if all(source == "sold" for source in sources):
            return ConvertStatus.ALREADY
        for line, source in zip(reservation.lines, sources, strict=True):
            counter = self.counters[line.product_id]
            sales = self.sales.setdefault(line.product_id, {})
            if source == "hold":
                hold = self.holds[line.product_id].pop(reservation.id)
                sales[reservation.id] = hold.quantity
                counter.sold += hold.quantity
            elif source == "available":
                counter.available -= line.quantity
                sales[reservation.id] = line.quantity
                counter.sold += line.quantity
                buyers = self.buyers.setdefault(line.product_id, {})
                buyers[reservation.customer_id] = (
                    buyers.get(reservation.customer_id, 0) + line.quantity
                )
        return ConvertStatus.CONVERTED

    async def return_sold(self, reservation: Reservation) -> int:
        self._check("return_sold")
        returned = 0
        for line in reservation.lines:
            units = self.sales.get(line.product_id, {}).pop(reservation.id, None)
            if units is None:
                continue
            self.sold_out.discard(line.product_id)
            counter = self.counters[line.product_id]
            counter.sold -= units
            counter.available += units
            buyers = self.buyers.setdefault(line.product_id, {})
            left = buyers.get(reservation.customer_id, 0) - units
            if left <= 0:
                buyers.pop(reservation.customer_id, None)
            else:
                buyers[reservation.customer_id] = left
            returned += units
        return returned


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class FakeData:
    """Everything the fake database holds; copied on entry to a unit of work."""

    products: dict[int, Product] = field(default_factory=dict)
    reservations: dict[uuid.UUID, Reservation] = field(default_factory=dict)
    ledger: list[tuple[int, LedgerEntry]] = field(default_factory=list)  # (id, entry)
    orders: dict[uuid.UUID, Order] = field(default_factory=dict)
    order_events: list[OrderEvent] = field(default_factory=list)
    inbox: dict[str, InboxEvent] = field(default_factory=dict)
    outbox: dict[int, tuple[OutboxItem, bool]] = field(default_factory=dict)  # (item, done)


class FakeDatabase:
    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()  # the database's clock: due reservations by it
        self.data = FakeData()
        self._ids = itertools.count(1)
        self.fail: bool = False  # True: opening a unit of work raises StoreUnavailable

    def next_id(self) -> int:
        return next(self._ids)

    def add_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        self.data.ledger.extend((self.next_id(), entry) for entry in entries)

    def ledger_levels(self, product_id: int) -> StockLevels:
        units: dict[LedgerKind, int] = {}
        for _, e in self.data.ledger:
            if e.product_id == product_id:
                units[e.kind] = units.get(e.kind, 0) + e.quantity
        return levels_from(units)

    def totals(self, product_id: int) -> ProductTotals | None:
        product = self.data.products.get(product_id)
        if product is None:
            return None
        active: list[Reservation] = []
        sold = 0
        sold_by_customer: dict[uuid.UUID, int] = {}
        sales: dict[uuid.UUID, int] = {}
        for reservation in self.data.reservations.values():
            quantity = sum(li.quantity for li in reservation.lines if li.product_id == product_id)
            if not quantity:
                continue
            if reservation.status is ReservationStatus.ACTIVE:
                line = next(li for li in reservation.lines if li.product_id == product_id)
                active.append(replace(reservation, lines=(line,)))
            elif reservation.status is ReservationStatus.CONVERTED:
                sold += quantity
                sales[reservation.id] = quantity
                customer = reservation.customer_id
                sold_by_customer[customer] = sold_by_customer.get(customer, 0) + quantity
        versions = [
            i
            for i, e in self.data.ledger
            if e.product_id == product_id and e.kind is LedgerKind.STOCK_ADDED
        ]
        return ProductTotals(
            product=product,
            sold=sold,
            stock_version=max(versions, default=0),
            ledger=self.ledger_levels(product_id),
            active=active,
            sold_by_customer=sold_by_customer,
            sales=sales,
        )


class FakeProducts:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def add(self, product: NewProduct) -> Product:
        if any(p.sku == product.sku for p in self._db.data.products.values()):
            raise DuplicateSku(product.sku)
        created = Product(
            id=self._db.next_id(),
            sku=product.sku,
            name=product.name,
            price_cents=product.price_cents,
            currency=product.currency,
            stock=product.stock,
            limit_per_customer=product.limit_per_customer,
        )
        self._db.data.products[created.id] = created
        self._db.add_ledger([LedgerEntry(created.id, LedgerKind.STOCK_ADDED, product.stock)])
        return created

    async def restock(self, sku: str, quantity: int, key: str) -> StockAdded:
        found = next((p for p in self._db.data.products.values() if p.sku == sku), None)
        if found is None:
            raise ProductNotFound(sku)
        for version, entry in self._db.data.ledger:
            if (entry.product_id, entry.kind, entry.ref) == (
                found.id,
                LedgerKind.STOCK_ADDED,
                key,
            ):
                if entry.quantity != quantity:
                    raise RestockKeyReused(f"restock key {key!r} added {entry.quantity} units")
                return StockAdded(found, version, new=False)
        updated = replace(found, stock=found.stock + quantity)
        self._db.data.products[found.id] = updated
        version = self._db.next_id()
        self._db.data.ledger.append(
            (version, LedgerEntry(found.id, LedgerKind.STOCK_ADDED, quantity, ref=key))
        )
        return StockAdded(updated, version, new=True)

    async def get(self, product_id: int) -> Product | None:
        return self._db.data.products.get(product_id)

    async def list(self) -> list[Product]:
        return sorted(self._db.data.products.values(), key=lambda p: p.id)

    async def totals(self, product_id: int) -> ProductTotals | None:
        return self._db.totals(product_id)

    async def set_terms(
        self, product_id: int, *, price_cents: int, limit_per_customer: int | None
    ) -> tuple[Product, Product]:
        before = self._db.data.products.get(product_id)
        if before is None:
            raise ProductNotFound(product_id)
        after = replace(before, price_cents=price_cents, limit_per_customer=limit_per_customer)
        self._db.data.products[product_id] = after
        return before, after


class FakeReservations:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def get(self, reservation_id: uuid.UUID) -> Reservation | None:
        return self._db.data.reservations.get(reservation_id)

    async def get_for_update(self, reservation_id: uuid.UUID) -> Reservation | None:
        return self._db.data.reservations.get(reservation_id)

    async def claim_due(self, limit: int) -> list[Reservation]:
        now = self._db.clock.now()
        due = [
            r
            for r in self._db.data.reservations.values()
            if r.status is ReservationStatus.ACTIVE and r.expires_at <= now
        ]
        return sorted(due, key=lambda r: r.expires_at)[:limit]

    async def void(self, reservation_id: uuid.UUID, customer_id: uuid.UUID) -> ReservationStatus:
        current = self._db.data.reservations.get(reservation_id)
        if current is None:
            now = datetime.now(UTC)
            self._db.data.reservations[reservation_id] = Reservation(
                reservation_id, customer_id, (), ReservationStatus.VOID, now, now
            )
            return ReservationStatus.VOID
        return current.status

    async def end(self, reservations: Sequence[Reservation]) -> None:
        for reservation in reservations:
            current = self._db.data.reservations.get(reservation.id)
            if current is not None and current.status is ReservationStatus.ACTIVE:
                self._db.data.reservations[reservation.id] = replace(
                    current, status=reservation.status
                )

    async def move(self, reservation: Reservation, *, was: ReservationStatus) -> None:
        current = self._db.data.reservations.get(reservation.id)
        if current is None or current.status is not was:
            raise ReservationNotActive(f"reservation {reservation.id} is no longer {was}")
        self._db.data.reservations[reservation.id] = replace(
            current, status=reservation.status, expires_at=reservation.expires_at
        )

    async def add_lines(self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]) -> None:
        current = self._db.data.reservations[reservation_id]
        self._db.data.reservations[reservation_id] = replace(
            current, lines=current.lines + tuple(lines)
        )

    async def remove_line(self, reservation_id: uuid.UUID, product_id: int) -> None:
        current = self._db.data.reservations[reservation_id]
        left = tuple(li for li in current.lines if li.product_id != product_id)
        self._db.data.reservations[reservation_id] = replace(current, lines=left)


class FakeOrders:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def add(self, order: Order) -> None:
        if any(o.reservation_id == order.reservation_id for o in self._db.data.orders.values()):
            raise Conflict("one order per reservation")
        self._db.data.orders[order.id] = order
        await self.record(order.id, "created", amount_cents=order.amount_cents)

    async def get(self, order_id: uuid.UUID, *, lock: bool = False) -> Order | None:
        return self._db.data.orders.get(order_id)

    async def for_reservation(
        self, reservation_id: uuid.UUID, *, lock: bool = False
    ) -> Order | None:
        return next(
            (o for o in self._db.data.orders.values() if o.reservation_id == reservation_id), None
        )

    async def for_intent(self, intent_id: str, *, lock: bool = False) -> Order | None:
        return next(
            (o for o in self._db.data.orders.values() if o.payment_intent_id == intent_id), None
        )

    async def save(self, order: Order) -> None:
        was = self._db.data.orders[order.id].status
        self._db.data.orders[order.id] = order
        if was is not order.status:
            await self.record(order.id, "status", before=was.value, after=order.status.value)

    async def with_status(
        self,
        statuses: Sequence[OrderStatus],
        *,
        created_before: datetime | None = None,
        after: uuid.UUID | None = None,
        limit: int = 100,
    ) -> list[Order]:
        found = sorted(
            (
                o
                for o in self._db.data.orders.values()
                if o.status in statuses
                and (created_before is None or o.created_at < created_before)
                and (after is None or o.id > after)
            ),
            key=lambda o: o.id,
        )
        return found[:limit]

    async def pending_for_reservations(self, reservation_ids: Sequence[uuid.UUID]) -> list[Order]:
        wanted = set(reservation_ids)
        return sorted(
            (
                o
                for o in self._db.data.orders.values()
                if o.reservation_id in wanted and o.status is OrderStatus.PAYMENT_PENDING
            ),
            key=lambda o: o.id,
        )

    async def history(self, order_id: uuid.UUID) -> list[OrderEvent]:
        return [e for e in self._db.data.order_events if e.order_id == order_id]

    async def record(self, order_id: uuid.UUID, kind: str, **detail: Any) -> None:
        self._db.data.order_events.append(OrderEvent(order_id, datetime.now(UTC), kind, detail))


class FakeInbox:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def add(self, event: PaymentEvent) -> bool:
        if event.id in self._db.data.inbox:
            return False
        self._db.data.inbox[event.id] = InboxEvent(event, datetime.now(UTC), None, None, 0, None)
        return True

    async def get(self, event_id: str, *, lock: bool = False) -> InboxEvent | None:
        return self._db.data.inbox.get(event_id)

    async def processed(self, event_id: str, outcome: str) -> None:
        stored = self._db.data.inbox[event_id]
        self._db.data.inbox[event_id] = replace(
            stored,
            processed_at=datetime.now(UTC),
            outcome=outcome,
            attempts=stored.attempts + 1,
            last_error=None,
        )

    async def failed(self, event_id: str, error: str) -> None:
        stored = self._db.data.inbox[event_id]
        self._db.data.inbox[event_id] = replace(
            stored, attempts=stored.attempts + 1, last_error=error
        )

    async def reopen(self, event_id: str) -> bool:
        stored = self._db.data.inbox.get(event_id)
        if stored is None:
            return False
        self._db.data.inbox[event_id] = replace(stored, processed_at=None, outcome=None)
        return True

    async def unprocessed(self, *, received_before: datetime, limit: int) -> list[str]:
        return [
            e.event.id
            for e in self._db.data.inbox.values()
            if e.processed_at is None and e.received_at < received_before
        ][:limit]

    async def recent(
        self, *, limit: int, before: datetime | None = None, unprocessed_only: bool = False
    ) -> list[InboxEvent]:
        events = [
            e
            for e in self._db.data.inbox.values()
            if (before is None or e.received_at < before)
            and (not unprocessed_only or e.processed_at is None)
        ]
        return sorted(events, key=lambda e: e.received_at, reverse=True)[:limit]


class FakeOutbox:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def add(
        self, kind: OutboxKind, order_id: uuid.UUID, payment_intent_id: str, key: str
    ) -> None:
        if any(item.key == key for item, _ in self._db.data.outbox.values()):
            return
        item_id = self._db.next_id()
        self._db.data.outbox[item_id] = (
            OutboxItem(item_id, kind, order_id, payment_intent_id, key, 0),
            False,
        )

    async def claim_due(self, *, limit: int) -> list[OutboxItem]:
        return [item for item, done in self._db.data.outbox.values() if not done][:limit]

    async def done(self, item_id: int) -> None:
        item, _ = self._db.data.outbox[item_id]
        self._db.data.outbox[item_id] = (replace(item, attempts=item.attempts + 1), True)

    async def retry_later(self, item_id: int, error: str, delay_seconds: float) -> None:
        item, _ = self._db.data.outbox[item_id]
        self._db.data.outbox[item_id] = (replace(item, attempts=item.attempts + 1), False)


class FakeLedger:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def add(self, entries: Sequence[LedgerEntry]) -> None:
        self._db.add_ledger(entries)


class FakeUnitOfWork:
    """Rolls back (restores the copy taken on entry) unless commit() ran."""

    def __init__(self, db: FakeDatabase) -> None:
        self._db = db
        self.products = FakeProducts(db)
        self.reservations = FakeReservations(db)
        self.ledger = FakeLedger(db)
        self.orders = FakeOrders(db)
        self.inbox = FakeInbox(db)
        self.outbox = FakeOutbox(db)
        self._snapshot: FakeData | None = None
        self.committed = False

    async def __aenter__(self) -> Self:
        if self._db.fail:
            raise StoreUnavailable("postgres")
        self._snapshot = copy.deepcopy(self._db.data)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed and self._snapshot is not None:
            self._db.data = self._snapshot

    async def commit(self) -> None:
        self.committed = True

    async def lock_stock(self, sku: str) -> None:
        pass  # the fakes never suspend, so no two units of work interleave: nothing to wait for


class FakeUnitOfWorkFactory:
    def __init__(self, db: FakeDatabase) -> None:
        self.db = db

    def __call__(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.db)


class FakeJournal:
    """Writes new reservations and their `held` ledger entries; can be told to fail."""

    def __init__(self, db: FakeDatabase) -> None:
        self._db = db
        self.fail_with: BaseException | None = None
        self.recorded: list[Reservation] = []

    async def record(self, reservation: Reservation) -> Reservation:
        if self.fail_with is not None:
            raise self.fail_with
        if reservation.id in self._db.data.reservations:  # voided first: ON CONFLICT DO NOTHING
            raise StoreUnavailable("postgres", "the hold was voided before it was written")
        self._db.data.reservations[reservation.id] = reservation
        self._db.add_ledger(reservation.held_entries())
        self.recorded.append(reservation)
        return reservation

    async def release(
        self, reservation_id: uuid.UUID, customer_id: uuid.UUID
    ) -> Reservation | None:
        if self.fail_with is not None:
            raise self.fail_with
        current = self._db.data.reservations.get(reservation_id)
        if current is None or current.customer_id != customer_id:
            return None
        if current.status is not ReservationStatus.ACTIVE:
            return None
        if any(o.reservation_id == reservation_id for o in self._db.data.orders.values()):
            return None  # in checkout: the service cancels the payment first (RELEASE_BATCH)
        released, entries = current.release()
        self._db.data.reservations[reservation_id] = released
        self._db.add_ledger(entries)
        return released


# --------------------------------------------------------------------------- the rest


class FakeAdminUsers:
    def __init__(self) -> None:
        self.users: dict[str, tuple[AdminUser, str]] = {}

    async def add(self, username: str, password_hash: str) -> AdminUser:
        if username in self.users:
            raise Conflict(f"an admin user named {username!r} already exists")
        user = AdminUser(len(self.users) + 1, username, datetime(2030, 1, 1, tzinfo=UTC))
        self.users[username] = (user, password_hash)
        return user

    async def find(self, username: str) -> tuple[AdminUser, str] | None:
        return self.users.get(username)

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        for name, (user, _) in self.users.items():
            if user.id == user_id:
                self.users[name] = (user, password_hash)


class FakeProbe:
    def __init__(self) -> None:
        self.down: set[str] = set()
        self.warned: list[str] = []

    async def reachable(self) -> dict[str, bool]:
        return {store: store not in self.down for store in ("postgres", "redis")}

    async def warnings(self) -> list[str]:
        return list(self.warned)


# --------------------------------------------------------------------------- admin dashboard


class FakeAdminSessions:
    def __init__(self) -> None:
        self.sessions: dict[str, AdminSession] = {}
        self.ttls: dict[str, int] = {}

    async def add(self, session: AdminSession, ttl_seconds: int) -> None:
        self.sessions[session.id] = session
        self.ttls[session.id] = ttl_seconds

    async def get(self, session_id: str) -> AdminSession | None:
        return self.sessions.get(session_id)

    async def touch(self, session_id: str, last_seen: float, ttl_seconds: int) -> None:
        if session_id in self.sessions:
            self.sessions[session_id] = replace(self.sessions[session_id], last_seen=last_seen)
            self.ttls[session_id] = ttl_seconds

    async def remove(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)


class FakeLoginThrottle:
    """Counts failures per key without a window (unit tests move no real time)."""

    def __init__(self, max_failures: int = 3, wait_seconds: int = 900) -> None:
        self.max_failures = max_failures
        self.wait_seconds = wait_seconds
        self.failures: dict[str, int] = {}

    async def retry_after(self, keys: Sequence[str]) -> int:
        locked = any(self.failures.get(key, 0) >= self.max_failures for key in keys)
        return self.wait_seconds if locked else 0

    async def failed(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.failures[key] = self.failures.get(key, 0) + 1

    async def clear(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.failures.pop(key, None)


class FakeAuditLog:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def add(
        self,
        actor: str,
        action: str,
        target: str | None,
        *,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> None:
        at = datetime(2030, 1, 1, tzinfo=UTC)
        self.entries.append(
            AuditEntry(len(self.entries) + 1, at, actor, action, target, before, after)
        )

    async def recent(self, *, limit: int, before_id: int | None = None) -> list[AuditEntry]:
        older = [e for e in self.entries if before_id is None or e.id < before_id]
        return sorted(older, key=lambda e: e.id, reverse=True)[:limit]


class FakeAdminViews:
    """The dashboard's read model over the fake database's products (no orders yet)."""

    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def activity(self, *, since: datetime) -> list[ProductActivity]:
        return [
            ProductActivity(product, held=0, sold=0, holds_last_minute=0, paid_last_minute=0)
            for product in sorted(self._db.data.products.values(), key=lambda p: p.id)
        ]

    async def orders(
        self,
        *,
        status: str | None,
        search: uuid.UUID | None,
        before: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[OrderSummary]:
        return []

    async def ledger_for(self, reservation_id: uuid.UUID) -> list[LedgerRow]:
        return []

    async def webhook_events(
        self,
        *,
        before: tuple[datetime, str] | None,
        unprocessed_only: bool,
        payment_intent_id: str | None = None,
        limit: int,
    ) -> list[WebhookRow]:
        return []

    async def webhook_event(self, event_id: str) -> WebhookRow | None:
        return None


# --------------------------------------------------------------------------- background work


@dataclass
class FakeWorkQueue:
    """Jobs asked for, by id; asking twice keeps one (like a job id from the business key)."""

    jobs: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    given_up: set[str] = field(default_factory=set)

    async def request_fulfillment(self, order_id: uuid.UUID, *, delay_seconds: float = 0) -> None:
        self.jobs.setdefault(f"fulfill:{order_id}", ("fulfill-order", {"order_id": str(order_id)}))

    async def request_event_processing(self, event_id: str) -> None:
        self.jobs.setdefault(f"event:{event_id}", ("process-payment-event", {"event_id": event_id}))

    async def request_again(self, job: str, key: str, data: Mapping[str, Any]) -> bool:
        job_id = f"fulfill:{key}" if job == "fulfill-order" else f"event:{key}"
        if job_id in self.jobs and job_id not in self.given_up:
            return False
        self.given_up.discard(job_id)
        self.jobs[job_id] = (job, dict(data))
        return True

    async def depths(self) -> list[QueueDepth]:
        return [QueueDepth("fulfillment", len(self.jobs), 0, 0, len(self.given_up), 0.0)]

    async def purge_finished(self, older_than_seconds: float) -> int:
        return 0

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        """Every job asked for (as a worker would take them), emptying the queue."""
        taken = list(self.jobs.values())
        self.jobs.clear()
        return taken


class FakeJobRunner:
    async def start(
        self, queues: Sequence[str], handle: JobHandle, schedules: Sequence[Schedule] = ()
    ) -> None:
        self.queues, self.handle, self.schedules = list(queues), handle, list(schedules)

    async def stop(self) -> None:
        pass


@dataclass
class FakeNotifier:
    """Collects notifications; `down` makes every delivery fail like a dead endpoint."""

    sent: list[OrderNotification] = field(default_factory=list)
    down: bool = False

    async def notify(self, notification: OrderNotification) -> None:
        if self.down:
            raise NotificationFailed("merchant endpoint answered 503")
        self.sent.append(notification)


@dataclass
class FakeMailer:
    sent: list[EmailMessage] = field(default_factory=list)
    down: bool = False

    async def send(self, message: EmailMessage) -> None:
        if self.down:
            raise NotificationFailed("mail server refused the message")
        self.sent.append(message)


@dataclass
class FakeRefunds:
    """Only what fulfillment needs of the PaymentProvider: refunds, idempotent per key."""

    refunds: dict[str, Refund] = field(default_factory=dict)
    down: bool = False

    async def refund(self, intent_id: str, *, key: str, reason: str) -> Refund:
        if self.down:
            raise PaymentProviderUnavailable("stripe unreachable")
        if key not in self.refunds:
            self.refunds[key] = Refund(f"re_{len(self.refunds) + 1}", intent_id, 0, "succeeded")
        return self.refunds[key]


class RecordingStockChanges:
    """StockChanges that remembers every product id it was told about, in order."""

    def __init__(self) -> None:
        self.changes: list[int] = []

    def changed(self, product_ids: Iterable[int]) -> None:
        self.changes.extend(product_ids)

    def take(self) -> set[int]:
        """The distinct ids told since the last take."""
        told, self.changes = set(self.changes), []
        return told


class FakePayments:
    """The payment provider (Stripe) in dictionaries: intents, payments, cancels, refunds."""

    def __init__(self) -> None:
        self.intents: dict[str, PaymentIntent] = {}
        self.refunds: dict[str, Refund] = {}  # by idempotency key
        self.down = False  # True: every call raises PaymentProviderUnavailable

    def _check(self) -> None:
        if self.down:
            raise PaymentProviderUnavailable("fake stripe is down")

    async def create_intent(
        self, *, order_id: uuid.UUID, amount_cents: int, currency: str, customer_id: uuid.UUID
    ) -> PaymentIntent:
        self._check()
        intent_id = f"pi_{order_id.hex[:16]}"  # idempotent per order, as the key makes it
        if intent_id not in self.intents:
            self.intents[intent_id] = PaymentIntent(
                intent_id,
                "requires_payment_method",
                amount_cents,
                currency,
                f"{intent_id}_secret",
                order_id,
            )
        return self.intents[intent_id]

    async def get_intent(self, intent_id: str) -> PaymentIntent:
        self._check()
        if intent_id not in self.intents:
            raise PaymentIntentNotFound(intent_id)
        return self.intents[intent_id]

    def succeed(self, intent_id: str) -> PaymentIntent:
        """The buyer paid (what Stripe.js and the card network do)."""
        self.intents[intent_id] = replace(self.intents[intent_id], status="succeeded")
        return self.intents[intent_id]

    async def pay_with(self, intent_id: str, payment_method: str) -> PaymentIntent:
        self._check()
        if payment_method != "pm_card_visa":
            raise PaymentDeclined("your card was declined")
        return self.succeed(intent_id)

    async def cancel_intent(self, intent_id: str) -> PaymentIntent:
        intent = await self.get_intent(intent_id)
        if intent.status == "succeeded":
            raise PaymentStateConflict(intent_id, intent.status, "cancel")
        self.intents[intent_id] = replace(intent, status="canceled")
        return self.intents[intent_id]

    async def refund(self, intent_id: str, *, key: str, reason: str) -> Refund:
        intent = await self.get_intent(intent_id)
        if intent.status != "succeeded":
            raise PaymentStateConflict(intent_id, intent.status, "refund")
        if key not in self.refunds:
            self.refunds[key] = Refund(
                f"re_{len(self.refunds) + 1}", intent_id, intent.amount_cents, "succeeded"
            )
        return self.refunds[key]

    def verify_event(self, payload: bytes, signature: str | None) -> PaymentEvent:
        raise InvalidWebhook("the fake provider verifies no signatures")

    def parse_event(self, payload: Mapping[str, Any]) -> PaymentEvent:
        return event_from(payload)
