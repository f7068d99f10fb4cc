"""The fake Stripe server (localstripe) for tests, and what tests do in the buyer's place.

- `fake_stripe` (session fixture): one localstripe on a free port with its own state
  directory, started empty and stopped at the end. Tests share it and stay independent by
  their own intents; webhooks registered by one test also carry the others' events, so filter
  by intent id. `running_fake_stripe()` gives a test its own instance to stop or restart.
- `confirm_intent`: what Stripe.js does in the buyer's browser, done the way the fake can:
  attach a test payment method, then confirm (retrying after a decline included).
- `WebhookReceiver`: a tiny local HTTP server that records what the fake posts.
- `stripe_event` + `signed_webhook`: a webhook body and a valid Stripe-Signature header for
  tests that post webhooks themselves (events the fake never sends, replays, old signatures).

The fake's behaviour these rely on is recorded in docs/decisions/0009-stripe-and-the-fake.md.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from stockgate.adapters.embedded.fake_stripe import SECRET_KEY, FakeStripe
from stockgate.adapters.stripe import StripePayments
from stockgate.supervisor import free_port

# Test payment methods the fake knows by name (real Stripe's test mode knows them too).
GOOD_CARD = "pm_card_visa"  # 4242 4242 4242 4242: the charge succeeds
# 4000 0000 0000 0341: the charge is declined (402 card_declined, payment_intent.payment_failed).
# Not `pm_card_visa_chargeDeclined` (4000 0000 0000 0002): the fake declines that one only
# when it is attached to a customer, and stockgate's intents have none.
DECLINED_CARD = "pm_card_chargeCustomerFail"


@contextmanager
def running_fake_stripe(*, fresh: bool = True) -> Iterator[FakeStripe]:
    """A localstripe of the caller's own, on a free port, with a private state directory."""
    with tempfile.TemporaryDirectory(prefix="stockgate-fake-stripe-") as tmp:
        fake = FakeStripe(
            free_port(), Path(tmp) / "localstripe.log", state_dir=Path(tmp) / "state", fresh=fresh
        )
        fake.start()
        try:
            yield fake
        finally:
            fake.stop()


@pytest.fixture(scope="session")
def fake_stripe() -> Iterator[FakeStripe]:
    with running_fake_stripe() as fake:
        yield fake


def payments_for(fake: FakeStripe, **options: Any) -> StripePayments:
    """The adapter configured for `fake` (keyword options override the constructor's)."""
    arguments: dict[str, Any] = {
        "secret_key": SECRET_KEY,
        "webhook_secret": fake.webhook_secret,
        "api_base": fake.api_base,
        "timeout_seconds": 2.0,
        "max_network_retries": 1,
    }
    return StripePayments(**(arguments | options))


# --------------------------------------------------------------------------- the buyer's side


async def confirm_intent(fake: FakeStripe, intent_id: str, card: str = GOOD_CARD) -> dict[str, Any]:
    """Pay an intent with a test card as the buyer's browser would; the intent afterwards
    (`succeeded`, or `requires_payment_method` after a decline).

    The fake answers `confirm` with a payment method 500 "Not implemented", so the method is
    attached first and the confirm sent without one. After a decline the fake keeps the failed
    charge and refuses a second confirm; real Stripe lets the buyer retry on the same intent,
    so the failed charge is cleared first (the fake's update takes any attribute as JSON).
    """
    async with _fake_api(fake) as api:
        intent = await _answer(api.get(f"/v1/payment_intents/{intent_id}"))
        update: dict[str, Any] = {"payment_method": card}
        if intent["status"] == "requires_payment_method" and intent.get("latest_charge"):
            update["latest_charge"] = None
        await _answer(api.post(f"/v1/payment_intents/{intent_id}", json=update))
        confirmed = await api.post(f"/v1/payment_intents/{intent_id}/confirm")
        if confirmed.status_code == 402:  # declined: the intent is payable again
            return await _answer(api.get(f"/v1/payment_intents/{intent_id}"))
        confirmed.raise_for_status()
        answer: dict[str, Any] = confirmed.json()
        return answer


def _fake_api(fake: FakeStripe) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {SECRET_KEY}"}
    return httpx.AsyncClient(base_url=fake.api_base, headers=headers, timeout=5.0)


async def _answer(response: Awaitable[httpx.Response]) -> dict[str, Any]:
    answered = await response
    answered.raise_for_status()
    body: dict[str, Any] = answered.json()
    return body


async def events_of(fake: FakeStripe, intent_id: str) -> list[dict[str, Any]]:
    """The events the fake made about an intent, oldest first (whether delivered or not)."""
    async with _fake_api(fake) as api:
        listed = await _answer(api.get("/v1/events", params={"limit": 100}))
    mine = [e for e in listed["data"] if e["data"]["object"].get("id") == intent_id]
    return sorted(mine, key=lambda e: int(e["created"]))


# --------------------------------------------------------------------------- webhooks


@dataclass(frozen=True, slots=True)
class Delivery:
    path: str
    headers: Mapping[str, str]  # names in lower case
    body: bytes

    @property
    def signature(self) -> str | None:
        return self.headers.get("stripe-signature")

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event


class WebhookReceiver:
    """Records every POST on 127.0.0.1 at a free port and answers `status` (default 200).

    Also a stand-in for a Stripe API that fails: point the adapter's API base at it with
    `status=500` and it records each attempt the SDK makes."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.deliveries: list[Delivery] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver.deliveries.append(Delivery(self.path, headers, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/webhook"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    async def wait_for(
        self, match: Callable[[dict[str, Any]], bool], *, timeout: float = 5.0
    ) -> Delivery:
        """The first delivery whose event matches; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for delivery in list(self.deliveries):
                if match(delivery.event):
                    return delivery
            await asyncio.sleep(0.05)
        seen = [d.event["type"] for d in self.deliveries]
        raise AssertionError(f"no matching webhook within {timeout} s; received {seen}")


def about(intent_id: str, event_type: str) -> Callable[[dict[str, Any]], bool]:
    """Matches the event of `event_type` about one intent (for WebhookReceiver.wait_for)."""
    return lambda e: e["type"] == event_type and e["data"]["object"].get("id") == intent_id


def stripe_event(
    event_type: str,
    obj: Mapping[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A webhook event of real Stripe's envelope around `obj` (a Stripe object as JSON)."""
    return {
        "id": event_id or f"evt_test_{secrets.token_hex(8)}",
        "object": "event",
        "api_version": stripe.api_version,
        "created": int(time.time()) if created is None else created,
        "data": {"object": dict(obj)},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def signed_webhook(
    event: Mapping[str, Any], secret: str, *, timestamp: int | None = None
) -> tuple[bytes, str]:
    """The body and a valid Stripe-Signature header for `event`, signed at `timestamp`
    (default now; more than 300 s ago makes a stale one)."""
    body = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp)
    return body.encode(), header


# Objects the fake never sends events about, shaped as real Stripe sends them.


def refunded_charge(
    intent_id: str, amount_refunded: int, currency: str = "usd", *, refund_ids: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The charge of a `charge.refunded` event. Stripe leaves its `refunds` list out since API
    version 2022-11-15; `refund_ids` puts one in, as the fake and older versions do."""
    charge: dict[str, Any] = {
        "id": f"ch_test_{secrets.token_hex(8)}",
        "object": "charge",
        "amount": amount_refunded,
        "amount_refunded": amount_refunded,
        "currency": currency,
        "payment_intent": intent_id,
        "refunded": True,
        "status": "succeeded",
        "metadata": {},
    }
    if refund_ids:
        data = [{"id": r, "object": "refund", "payment_intent": intent_id} for r in refund_ids]
        charge["refunds"] = {"object": "list", "data": data, "has_more": False}
    return charge


def dispute(intent_id: str, amount: int, currency: str = "usd") -> dict[str, Any]:
    """The dispute of a `charge.dispute.created` event."""
    return {
        "id": f"dp_test_{secrets.token_hex(8)}",
        "object": "dispute",
        "amount": amount,
        "currency": currency,
        "charge": f"ch_test_{secrets.token_hex(8)}",
        "payment_intent": intent_id,
        "reason": "fraudulent",
        "status": "needs_response",
    }
