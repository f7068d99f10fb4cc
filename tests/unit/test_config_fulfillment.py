"""Notification settings are refused half-configured: orders would be fulfilled silently."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stockgate.config import load_settings


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"merchant_webhook_url": "https://shop.example/hooks"}, "merchant_webhook_secret"),
        ({"smtp_url": "smtp://127.0.0.1:25"}, "merchant_email"),
        ({"smtp_url": "http://mail.example", "merchant_email": "m@x.test"}, "smtp_url"),
    ],
)
def test_half_configured_notifications_are_refused(given: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        load_settings(**given)
    assert [error["loc"] for error in raised.value.errors()] == [(field,)]


def test_complete_notification_settings_are_accepted() -> None:
    settings = load_settings(
        merchant_webhook_url="https://shop.example/hooks",
        merchant_webhook_secret="whsec_c2VjcmV0",
        smtp_url="smtp://127.0.0.1:25",
        merchant_email="orders@shop.example",
    )
    assert settings.merchant_email == "orders@shop.example"
