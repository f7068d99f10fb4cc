"""Reading Stripe's webhook events and objects, from payload shapes recorded from the fake
(localstripe 1.15.10) and shaped as real Stripe sends them; and webhook verification."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import stripe

from stockgate.adapters.stripe import StripePayments, payments_from_settings
from stockgate.adapters.stripe.events import event_from, intent_from, refund_from
from stockgate.adapters.stripe.payments import call_deadline
from stockgate.config import Settings
from stockgate.domain.errors import InvalidWebhook
from tests.fake_stripe_server import dispute, refunded_charge, signed_webhook, stripe_event

ORDER = uuid.UUID("0193c6f2-7d41-7c3e-9a55-2f5be3a1c0de")

# payment_intent.succeeded as the fake sends it (trimmed): an old API version, no
# `amount_received`, and `latest_charge` embedded as an object.
FAKE_SUCCEEDED: dict[str, Any] = {
    "api_version": "2017-08-15",
    "created": 1796586838,
    "id": "evt_aTGf5gFBphGHVm",
    "livemode": False,
    "object": "event",
    "type": "payment_intent.succeeded",
    "data": {
        "object": {
            "amount": 1234,
            "capture_method": "automatic_async",
            "client_secret": "pi_V1MAdMlUV2La4p_secret_Yx1g11kpk5ipZsbe",
            "created": 1796586835,
            "currency": "usd",
            "customer": None,
            "id": "pi_V1MAdMlUV2La4p",
            "last_payment_error": None,
            "latest_charge": {
                "amount": 1234,
                "amount_refunded": 0,
                "id": "ch_FAwwxjWXpghCJs",
                "object": "charge",
                "payment_intent": "pi_V1MAdMlUV2La4p",
                "refunds": {"data": [], "has_more": False, "object": "list"},
                "status": "succeeded",
            },
            "metadata": {"customer_id": str(uuid.uuid4()), "order_id": str(ORDER)},
            "next_action": None,
            "object": "payment_intent",
            "payment_method": "pm_card_visa",
            "status": "succeeded",
        }
    },
}

# payment_intent.payment_failed as the fake sends it (trimmed).
FAKE_PAYMENT_FAILED: dict[str, Any] = {
    "api_version": "2017-08-15",
    "created": 1796586245,
    "id": "evt_Nyo3noErskNbQy",
    "livemode": False,
    "object": "event",
    "type": "payment_intent.payment_failed",
    "data": {
        "object": {
            "amount": 700,
            "currency": "usd",
            "id": "pi_BiKFzILrMRhphW",
            "last_payment_error": {
                "charge": "ch_c5BP6tX3LGEHmJ",
                "code": "card_declined",
                "message": "Your card was declined.",
            },
            "latest_charge": {"id": "ch_c5BP6tX3LGEHmJ", "object": "charge", "status": "failed"},
            "metadata": {"order_id": str(ORDER)},
            "object": "payment_intent",
            "status": "requires_payment_method",
        }
    },
}


def stripe_intent(**changes: Any) -> dict[str, Any]:
    """A PaymentIntent as real Stripe shapes it: `amount_received`, `latest_charge` an id."""
    intent = {
        "id": "pi_3Q0real",
        "object": "payment_intent",
        "amount": 5000,
        "amount_received": 5000,
        "currency": "eur",
        "client_secret": "pi_3Q0real_secret_abc",
        "latest_charge": "ch_3Q0real",
        "metadata": {"order_id": str(ORDER)},
        "status": "succeeded",
    }
    return intent | changes


def test_fake_succeeded_event_names_intent_order_and_amount() -> None:
    event = event_from(FAKE_SUCCEEDED)
    assert (event.id, event.type, event.created) == (
        "evt_aTGf5gFBphGHVm",
        "payment_intent.succeeded",
        1796586838,
    )
    assert (event.payment_intent_id, event.order_id) == ("pi_V1MAdMlUV2La4p", ORDER)
    assert (event.amount_cents, event.currency, event.refund_ids) == (1234, "usd", ())
    assert event.payload is FAKE_SUCCEEDED


def test_fake_payment_failed_event_names_intent_and_order() -> None:
    event = event_from(FAKE_PAYMENT_FAILED)
    assert (event.type, event.payment_intent_id, event.order_id) == (
        "payment_intent.payment_failed",
        "pi_BiKFzILrMRhphW",
        ORDER,
    )
    assert event.amount_cents == 700


def test_stripe_succeeded_event_reports_the_amount_received() -> None:
    event = event_from(
        stripe_event("payment_intent.succeeded", stripe_intent(amount_received=4000))
    )
    assert (event.amount_cents, event.currency, event.order_id) == (4000, "eur", ORDER)


def test_canceled_event_reports_the_amount_asked() -> None:
    canceled = stripe_intent(status="canceled", amount_received=0)
    event = event_from(stripe_event("payment_intent.canceled", canceled))
    assert (event.type, event.payment_intent_id, event.amount_cents) == (
        "payment_intent.canceled",
        "pi_3Q0real",
        5000,
    )


def test_charge_refunded_reports_intent_total_refunded_and_refund_ids() -> None:
    charge = refunded_charge("pi_3Q0real", 5000, "eur", refund_ids=("re_1", "re_2"))
    event = event_from(stripe_event("charge.refunded", charge))
    assert (event.payment_intent_id, event.amount_cents, event.currency) == (
        "pi_3Q0real",
        5000,
        "eur",
    )
    assert event.refund_ids == ("re_1", "re_2")


def test_charge_refunded_without_its_refunds_list_has_no_refund_ids() -> None:
    # Real Stripe since API version 2022-11-15: the charge's refunds are not in the event.
    event = event_from(stripe_event("charge.refunded", refunded_charge("pi_3Q0real", 2500)))
    assert (event.payment_intent_id, event.amount_cents, event.refund_ids) == (
        "pi_3Q0real",
        2500,
        (),
    )


def test_charge_with_an_expanded_intent_names_its_id() -> None:
    charge = refunded_charge("pi_x", 100) | {
        "payment_intent": {"id": "pi_x", "object": "payment_intent"}
    }
    assert event_from(stripe_event("charge.refunded", charge)).payment_intent_id == "pi_x"


def test_dispute_created_names_the_intent_when_stripe_gives_it() -> None:
    event = event_from(stripe_event("charge.dispute.created", dispute("pi_3Q0real", 5000)))
    assert (event.payment_intent_id, event.amount_cents, event.order_id) == (
        "pi_3Q0real",
        5000,
        None,
    )
    older = dispute("pi_3Q0real", 5000)
    del older["payment_intent"]  # older API versions name only the charge
    assert event_from(stripe_event("charge.dispute.created", older)).payment_intent_id is None


def test_refund_event_names_the_refund_and_its_intent() -> None:
    refund = {"id": "re_9", "object": "refund", "amount": 700, "currency": "usd",
              "payment_intent": "pi_7", "status": "succeeded"}  # fmt: skip
    event = event_from(stripe_event("refund.created", refund))
    assert (event.refund_ids, event.payment_intent_id, event.amount_cents) == (
        ("re_9",),
        "pi_7",
        700,
    )


def test_unknown_event_type_keeps_only_the_envelope_and_payload() -> None:
    body = stripe_event("customer.created", {"id": "cus_1", "object": "customer"})
    event = event_from(body)
    assert (event.id, event.type, event.created) == (
        body["id"],
        "customer.created",
        body["created"],
    )
    assert (event.payment_intent_id, event.order_id, event.amount_cents) == (None, None, None)
    assert event.payload == body


@pytest.mark.parametrize("order_id", ["not-a-uuid", 42, None])
def test_metadata_without_a_valid_order_id_names_no_order(order_id: object) -> None:
    event = event_from(
        stripe_event("payment_intent.succeeded", stripe_intent(metadata={"order_id": order_id}))
    )
    assert event.order_id is None
    assert event.payment_intent_id == "pi_3Q0real"


def test_non_integer_amounts_are_not_amounts() -> None:
    event = event_from(
        stripe_event("payment_intent.succeeded", stripe_intent(amount_received=True, amount="5"))
    )
    assert event.amount_cents is None


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"id": "evt_1", "type": "payment_intent.succeeded"},  # no created
        {"id": "evt_1", "type": "payment_intent.succeeded", "created": "1796586838"},
        {"id": "", "type": "x", "created": 1},
        {"id": "evt_1", "type": 5, "created": 1},
    ],
)
def test_what_is_not_a_stripe_event_is_an_invalid_webhook(body: object) -> None:
    with pytest.raises(InvalidWebhook):
        event_from(body)


def test_event_without_data_keeps_its_envelope() -> None:
    event = event_from({"id": "evt_1", "type": "ping", "created": 1, "data": "odd"})
    assert (event.id, event.type, event.payment_intent_id) == ("evt_1", "ping", None)


def test_intent_and_refund_from_api_objects() -> None:
    intent = intent_from(stripe_intent(currency="EUR", status="requires_payment_method"))
    assert (intent.id, intent.status, intent.amount_cents, intent.currency, intent.order_id) == (
        "pi_3Q0real",
        "requires_payment_method",
        5000,
        "eur",
        ORDER,
    )
    refund = refund_from(
        {"id": "re_1", "amount": 5000, "payment_intent": "pi_3Q0real", "status": "pending"}
    )
    assert (refund.id, refund.payment_intent_id, refund.amount_cents, refund.status) == (
        "re_1",
        "pi_3Q0real",
        5000,
        "pending",
    )


# --------------------------------------------------------------------------- verification

SECRET = "whsec_unit_test"


def adapter(webhook_secret: str | None = SECRET) -> StripePayments:
    return StripePayments(secret_key="sk_test_unit", webhook_secret=webhook_secret)


def test_signed_event_verifies_and_parses() -> None:
    body, header = signed_webhook(FAKE_SUCCEEDED, SECRET)
    event = adapter().verify_event(body, header)
    assert (event.id, event.order_id) == ("evt_aTGf5gFBphGHVm", ORDER)
    assert event.payload == json.loads(body)


@pytest.mark.parametrize("header", [None, "", "garbage", "t=1,v0=abc", "v1=deadbeef"])
def test_missing_or_unreadable_signature_is_an_invalid_webhook(header: str | None) -> None:
    body, _ = signed_webhook(FAKE_SUCCEEDED, SECRET)
    with pytest.raises(InvalidWebhook):
        adapter().verify_event(body, header)


def test_stale_signature_is_an_invalid_webhook() -> None:
    old = int(time.time()) - stripe.Webhook.DEFAULT_TOLERANCE - 5
    body, header = signed_webhook(FAKE_SUCCEEDED, SECRET, timestamp=old)
    with pytest.raises(InvalidWebhook):
        adapter().verify_event(body, header)


def test_without_a_webhook_secret_every_webhook_is_refused() -> None:
    body, header = signed_webhook(FAKE_SUCCEEDED, "")
    with pytest.raises(InvalidWebhook, match="STOCKGATE_STRIPE_WEBHOOK_SECRET"):
        adapter(webhook_secret=None).verify_event(body, header)


# --------------------------------------------------------------------------- construction


def test_no_stripe_key_means_no_payment_provider() -> None:
    assert payments_from_settings(Settings(stripe_secret_key=None)) is None
    assert payments_from_settings(Settings(stripe_secret_key="")) is None


def test_settings_configure_the_adapter_and_its_deadline() -> None:
    settings = Settings(
        stripe_secret_key="sk_test_x",
        stripe_webhook_secret=SECRET,
        stripe_api_base="http://127.0.0.1:9",
        stripe_timeout_seconds=2.0,
        stripe_max_network_retries=2,
    )
    payments = payments_from_settings(settings)
    assert payments is not None
    assert payments.deadline_seconds == call_deadline(2.0, 2) == 3 * 2.0 + 0.5 + 1.0
    body, header = signed_webhook(FAKE_SUCCEEDED, SECRET)
    assert payments.verify_event(body, header).id == "evt_aTGf5gFBphGHVm"
