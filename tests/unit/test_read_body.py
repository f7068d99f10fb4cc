"""How the reservation fast path reads a request body from the ASGI server."""

from __future__ import annotations

import pytest
from litestar.types import HTTPRequestEvent, ReceiveMessage

from stockgate.entrypoints.http.fast_path import BodyTooLarge, read_body


class Messages:
    """An ASGI `receive` that hands out the given messages and fails if asked for more."""

    def __init__(self, *messages: ReceiveMessage) -> None:
        self._messages = list(messages)
        self.received = 0

    async def __call__(self) -> ReceiveMessage:
        if self.received == len(self._messages):
            raise AssertionError("receive() awaited after the body was whole")
        self.received += 1
        return self._messages[self.received - 1]


def body(data: bytes, *, more: bool) -> HTTPRequestEvent:
    return {"type": "http.request", "body": data, "more_body": more}


async def test_the_declared_length_ends_the_body_without_waiting_for_the_end_message() -> None:
    # granian sends the body with more_body=True, then an empty message; the second is not
    # needed once Content-Length bytes are in.
    receive = Messages(body(b'{"items":[]}', more=True), body(b"", more=False))
    assert await read_body(receive, declared=12, limit=100) == b'{"items":[]}'
    assert receive.received == 1


async def test_without_a_declared_length_the_body_is_read_to_its_end() -> None:
    receive = Messages(body(b"ab", more=True), body(b"cd", more=True), body(b"", more=False))
    assert await read_body(receive, declared=None, limit=100) == b"abcd"
    assert receive.received == 3


async def test_a_body_arriving_in_pieces_is_read_until_the_declared_length() -> None:
    receive = Messages(body(b"ab", more=True), body(b"cd", more=True), body(b"", more=False))
    assert await read_body(receive, declared=4, limit=100) == b"abcd"
    assert receive.received == 2


async def test_an_empty_body_and_a_disconnect() -> None:
    assert await read_body(Messages(body(b"", more=False)), declared=0, limit=10) == b""
    gone = Messages(body(b"ab", more=True), {"type": "http.disconnect"})
    assert await read_body(gone, declared=10, limit=100) == b"ab"


async def test_a_body_past_the_limit_is_refused_whatever_it_declares() -> None:
    for declared in (None, 3, 8):
        receive = Messages(body(b"abcd", more=True), body(b"efgh", more=False))
        with pytest.raises(BodyTooLarge):
            await read_body(receive, declared=declared, limit=5)
