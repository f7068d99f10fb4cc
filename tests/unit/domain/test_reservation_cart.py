"""A reservation as a cart: lines added and removed, and when it can no longer change."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from stockgate.domain.errors import (
    AlreadyInCart,
    InvalidInput,
    ItemNotInReservation,
    ReservationExpired,
    ReservationNotActive,
)
from stockgate.domain.ledger import LedgerEntry, LedgerKind
from stockgate.domain.reservation import (
    MAX_LINES,
    Reservation,
    ReservationLine,
    ReservationStatus,
    ReserveRequest,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def cart(*pairs: tuple[int, int]) -> Reservation:
    request = ReserveRequest(uuid.uuid4(), tuple(ReservationLine(p, q) for p, q in pairs))
    return Reservation.new(request, now=NOW, hold_seconds=600)


def test_added_lines_are_appended_with_held_entries_and_the_expiry_kept() -> None:
    before = cart((1, 2))
    grown, entries = before.add_lines((ReservationLine(2, 3),), now=NOW, max_quantity=10)
    assert grown.lines == (ReservationLine(1, 2), ReservationLine(2, 3))
    assert grown.expires_at == before.expires_at
    assert entries == [LedgerEntry(2, LedgerKind.HELD, 3, before.id)]


def test_adding_a_held_product_or_too_many_lines_is_refused() -> None:
    with pytest.raises(AlreadyInCart):
        cart((1, 2)).add_lines((ReservationLine(1, 1),), now=NOW, max_quantity=10)
    full = cart(*[(i, 1) for i in range(1, MAX_LINES + 1)])
    with pytest.raises(InvalidInput):
        full.add_lines((ReservationLine(MAX_LINES + 1, 1),), now=NOW, max_quantity=10)
    with pytest.raises(InvalidInput):
        cart((1, 1)).add_lines((ReservationLine(2, 11),), now=NOW, max_quantity=10)


def test_removing_lines_releases_when_the_last_one_goes() -> None:
    two = cart((1, 2), (2, 3))
    one, removed, entries = two.remove_line(1, now=NOW)
    assert (one.status, one.lines, removed) == (
        ReservationStatus.ACTIVE,
        (ReservationLine(2, 3),),
        ReservationLine(1, 2),
    )
    assert entries == [LedgerEntry(1, LedgerKind.RELEASED, 2, two.id)]
    none, _, _ = one.remove_line(2, now=NOW)
    assert (none.status, none.lines) == (ReservationStatus.RELEASED, ())
    with pytest.raises(ItemNotInReservation):
        one.remove_line(1, now=NOW)


def test_an_expired_or_ended_cart_cannot_change() -> None:
    active = cart((1, 1))
    late = NOW + timedelta(seconds=600)
    with pytest.raises(ReservationExpired):
        active.add_lines((ReservationLine(2, 1),), now=late, max_quantity=10)
    with pytest.raises(ReservationExpired):
        replace(active, status=ReservationStatus.EXPIRED).remove_line(1, now=NOW)
    released, _ = active.release()
    with pytest.raises(ReservationNotActive) as refused:
        released.remove_line(1, now=NOW)
    assert refused.value.facts == {"reservation_status": "released"}
    assert type(refused.value) is ReservationNotActive
