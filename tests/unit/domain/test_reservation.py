"""Domain rules of a reservation request and of a reservation's life."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from stockgate.domain.errors import InvalidInput, ReservationNotActive
from stockgate.domain.ledger import LedgerKind
from stockgate.domain.reservation import (
    MAX_LINES,
    Reservation,
    ReservationLine,
    ReservationStatus,
    ReserveRequest,
    check_lines,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def lines(*pairs: tuple[int, int]) -> tuple[ReservationLine, ...]:
    return tuple(ReservationLine(pid, qty) for pid, qty in pairs)


def test_valid_lines_pass() -> None:
    check_lines(lines((1, 1), (2, 100)), max_quantity=100)
    check_lines(lines(*[(i, 1) for i in range(1, MAX_LINES + 1)]), max_quantity=100)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ((), "at least one"),
        (lines(*[(i, 1) for i in range(1, MAX_LINES + 2)]), "at most 50"),
        (lines((1, 1), (1, 2)), "twice"),
        (lines((1, 0)), "quantity"),
        (lines((1, -3)), "quantity"),
        (lines((1, 101)), "quantity"),
        (lines((0, 1)), "product_id"),
        (lines((-5, 1)), "product_id"),
    ],
)
def test_invalid_lines_are_refused(bad: tuple[ReservationLine, ...], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check_lines(bad, max_quantity=100)


def test_fingerprint_tells_requests_apart() -> None:
    buyer = uuid.uuid4()
    one = ReserveRequest(buyer, lines((1, 2), (3, 1)))
    assert one.fingerprint() == ReserveRequest(buyer, lines((1, 2), (3, 1))).fingerprint()
    assert one.fingerprint() != ReserveRequest(buyer, lines((1, 3), (3, 1))).fingerprint()
    assert one.fingerprint() != ReserveRequest(buyer, lines((1, 2))).fingerprint()


def new_reservation() -> Reservation:
    request = ReserveRequest(uuid.uuid4(), lines((1, 2), (7, 3)))
    return Reservation.new(request, now=NOW, hold_seconds=600)


def test_new_reservation_is_active_and_holds_negative_ledger_entries() -> None:
    reservation = new_reservation()
    assert reservation.status is ReservationStatus.ACTIVE
    assert (reservation.expires_at - NOW).total_seconds() == 600
    entries = reservation.held_entries()
    assert [(e.product_id, e.kind, e.quantity) for e in entries] == [
        (1, LedgerKind.HELD, 2),
        (7, LedgerKind.HELD, 3),
    ]
    assert all(e.reservation_id == reservation.id for e in entries)


@pytest.mark.parametrize(
    ("move", "status", "kind"),
    [
        ("release", ReservationStatus.RELEASED, LedgerKind.RELEASED),
        ("expire", ReservationStatus.EXPIRED, LedgerKind.EXPIRED),
        ("repair", ReservationStatus.RELEASED, LedgerKind.REPAIRED),
    ],
)
def test_ending_returns_every_unit_once(
    move: str, status: ReservationStatus, kind: LedgerKind
) -> None:
    reservation = new_reservation()
    ended, entries = getattr(reservation, move)()
    assert ended.status is status
    assert [(e.product_id, e.kind, e.quantity) for e in entries] == [(1, kind, 2), (7, kind, 3)]
    with pytest.raises(ReservationNotActive):
        getattr(ended, move)()
    with pytest.raises(ReservationNotActive):
        ended.release()
