"""The raw ASGI fast path for `POST /api/v1/reservations`, in front of Litestar.

Taking or refusing a reservation is the request a drop sends thousands of times a second.
Served here it skips the framework's routing, exception middleware and response machinery,
about a third of its CPU (docs/performance.md, decision 0008). It is the endpoint's only
implementation: Litestar has no route for it, reservation_docs.py describes it in the
OpenAPI document, and an e2e test checks every answer against that description. Every other
request, and the lifespan, goes to Litestar.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
import structlog
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import Receive, Scope, Send

from stockgate.domain.errors import StockgateError
from stockgate.entrypoints.http.problems import PROBLEM, problem_body
from stockgate.entrypoints.http.request_context import RequestContext
from stockgate.entrypoints.http.reservation_answer import Answer, answer_reservation
from stockgate.entrypoints.http.state import ApiState

log = structlog.get_logger(__name__)

PATH = "/api/v1/reservations"


class BodyTooLarge(StockgateError):
    code = "body_too_large"
    title = "Body too large"


class ReservationFastPath:
    def __init__(self, app: Litestar, context: RequestContext, *, max_body_bytes: int) -> None:
        self.app = app
        self._context = context
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        authorization = idempotency_key = incoming_id = None
        declared: int | None = None
        forwarded: list[str] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
            elif name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"idempotency-key":
                idempotency_key = value.decode("latin-1")
            elif name == b"x-request-id":
                incoming_id = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                declared = int(value)
        request_id = self._context.begin(incoming_id)
        answer = Answer(500, b"", PROBLEM)
        try:
            body = await read_body(receive, declared=declared, limit=self._max_body)
            state: ApiState = self.app.state.api
            peer = scope.get("client")
            client = state.addresses.of(peer[0] if peer else None, forwarded)
            answer = await answer_reservation(state, authorization, idempotency_key, body, client)
        except BodyTooLarge as exc:
            answer = _problem(413, exc)
        except Exception:  # the process boundary: log it, answer 500, keep serving
            log.exception("request.unexpected_error", path=PATH)
            answer = _problem(500, StockgateError("an unexpected error occurred"))
        finally:
            await _send(send, answer, request_id)
            self._context.end("POST", PATH, answer.status, started)


async def read_body(receive: Receive, *, declared: int | None, limit: int) -> bytes:
    """The request body, refused past `limit` bytes; `declared` is its Content-Length."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Any = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
        # granian sends the body, then an empty message to end it: a second hand-off from its
        # I/O thread for every request. Once the declared length is in, the body is whole, so
        # that message is not waited for: the server enforces Content-Length, and drops it
        # when Transfer-Encoding frames the body instead (RFC 9112 6.3; an e2e test checks).
        if not message.get("more_body", False) or size == declared:
            break
    return b"".join(chunks)


def _problem(status: int, exc: StockgateError) -> Answer:
    code = exc.code if status != 500 else "internal_error"
    title = exc.title if status != 500 else "Internal error"
    body = problem_body(status, code, title, exc.detail)
    return Answer(status, msgspec.json.encode(body), PROBLEM)


async def _send(send: Send, answer: Answer, request_id: str) -> None:
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", answer.media_type.encode()),
        (b"content-length", str(len(answer.body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    if answer.retry_after:
        headers.append((b"retry-after", str(answer.retry_after).encode()))
    start: Any = {"type": "http.response.start", "status": answer.status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": answer.body, "more_body": False})
