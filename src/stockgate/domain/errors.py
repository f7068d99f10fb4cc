"""Domain errors: each carries the facts and a stable machine `code`.

The HTTP edge maps them to problem+json by walking the class's MRO, the CLI to exit codes,
so a new subclass needs no new handler.
"""

from __future__ import annotations

from typing import Any


class StockgateError(Exception):
    code = "error"
    title = "Request failed"

    def __init__(self, detail: str, **facts: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.facts = facts


class InvalidInput(StockgateError):
    code = "invalid_input"
    title = "Invalid input"


class MalformedBody(StockgateError):
    code = "malformed_json"
    title = "Malformed JSON"


class NotFound(StockgateError):
    code = "not_found"
    title = "Not found"


class Conflict(StockgateError):
    code = "conflict"
    title = "Conflict"


class Unauthorized(StockgateError):
    code = "unauthorized"
    title = "Missing or invalid customer token"


class ProductNotFound(NotFound):
    code = "product_not_found"

    def __init__(self, ref: object) -> None:
        super().__init__(f"no product {ref}", product=str(ref))


class ReservationNotFound(NotFound):
    code = "reservation_not_found"

    def __init__(self, reservation_id: object) -> None:
        super().__init__(f"no reservation {reservation_id}")


class UnknownProduct(InvalidInput):
    """A reservation names a product that does not exist."""

    code = "unknown_product"

    def __init__(self, product_id: int) -> None:
        super().__init__(f"product {product_id} does not exist", product_id=product_id)


class DuplicateSku(Conflict):
    code = "duplicate_sku"

    def __init__(self, sku: str) -> None:
        super().__init__(f"a product with SKU {sku!r} already exists", sku=sku)


class SoldOut(Conflict):
    code = "sold_out"
    title = "Sold out"

    def __init__(self, product_id: int, available: int) -> None:
        super().__init__(
            f"product {product_id} has {available} available",
            product_id=product_id,
            available=available,
        )


class LimitExceeded(Conflict):
    code = "limit_exceeded"
    title = "Per-customer limit exceeded"

    def __init__(self, product_id: int, limit: int, already: int) -> None:
        super().__init__(
            f"product {product_id} allows {limit} per customer; you already have {already}",
            product_id=product_id,
            limit=limit,
            already=already,
        )


class IdempotencyConflict(Conflict):
    code = "idempotency_key_reused"
    title = "Idempotency key reused with a different request"


class RequestInProgress(Conflict):
    code = "request_in_progress"
    title = "The original request with this idempotency key is still in progress"


class RestockInProgress(Conflict):
    code = "restock_in_progress"
    title = "Another restock of this product is still being applied"


class RestockKeyReused(Conflict):
    """A restock key names an earlier restock of another quantity: it cannot be a rerun."""

    code = "restock_key_reused"
    title = "This restock key was used for another restock"


class ReservationNotActive(Conflict):
    code = "reservation_not_active"
    title = "Reservation is no longer active"


class ReservationExpired(ReservationNotActive):
    """Its hold ran out (or is about to be ended by the expiry worker): nothing can change it."""

    code = "reservation_expired"
    title = "Reservation expired"


class ReservationInCheckout(ReservationNotActive):
    """Checkout started: its order fixes what is paid, so its lines can no longer change."""

    code = "reservation_in_checkout"
    title = "Reservation is in checkout"


class AlreadyInCart(Conflict):
    """The reservation holds this product already; remove the line and add it again."""

    code = "already_in_cart"
    title = "Product already in the reservation"

    def __init__(self, product_id: int) -> None:
        super().__init__(
            f"product {product_id} is in this reservation already; remove it to change the "
            "quantity",
            product_id=product_id,
        )


class ItemNotInReservation(NotFound):
    code = "item_not_found"
    title = "No such item in the reservation"

    def __init__(self, product_id: int) -> None:
        super().__init__(f"product {product_id} is not in this reservation", product_id=product_id)


class StoreUnavailable(StockgateError):
    """A backing store (PostgreSQL or Redis) failed; nothing was taken."""

    code = "unavailable"
    title = "Service temporarily unavailable"

    def __init__(self, store: str, detail: str | None = None) -> None:
        super().__init__(detail or f"{store} is unavailable; nothing was taken", store=store)
        self.store = store


class GateOutcomeUnknown(StoreUnavailable):
    """Redis failed after a gate call was sent: it may or may not have been applied.

    A take in this state is canceled by a compensation retried until Redis answers it
    (services/reserve.py), so its units come back within seconds, not at the next repair.
    """

    def __init__(self, detail: str) -> None:
        super().__init__("redis", detail)


class WriteOutcomeUnknown(StoreUnavailable):
    """PostgreSQL failed while committing and could not be asked afterwards.

    The write may or may not have happened: the stock must not be given back on a guess
    (that could sell it twice). The reconciler settles it once PostgreSQL answers again.
    """

    def __init__(self) -> None:
        super().__init__("postgres", "postgres failed mid-write; the reservation may not exist")


class CorruptGateData(StoreUnavailable):
    """Redis answers, but a key of the gate holds what stockgate did not write (WRONGTYPE, a
    script error). Buyers see 503 like an outage; the reconciler reports the product and goes
    on with the others instead of failing the whole pass."""

    def __init__(self, detail: str) -> None:
        super().__init__("redis", f"the stock gate's data is damaged: {detail}")


class SchemaMissing(StoreUnavailable):
    """PostgreSQL answers but has no stockgate tables: migrations have not run."""

    code = "schema_missing"

    def __init__(self) -> None:
        super().__init__(
            "postgres", "the database has no stockgate schema; run `stockgate migrate`"
        )


class EmbeddedStoreNotRunning(StoreUnavailable):
    """No URL is configured and the embedded server is not running (only `up` and one-shot
    commands start it; `api` and `worker` attach)."""

    def __init__(self, what: str, setting: str, data_dir: str) -> None:
        super().__init__(
            "embedded",
            f"the embedded {what} in {data_dir} is not running; start everything with "
            f"`stockgate up`, or set {setting}",
        )


class PaymentsUnconfigured(StockgateError):
    code = "payments_unconfigured"
    title = "Payments are not configured"


class RateLimited(StockgateError):
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests; retry in {retry_after} s", retry_after=retry_after)


class PaymentProviderUnavailable(StoreUnavailable):
    """The payment provider (Stripe) could not be reached or answered with a server error;
    nothing was decided there, so the caller may retry."""

    code = "payments_unavailable"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__("stripe", detail or "the payment provider is unavailable; try again")


class PaymentIntentNotFound(NotFound):
    """The payment provider has no PaymentIntent with this id (a typo, another account, or the
    fake Stripe started afresh)."""

    code = "payment_intent_not_found"

    def __init__(self, intent_id: str) -> None:
        super().__init__(
            f"the payment provider has no payment intent {intent_id}", payment_intent_id=intent_id
        )


class PaymentStateConflict(Conflict):
    """The payment's state at the provider does not allow the action: canceling a payment that
    succeeded (refund it instead), refunding one that never succeeded."""

    code = "payment_state_conflict"
    title = "The payment's state does not allow this"

    def __init__(self, intent_id: str, status: str, action: str) -> None:
        super().__init__(
            f"cannot {action} payment intent {intent_id}: it is {status}",
            payment_intent_id=intent_id,
            status=status,
        )
        self.status = status


class PaymentRequestRejected(StockgateError):
    """The payment provider refused a request as invalid (a bug, a currency the account does not
    take): asking again the same way fails the same way. A wrong API key is not this but
    PaymentProviderUnavailable: nothing works until an operator fixes it."""

    code = "payment_request_rejected"
    title = "The payment provider refused the request"


class PaymentInProgress(Conflict):
    """The reservation is being paid for and the payment could not be canceled."""

    code = "payment_in_progress"
    title = "A payment for this reservation is in progress"


class OrderNotFound(NotFound):
    code = "order_not_found"

    def __init__(self, order_id: object) -> None:
        super().__init__(f"no order {order_id}")


class OrderNotPayable(Conflict):
    code = "order_not_payable"
    title = "The order cannot be paid any more"


class PaymentDeclined(StockgateError):
    """The card was declined; the order stays payable until its reservation expires."""

    code = "payment_declined"
    title = "The payment was declined"


class InvalidWebhook(StockgateError):
    """A webhook whose signature, age or body is wrong: refused with 400, never stored."""

    code = "invalid_webhook"
    title = "Invalid webhook"


class NotificationFailed(StockgateError):
    """The merchant's endpoint or the mail server did not accept a notification."""

    code = "notification_failed"
    title = "Notification failed"


# --------------------------------------------------------------------------- admin dashboard


class Forbidden(StockgateError):
    code = "forbidden"
    title = "Forbidden"


class CsrfRefused(Forbidden):
    """A state-changing admin request without the session's CSRF token: nothing was changed."""

    code = "csrf_refused"
    title = "Missing or invalid CSRF token"

    def __init__(self) -> None:
        super().__init__("the form or request lacks a valid CSRF token; reload the page and retry")


class AdminLoginRequired(Unauthorized):
    code = "admin_login_required"
    title = "Admin login required"

    def __init__(self) -> None:
        super().__init__("log in at /admin/login first (the session is missing or has expired)")


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    title = "Wrong name or password"

    def __init__(self) -> None:
        super().__init__("the name or the password is wrong")


class LoginThrottled(RateLimited):
    code = "login_throttled"
    title = "Too many failed logins"

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        minutes = max(1, round(retry_after / 60))
        self.detail = (
            f"too many failed logins for this account or address; try again in about "
            f"{minutes} minute{'s' if minutes != 1 else ''}"
        )
