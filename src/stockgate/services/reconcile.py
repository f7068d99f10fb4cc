"""Reconciliation: make the Redis gate agree with PostgreSQL, the source of truth.

Per product it compares the gate (available counter, live holds) with PostgreSQL
(stock - sold, active reservations) and the ledger, and with `fix` repairs:
- holds only in Redis, older than the grace period (a crash between the gate and the commit):
  the id is first fenced in PostgreSQL (a `void` row), so a write of it that is merely slow
  can never commit after its stock was given back,
- holds only in PostgreSQL (Redis lost them): restored when stock allows, else ended,
- counters that drifted, or are missing entirely (FLUSHALL, restart without persistence),
- sales: a hold whose reservation PostgreSQL converted (paid) is converted in the gate too, a
  sale PostgreSQL has and the gate lost is put back, a sale PostgreSQL returned (refund) is
  returned; sold units are never made available by a repair (decision 0020).
The check is `available + held + sold == stock`, with the gate's own sold count.
The gate is read before PostgreSQL so that a reservation ended in between is not
restored. The grace period spares slow writes a needless 503; safety comes from the fence
(see docs/decisions/0002-reconciliation.md and 0005-void-fence.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from stockgate.domain.errors import CorruptGateData, StoreUnavailable
from stockgate.domain.product import Product
from stockgate.domain.reservation import Reservation, ReservationLine, ReservationStatus
from stockgate.domain.stock import StockLevels
from stockgate.services.ports import (
    Clock,
    ConvertMode,
    ConvertStatus,
    GateHold,
    GateState,
    ProductTotals,
    StockChanges,
    StockGate,
    UnitOfWorkFactory,
)

# A reservation younger than this may be between its gate call and its commit.
RESTORE_MIN_AGE = timedelta(seconds=2)

# An orphan hold whose reservation has one of these statuses is not given back: ACTIVE is a
# write that landed late; CONVERTED units are sold and must never become available again
# (the repair finishes the conversion instead).
KEEP_HOLD = frozenset({ReservationStatus.ACTIVE, ReservationStatus.CONVERTED})


@dataclass(slots=True)
class ProductReport:
    product_id: int
    sku: str
    levels: StockLevels  # PostgreSQL's: stock, held by active reservations, sold
    gate_available: int | None  # None: the gate had no counter
    gate_held: int
    ledger_ok: bool
    gate_sold: int = 0
    orphan_holds: int = 0  # in Redis only, past the grace period
    missing_holds: int = 0  # in PostgreSQL only
    missing_sales: int = 0  # sold in PostgreSQL, neither sold nor held in the gate
    stale_sales: int = 0  # sold in the gate, not (any more) in PostgreSQL
    fixes: list[str] = field(default_factory=list)
    error: str | None = None  # this product could not be compared (e.g. a malformed record)

    @property
    def stock(self) -> int:
        return self.levels.stock

    @property
    def sold(self) -> int:
        return self.levels.sold

    @property
    def held(self) -> int:
        return self.levels.held

    @property
    def expected_available(self) -> int:
        return self.levels.available

    @property
    def leaked(self) -> int:
        """Units the gate lost: neither available nor rightly held."""
        if self.gate_available is None:
            return 0  # an unloaded counter is rebuilt from PostgreSQL on first use
        gate_total = self.gate_available + self.gate_held + self.gate_sold
        return max(0, self.levels.stock - gate_total) + self.orphan_holds + self.stale_sales

    @property
    def oversold(self) -> int:
        """Units sold or held beyond stock (I1), or that the gate could hand out twice."""
        if self.gate_available is None:
            return self.levels.oversold
        gate_total = self.gate_available + self.gate_held + self.gate_sold
        return (
            self.levels.oversold
            + max(0, gate_total - self.levels.stock)
            + self.missing_holds
            + self.missing_sales
        )

    @property
    def drift(self) -> bool:
        return bool(self.leaked or self.oversold or not self.ledger_ok or self.error)


@dataclass(slots=True)
class ReconcileReport:
    products: list[ProductReport]
    fixed: bool

    @property
    def leaked(self) -> int:
        return sum(p.leaked for p in self.products)

    @property
    def oversold(self) -> int:
        return sum(p.oversold for p in self.products)

    @property
    def drift_found(self) -> int:
        return sum(1 for p in self.products if p.drift)

    @property
    def drift_fixed(self) -> int:
        return sum(1 for p in self.products if p.fixes)


async def reconcile(
    *,
    uow_factory: UnitOfWorkFactory,
    gate: StockGate,
    clock: Clock,
    grace_seconds: float,
    fix: bool,
    stock_changes: StockChanges | None = None,
) -> ReconcileReport:
    async with uow_factory() as uow:
        products = await uow.products.list()
    reports = []
    for product in products:
        try:
            report = await reconcile_product(
                product.id,
                uow_factory=uow_factory,
                gate=gate,
                clock=clock,
                grace_seconds=grace_seconds,
                fix=fix,
            )
        except Exception as exc:
            if isinstance(exc, StoreUnavailable) and not isinstance(exc, CorruptGateData):
                raise  # an outage: nothing can be compared, the whole pass fails
            # One product's bad data (damaged keys, a record stockgate cannot parse) must not
            # stop the others' repair.
            report = _failed(product, exc)
        if report is not None:
            reports.append(report)
            if report.fixes and stock_changes is not None:  # a repair moved available stock
                stock_changes.changed([report.product_id])
    return ReconcileReport(reports, fixed=fix)


def _failed(product: Product, exc: Exception) -> ProductReport:
    return ProductReport(
        product_id=product.id,
        sku=product.sku,
        levels=StockLevels(product.stock),
        gate_available=None,
        gate_held=0,
        ledger_ok=True,  # not known; `error` marks the product as drifting
        error=f"{type(exc).__name__}: {exc}",
    )


async def reconcile_product(
    product_id: int,
    *,
    uow_factory: UnitOfWorkFactory,
    gate: StockGate,
    clock: Clock,
    grace_seconds: float,
    fix: bool,
) -> ProductReport | None:
    state = await gate.state(product_id)  # the gate first: see the module docstring
    async with uow_factory() as uow:
        totals = await uow.products.totals(product_id)
    if totals is None:
        return None
    now = clock.now()
    report = _compare(state, totals)
    active = {r.id: r for r in totals.active}
    grace_ms = grace_seconds * 1000
    now_ms = now.timestamp() * 1000
    # A hold of a reservation PostgreSQL converted is a sale the gate has not heard of yet.
    unfinished = [hold for hold in state.holds.values() if hold.reservation_id in totals.sales]
    orphans = [
        hold
        for hold in state.holds.values()
        if hold.reservation_id not in active
        and hold.reservation_id not in totals.sales
        and now_ms - hold.taken_at_ms > grace_ms
    ]
    lost_sales = {
        rid: units
        for rid, units in totals.sales.items()
        if rid not in state.sales and rid not in state.holds
    }
    stale_sales = {rid: units for rid, units in state.sales.items() if rid not in totals.sales}
    missing = [
        r for r in totals.active if r.id not in state.holds and now - r.created_at > RESTORE_MIN_AGE
    ]
    if state.available is not None:
        report.orphan_holds = sum(h.quantity for h in orphans)
        report.missing_holds = sum(_quantity(r, product_id) for r in missing)
        report.missing_sales = sum(lost_sales.values())
        report.stale_sales = sum(stale_sales.values())
    if not fix:
        return report
    if state.available is None:
        if await gate.load(totals):
            report.fixes.append("rebuilt")
        return report
    for hold in orphans:
        status = await _void(hold, uow_factory)
        if status is ReservationStatus.CONVERTED:  # converted after the snapshot
            unfinished.append(hold)
            continue
        if status in KEEP_HOLD:
            continue
        partial = _single_line(hold, product_id, now)
        # A void request never got its reservation: its buyer's retry must be a fresh attempt.
        # An ended one keeps its key: a retry answers with the original, as for any repeat.
        key = hold.idempotency_key if status is ReservationStatus.VOID else None
        if await gate.give_back(partial, idempotency_key=key):
            report.fixes.append(f"gave back orphan {hold.reservation_id} ({status})")
    for reservation in missing:
        report.fixes.append(
            await _restore_or_end(reservation, product_id, uow_factory=uow_factory, gate=gate)
        )
    report.fixes += await _repair_sales(
        product_id, unfinished, lost_sales, stale_sales, uow_factory=uow_factory, gate=gate
    )
    correction = await gate.set_total(totals)
    if correction:
        report.fixes.append(f"corrected available by {correction:+d}")
    return report


async def _repair_sales(
    product_id: int,
    unfinished: list[GateHold],
    lost: dict[uuid.UUID, int],
    stale: dict[uuid.UUID, int],
    *,
    uow_factory: UnitOfWorkFactory,
    gate: StockGate,
) -> list[str]:
    """Make the gate's sales those PostgreSQL committed, one reservation at a time (each call
    is idempotent per reservation, so a payment being applied meanwhile is not disturbed)."""
    fixes = []
    now = datetime.now(UTC)
    for hold in unfinished:
        sale = _single_line(hold, product_id, now)
        if await gate.convert(sale, ConvertMode.HOLD) is ConvertStatus.CONVERTED:
            fixes.append(f"finished sale {hold.reservation_id}")
    for reservation_id, units in lost.items():
        sale = _sale(reservation_id, product_id, units, now)
        if await gate.convert(sale, ConvertMode.FORCE) is ConvertStatus.CONVERTED:
            fixes.append(f"put back lost sale {reservation_id}")
    for reservation_id, units in stale.items():
        async with uow_factory() as uow:
            reservation = await uow.reservations.get(reservation_id)
        # Only a sale PostgreSQL returned (a refund) goes back on sale. One still EXPIRED is a
        # late payment being applied (its take comes before its commit): never undone here.
        if reservation is not None and reservation.status is ReservationStatus.RETURNED:
            sale = _sale(reservation_id, product_id, units, now, reservation.customer_id)
            if await gate.return_sold(sale):
                fixes.append(f"returned refunded sale {reservation_id}")
    return fixes


def _sale(
    reservation_id: uuid.UUID,
    product_id: int,
    units: int,
    now: datetime,
    customer_id: uuid.UUID | None = None,
) -> Reservation:
    return Reservation(
        id=reservation_id,
        customer_id=customer_id or uuid.UUID(int=0),
        lines=(ReservationLine(product_id, units),),
        status=ReservationStatus.CONVERTED,
        created_at=now,
        expires_at=now,
    )


def _compare(state: GateState, totals: ProductTotals) -> ProductReport:
    product = totals.product
    return ProductReport(
        product_id=product.id,
        sku=product.sku,
        levels=totals.levels,
        gate_available=state.available,
        gate_held=sum(h.quantity for h in state.holds.values()),
        gate_sold=state.sold,
        ledger_ok=totals.ledger == totals.levels,  # I4: the ledger vouches for the numbers
    )


async def _void(hold: GateHold, uow_factory: UnitOfWorkFactory) -> ReservationStatus:
    """Fence an orphan's id first: a write of it still in flight can then never commit.

    VOID: it never became durable. RELEASED or EXPIRED: it ended and its give-back was lost.
    ACTIVE: its row landed after the reconciler looked (a slow write); the hold is right.
    """
    async with uow_factory() as uow:
        status = await uow.reservations.void(hold.reservation_id, hold.customer_id)
        await uow.commit()
    return status


async def _restore_or_end(
    reservation: Reservation,
    product_id: int,
    *,
    uow_factory: UnitOfWorkFactory,
    gate: StockGate,
) -> str:
    hold = GateHold(
        reservation.id,
        reservation.customer_id,
        _quantity(reservation, product_id),
        int(reservation.created_at.timestamp() * 1000),
    )
    if await gate.restore(product_id, hold):
        return f"restored {reservation.id}"
    # No room: the units went to someone else while Redis did not know of this hold.
    # Ending it keeps I1; its buyer was most likely answered 503 already.
    async with uow_factory() as uow:
        current = await uow.reservations.get_for_update(reservation.id)
        if current is None or current.status is not ReservationStatus.ACTIVE:
            return f"skipped {reservation.id} (ended meanwhile)"
        ended, entries = current.repair()
        await uow.reservations.end([ended])
        await uow.ledger.add(entries)
        await uow.commit()
    await gate.give_back(ended)  # its other products' holds, if any
    return f"ended {reservation.id} (no stock to restore it)"


def _quantity(reservation: Reservation, product_id: int) -> int:
    return sum(line.quantity for line in reservation.lines if line.product_id == product_id)


def _single_line(hold: GateHold, product_id: int, now: datetime) -> Reservation:
    """A stand-in reservation naming one product, to give back one orphaned gate hold."""
    return Reservation(
        id=hold.reservation_id,
        customer_id=hold.customer_id,
        lines=(ReservationLine(product_id, hold.quantity),),
        status=ReservationStatus.RELEASED,
        created_at=now,
        expires_at=now,
    )
