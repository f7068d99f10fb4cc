"""Request context: a request id on every log line, and latency histograms per route.

Used by the Litestar middleware for every route and by the reservation fast path.
"""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from stockgate.adapters.metrics import REQUEST_LATENCY


class RequestContext:
    def __init__(self) -> None:
        # Ids are a per-process random prefix and a counter: unique, and cheaper than a
        # uuid4 (a system call) per request. Histogram children are looked up once per label set.
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)
        self._histograms: dict[tuple[str, str, int], Any] = {}

    def begin(self, incoming_id: str | None) -> str:
        if incoming_id is not None and _acceptable(incoming_id):
            request_id = incoming_id
        else:
            request_id = f"{self._prefix}-{next(self._counter):x}"
        structlog.contextvars.bind_contextvars(request_id=request_id)
        return request_id

    def end(self, method: str, route: str, status: int, started: float) -> None:
        key = (method, route, status)
        histogram = self._histograms.get(key)
        if histogram is None:
            histogram = self._histograms[key] = REQUEST_LATENCY.labels(method, route, str(status))
        histogram.observe(time.perf_counter() - started)
        structlog.contextvars.unbind_contextvars("request_id")

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Litestar middleware applying the context to every other route."""

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            method = scope["method"]
            started = time.perf_counter()
            request_id = self.begin(_incoming_id(scope))
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
                self.end(method, scope.get("path_template") or "unmatched", status, started)

        return middleware


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            return text
    return None


def _acceptable(text: str) -> bool:
    # Accept only a short token-like id: it ends up in logs.
    return 0 < len(text) <= 64 and text.replace("-", "").isalnum()
