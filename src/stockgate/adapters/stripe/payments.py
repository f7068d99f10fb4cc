"""The PaymentProvider port on Stripe's official SDK: PaymentIntents, refunds, webhooks.

Real Stripe and the local fake (localstripe) differ only by settings: the API base and the
keys. stockgate never sees card data: it creates a PaymentIntent for an order and hands its
client secret to the buyer's browser, where Stripe.js collects the card and confirms.

Every call is async and bounded. Each HTTP attempt has `timeout_seconds`; the SDK retries
network errors, timeouts, 409 and 5xx up to `max_network_retries` times with the same
idempotency key; a deadline covering all attempts and the SDK's back-off cuts off anything
slower (a server that trickles its answer). Stripe's errors become domain errors here, so no
SDK type leaves this package. What the fake lacks and how this copes:
docs/decisions/0009-stripe-and-the-fake.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import stripe

from stockgate.adapters.stripe.events import (
    CUSTOMER_ID,
    ORDER_ID,
    event_from,
    intent_from,
    refund_from,
)
from stockgate.config import Settings
from stockgate.domain.errors import (
    IdempotencyConflict,
    InvalidWebhook,
    PaymentDeclined,
    PaymentIntentNotFound,
    PaymentProviderUnavailable,
    PaymentRequestRejected,
    PaymentStateConflict,
    StockgateError,
)
from stockgate.services.ports import PaymentEvent, PaymentIntent, Refund

# Metadata stockgate puts on its refunds: the idempotency key finds an earlier refund of the
# same request even where the provider forgot or ignores idempotency keys.
REFUND_KEY = "stockgate_refund_key"
REFUND_REASON = "stockgate_reason"

# Refunds that give (or will give) the money back; a failed or canceled one does not count.
_REFUND_COUNTS = frozenset({"succeeded", "pending", "requires_action"})


def intent_idempotency_key(order_id: uuid.UUID) -> str:
    return f"order-{order_id}-intent"


def call_deadline(timeout_seconds: float, max_network_retries: int) -> float:
    """The longest one call may take: every attempt plus the SDK's back-off between them
    (0.5 s doubling up to 5 s, see stripe's HTTPClient._sleep_time_seconds)."""
    backoff = sum(min(0.5 * 2.0 ** (n - 1), 5.0) for n in range(1, max_network_retries + 1))
    return (max_network_retries + 1) * timeout_seconds + backoff


class StripePayments:
    """PaymentProvider over one StripeClient. Builds its HTTP client but does no I/O until
    called; `close()` releases the connection pool."""

    def __init__(
        self,
        *,
        secret_key: str,
        webhook_secret: str | None,
        api_base: str | None = None,
        timeout_seconds: float = 5.0,
        max_network_retries: int = 1,
        http_client: stripe.HTTPXClient | None = None,
    ) -> None:
        self._http = http_client or stripe.HTTPXClient(timeout=timeout_seconds)
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else {},
            http_client=self._http,
            max_network_retries=max_network_retries,
        )
        self._webhook_secret = webhook_secret
        self.deadline_seconds = call_deadline(timeout_seconds, max_network_retries)

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]  # unannotated in the SDK

    # ------------------------------------------------------------------ PaymentIntents

    async def create_intent(
        self, *, order_id: uuid.UUID, amount_cents: int, currency: str, customer_id: uuid.UUID
    ) -> PaymentIntent:
        async with self._call("create a payment intent"):
            intent = await self._client.v1.payment_intents.create_async(
                # No payment method parameter at all: the SDK's API version refuses
                # `payment_method_types` (400 payment_method_types_no_longer_supported) and the
                # fake refuses its successors (`allowed_payment_method_types`,
                # `automatic_payment_methods`). Real Stripe then offers the methods set up in
                # its Dashboard (cards only, for stockgate); the fake takes cards.
                {
                    "amount": amount_cents,
                    "currency": currency.lower(),
                    "metadata": {ORDER_ID: str(order_id), CUSTOMER_ID: str(customer_id)},
                },
                {"idempotency_key": intent_idempotency_key(order_id)},
            )
        return intent_from(intent.to_dict())

    async def pay_with(self, intent_id: str, payment_method: str) -> PaymentIntent:
        """Attach the method, then confirm without naming it: the fake answers a confirm with a
        `payment_method` 500 "Not implemented" (decision 0009); Stripe takes both forms."""
        async with self._call("attach a payment method", intent_id):
            await self._client.v1.payment_intents.update_async(
                intent_id, {"payment_method": payment_method}
            )
        try:
            async with self._call("confirm a payment", intent_id):
                intent = await self._client.v1.payment_intents.confirm_async(intent_id)
        except PaymentRequestRejected as exc:
            if isinstance(exc.__cause__, stripe.CardError):
                raise PaymentDeclined(
                    exc.detail, decline_code=exc.facts.get("stripe_code")
                ) from None
            raise
        return intent_from(intent.to_dict())

    async def get_intent(self, intent_id: str) -> PaymentIntent:
        return intent_from(await self._intent(intent_id))

    async def cancel_intent(self, intent_id: str) -> PaymentIntent:
        try:
            async with self._call("cancel a payment intent", intent_id):
                intent = await self._client.v1.payment_intents.cancel_async(intent_id)
        except PaymentRequestRejected:
            # Stripe refuses to cancel an intent that is canceled already or past canceling
            # (succeeded, processing), with no error code on the fake: ask which it is.
            current = await self.get_intent(intent_id)
            if current.status == "canceled":
                return current
            raise PaymentStateConflict(intent_id, current.status, "cancel") from None
        return intent_from(intent.to_dict())

    async def _intent(self, intent_id: str) -> dict[str, Any]:
        async with self._call("read a payment intent", intent_id):
            intent = await self._client.v1.payment_intents.retrieve_async(intent_id)
        return intent.to_dict()

    # ------------------------------------------------------------------ refunds

    async def refund(self, intent_id: str, *, key: str, reason: str) -> Refund:
        """Refund what is left of a succeeded payment; `key` is Stripe's idempotency key.

        An earlier refund made with the same key, or a payment refunded in full already (by
        another key or by hand in Stripe's dashboard), is returned instead of refunding
        again: the fake ignores idempotency keys, and Stripe forgets them after 24 hours.
        """
        intent = await self._intent(intent_id)
        if intent["status"] != "succeeded":
            raise PaymentStateConflict(intent_id, str(intent["status"]), "refund")
        earlier = await self._refunds(intent_id)
        done = _refund_made_with(key, earlier) or _covering_refund(intent, earlier)
        if done is not None:
            return refund_from(done, intent_id)
        try:
            async with self._call("refund a payment", intent_id):
                refund = await self._client.v1.refunds.create_async(
                    {
                        "payment_intent": intent_id,
                        "metadata": {REFUND_KEY: key, REFUND_REASON: reason},
                    },
                    {"idempotency_key": key},
                )
        except PaymentRequestRejected as exc:
            if exc.facts.get("stripe_code") != "charge_already_refunded":
                raise
            # Refunded in full meanwhile, by a concurrent request with another key.
            covering = _covering_refund(intent, await self._refunds(intent_id))
            if covering is None:
                raise
            return refund_from(covering, intent_id)
        return refund_from(refund.to_dict(), intent_id)

    async def _refunds(self, intent_id: str) -> list[dict[str, Any]]:
        """The payment's refunds, newest first."""
        async with self._call("list a payment's refunds", intent_id):
            page = await self._client.v1.refunds.list_async(
                {"payment_intent": intent_id, "limit": 100}
            )
        return [refund.to_dict() for refund in page.data]

    # ------------------------------------------------------------------ webhooks

    def verify_event(self, payload: bytes, signature: str | None) -> PaymentEvent:
        """Check the Stripe-Signature header (HMAC and age, the SDK's default tolerance of
        300 s) with the SDK, then parse the same bytes.

        The SDK's `Webhook.construct_event` is this check plus building an SDK Event that
        would have to be turned back into JSON; parsing the verified bytes ourselves keeps
        the payload exactly as Stripe sent it (for the inbox) and every failure one error.
        """
        if not self._webhook_secret:
            raise InvalidWebhook(
                "no webhook secret is configured (STOCKGATE_STRIPE_WEBHOOK_SECRET)"
            )
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidWebhook("the webhook body is not UTF-8") from None
        try:
            stripe.WebhookSignature.verify_header(
                text, signature, self._webhook_secret, stripe.Webhook.DEFAULT_TOLERANCE
            )
        except stripe.SignatureVerificationError as exc:
            raise InvalidWebhook(f"bad Stripe-Signature: {exc.user_message}") from None
        try:
            body = json.loads(text)
        except ValueError:
            raise InvalidWebhook("the webhook body is not JSON") from None
        return event_from(body)

    def parse_event(self, payload: Mapping[str, Any]) -> PaymentEvent:
        return event_from(payload)

    # ------------------------------------------------------------------ errors

    @contextlib.asynccontextmanager
    async def _call(self, action: str, intent_id: str | None = None) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.deadline_seconds):
                yield
        except TimeoutError as exc:
            raise PaymentProviderUnavailable(
                f"Stripe did not answer within {self.deadline_seconds:g} s ({action})"
            ) from exc
        except stripe.StripeError as exc:
            raise _domain_error(exc, action, intent_id) from exc


def _domain_error(exc: stripe.StripeError, action: str, intent_id: str | None) -> StockgateError:
    detail = f"Stripe could not {action}: {exc.user_message or type(exc).__name__}"
    if isinstance(exc, stripe.IdempotencyError):  # the same key with other parameters
        return IdempotencyConflict(detail)
    if isinstance(exc, stripe.InvalidRequestError) and exc.http_status == 404 and intent_id:
        return PaymentIntentNotFound(intent_id)
    if isinstance(exc, stripe.InvalidRequestError | stripe.CardError):
        return PaymentRequestRejected(detail, stripe_code=exc.code)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        # Every call fails until an operator fixes the key: unavailable, not the buyer's fault.
        return PaymentProviderUnavailable(
            f"Stripe refused the API key ({action}); check STOCKGATE_STRIPE_SECRET_KEY"
        )
    # Connection errors, timeouts, rate limits, 409 and 5xx after the SDK's retries, and
    # whatever else is unknown: nothing was decided there, so asking again is safe.
    return PaymentProviderUnavailable(detail)


def _refund_made_with(key: str, refunds: list[dict[str, Any]]) -> dict[str, Any] | None:
    for refund in refunds:
        metadata = refund.get("metadata")
        if isinstance(metadata, Mapping) and metadata.get(REFUND_KEY) == key:
            return refund
    return None


def _covering_refund(
    intent: Mapping[str, Any], refunds: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The newest refund when the refunds together give back the whole payment, else None."""
    paid = intent.get("amount_received")  # real Stripe; the fake has only `amount`
    if type(paid) is not int:
        paid = int(intent["amount"])
    counted = [r for r in refunds if r.get("status") in _REFUND_COUNTS]
    if not counted or sum(int(r["amount"]) for r in counted) < paid:
        return None
    return counted[0]


def payments_from_settings(settings: Settings) -> StripePayments | None:
    """The Stripe adapter the settings describe; None when no Stripe secret key is set
    (checkout then answers 503 `payments_unconfigured`)."""
    key = settings.stripe_secret_key.get_secret_value() if settings.stripe_secret_key else ""
    if not key:
        return None
    webhook_secret = settings.stripe_webhook_secret
    return StripePayments(
        secret_key=key,
        webhook_secret=webhook_secret.get_secret_value() if webhook_secret else None,
        api_base=settings.stripe_api_base,
        timeout_seconds=settings.stripe_timeout_seconds,
        max_network_retries=settings.stripe_max_network_retries,
    )
