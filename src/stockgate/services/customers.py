"""Guest customers: a random id in a signed, expiring token (identity never comes from a header)."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

from stockgate.domain.errors import Unauthorized

VERIFIED_CACHE_SIZE = 100_000


@dataclass(frozen=True, slots=True)
class IssuedToken:
    customer_id: uuid.UUID
    token: str


class CustomerTokens:
    """Issues and checks customer tokens (HMAC-SHA256 over the id and the issue time)."""

    def __init__(self, secret_key: str, ttl_seconds: int) -> None:
        self._signer = TimestampSigner(
            secret_key, salt="stockgate.customer", digest_method=hashlib.sha256
        )
        self._ttl = ttl_seconds
        self._verified: dict[str, tuple[uuid.UUID, float]] = {}

    def issue(self) -> IssuedToken:
        customer_id = uuid.uuid4()
        token = self._signer.sign(customer_id.hex).decode()
        return IssuedToken(customer_id, token)

    def verify(self, token: str) -> uuid.UUID:
        # A buyer sends the same token with every request of a sale: remember tokens that
        # verified, until they expire, so the HMAC is checked once per token, not per request.
        known = self._verified.get(token)
        if known is not None and known[1] > time.time():
            return known[0]
        try:
            value, signed_at = self._signer.unsign(token, max_age=self._ttl, return_timestamp=True)
            customer_id = uuid.UUID(hex=value.decode())
        except SignatureExpired as exc:
            raise Unauthorized("the customer token has expired; create a new customer") from exc
        except (BadSignature, ValueError, UnicodeDecodeError) as exc:
            raise Unauthorized("the customer token is not valid") from exc
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()  # crude but bounded; refilling costs one HMAC per token
        self._verified[token] = (customer_id, signed_at.timestamp() + self._ttl)
        return customer_id
