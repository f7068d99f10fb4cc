"""Webhook events: stored in the inbox before the 2xx, then applied once each.

`record_webhook` is the endpoint's whole job (verify, store, commit). `apply_event` applies
one stored event: by a job per event, by the maintenance worker's sweep of unprocessed rows,
or by an operator's replay. Duplicate and out-of-order events are normal: every handler
looks at the order's current state, and the inbox row is locked and marked processed in the
transaction that applies it (I5). Before an order is paid, the provider is asked for the
PaymentIntent itself (status, amount, currency): an event is a hint, Stripe is the truth.

What each event type does (decision 0021):
  payment_intent.succeeded       settle_paid (paid, late payment re-take, or refund)
  payment_intent.payment_failed  recorded; the order stays payable until its hold expires
  payment_intent.canceled        an order awaiting payment is canceled, its stock given back
  charge.refunded                a full refund ends the order `refunded`; units return to
                                 sale only if the order was never fulfilled (decision 0023)
  charge.dispute.created         the order is flagged for an operator
  anything else                  stored and acknowledged, nothing applied
"""

from __future__ import annotations

from stockgate.domain.errors import StockgateError, StoreUnavailable
from stockgate.domain.order import MONEY_TAKEN, Flag, Order, OrderStatus
from stockgate.domain.reservation import ReservationStatus
from stockgate.services.payments import (
    After,
    PaymentDeps,
    Work,
    in_unit_of_work,
    locked,
    settle_paid,
    then_tell_stock_moved,
)
from stockgate.services.ports import PaymentEvent, UnitOfWork

REFUNDED_IN_STRIPE = "refunded through the payment provider"


async def record_webhook(event: PaymentEvent, deps: PaymentDeps) -> bool:
    """Store a verified event (committed before the 2xx); False when it was stored before."""
    async with deps.uow_factory() as uow:
        added = await uow.inbox.add(event)
        await uow.commit()
    return added


async def apply_event(event_id: str, deps: PaymentDeps) -> str | None:
    """Apply one stored event; what it did, or None when it was applied already (or is being
    applied by another worker right now)."""
    async with deps.uow_factory() as uow:
        stored = await uow.inbox.get(event_id)
    if stored is None or stored.processed_at is not None:
        return None
    event = stored.event
    try:
        outcome = await _apply(event, deps)
    except StoreUnavailable:
        raise  # nothing applied; the sweep tries again
    except StockgateError as exc:
        async with deps.uow_factory() as uow:
            await uow.inbox.failed(event_id, f"{exc.code}: {exc.detail}")
            await uow.commit()
        raise
    return outcome


async def _apply(event: PaymentEvent, deps: PaymentDeps) -> str | None:
    order = await _order_of(event, deps)
    if order is None:
        # Not stockgate's (another app on the same Stripe account) or not an order's: kept in
        # the inbox for the operator, acknowledged.
        outcome = "ignored: no order" if event.payment_intent_id else "ignored"
        return await in_unit_of_work(deps, _nothing(outcome), event_id=event.id)
    match event.type:
        case "payment_intent.succeeded":
            intent = await deps.provider().get_intent(event.payment_intent_id or "")
            return await in_unit_of_work(
                deps, settle_paid(order.id, intent, deps), event_id=event.id
            )
        case "payment_intent.payment_failed":
            return await in_unit_of_work(deps, _failed(order, event), event_id=event.id)
        case "payment_intent.canceled":
            return await in_unit_of_work(deps, canceled(order, deps), event_id=event.id)
        case "charge.refunded":
            return await in_unit_of_work(deps, _refunded(order, event, deps), event_id=event.id)
        case "charge.dispute.created":
            return await in_unit_of_work(deps, _disputed(order, event), event_id=event.id)
        case _:
            return await in_unit_of_work(deps, _nothing("ignored"), event_id=event.id)


async def _order_of(event: PaymentEvent, deps: PaymentDeps) -> Order | None:
    async with deps.uow_factory() as uow:
        if event.payment_intent_id:
            order = await uow.orders.for_intent(event.payment_intent_id)
            if order is not None:
                return order
        if event.order_id is not None:
            order = await uow.orders.get(event.order_id)
            # The metadata names an order; it must be the one of this payment.
            if order is not None and order.payment_intent_id in (None, event.payment_intent_id):
                return order
    return None


def _nothing(outcome: str) -> Work:
    async def work(uow: UnitOfWork) -> tuple[str, list[After]]:
        return outcome, []

    return work


def _failed(order: Order, event: PaymentEvent) -> Work:
    async def work(uow: UnitOfWork) -> tuple[str, list[After]]:
        error = event.payload.get("data", {}).get("object", {}).get("last_payment_error") or {}
        message = error.get("message") if isinstance(error, dict) else None
        await uow.orders.record(order.id, "payment_failed", event_id=event.id, message=message)
        return "payment failed: the order stays payable", []

    return work


def canceled(order: Order, deps: PaymentDeps) -> Work:
    """The PaymentIntent was canceled at the provider: an order awaiting payment ends, and
    its stock comes back. (Ours are canceled after expiry or release, already ended.)"""

    async def work(uow: UnitOfWork) -> tuple[str, list[After]]:
        current, reservation = await locked(uow, order.id)
        if current.status is not OrderStatus.PAYMENT_PENDING:
            return f"nothing to do: the order is {current.status}", []
        await uow.orders.save(current.cancel())
        await uow.orders.record(current.id, "canceled", reason="payment intent canceled")
        if reservation.status is not ReservationStatus.ACTIVE:
            return "canceled", []
        released, entries = reservation.release()
        await uow.reservations.end([released])
        await uow.ledger.add(entries)
        give_back = then_tell_stock_moved(lambda: deps.gate.give_back(released), released, deps)
        return "canceled: stock given back", [give_back]

    return work


def _refunded(order: Order, event: PaymentEvent, deps: PaymentDeps) -> Work:
    async def work(uow: UnitOfWork) -> tuple[str, list[After]]:
        current, reservation = await locked(uow, order.id)
        refunded = event.amount_cents or 0
        await uow.orders.record(
            current.id,
            "refund",
            event_id=event.id,
            refunded_cents=refunded,
            refunds=list(event.refund_ids),
        )
        if current.status not in MONEY_TAKEN:
            return f"recorded: the order is {current.status}", []
        if refunded < current.amount_cents:
            return "recorded: partial refund, the order stands", []
        fulfilled = current.status is OrderStatus.FULFILLED
        await uow.orders.save(current.refund(REFUNDED_IN_STRIPE))
        if fulfilled or reservation.status is not ReservationStatus.CONVERTED:
            return "refunded: goods delivered, stock unchanged", []
        # The rule (decision 0023): a refund of an order never fulfilled puts its units back
        # on sale, once per refund (the ledger's ref is unique per product and kind).
        ref = event.refund_ids[0] if event.refund_ids else event.id
        returned, entries = reservation.return_units(ref)
        await uow.reservations.move(returned, was=ReservationStatus.CONVERTED)
        await uow.ledger.add(entries)
        back = then_tell_stock_moved(lambda: deps.gate.return_sold(returned), returned, deps)
        return "refunded: stock returned", [back]

    return work


def _disputed(order: Order, event: PaymentEvent) -> Work:
    async def work(uow: UnitOfWork) -> tuple[str, list[After]]:
        current = await uow.orders.get(order.id, lock=True)
        assert current is not None
        await uow.orders.record(
            current.id, "dispute", event_id=event.id, amount_cents=event.amount_cents
        )
        if current.flag is Flag.DISPUTE:
            return "recorded: already flagged", []
        await uow.orders.save(current.flagged(Flag.DISPUTE))
        return "flagged: dispute", []

    return work
