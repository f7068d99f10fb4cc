"""Ports: what the services need from the outside world. Adapters implement them."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, Self

from stockgate.domain.admin_user import AdminUser
from stockgate.domain.ledger import LedgerEntry
from stockgate.domain.order import Order, OrderStatus
from stockgate.domain.product import NewProduct, Product
from stockgate.domain.reservation import Reservation, ReservationLine, ReservationStatus
from stockgate.domain.stock import StockLevels


class Clock(Protocol):
    def now(self) -> datetime: ...


class TakeStatus(StrEnum):
    TAKEN = "taken"
    SOLD_OUT = "sold_out"
    LIMIT_EXCEEDED = "limit_exceeded"
    DUPLICATE = "duplicate"  # the idempotency key already names a reservation
    NOT_LOADED = "not_loaded"  # the gate has no counter for a product yet (new or after a flush)
    STALE = "stale"  # loaded on a Redis that restarted or failed over since: rebuild it first
    CANCELED = "canceled"  # this reservation's take was canceled (its answer had been lost)


@dataclass(frozen=True, slots=True)
class TakeResult:
    status: TakeStatus
    product_id: int = 0
    available: int = 0  # SOLD_OUT: what is left
    limit: int = 0  # LIMIT_EXCEEDED: the product's limit per customer
    already: int = 0  # LIMIT_EXCEEDED: what the customer holds or bought already
    reservation_id: uuid.UUID | None = None  # DUPLICATE: the original reservation
    fingerprint: str = ""  # DUPLICATE: the original request's fingerprint


@dataclass(frozen=True, slots=True)
class GateHold:
    reservation_id: uuid.UUID
    customer_id: uuid.UUID
    quantity: int
    taken_at_ms: int
    idempotency_key: str | None = None  # the request's key, forgotten if the hold is voided


@dataclass(frozen=True, slots=True)
class GateState:
    """What the gate holds for one product; `available` is None when it is not loaded."""

    product_id: int
    available: int | None
    version: int
    holds: Mapping[uuid.UUID, GateHold] = field(default_factory=dict)
    sales: Mapping[uuid.UUID, int] = field(default_factory=dict)  # reservation id -> units sold
    sold: int = 0  # the gate's count of units sold (the sum of `sales` unless damaged)
    # Loaded under another Redis server identity (restart, failover): its keys may be older
    # than PostgreSQL, so takes are refused until it is rebuilt (decision 0014).
    stale: bool = False


class ConvertMode(StrEnum):
    HOLD = "hold"  # the live hold only: a released or expired hold is refused
    TAKE = "take"  # the hold, else units from available (a late payment), if enough are left
    FORCE = "force"  # as TAKE, even below zero: a sale PostgreSQL committed (the repair)


class ConvertStatus(StrEnum):
    CONVERTED = "converted"
    ALREADY = "already"  # sold before: nothing changed
    REFUSED = "refused"  # no hold (HOLD) or not enough available (TAKE): nothing changed
    NOT_LOADED = "not_loaded"


@dataclass(frozen=True, slots=True)
class ProductTotals:
    """PostgreSQL's view of one product, read in one snapshot."""

    product: Product
    sold: int
    stock_version: int  # id of the newest stock_added ledger entry
    ledger: StockLevels  # what the product's ledger entries add up to
    active: Sequence[Reservation]
    sold_by_customer: Mapping[uuid.UUID, int] = field(default_factory=dict)
    sales: Mapping[uuid.UUID, int] = field(default_factory=dict)  # converted reservations' units

    @property
    def held(self) -> int:
        return sum(
            line.quantity
            for reservation in self.active
            for line in reservation.lines
            if line.product_id == self.product.id
        )

    @property
    def levels(self) -> StockLevels:
        """Where the product's units are, by its reservations and orders."""
        return StockLevels(stock=self.product.stock, held=self.held, sold=self.sold)


class StockGate(Protocol):
    """The fast gate in Redis: available counters, live holds and per-customer counts."""

    def known_sold_out(self, product_id: int) -> bool:
        """True when this node saw the product sold out moments ago (no I/O)."""
        ...

    async def take(
        self, reservation: Reservation, idempotency_key: str | None, fingerprint: str
    ) -> TakeResult:
        """Take every line or none, within each product's per-customer limit."""
        ...

    async def cancel_take(self, reservation: Reservation, idempotency_key: str | None) -> int:
        """A take whose answer was lost: give its units back if it ran, and make sure it can
        never run afterwards. Returns the units given back (0: it had not run)."""
        ...

    async def give_back(self, reservation: Reservation, idempotency_key: str | None = None) -> int:
        """Return a reservation's units; 0 when they were given back already.

        With an idempotency key (compensation of a failed request) the key is forgotten too,
        so the buyer's retry is a new attempt.
        """
        ...

    async def available(self, product_ids: Sequence[int]) -> dict[int, int | None]: ...

    async def add_stock(self, product_id: int, quantity: int, version: int) -> None:
        """Apply a committed restock; a version the gate has seen already is ignored."""
        ...

    async def load(self, totals: ProductTotals) -> bool:
        """Build a product's counters from PostgreSQL when the gate has none; False if it had."""
        ...

    async def state(self, product_id: int) -> GateState: ...

    async def restore(self, product_id: int, hold: GateHold) -> bool:
        """Put back a hold PostgreSQL has and the gate lost, if stock allows it."""
        ...

    async def set_total(self, totals: ProductTotals) -> int | None:
        """Make available + held + sold equal stock; the correction, or None when skipped."""
        ...

    async def convert(self, reservation: Reservation, mode: ConvertMode) -> ConvertStatus:
        """Sell a paid reservation's units (all lines or none); idempotent per reservation."""
        ...

    async def return_sold(self, reservation: Reservation) -> int:
        """Put a refunded sale's units back on sale; 0 when there was no such sale."""
        ...


@dataclass(frozen=True, slots=True)
class StockAdded:
    """A restock as PostgreSQL recorded it (now, or earlier under the same key)."""

    product: Product  # as it is now
    version: int  # id of the restock's stock_added ledger entry
    new: bool  # False: the key had been applied before, nothing changed now


class ProductRepository(Protocol):
    async def add(self, product: NewProduct) -> Product: ...
    async def restock(self, sku: str, quantity: int, key: str) -> StockAdded:
        """Add units once per key (the key is the stock_added entry's `ref`); the same key
        with the same quantity again changes nothing, with another raises RestockKeyReused."""
        ...

    async def get(self, product_id: int) -> Product | None: ...
    async def list(self) -> list[Product]: ...
    async def totals(self, product_id: int) -> ProductTotals | None: ...

    async def set_terms(
        self, product_id: int, *, price_cents: int, limit_per_customer: int | None
    ) -> tuple[Product, Product]:
        """Change the price of new holds and the per-customer limit; (before, after)."""
        ...


class ReservationRepository(Protocol):
    async def get(self, reservation_id: uuid.UUID) -> Reservation | None: ...
    async def get_for_update(self, reservation_id: uuid.UUID) -> Reservation | None: ...
    async def claim_due(self, limit: int) -> list[Reservation]:
        """Lock and return active reservations past `expires_at` by the database's clock."""
        ...

    async def void(self, reservation_id: uuid.UUID, customer_id: uuid.UUID) -> ReservationStatus:
        """Fence an id with no row (a `void` row); the id's status afterwards."""
        ...

    async def end(self, reservations: Sequence[Reservation]) -> None:
        """Store the new status of reservations that just ended."""
        ...

    async def add_lines(self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]) -> None:
        """The cart grows: store lines of products the reservation does not hold yet."""
        ...

    async def remove_line(self, reservation_id: uuid.UUID, product_id: int) -> None:
        """The cart shrinks: forget one line (its ledger entry records that it was held)."""
        ...

    async def move(self, reservation: Reservation, *, was: ReservationStatus) -> None:
        """Store a reservation's new status (and expiry) if it still has status `was`;
        raises ReservationNotActive otherwise (someone else moved it first)."""
        ...


class LedgerRepository(Protocol):
    async def add(self, entries: Sequence[LedgerEntry]) -> None: ...


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One line of an order's history (status moves, payments, fulfillment, refunds)."""

    order_id: uuid.UUID
    at: datetime
    kind: str
    detail: Mapping[str, Any]


class OrderRepository(Protocol):
    async def add(self, order: Order) -> None: ...
    async def get(self, order_id: uuid.UUID, *, lock: bool = False) -> Order | None: ...
    async def for_reservation(
        self, reservation_id: uuid.UUID, *, lock: bool = False
    ) -> Order | None: ...
    async def for_intent(self, intent_id: str, *, lock: bool = False) -> Order | None: ...

    async def save(self, order: Order) -> None:
        """Store the order's new state (status, payment, flag, fulfillment fields)."""
        ...

    async def with_status(
        self,
        statuses: Sequence[OrderStatus],
        *,
        created_before: datetime | None = None,
        after: uuid.UUID | None = None,
        limit: int = 100,
    ) -> list[Order]:
        """Orders in these statuses, oldest first, after the id `after` (keyset paging)."""
        ...

    async def pending_for_reservations(self, reservation_ids: Sequence[uuid.UUID]) -> list[Order]:
        """Orders awaiting payment for these reservations, locked (expiry ends them)."""
        ...

    async def history(self, order_id: uuid.UUID) -> list[OrderEvent]: ...

    async def record(self, order_id: uuid.UUID, kind: str, **detail: Any) -> None:
        """Append to the order's history, in this unit of work."""
        ...


@dataclass(frozen=True, slots=True)
class InboxEvent:
    event: PaymentEvent
    received_at: datetime
    processed_at: datetime | None
    outcome: str | None
    attempts: int
    last_error: str | None


class WebhookInbox(Protocol):
    """Webhook events as received (I5): stored before the 2xx, applied once, replayable."""

    async def add(self, event: PaymentEvent) -> bool:
        """Store a newly received event; False when its id was stored before."""
        ...

    async def get(self, event_id: str, *, lock: bool = False) -> InboxEvent | None:
        """With `lock`, the row stays locked until the unit of work ends (skip if locked:
        None is returned while another worker applies it)."""
        ...

    async def processed(self, event_id: str, outcome: str) -> None: ...
    async def failed(self, event_id: str, error: str) -> None: ...
    async def reopen(self, event_id: str) -> bool:
        """Mark for applying again (an operator's replay); False when unknown."""
        ...

    async def unprocessed(self, *, received_before: datetime, limit: int) -> list[str]: ...
    async def recent(
        self, *, limit: int, before: datetime | None = None, unprocessed_only: bool = False
    ) -> list[InboxEvent]: ...


class OutboxKind(StrEnum):
    CANCEL_INTENT = "cancel_intent"
    REFUND = "refund"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    kind: OutboxKind
    order_id: uuid.UUID
    payment_intent_id: str
    key: str  # also the provider's idempotency key
    attempts: int


class PaymentOutbox(Protocol):
    """Calls to the payment provider that must happen but must not block their caller."""

    async def add(
        self, kind: OutboxKind, order_id: uuid.UUID, payment_intent_id: str, key: str
    ) -> None:
        """In the caller's unit of work; a key already there is not added again."""
        ...

    async def claim_due(self, *, limit: int) -> list[OutboxItem]:
        """Due items, locked until the unit of work ends (other workers skip them)."""
        ...

    async def done(self, item_id: int) -> None: ...
    async def retry_later(self, item_id: int, error: str, delay_seconds: float) -> None: ...


class UnitOfWork(Protocol):
    """One PostgreSQL transaction; rolls back unless commit() ran."""

    @property
    def products(self) -> ProductRepository: ...

    @property
    def reservations(self) -> ReservationRepository: ...

    @property
    def ledger(self) -> LedgerRepository: ...

    @property
    def orders(self) -> OrderRepository: ...

    @property
    def inbox(self) -> WebhookInbox: ...

    @property
    def outbox(self) -> PaymentOutbox: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def lock_stock(self, sku: str) -> None:
        """Wait for, then hold, the product's stock lock until this unit of work closes.

        Held past commit(), so it also covers a gate call made after the commit: stock changes
        of one product (and their gate updates) happen one at a time. No product: no lock.
        """
        ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class AdminUsers(Protocol):
    async def add(self, username: str, password_hash: str) -> AdminUser:
        """Raises Conflict when the name is taken."""
        ...

    async def find(self, username: str) -> tuple[AdminUser, str] | None:
        """The user and their password hash."""
        ...

    async def set_password_hash(self, user_id: int, password_hash: str) -> None: ...


class StoreProbe(Protocol):
    """Can this process reach its stores right now? (readiness)"""

    async def reachable(self) -> dict[str, bool]:
        """Each store's name ("postgres", "redis") and whether it answered in time."""
        ...

    async def warnings(self) -> list[str]:
        """Settings of a reachable store that put the invariants at risk (e.g. Redis allowed
        to evict gate keys, or to lose acknowledged writes); empty when none is known."""
        ...


class ReservationJournal(Protocol):
    """Durable writes of the buyer's hot paths (group commit): each returns once committed."""

    async def record(self, reservation: Reservation) -> Reservation:
        """The reservation as stored: its created_at and expires_at are the database's clock."""
        ...

    async def release(
        self, reservation_id: uuid.UUID, customer_id: uuid.UUID
    ) -> Reservation | None:
        """End the buyer's active reservation as released, with its ledger entries; None when
        that buyer has no such active reservation (the caller finds out why)."""
        ...


# --------------------------------------------------------------------------- payments


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    """A payment as the payment provider (Stripe) sees it."""

    id: str
    status: str  # Stripe's PaymentIntent status: requires_payment_method, succeeded, canceled, ...
    amount_cents: int
    currency: str
    client_secret: str | None
    order_id: uuid.UUID | None  # from the intent's metadata; None when it names no order


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    payment_intent_id: str
    amount_cents: int
    status: str


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """A verified webhook event, reduced to what stockgate acts on; `payload` is all of it."""

    id: str
    type: str
    created: int  # Unix seconds, as the provider stamped it
    payment_intent_id: str | None = None
    order_id: uuid.UUID | None = None
    amount_cents: int | None = None
    currency: str | None = None
    refund_ids: tuple[str, ...] = ()
    payload: Mapping[str, Any] = field(default_factory=dict)


class PaymentProvider(Protocol):
    """Stripe (or the local fake of it). Card data never reaches stockgate.

    Failures to reach the provider raise PaymentProviderUnavailable (503 at the edge).
    """

    async def create_intent(
        self, *, order_id: uuid.UUID, amount_cents: int, currency: str, customer_id: uuid.UUID
    ) -> PaymentIntent:
        """Idempotent per order: the provider's idempotency key is derived from the order id."""
        ...

    async def get_intent(self, intent_id: str) -> PaymentIntent: ...

    async def pay_with(self, intent_id: str, payment_method: str) -> PaymentIntent:
        """Attach a payment method (a token from Stripe.js or a test card) and confirm;
        raises PaymentDeclined when the card is declined."""
        ...

    async def cancel_intent(self, intent_id: str) -> PaymentIntent:
        """Cancel unless already canceled (then return it); a succeeded intent raises Conflict."""
        ...

    async def refund(self, intent_id: str, *, key: str, reason: str) -> Refund:
        """Refund the whole payment; idempotent per `key`."""
        ...

    def verify_event(self, payload: bytes, signature: str | None) -> PaymentEvent:
        """Check the webhook signature and parse the event; raises InvalidWebhook."""
        ...

    def parse_event(self, payload: Mapping[str, Any]) -> PaymentEvent:
        """An event stored in the inbox, parsed again (no signature: it was checked)."""
        ...


# --------------------------------------------------------------------------- background work


class WorkQueue(Protocol):
    """Durable background work. Job ids come from the business key, so asking twice is
    harmless; PostgreSQL stays the truth and the maintenance role re-asks for lost work."""

    async def request_fulfillment(
        self, order_id: uuid.UUID, *, delay_seconds: float = 0
    ) -> None: ...

    async def request_event_processing(self, event_id: str) -> None: ...

    async def request_again(self, job: str, key: str, data: Mapping[str, Any]) -> bool:
        """Ask again for work PostgreSQL says is still due (maintenance): a job that is waiting
        or running is left alone, one that gave up is replaced. True when a job was added."""
        ...

    async def depths(self) -> list[QueueDepth]:
        """How much work waits in each queue, and how old the oldest waiting job is."""
        ...

    async def purge_finished(self, older_than_seconds: float) -> int:
        """Forget finished (completed or failed) jobs older than that; how many were removed."""
        ...


@dataclass(frozen=True, slots=True)
class QueueDepth:
    queue: str
    waiting: int
    active: int
    delayed: int
    failed: int
    oldest_waiting_seconds: float  # 0 when nothing waits


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a job handler knows about the job it runs."""

    name: str
    job_id: str
    attempt: int  # 1 for the first run
    max_attempts: int

    @property
    def last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


JobHandle = Callable[[JobContext, Mapping[str, Any]], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Schedule:
    """A periodic job: run once per `every_seconds` however many workers serve its queue."""

    name: str
    queue: str
    every_seconds: float


class JobRunner(Protocol):
    """Runs the jobs of some queues in this process (the worker side of WorkQueue)."""

    async def start(
        self, queues: Sequence[str], handle: JobHandle, schedules: Sequence[Schedule] = ()
    ) -> None:
        """Start taking jobs of `queues`; a job whose handler raises is retried with backoff
        until its attempts run out. `schedules` are (re)declared, once per period each."""
        ...

    async def stop(self) -> None:
        """Take no new job, let the running ones finish, and close."""
        ...


@dataclass(frozen=True, slots=True)
class OrderNotification:
    """What the merchant is told about an order; `id` lets receivers deduplicate."""

    id: str
    type: str  # e.g. "order.fulfilled"
    order_id: uuid.UUID
    data: Mapping[str, Any]


class MerchantNotifier(Protocol):
    async def notify(self, notification: OrderNotification) -> None:
        """Deliver once (the receiver deduplicates by id); raises NotificationFailed."""
        ...


@dataclass(frozen=True, slots=True)
class EmailMessage:
    to: str
    subject: str
    text: str


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Raises NotificationFailed."""
        ...


# --------------------------------------------------------------------------- abuse


# Scopes of the request limits (each has its own setting; see config.py).
CUSTOMERS_PER_ADDRESS = "customers_per_address"  # guest identities made, per client address
HOLDS_PER_ADDRESS = "holds_per_address"  # reservation requests, per client address
HOLDS_PER_CUSTOMER = "holds_per_customer"  # reservation requests, per customer


class RateLimits(Protocol):
    """Request limits shared by every API node: a scope name and a key (an address, a
    customer id, an admin account), counted in Redis. A scope without limits is off."""

    async def hit(self, scope: str, key: str) -> None:
        """Count one request of `key` (a client address or customer) in `scope`; raises
        RateLimited (with retry_after) beyond the scope's limit."""
        ...

    async def hit_all(self, *hits: tuple[str, str]) -> None:
        """Count several (scope, key) at once, waiting for one round trip, not one each;
        raises RateLimited when any is over its limit."""


# --------------------------------------------------------------------------- admin dashboard


@dataclass(frozen=True, slots=True)
class AdminSession:
    """A logged-in operator. `id` is the cookie's secret; stores keep only its digest."""

    id: str
    user_id: int
    username: str
    csrf_token: str  # bound to this session; every state-changing request must carry it
    created_at: float  # Unix seconds: the absolute timeout counts from here
    last_seen: float  # Unix seconds: the idle timeout counts from here


class AdminSessions(Protocol):
    """Server-side sessions shared by every API node (Redis, under the key prefix)."""

    async def add(self, session: AdminSession, ttl_seconds: int) -> None: ...
    async def get(self, session_id: str) -> AdminSession | None: ...
    async def touch(self, session_id: str, last_seen: float, ttl_seconds: int) -> None: ...
    async def remove(self, session_id: str) -> None: ...


class LoginThrottle(Protocol):
    """Failed logins counted per key (an account, a client address), shared by every node."""

    async def retry_after(self, keys: Sequence[str]) -> int:
        """Seconds until any of these keys may try again; 0 when none is locked out."""
        ...

    async def failed(self, keys: Sequence[str]) -> None: ...
    async def clear(self, keys: Sequence[str]) -> None: ...


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


class AuditLog(Protocol):
    """Every operator action: who, what, when, and the record before and after."""

    async def add(
        self,
        actor: str,
        action: str,
        target: str | None,
        *,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> None: ...

    async def recent(self, *, limit: int, before_id: int | None = None) -> list[AuditEntry]:
        """Newest first, older than `before_id` (keyset paging)."""
        ...


@dataclass(frozen=True, slots=True)
class ProductActivity:
    """One product during a sale, as the overview shows it (PostgreSQL's numbers)."""

    product: Product
    held: int
    sold: int
    holds_last_minute: int
    paid_last_minute: int

    @property
    def available(self) -> int:
        return self.product.stock - self.held - self.sold


@dataclass(frozen=True, slots=True)
class OrderSummary:
    id: uuid.UUID
    customer_id: uuid.UUID
    status: str
    amount_cents: int
    currency: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LedgerRow:
    id: int
    product_id: int
    kind: str
    quantity: int
    reservation_id: uuid.UUID | None
    ref: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WebhookRow:
    """One stored webhook event as the inbox page lists it."""

    id: str
    type: str
    received_at: datetime
    processed_at: datetime | None
    outcome: str | None
    attempts: int
    last_error: str | None
    payload: Mapping[str, Any] = field(default_factory=dict)


class AdminViews(Protocol):
    """Read-only queries of the dashboard, each bounded (keyset paging on large tables)."""

    async def activity(self, *, since: datetime) -> list[ProductActivity]: ...

    async def orders(
        self,
        *,
        status: str | None,
        search: uuid.UUID | None,
        before: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[OrderSummary]:
        """Newest first; `search` matches an order id or a customer id."""
        ...

    async def ledger_for(self, reservation_id: uuid.UUID) -> list[LedgerRow]: ...

    async def webhook_events(
        self,
        *,
        before: tuple[datetime, str] | None,
        unprocessed_only: bool,
        payment_intent_id: str | None = None,
        limit: int,
    ) -> list[WebhookRow]:
        """Newest first, without payloads; `payment_intent_id`: only that payment's events."""
        ...

    async def webhook_event(self, event_id: str) -> WebhookRow | None:
        """One event with its payload."""
        ...


# --------------------------------------------------------------------------- live stock


class StockChanges(Protocol):
    """Told which products' available stock just changed, so watchers see the new value.

    Call it after every movement of available stock has reached the gate (hold, release,
    expiry, restock, repair, sale, refund). It does no I/O and never fails: it marks the ids,
    and one flush per interval reads the latest values and sends them (coalesced per product).
    """

    def changed(self, product_ids: Iterable[int]) -> None: ...
