"""The notification adapters against real servers: a Standard Webhooks receiver verifying with
the `standardwebhooks` library, and a local SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from stockgate.adapters.notify.email import SmtpMailer
from stockgate.adapters.notify.webhook import StandardWebhookNotifier
from stockgate.domain.errors import NotificationFailed
from stockgate.services.ports import EmailMessage, OrderNotification
from stockgate.supervisor import free_port
from tests.e2e.fulfillment_kit import MERCHANT_SECRET, Merchant, running_merchant


def notification() -> OrderNotification:
    order_id = uuid.uuid4()
    return OrderNotification(
        id=f"msg_order_{order_id.hex}_fulfilled",
        type="order.fulfilled",
        order_id=order_id,
        data={"order_id": str(order_id), "amount_cents": 1500},
    )


async def test_webhook_is_signed_so_a_standard_webhooks_library_verifies_it() -> None:
    sent = notification()
    with running_merchant() as merchant:
        notifier = StandardWebhookNotifier(merchant.url, MERCHANT_SECRET, timeout_seconds=5)
        try:
            await notifier.notify(sent)
        finally:
            await notifier.close()
    (delivery,) = merchant.deliveries
    assert delivery.valid and delivery.webhook_id == sent.id
    assert delivery.body["type"] == "order.fulfilled"
    assert delivery.body["data"] == {"order_id": str(sent.order_id), "amount_cents": 1500}


async def test_a_webhook_signed_with_another_secret_does_not_verify() -> None:
    with running_merchant() as merchant:
        notifier = StandardWebhookNotifier(merchant.url, "whsec_" + "b3RoZXI=" * 4)
        try:
            await notifier.notify(notification())
        finally:
            await notifier.close()
    assert [d.valid for d in merchant.deliveries] == [False]


@pytest.mark.parametrize("status", [500, 404, 302])
async def test_any_answer_but_2xx_is_a_failed_delivery(status: int) -> None:
    with running_merchant(Merchant(answer=lambda n: (status, 0.0))) as merchant:
        notifier = StandardWebhookNotifier(merchant.url, MERCHANT_SECRET)
        try:
            with pytest.raises(NotificationFailed, match=f"answered {status}"):
                await notifier.notify(notification())
        finally:
            await notifier.close()


async def test_an_unreachable_or_slow_endpoint_is_a_failed_delivery() -> None:
    closed = StandardWebhookNotifier(f"http://127.0.0.1:{free_port()}/x", MERCHANT_SECRET)
    with running_merchant(Merchant(answer=lambda n: (200, 2.0))) as merchant:
        slow = StandardWebhookNotifier(merchant.url, MERCHANT_SECRET, timeout_seconds=0.3)
        try:
            with pytest.raises(NotificationFailed, match="ConnectError"):
                await closed.notify(notification())
            with pytest.raises(NotificationFailed, match="Timeout"):
                await slow.notify(notification())
        finally:
            await closed.close()
            await slow.close()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def test_email_reaches_the_smtp_server(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    mailer = SmtpMailer(f"smtp://127.0.0.1:{port}", "shop@stockgate.test")
    await mailer.send(EmailMessage("merchant@example.com", "Order 1 paid", "Please ship."))
    for _ in range(50):
        if inbox.messages:
            break
        await asyncio.sleep(0.02)
    ((sender, recipients, content),) = inbox.messages
    assert sender == "shop@stockgate.test" and recipients == ["merchant@example.com"]
    parsed = message_from_bytes(content)
    assert parsed["Subject"] == "Order 1 paid" and "Please ship." in parsed.get_payload()


async def test_an_unreachable_smtp_server_is_a_failed_delivery() -> None:
    mailer = SmtpMailer(f"smtp://127.0.0.1:{free_port()}", "shop@stockgate.test", timeout_seconds=2)
    with pytest.raises(NotificationFailed):
        await mailer.send(EmailMessage("merchant@example.com", "s", "t"))


def test_a_malformed_smtp_url_is_refused() -> None:
    with pytest.raises(ValueError, match="smtp://host:port"):
        SmtpMailer("http://mail.example.com", "shop@stockgate.test")
