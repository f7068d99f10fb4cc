"""The cart: a buyer's active reservation grows by whole lines or gives one line back.

A cart is not a second kind of thing: it is the reservation, and its lines move through the
same gate call (`take`: all or nothing, per-customer limits) and the same ledger kinds as a
new reservation and a release. What is special is the order of events on one row:

- The reservation's row is locked (`FOR UPDATE`) for the whole change, gate call included,
  so two tabs changing one cart take turns, checkout (which locks the same row) cannot
  start in the middle, and the expiry worker (`SKIP LOCKED`) claims it only afterwards.
- Adding: gate first, then the lines and their `held` ledger entries are committed. If the
  commit fails the new lines are given back (a line committed all the same would then be a
  hold PostgreSQL has and the gate lacks: the reconciler restores it if stock allows, else
  ends the reservation; never an oversell).
- Removing: the line and its `released` entry are committed first, then its stock is given
  back (as for a release: a crash in between leaves the stock, not a sale, to the
  reconciler).
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from stockgate.domain.errors import ReservationInCheckout, ReservationNotFound, StoreUnavailable
from stockgate.domain.reservation import (
    Reservation,
    ReservationLine,
    ReserveRequest,
    check_lines,
)
from stockgate.services.ports import Clock, UnitOfWork
from stockgate.services.reserve import ReserveDeps, refuse_known_sold_out, take, visible


async def add_items(
    reservation_id: uuid.UUID,
    customer_id: uuid.UUID,
    lines: tuple[ReservationLine, ...],
    deps: ReserveDeps,
) -> Reservation:
    check_lines(lines, max_quantity=deps.max_quantity)
    refuse_known_sold_out(lines, deps.gate)
    async with deps.uow_factory() as uow:
        current = await _changeable(uow, reservation_id, customer_id, deps.clock)
        grown, entries = current.add_lines(
            lines, now=deps.clock.now(), max_quantity=deps.max_quantity
        )
        addition = replace(current, lines=lines)  # what the gate takes: the new lines only
        # No idempotency key: a repeated add is refused as already_in_cart, never doubled.
        await take(addition, ReserveRequest(customer_id, lines), deps)
        deps.stock_changes.changed(line.product_id for line in lines)
        try:
            await uow.reservations.add_lines(reservation_id, lines)
            await uow.ledger.add(entries)
            await uow.commit()
        except StoreUnavailable:
            await deps.gate.give_back(addition)
            deps.stock_changes.changed(line.product_id for line in lines)
            raise
    return grown


async def remove_item(
    reservation_id: uuid.UUID,
    customer_id: uuid.UUID,
    product_id: int,
    deps: ReserveDeps,
) -> Reservation:
    async with deps.uow_factory() as uow:
        current = await _changeable(uow, reservation_id, customer_id, deps.clock)
        smaller, removed, entries = current.remove_line(product_id, now=deps.clock.now())
        await uow.reservations.remove_line(reservation_id, product_id)
        if not smaller.lines:
            await uow.reservations.end([smaller])  # released: nothing left to hold
        await uow.ledger.add(entries)
        await uow.commit()
    # Commit before give_back (see the module docstring).
    await deps.gate.give_back(replace(current, lines=(removed,)))
    deps.stock_changes.changed([product_id])
    return smaller


async def _changeable(
    uow: UnitOfWork, reservation_id: uuid.UUID, customer_id: uuid.UUID, clock: Clock
) -> Reservation:
    """The buyer's reservation, locked; refused once it ended or checkout made its order."""
    current = await uow.reservations.get_for_update(reservation_id)
    if not visible(current, customer_id):
        raise ReservationNotFound(reservation_id)  # I6: someone else's looks like nothing
    current.check_changeable(clock.now())
    if await uow.orders.for_reservation(reservation_id) is not None:
        raise ReservationInCheckout(
            f"reservation {reservation_id} is being paid; its items can no longer change"
        )
    return current
