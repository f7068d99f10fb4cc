"""Expiry: reservations past `expires_at` end and their stock comes back."""

from __future__ import annotations

from stockgate.services.ports import Clock, StockGate, UnitOfWorkFactory


async def expire_due(
    *, uow_factory: UnitOfWorkFactory, gate: StockGate, clock: Clock, batch: int = 500
) -> int:
    """Expire one batch of due reservations; returns how many. Safe to run in many workers."""
    async with uow_factory() as uow:
        due = await uow.reservations.claim_due(clock.now(), batch)  # FOR UPDATE SKIP LOCKED
        ended = []
        for reservation in due:
            expired, entries = reservation.expire()
            ended.append(expired)
            await uow.ledger.add(entries)
        await uow.reservations.end(ended)
        await uow.commit()
    # Only after the commit: returning stock first and then failing to commit would let
    # the same units be sold while the reservation still counts as held (oversell).
    for reservation in ended:
        await gate.give_back(reservation)
    return len(ended)
