"""The Socket.IO server of an API process, mounted beside the HTTP app on the same port.

`/socket.io/` goes to Socket.IO (WebSocket transport only), everything else (and the
lifespan) to the HTTP app. The server is built in the lifespan, from the container, with the
container's Redis manager: an event emitted by any process (another API node, a worker, a CLI
command) reaches this process's watchers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import socketio

from stockgate.bootstrap import Container
from stockgate.entrypoints.realtime.watch import WatchEvents

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PATH = "/socket.io"
MAX_MESSAGE_BYTES = 16 * 1024  # a watch of the most products fits many times over


class Realtime:
    """Holds the Socket.IO server while the API runs; an ASGI app in front of the HTTP app."""

    def __init__(self, app: Any = None) -> None:
        self.app = app  # the HTTP app (set once built: its lifespan starts this)
        self._server: socketio.AsyncServer | None = None
        self._asgi: socketio.ASGIApp | None = None

    async def start(self, container: Container) -> None:
        assert container.stores is not None, "the API runs on real stores"
        server = socketio.AsyncServer(
            async_mode="asgi",
            client_manager=container.stores.socketio,
            transports=["websocket"],
            max_http_buffer_size=MAX_MESSAGE_BYTES,
            logger=False,
            engineio_logger=False,
        )
        WatchEvents(server, container)
        self._server = server
        self._asgi = socketio.ASGIApp(server, socketio_path=PATH.strip("/"))

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
        self._server = self._asgi = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan" and _is_socketio(scope["path"]):
            if self._asgi is None:  # not started yet, or stopping
                await _unavailable(scope, send)
                return
            await self._asgi(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_socketio(path: str) -> bool:
    return path == PATH or path.startswith(PATH + "/")


async def _unavailable(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1013})  # try again later
        return
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [(b"content-type", b"text/plain"), (b"retry-after", b"1")],
        }
    )
    await send({"type": "http.response.body", "body": b"starting"})
