"""Expiry: reservations past `expires_at` end and their stock comes back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from stockgate.domain.errors import StoreUnavailable
from stockgate.domain.reservation import Reservation
from stockgate.services.payments import cancel_key
from stockgate.services.ports import (
    Clock,
    OutboxKind,
    StockChanges,
    StockGate,
    UnitOfWork,
    UnitOfWorkFactory,
)

MAX_WAITING = 10_000


@dataclass(frozen=True, slots=True)
class ExpiryRound:
    """What one call of expire_due did."""

    expired: int = 0  # reservations ended in PostgreSQL
    retried: int = 0  # reservations of earlier rounds whose stock reached the gate now
    failed: int = 0  # give-backs that failed in this round (kept for the next one)
    waiting: int = 0  # expired reservations whose stock is still not back in the gate
    dropped: int = 0  # given up on to keep memory bounded: the reconciler returns their stock
    error: str = ""  # the first failure's detail, for the log


class PendingGiveBacks:
    """Expired, committed reservations whose give-back failed (Redis unreachable for a moment).

    The expiry worker keeps one across its rounds and retries them first, so such stock comes
    back a round later instead of at the reconciler's next pass. Memory is bounded: beyond
    `limit` the oldest are dropped. Nothing is lost either way: a hold in the gate whose
    reservation is no longer active in PostgreSQL is an orphan, which the reconciler gives back
    (also when this process dies with reservations still waiting here).
    """

    def __init__(self, limit: int = MAX_WAITING) -> None:
        self._limit = limit
        self._waiting: dict[uuid.UUID, Reservation] = {}  # oldest first

    def __len__(self) -> int:
        return len(self._waiting)

    def waiting(self) -> list[Reservation]:
        return list(self._waiting.values())

    def keep(self, reservations: Sequence[Reservation]) -> int:
        """Remember reservations to retry; returns how many of the oldest were dropped."""
        for reservation in reservations:
            self._waiting[reservation.id] = reservation
        dropped = 0
        while len(self._waiting) > self._limit:
            del self._waiting[next(iter(self._waiting))]
            dropped += 1
        return dropped

    async def retry(self, gate: StockGate) -> tuple[int, list[StoreUnavailable]]:
        """Give back every waiting reservation; returns how many went back, and the failures."""
        waiting = list(self._waiting.values())
        try:
            failures = await _give_back(waiting, gate)
        except Exception:
            # A bug, not an outage: retrying it would stop expiry every round. The reconciler
            # gives these back (their reservations are expired in PostgreSQL).
            self._waiting.clear()
            raise
        for reservation in waiting:
            if reservation.id not in failures:
                del self._waiting[reservation.id]
        return len(waiting) - len(failures), list(failures.values())


async def expire_due(
    *,
    uow_factory: UnitOfWorkFactory,
    gate: StockGate,
    clock: Clock,
    batch: int = 500,
    pending: PendingGiveBacks | None = None,
    stock_changes: StockChanges | None = None,
) -> ExpiryRound:
    """Expire one batch of due reservations and give their stock back. Safe in many workers.

    With `pending`, give-backs that fail are kept there and retried at the start of the next
    round; without it, the first failure is raised (the reconciler then returns the stock).
    """
    retrying = pending.waiting() if pending else []
    retried, failures = await pending.retry(gate) if pending else (0, [])  # oldest first
    async with uow_factory() as uow:
        due = await uow.reservations.claim_due(clock.now(), batch)  # FOR UPDATE SKIP LOCKED
        ended, entries = [], []
        for reservation in due:
            expired, its_entries = reservation.expire()
            ended.append(expired)
            entries += its_entries
        await uow.reservations.end(ended)
        await uow.ledger.add(entries)
        await expire_orders(uow, [r.id for r in ended])
        await uow.commit()
    # Only after the commit: returning stock first and then failing to commit would let
    # the same units be sold while the reservation still counts as held (oversell).
    failed = await _give_back(ended, gate)
    if stock_changes is not None:  # retried ones too: their stock reached the gate now
        stock_changes.changed(
            line.product_id for reservation in retrying + ended for line in reservation.lines
        )
    if failed and pending is None:
        raise next(iter(failed.values()))
    dropped = pending.keep([r for r in ended if r.id in failed]) if pending is not None else 0
    failures += failed.values()
    return ExpiryRound(
        expired=len(ended),
        retried=retried,
        failed=len(failures),
        waiting=len(pending) if pending is not None else 0,
        dropped=dropped,
        error=failures[0].detail if failures else "",
    )


async def expire_orders(uow: UnitOfWork, reservation_ids: Sequence[uuid.UUID]) -> None:
    """Orders awaiting payment end with their reservation; their PaymentIntent is canceled
    through the outbox (in this transaction), so a provider outage never blocks expiry. A
    payment that still succeeds is a late payment (services/payments.py)."""
    for order in await uow.orders.pending_for_reservations(reservation_ids):
        await uow.orders.save(order.expire())
        if order.payment_intent_id is not None:
            await uow.outbox.add(
                OutboxKind.CANCEL_INTENT,
                order.id,
                order.payment_intent_id,
                cancel_key(order.id),
            )


async def _give_back(
    reservations: Sequence[Reservation], gate: StockGate
) -> dict[uuid.UUID, StoreUnavailable]:
    """Give back concurrently (the gate sends calls made together as one pipeline).

    Returns the failures by reservation id. Every gate failure is StoreUnavailable; anything
    else is a bug and is raised (the reservations stay expired: the reconciler returns them).
    """
    results = await asyncio.gather(
        *(gate.give_back(reservation) for reservation in reservations), return_exceptions=True
    )
    failures: dict[uuid.UUID, StoreUnavailable] = {}
    for reservation, result in zip(reservations, results, strict=True):
        if isinstance(result, StoreUnavailable):
            failures[reservation.id] = result
        elif isinstance(result, BaseException):
            raise result
    return failures
