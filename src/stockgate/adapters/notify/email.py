"""Mailer over SMTP (aiosmtplib), configured by one URL:
`smtp://[user:password@]host[:port]` (STARTTLS when offered) or `smtps://...` (TLS)."""

from __future__ import annotations

from email.message import EmailMessage as MimeMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

from stockgate.domain.errors import NotificationFailed
from stockgate.services.ports import EmailMessage


class SmtpMailer:
    def __init__(self, url: str, sender: str, *, timeout_seconds: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("STOCKGATE_SMTP_URL must look like smtp://host:port")
        self._tls = parts.scheme == "smtps"
        self._host = parts.hostname
        self._port = parts.port or (465 if self._tls else 25)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._sender = sender
        self._timeout = timeout_seconds

    async def send(self, message: EmailMessage) -> None:
        mime = MimeMessage()
        mime["From"] = self._sender
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime.set_content(message.text)
        try:
            await aiosmtplib.send(
                mime,
                hostname=self._host,
                port=self._port,
                username=self._user,
                password=self._password,
                use_tls=self._tls,
                start_tls=None if not self._tls else False,
                timeout=self._timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise NotificationFailed(
                f"mail to {message.to} via {self._host}:{self._port}: {exc}"
            ) from exc
