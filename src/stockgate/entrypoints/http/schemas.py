"""Request and response bodies of the HTTP API (msgspec: fast, strict validation)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, TypeVar

import msgspec

from stockgate.domain.errors import InvalidInput, MalformedBody
from stockgate.domain.reservation import MAX_LINES, MAX_QUANTITY, Reservation, ReservationLine
from stockgate.services.catalog import ProductView

T = TypeVar("T")
ProductId = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
# The bounds any deployment could allow; STOCKGATE_MAX_QUANTITY (at most MAX_QUANTITY) is
# checked by the domain (check_lines) with the same message as every other line rule.
Quantity = Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)]


class ItemIn(msgspec.Struct, forbid_unknown_fields=True):
    product_id: ProductId
    quantity: Quantity


class ReservationIn(msgspec.Struct, forbid_unknown_fields=True):
    items: Annotated[list[ItemIn], msgspec.Meta(min_length=1, max_length=MAX_LINES)]

    def lines(self) -> tuple[ReservationLine, ...]:
        return tuple(ReservationLine(i.product_id, i.quantity) for i in self.items)


class ItemOut(msgspec.Struct):
    product_id: int
    quantity: int


class ReservationOut(msgspec.Struct):
    # UUID and datetime are encoded by msgspec itself (RFC 3339), cheaper than str().
    id: uuid.UUID
    status: str
    expires_at: datetime
    created_at: datetime
    items: list[ItemOut]

    @classmethod
    def of(cls, reservation: Reservation) -> ReservationOut:
        return cls(
            id=reservation.id,
            status=reservation.status.value,
            expires_at=reservation.expires_at,
            created_at=reservation.created_at,
            items=[ItemOut(line.product_id, line.quantity) for line in reservation.lines],
        )


class ProductOut(msgspec.Struct):
    id: int
    sku: str
    name: str
    price_cents: int
    currency: str
    available: int
    limit_per_customer: int | None

    @classmethod
    def of(cls, view: ProductView) -> ProductOut:
        p = view.product
        return cls(
            p.id, p.sku, p.name, p.price_cents, p.currency, view.available, p.limit_per_customer
        )


class CustomerOut(msgspec.Struct):
    customer_id: str
    token: str


def decode_body(body: bytes, into: type[T]) -> T:
    """Strict JSON decoding: wrong types are refused, never coerced ("2" is not 2)."""
    try:
        return msgspec.json.decode(body, type=into, strict=True)
    except msgspec.ValidationError as exc:
        raise InvalidInput(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise MalformedBody("the body is not valid JSON") from exc
