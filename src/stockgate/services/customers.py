"""Guest customers: a random id in a signed, expiring token (identity never comes from a header)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

from stockgate.domain.errors import Unauthorized


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

    def issue(self) -> IssuedToken:
        customer_id = uuid.uuid4()
        token = self._signer.sign(customer_id.hex).decode()
        return IssuedToken(customer_id, token)

    def verify(self, token: str) -> uuid.UUID:
        try:
            value = self._signer.unsign(token, max_age=self._ttl)
            return uuid.UUID(hex=value.decode())
        except SignatureExpired as exc:
            raise Unauthorized("the customer token has expired; create a new customer") from exc
        except (BadSignature, ValueError, UnicodeDecodeError) as exc:
            raise Unauthorized("the customer token is not valid") from exc
