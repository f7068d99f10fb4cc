"""Stripe's JSON read into stockgate's payment types: PaymentIntents, refunds, webhook events.

Pure functions over plain mappings, so they read an API answer (`StripeObject.to_dict()`) and
a webhook body (`json.loads`) alike, from real Stripe and from the local fake, whose shapes
differ in places (docs/decisions/0009-stripe-and-the-fake.md):
- the fake's PaymentIntent has no `amount_received`, and embeds `latest_charge` as an object
  where Stripe gives its id;
- a charge's `refunds` list is in the fake's events, but not in Stripe's since API version
  2022-11-15 (`refund_ids` is then empty and the refunds must be listed);
- a dispute names its `payment_intent` only in newer Stripe API versions.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, TypeGuard

from stockgate.domain.errors import InvalidWebhook
from stockgate.services.ports import PaymentEvent, PaymentIntent, Refund

ORDER_ID = "order_id"  # the metadata key linking a PaymentIntent to its order
CUSTOMER_ID = "customer_id"


def intent_from(obj: Mapping[str, Any]) -> PaymentIntent:
    return PaymentIntent(
        id=str(obj["id"]),
        status=str(obj["status"]),
        amount_cents=int(obj["amount"]),
        currency=str(obj["currency"]).lower(),
        client_secret=_text(obj.get("client_secret")),
        order_id=order_id_in(obj.get("metadata")),
    )


def refund_from(obj: Mapping[str, Any], intent_id: str = "") -> Refund:
    """A refund; `intent_id` stands in when the refund does not name its payment (the fake's
    refunds of a charge)."""
    return Refund(
        id=str(obj["id"]),
        payment_intent_id=_id_of(obj.get("payment_intent")) or intent_id,
        amount_cents=int(obj["amount"]),
        status=str(obj["status"]),
    )


def event_from(body: object) -> PaymentEvent:
    """The event in a (verified) webhook body; InvalidWebhook when it is not a Stripe event."""
    if not isinstance(body, dict):
        raise InvalidWebhook("the webhook body is not a JSON object")
    event_id, kind, created = body.get("id"), body.get("type"), body.get("created")
    if not (_nonempty(event_id) and _nonempty(kind) and _is_int(created)):
        raise InvalidWebhook("the webhook body is not a Stripe event (id, type, created)")
    data = body.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    facts = _facts(str(kind), obj) if isinstance(obj, dict) else {}
    return PaymentEvent(id=str(event_id), type=str(kind), created=created, payload=body, **facts)


def _facts(kind: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """What stockgate acts on, read by the kind of object the event carries."""
    match obj.get("object"):
        case "payment_intent":
            # What was collected, once it succeeded (real Stripe); otherwise what is asked.
            received = obj.get("amount_received")
            paid = kind == "payment_intent.succeeded" and _is_int(received)
            return _money(obj, "amount_received" if paid else "amount") | {
                "payment_intent_id": _text(obj.get("id")),
                "order_id": order_id_in(obj.get("metadata")),
            }
        case "charge":
            # charge.refunded: the total refunded so far on this charge, not this refund alone.
            refunded = kind.startswith("charge.refund")
            return _money(obj, "amount_refunded" if refunded else "amount") | {
                "payment_intent_id": _id_of(obj.get("payment_intent")),
                "order_id": order_id_in(obj.get("metadata")),
                "refund_ids": _refund_ids(obj.get("refunds")),
            }
        case "refund":
            return _money(obj, "amount") | {
                "payment_intent_id": _id_of(obj.get("payment_intent")),
                "refund_ids": (obj["id"],) if _nonempty(obj.get("id")) else (),
            }
        case "dispute":
            return _money(obj, "amount") | {"payment_intent_id": _id_of(obj.get("payment_intent"))}
        case _:
            return {}


def order_id_in(metadata: object) -> uuid.UUID | None:
    """The order a Stripe object's metadata names; None when absent or not a UUID."""
    if not isinstance(metadata, Mapping):
        return None
    value = metadata.get(ORDER_ID)
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _money(obj: Mapping[str, Any], amount_key: str) -> dict[str, Any]:
    amount, currency = obj.get(amount_key), obj.get("currency")
    return {
        "amount_cents": amount if _is_int(amount) else None,
        "currency": currency.lower() if isinstance(currency, str) else None,
    }


def _refund_ids(refunds: object) -> tuple[str, ...]:
    data = refunds.get("data") if isinstance(refunds, Mapping) else None
    if not isinstance(data, list):
        return ()
    return tuple(r["id"] for r in data if isinstance(r, Mapping) and _nonempty(r.get("id")))


def _id_of(value: object) -> str | None:
    """An id given as a string, or as an expanded object carrying it."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if _nonempty(value) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _nonempty(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value != ""


def _is_int(value: object) -> TypeGuard[int]:
    return type(value) is int  # JSON true/false are not amounts
