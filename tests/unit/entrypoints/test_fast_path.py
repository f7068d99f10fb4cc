"""The reservation fast path's request handling around the answer: headers and its context."""

from __future__ import annotations

import types
from typing import Any, cast

import pytest
import structlog
from litestar import Litestar
from litestar.types import Message, ReceiveMessage, Scope

from stockgate.adapters.metrics import REQUEST_LATENCY
from stockgate.entrypoints.http import fast_path
from stockgate.entrypoints.http.fast_path import PATH, ReservationFastPath
from stockgate.entrypoints.http.request_context import RequestContext
from stockgate.entrypoints.http.reservation_answer import Answer


def scope(*headers: tuple[bytes, bytes]) -> Scope:
    return cast(Scope, {"type": "http", "path": PATH, "method": "POST", "headers": list(headers)})


async def one_body(data: bytes) -> ReceiveMessage:
    return {"type": "http.request", "body": data, "more_body": False}


def samples(status: str) -> float:
    # The histogram's sum: every new sample adds to it.
    total: float = REQUEST_LATENCY.labels("POST", PATH, status)._sum.get()
    return total


def app() -> Litestar:
    addresses = types.SimpleNamespace(of=lambda peer, forwarded: peer)
    api = types.SimpleNamespace(addresses=addresses)
    return cast(Litestar, types.SimpleNamespace(state=types.SimpleNamespace(api=api)))


async def test_a_failing_send_still_ends_the_request_context() -> None:
    path = ReservationFastPath(app(), RequestContext(), max_body_bytes=10)

    async def receive() -> ReceiveMessage:
        return await one_body(b"x" * 100)  # too large: answered 413 without any store

    async def send(message: Message) -> None:
        raise OSError("the client went away")

    before = samples("413")
    with pytest.raises(OSError):
        await path(scope((b"content-length", b"100")), receive, send)
    assert samples("413") > before  # the latency sample was taken
    assert "request_id" not in structlog.contextvars.get_contextvars()


async def test_repeated_headers_count_by_their_first_occurrence_as_litestar_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[str | None, str | None]] = []

    async def answer(
        state: Any, authorization: str | None, key: str | None, body: bytes, client: Any
    ) -> Answer:
        seen.append((authorization, key))
        return Answer(201, b"{}", "application/json")

    monkeypatch.setattr(fast_path, "answer_reservation", answer)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> ReceiveMessage:
        return await one_body(b"{}")

    headers = (
        (b"authorization", b"Bearer first"),
        (b"idempotency-key", b"k1"),
        (b"x-request-id", b"id-first"),
        (b"authorization", b"Bearer second"),
        (b"idempotency-key", b"k2"),
        (b"x-request-id", b"id-second"),
    )
    path = ReservationFastPath(app(), RequestContext(), max_body_bytes=100)
    await path(scope(*headers), receive, send)
    assert seen == [("Bearer first", "k1")]
    start = cast(dict[str, Any], sent[0])
    assert (b"x-request-id", b"id-first") in start["headers"]
