"""The Socket.IO events: `watch` and `unwatch` a list of products; the server sends `stock`.

Protocol (WebSocket transport only, default namespace):
- client `watch` `{"product_ids": [1, 2]}` -> joins rooms `product:1`, `product:2`; the ack is
  `{"ok": true, "stock": [{"product_id": 1, "available": 7}, ...]}`, the values now.
- client `unwatch` `{"product_ids": [...]}` -> leaves those rooms; ack `{"ok": true}`.
- connecting with auth `{"product_ids": [...]}` watches them as well and sends each current value
  as a `stock` event: socket.io clients send their auth again on every reconnect, so a client
  that reconnects is told the current values at once without doing anything.
- server `stock` `{"product_id": 1, "available": 6}` to the product's room, coalesced.
- anything malformed gets `{"ok": false, "error": {"code", "detail"}}`; state is unchanged (a
  malformed connection auth gets the error as a `watch_error` event; the connection stays).
"""

from __future__ import annotations

from typing import Any

import msgspec
import socketio
import structlog

from stockgate.adapters import metrics
from stockgate.bootstrap import Container
from stockgate.domain.errors import InvalidInput, StockgateError, StoreUnavailable
from stockgate.services.live_stock import STOCK_EVENT, KnownProducts, current_available, room_of

log = structlog.get_logger(__name__)


class WatchIn(msgspec.Struct, forbid_unknown_fields=True):
    product_ids: list[int]


def failure(code: str, detail: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "detail": detail}}


class WatchEvents:
    """The handlers of one API process, over its container."""

    def __init__(self, server: socketio.AsyncServer, container: Container) -> None:
        self._server = server
        self._container = container
        self._max_watch = container.settings.live_stock_max_watch
        self._known = KnownProducts()
        server.on("connect", self.connect)
        server.on("disconnect", self.disconnect)
        server.on("watch", self.watch)
        server.on("unwatch", self.unwatch)
        server.on("*", self.unknown)

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        metrics.WATCHERS_CONNECTED.inc()
        if isinstance(auth, dict) and "product_ids" in auth:
            answer = await self.watch(sid, {"product_ids": auth["product_ids"]})
            for level in answer.get("stock", []):
                await self._server.emit(STOCK_EVENT, level, to=sid)
            if not answer["ok"]:
                await self._server.emit("watch_error", answer["error"], to=sid)

    async def disconnect(self, sid: str, *args: Any) -> None:
        metrics.WATCHERS_CONNECTED.dec()

    async def watch(self, sid: str, *args: Any) -> dict[str, Any]:
        try:
            product_ids = self._product_ids(args)
            watching = {room for room in self._server.rooms(sid) if room.startswith("product:")}
            new = {room_of(pid) for pid in product_ids} - watching
            if len(watching) + len(new) > self._max_watch:
                raise InvalidInput(f"watch at most {self._max_watch} products at once")
            # Join first, then read: a change after the read reaches the room, so the client
            # ends with the newer value either way.
            for room in new:
                await self._server.enter_room(sid, room)
            try:
                levels = await current_available(
                    product_ids,
                    uow_factory=self._container.uow_factory,
                    gate=self._container.gate,
                    known=self._known,
                )
            except BaseException:
                for room in new:
                    await self._server.leave_room(sid, room)
                raise
        except StoreUnavailable as exc:
            return failure("unavailable", str(exc))
        except StockgateError as exc:
            return failure(exc.code, exc.detail)
        except Exception:  # an event must never take the connection or the server down
            log.exception("socketio.watch_failed", sid=sid)
            return failure("internal_error", "the server could not answer this event")
        stock = [{"product_id": pid, "available": count} for pid, count in levels.items()]
        return {"ok": True, "stock": stock}

    async def unwatch(self, sid: str, *args: Any) -> dict[str, Any]:
        try:
            product_ids = self._product_ids(args)
        except StockgateError as exc:
            return failure(exc.code, exc.detail)
        for product_id in product_ids:
            await self._server.leave_room(sid, room_of(product_id))
        return {"ok": True}

    async def unknown(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        return failure("unknown_event", f"no event {event!r}; send watch or unwatch")

    def _product_ids(self, args: tuple[Any, ...]) -> list[int]:
        if len(args) != 1:
            raise InvalidInput('send one object: {"product_ids": [1, 2]}')
        try:
            data = msgspec.convert(args[0], WatchIn, strict=True)
        except msgspec.ValidationError as exc:
            raise InvalidInput(f'send {{"product_ids": [1, 2]}}: {exc}') from None
        if not data.product_ids:
            raise InvalidInput("product_ids is empty")
        if len(data.product_ids) > self._max_watch:
            raise InvalidInput(f"watch at most {self._max_watch} products at once")
        return list(dict.fromkeys(data.product_ids))  # once each, in the order given
