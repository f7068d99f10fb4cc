"""Reservations: what a buyer holds for a few minutes, and the moves between their states."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from uuid_utils.compat import uuid7

from stockgate.domain.errors import (
    AlreadyInCart,
    InvalidInput,
    ItemNotInReservation,
    ReservationExpired,
    ReservationNotActive,
)
from stockgate.domain.ledger import LedgerEntry, LedgerKind

# Request limits, defined here only: the HTTP schema and the settings refer to these.
MAX_LINES = 50  # lines (products) in one reservation
MAX_QUANTITY = 10_000  # the most any setting may allow for one line (STOCKGATE_MAX_QUANTITY)


class ReservationStatus(StrEnum):
    ACTIVE = "active"
    RELEASED = "released"  # given back by the buyer, or by the reconciler as a repair
    EXPIRED = "expired"
    CONVERTED = "converted"  # paid: its units are sold
    RETURNED = "returned"  # converted, then a refund put its units back on sale
    # Never became durable: the id is fenced so that a late write of it cannot commit, and
    # its gate hold was given back. Has no lines and no ledger entries; buyers see a 404.
    VOID = "void"


@dataclass(frozen=True, slots=True)
class ReservationLine:
    product_id: int
    quantity: int


@dataclass(frozen=True, slots=True)
class ReserveRequest:
    customer_id: uuid.UUID
    lines: tuple[ReservationLine, ...]
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        """Identifies the request's content, so a reused idempotency key can be told apart."""
        return ",".join(f"{line.product_id}x{line.quantity}" for line in self.lines)


def check_lines(lines: Sequence[ReservationLine], *, max_quantity: int) -> None:
    if not lines:
        raise InvalidInput("a reservation needs at least one item")
    if len(lines) > MAX_LINES:
        raise InvalidInput(f"a reservation has at most {MAX_LINES} items")
    seen: set[int] = set()
    for line in lines:
        if line.product_id <= 0:
            raise InvalidInput("product_id must be a positive integer")
        if not 1 <= line.quantity <= max_quantity:
            raise InvalidInput(f"quantity must be an integer between 1 and {max_quantity}")
        if line.product_id in seen:
            raise InvalidInput(f"product {line.product_id} appears twice; send one line each")
        seen.add(line.product_id)


@dataclass(frozen=True, slots=True)
class Reservation:
    id: uuid.UUID
    customer_id: uuid.UUID
    lines: tuple[ReservationLine, ...]
    status: ReservationStatus
    created_at: datetime
    expires_at: datetime

    @classmethod
    def new(cls, request: ReserveRequest, *, now: datetime, hold_seconds: int) -> Reservation:
        return cls(
            # Time-ordered (UUIDv7): ids of one sale land side by side in the primary key
            # instead of all over it, fewer pages touched and logged per batch (decision 0007).
            id=uuid7(),
            customer_id=request.customer_id,
            lines=request.lines,
            status=ReservationStatus.ACTIVE,
            created_at=now,
            expires_at=now + timedelta(seconds=hold_seconds),
        )

    def held_entries(self) -> list[LedgerEntry]:
        return [self._entry(LedgerKind.HELD, line) for line in self.lines]

    def release(self) -> tuple[Reservation, list[LedgerEntry]]:
        return self._end(ReservationStatus.RELEASED, LedgerKind.RELEASED)

    def expire(self) -> tuple[Reservation, list[LedgerEntry]]:
        return self._end(ReservationStatus.EXPIRED, LedgerKind.EXPIRED)

    def repair(self) -> tuple[Reservation, list[LedgerEntry]]:
        """The reconciler found it in PostgreSQL only and could not restore it in the gate."""
        return self._end(ReservationStatus.RELEASED, LedgerKind.REPAIRED)

    def convert(self) -> tuple[Reservation, list[LedgerEntry]]:
        """Paid: the held units are sold."""
        return self._end(ReservationStatus.CONVERTED, LedgerKind.SOLD)

    def convert_late(self) -> tuple[Reservation, list[LedgerEntry]]:
        """Paid after it expired, its units taken again: held anew, then sold."""
        if self.status is not ReservationStatus.EXPIRED:
            raise ReservationNotActive(f"reservation {self.id} is {self.status}, not expired")
        entries = self.held_entries() + [self._entry(LedgerKind.SOLD, line) for line in self.lines]
        return replace(self, status=ReservationStatus.CONVERTED), entries

    def return_units(self, refund_id: str) -> tuple[Reservation, list[LedgerEntry]]:
        """A refund puts a sale's units back on sale, once per refund (`ref`)."""
        if self.status is not ReservationStatus.CONVERTED:
            raise ReservationNotActive(f"reservation {self.id} is {self.status}, not converted")
        entries = [
            LedgerEntry(
                line.product_id, LedgerKind.REFUND_RETURNED, line.quantity, self.id, refund_id
            )
            for line in self.lines
        ]
        return replace(self, status=ReservationStatus.RETURNED), entries

    def extend_to(self, expires_at: datetime) -> Reservation:
        """Hold longer (never shorter) while a payment is in flight."""
        if self.status is not ReservationStatus.ACTIVE:
            raise ReservationNotActive(f"reservation {self.id} is {self.status}")
        return replace(self, expires_at=max(self.expires_at, expires_at))

    def add_lines(
        self, lines: Sequence[ReservationLine], *, now: datetime, max_quantity: int
    ) -> tuple[Reservation, list[LedgerEntry]]:
        """The cart grows: new products only (a product already held is AlreadyInCart: its
        gate hold is one record per reservation and product). The expiry stays as it was."""
        self.check_changeable(now)
        check_lines(lines, max_quantity=max_quantity)
        held = {line.product_id for line in self.lines}
        for line in lines:
            if line.product_id in held:
                raise AlreadyInCart(line.product_id)
        if len(self.lines) + len(lines) > MAX_LINES:
            raise InvalidInput(f"a reservation has at most {MAX_LINES} items")
        grown = replace(self, lines=self.lines + tuple(lines))
        return grown, [self._entry(LedgerKind.HELD, line) for line in lines]

    def remove_line(
        self, product_id: int, *, now: datetime
    ) -> tuple[Reservation, ReservationLine, list[LedgerEntry]]:
        """One line given back. Without lines a reservation holds nothing: removing the last
        one releases it."""
        self.check_changeable(now)
        removed = next((line for line in self.lines if line.product_id == product_id), None)
        if removed is None:
            raise ItemNotInReservation(product_id)
        left = tuple(line for line in self.lines if line.product_id != product_id)
        status = ReservationStatus.ACTIVE if left else ReservationStatus.RELEASED
        smaller = replace(self, lines=left, status=status)
        return smaller, removed, [self._entry(LedgerKind.RELEASED, removed)]

    def check_changeable(self, now: datetime) -> None:
        if self.status is ReservationStatus.EXPIRED or (
            self.status is ReservationStatus.ACTIVE and now >= self.expires_at
        ):
            raise ReservationExpired(f"reservation {self.id} expired at {self.expires_at}")
        if self.status is not ReservationStatus.ACTIVE:
            raise ReservationNotActive(
                f"reservation {self.id} is {self.status}", reservation_status=self.status.value
            )

    def _end(
        self, status: ReservationStatus, kind: LedgerKind
    ) -> tuple[Reservation, list[LedgerEntry]]:
        if self.status is not ReservationStatus.ACTIVE:
            raise ReservationNotActive(f"reservation {self.id} is {self.status}")
        entries = [self._entry(kind, line) for line in self.lines]
        return replace(self, status=status), entries

    def _entry(self, kind: LedgerKind, line: ReservationLine) -> LedgerEntry:
        return LedgerEntry(line.product_id, kind, line.quantity, self.id)
