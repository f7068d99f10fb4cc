"""Reservation use cases: take stock for a buyer, show it, give it back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeGuard

from stockgate.domain.errors import (
    IdempotencyConflict,
    LimitExceeded,
    PaymentInProgress,
    RequestInProgress,
    ReservationNotFound,
    SoldOut,
    StoreUnavailable,
    UnknownProduct,
    WriteOutcomeUnknown,
)
from stockgate.domain.order import OrderStatus
from stockgate.domain.reservation import (
    Reservation,
    ReservationLine,
    ReservationStatus,
    ReserveRequest,
    check_lines,
)
from stockgate.services.catalog import ensure_loaded
from stockgate.services.checkout import cancel_payment
from stockgate.services.expiring_ids import ExpiringIds
from stockgate.services.ports import (
    Clock,
    PaymentProvider,
    ReservationJournal,
    StockChanges,
    StockGate,
    TakeResult,
    TakeStatus,
    UnitOfWorkFactory,
)

# How long a retried request waits for the original one to become durable.
ORIGINAL_WAIT_SECONDS = 2.0


class UnknownProducts(ExpiringIds):
    """Product ids PostgreSQL just said do not exist, remembered briefly by this node.

    Without it every request naming a made-up id costs a database query. Repeats of an id cost
    none now (distinct made-up ids still cost one each; the rate limit bounds those). It can
    only ever refuse ids the gate has no counter for, and a new product gets its counter when
    it is added, so remembering an id for a moment never refuses a real product.
    """

    def __init__(self) -> None:
        super().__init__(ttl=2.0, max_size=10_000)


@dataclass(frozen=True, slots=True)
class ReserveDeps:
    gate: StockGate
    journal: ReservationJournal
    uow_factory: UnitOfWorkFactory
    clock: Clock
    hold_seconds: int
    max_quantity: int
    stock_changes: StockChanges
    unknown_products: UnknownProducts = field(default_factory=UnknownProducts)


async def reserve(request: ReserveRequest, deps: ReserveDeps) -> Reservation:
    check_lines(request.lines, max_quantity=deps.max_quantity)
    # A request with an Idempotency-Key may be the retry of one that succeeded before the
    # product sold out, and only the gate knows: the take looks at the key first (decision
    # 0016). Rate limits bound what keyed requests cost a sold-out product.
    if request.idempotency_key is None:
        refuse_known_sold_out(request.lines, deps.gate)
    reservation = Reservation.new(request, now=deps.clock.now(), hold_seconds=deps.hold_seconds)
    result = await take(reservation, request, deps)
    if result.status is TakeStatus.DUPLICATE:
        return await _original(request, result, deps)
    deps.stock_changes.changed(line.product_id for line in reservation.lines)
    try:
        await deps.journal.record(reservation)  # durable before we answer
    except WriteOutcomeUnknown:
        # Maybe committed: giving the stock back could sell it twice. The reconciler voids
        # the id after the grace period and gives the stock back if the row never landed.
        raise
    except StoreUnavailable:
        # Not written, and fenced so it never will be: the buyer gets 503, so the stock must
        # not stay taken (a give-back already done by the reconciler makes this a no-op).
        await deps.gate.give_back(reservation, idempotency_key=request.idempotency_key)
        deps.stock_changes.changed(line.product_id for line in reservation.lines)
        raise
    return reservation


def refuse_known_sold_out(lines: Sequence[ReservationLine], gate: StockGate) -> None:
    for line in lines:
        # Sold-out fast path: no store is touched. The cache only ever refuses, so it can
        # never cause an oversell; it clears when stock comes back.
        if gate.known_sold_out(line.product_id):
            raise SoldOut(line.product_id, 0)


async def take(reservation: Reservation, request: ReserveRequest, deps: ReserveDeps) -> TakeResult:
    """Take every line of `reservation` in the gate, or raise why not (SoldOut,
    LimitExceeded, UnknownProduct); loads products the gate does not know yet."""
    fingerprint = request.fingerprint()
    # Each NOT_LOADED answer names one product, so allow one load per line (a flushed
    # Redis leaves every product of a multi-line request unloaded), plus two spare rounds.
    for _ in range(len(request.lines) + 2):
        result = await deps.gate.take(reservation, request.idempotency_key, fingerprint)
        if result.status is TakeStatus.TAKEN or result.status is TakeStatus.DUPLICATE:
            return result
        if result.status is TakeStatus.SOLD_OUT:
            raise SoldOut(result.product_id, result.available)
        if result.status is TakeStatus.LIMIT_EXCEEDED:
            raise LimitExceeded(result.product_id, result.limit, result.already)
        # NOT_LOADED: a new product or a flushed Redis; build the counter from PostgreSQL.
        if result.product_id in deps.unknown_products:
            raise UnknownProduct(result.product_id)
        if not await ensure_loaded(result.product_id, uow_factory=deps.uow_factory, gate=deps.gate):
            deps.unknown_products.remember(result.product_id)
            raise UnknownProduct(result.product_id)
    raise StoreUnavailable("redis", "the stock gate could not load the products")


async def _original(request: ReserveRequest, result: TakeResult, deps: ReserveDeps) -> Reservation:
    if result.fingerprint != request.fingerprint():
        raise IdempotencyConflict("this Idempotency-Key was used for a different reservation")
    assert result.reservation_id is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ORIGINAL_WAIT_SECONDS
    while True:
        async with deps.uow_factory() as uow:
            original = await uow.reservations.get(result.reservation_id)
        if original is not None and original.customer_id == request.customer_id:
            if original.status is ReservationStatus.VOID:
                # Voided and being given back; the give-back forgets the key for a retry.
                raise RequestInProgress("the original request failed; retry shortly")
            return original
        if loop.time() >= deadline:
            raise RequestInProgress("retry shortly")
        await asyncio.sleep(0.05)  # the original is still being committed


async def get_reservation(
    reservation_id: uuid.UUID, customer_id: uuid.UUID, *, uow_factory: UnitOfWorkFactory
) -> Reservation:
    async with uow_factory() as uow:
        reservation = await uow.reservations.get(reservation_id)
    if not visible(reservation, customer_id):
        raise ReservationNotFound(reservation_id)  # I6: someone else's looks like nothing
    return reservation


async def release(
    reservation_id: uuid.UUID,
    customer_id: uuid.UUID,
    *,
    journal: ReservationJournal,
    uow_factory: UnitOfWorkFactory,
    gate: StockGate,
    stock_changes: StockChanges | None = None,
    payments: PaymentProvider | None = None,
) -> Reservation:
    # The common case in one statement, shared with the other releases of this tick.
    released = await journal.release(reservation_id, customer_id)
    if released is None:
        released = await _release_or_explain(reservation_id, customer_id, uow_factory, payments)
    # Commit before give_back: a crash here must leave the stock, not the reservation,
    # to the reconciler (a give-back can be repeated safely; a double take cannot).
    await gate.give_back(released)
    if stock_changes is not None:
        stock_changes.changed(line.product_id for line in released.lines)
    return released


async def _release_or_explain(
    reservation_id: uuid.UUID,
    customer_id: uuid.UUID,
    uow_factory: UnitOfWorkFactory,
    payments: PaymentProvider | None,
) -> Reservation:
    """The journal found no active reservation of this buyer without an order: answer why
    (not found, not active any more), or release it: one in checkout after canceling its
    payment (decision 0022), or one that became visible meanwhile."""
    async with uow_factory() as uow:
        reservation = await uow.reservations.get(reservation_id)
        order = await uow.orders.for_reservation(reservation_id)
    if not visible(reservation, customer_id):
        raise ReservationNotFound(reservation_id)
    if order is not None and reservation.status is ReservationStatus.ACTIVE:
        if order.status is not OrderStatus.PAYMENT_PENDING:
            raise PaymentInProgress(f"the reservation's order is {order.status}")
        await cancel_payment(order, payments)  # PaymentInProgress when it cannot be canceled
    async with uow_factory() as uow:
        reservation = await uow.reservations.get_for_update(reservation_id)
        if not visible(reservation, customer_id):
            raise ReservationNotFound(reservation_id)
        released, entries = reservation.release()  # raises unless active
        await uow.reservations.end([released])
        await uow.ledger.add(entries)
        order = await uow.orders.for_reservation(reservation_id, lock=True)
        if order is not None and order.status is OrderStatus.PAYMENT_PENDING:
            await uow.orders.save(order.cancel())
            await uow.orders.record(order.id, "canceled", reason="the buyer released it")
        await uow.commit()
    return released


def visible(reservation: Reservation | None, customer_id: uuid.UUID) -> TypeGuard[Reservation]:
    """Only its buyer sees a reservation, and nobody sees a void one (it never existed)."""
    return (
        reservation is not None
        and reservation.customer_id == customer_id
        and reservation.status is not ReservationStatus.VOID
    )
