"""Customer tokens: signed, expiring, and useless once changed."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from itsdangerous import TimestampSigner

from stockgate.domain.errors import Unauthorized
from stockgate.services.customers import CustomerTokens


def test_issued_token_verifies_to_its_customer() -> None:
    tokens = CustomerTokens("secret", ttl_seconds=60)
    issued = tokens.issue()
    assert tokens.verify(issued.token) == issued.customer_id
    assert tokens.issue().customer_id != issued.customer_id


@pytest.mark.parametrize(
    "tamper",
    [
        # Signature changed. Not its last character: base64 leaves 2 bits of that one unused,
        # so some changes there decode to the same, still valid, signature.
        lambda t: t[:-5] + ("A" if t[-5] != "A" else "B") + t[-4:],
        lambda t: "0" + t[1:] if t[0] != "0" else "1" + t[1:],  # customer id changed
        lambda t: t.split(".")[0],  # signature removed
        lambda t: "",
        lambda t: "not a token",
    ],
)
def test_tampered_token_is_refused(tamper: Callable[[str], str]) -> None:
    tokens = CustomerTokens("secret", ttl_seconds=60)
    token = tokens.issue().token
    with pytest.raises(Unauthorized):
        tokens.verify(tamper(token))


def test_token_signed_with_another_key_is_refused() -> None:
    token = CustomerTokens("other", ttl_seconds=60).issue().token
    with pytest.raises(Unauthorized, match="not valid"):
        CustomerTokens("secret", ttl_seconds=60).verify(token)


def test_expired_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = CustomerTokens("secret", ttl_seconds=60)
    issued_at = int(time.time()) - 61
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: issued_at)
    token = tokens.issue().token
    monkeypatch.undo()
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify(token)


def test_token_inside_its_lifetime_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = CustomerTokens("secret", ttl_seconds=60)
    issued_at = int(time.time()) - 50
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: issued_at)
    issued = tokens.issue()
    monkeypatch.undo()
    assert tokens.verify(issued.token) == issued.customer_id
