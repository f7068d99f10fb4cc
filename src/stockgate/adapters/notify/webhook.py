"""MerchantNotifier: an HTTP POST signed per the Standard Webhooks convention.

Headers `webhook-id` (the notification's id: the same on every retry, so the receiver
deduplicates), `webhook-timestamp` and `webhook-signature` are made by the `standardwebhooks`
library, so any Standard Webhooks library verifies them. Any answer but 2xx, a timeout or a
connection error raises NotificationFailed: the fulfillment job retries.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook

from stockgate.domain.errors import NotificationFailed
from stockgate.services.ports import OrderNotification


def signer(secret: str) -> Webhook:
    """`whsec_<base64>` as Standard Webhooks secrets are written; any other string is used
    as the key's bytes."""
    return Webhook(secret if secret.startswith("whsec_") else secret.encode())


class StandardWebhookNotifier:
    def __init__(self, url: str, secret: str, *, timeout_seconds: float = 5.0) -> None:
        self._url = url
        self._webhook = signer(secret)
        self._client = httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)

    async def notify(self, notification: OrderNotification) -> None:
        now = datetime.now(UTC)
        body = json.dumps(
            {
                "type": notification.type,
                "timestamp": now.isoformat(),
                "data": dict(notification.data),
            },
            separators=(",", ":"),
        )
        headers = {
            "content-type": "application/json",
            "webhook-id": notification.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._webhook.sign(notification.id, now, body),
        }
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise NotificationFailed(
                f"merchant webhook {self._url}: {type(exc).__name__}: {exc}"
            ) from exc
        if not response.is_success:
            raise NotificationFailed(
                f"merchant webhook {self._url} answered {response.status_code}"
            )

    async def close(self) -> None:
        await self._client.aclose()
