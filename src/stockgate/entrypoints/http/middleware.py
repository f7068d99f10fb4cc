"""Request context: a request id on every log line, and latency histograms per route."""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from stockgate.adapters.metrics import REQUEST_LATENCY


def request_context(app: ASGIApp) -> ASGIApp:
    # Ids are a per-process random prefix and a counter: unique, and cheaper than a uuid4
    # (a system call) on every request. Histogram children are looked up once per label set.
    prefix = secrets.token_hex(4)
    counter = itertools.count(1)
    histograms: dict[tuple[str, str, int], Any] = {}

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        method = scope["method"]
        started = time.perf_counter()
        request_id = _incoming_id(scope) or f"{prefix}-{next(counter):x}"
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            key = (method, scope.get("path_template") or "unmatched", status)
            histogram = histograms.get(key)
            if histogram is None:
                histogram = histograms[key] = REQUEST_LATENCY.labels(key[0], key[1], str(status))
            histogram.observe(time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("request_id")

    return middleware


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            # Accept only a short token-like id: it ends up in logs.
            if 0 < len(text) <= 64 and text.replace("-", "").isalnum():
                return text
    return None
